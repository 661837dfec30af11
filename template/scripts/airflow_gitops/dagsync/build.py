"""Building a release: a new tree whose unchanged files are hard links to the live release's, and the
repair of a release that was edited by hand (the one exception to "a published tree is never modified")."""

from __future__ import annotations

import os
from typing import NamedTuple

from airflow_gitops.dagsync.layout import RELEASES, TMP, release_dir
from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Item, Tree, parallel
from airflow_gitops.dagsync.volume import Dirs, Ops, by_depth, fsync_dir, remove_entry, split


def build(root: str, rid: str, source: Source, base: str | None, have: Tree, ops: Ops) -> str:
    """releases/<rid> holding the source tree: built under a temp name (invisible to Airflow, whose DAGS_FOLDER
    is ROOT/current; removed by the next run if this one dies), fsynced, then renamed into place. Files that
    `have` (the content of the release `base`) holds unchanged are linked, the others written."""
    final = release_dir(root, rid)
    tmp = os.path.join(root, RELEASES, TMP + rid)
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    os.mkdir(tmp)
    ops.count("mkdir")
    files = [rel for rel, item in source.tree.items() if item.kind == "f"]
    linked = [rel for rel in files if source.tree[rel].same(have.get(rel))] if base else []
    shared = set(linked)
    written = [rel for rel in files if rel not in shared]
    with Dirs(tmp, writable=True) as new:
        for level in by_depth(rel for rel, item in source.tree.items() if item.kind == "d"):
            parallel(ops.jobs, lambda rel: new.mkdir(rel, ops), level)
        if base and linked:
            with Dirs(release_dir(root, base)) as old:
                parallel(ops.jobs, lambda rel: ops.link_or_copy(source, rel, old.fd(split(rel)[0]),
                                                                new.fd(split(rel)[0]), split(rel)[1]), linked)
        parallel(ops.jobs, lambda rel: ops.write_file(source, rel, new.fd(split(rel)[0]), split(rel)[1]), written)
        new.fsync_all(ops)  # every entry durable before the name says "complete release"
    os.rename(tmp, final)
    ops.count("renamed")
    fsync_dir(os.path.dirname(final))  # the name durable before the manifest and the flip refer to it
    return final


class Plan(NamedTuple):
    remove: list  # present but unwanted (or of another kind)
    mkdir: list
    write: list  # files absent or different

    def empty(self) -> bool:
        return not (self.remove or self.mkdir or self.write)


def diff(want: Tree, have: Tree) -> Plan:
    """What turns a tree holding `have` into `want` (the removal of a directory takes what is below it)."""
    remove = [rel for rel, item in have.items() if item.kind == "?" or want.get(rel, Item("?")).kind != item.kind]
    gone = set(remove)
    remove = [rel for rel in remove if not any(a in gone for a in ancestors(rel))]
    mkdir = [rel for rel, item in want.items() if item.kind == "d" and (rel in gone or rel not in have
                                                                         or any(a in gone for a in ancestors(rel)))]
    write = [rel for rel, item in want.items() if item.kind == "f" and not item.same(have.get(rel))]
    return Plan(remove, mkdir, write)


def ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def repair(path: str, source: Source, have: Tree, ops: Ops) -> Plan:
    """Make a release edited by hand hold its tree again. Each differing file is written under a temp name
    and renamed over the edited one (a new inode: an edit must not reach other releases through a shared
    one), so a reader sees the edited file or the right one."""
    plan = diff(source.tree, have)
    parallel(ops.jobs, lambda rel: remove_entry(f"{path}/{rel}", ops), plan.remove)
    for level in by_depth(plan.mkdir):
        parallel(ops.jobs, lambda rel: (os.mkdir(f"{path}/{rel}"), ops.count("mkdir")), level)

    def rewrite(rel: str) -> None:
        parent, name = split(rel)
        directory = f"{path}/{parent}" if parent else path
        with Dirs(directory, writable=True) as dirs:
            remove_entry(f"{directory}/{TMP}{name}", ops)
            ops.write_file(source, rel, dirs.fd(""), TMP + name)
            os.replace(TMP + name, name, src_dir_fd=dirs.fd(""), dst_dir_fd=dirs.fd(""))
            ops.count("renamed")

    parallel(ops.jobs, rewrite, plan.write)
    return plan
