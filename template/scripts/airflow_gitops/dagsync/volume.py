"""The calls on the volume (counted: each one a network round trip on EFS), and the plan a slot needs."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Item, Tree, parallel, sha256_file
from airflow_gitops.errors import UserError


class Ops:
    """Performs and counts the calls on the volume (each one a network round trip on EFS); thread-safe."""

    KINDS = ("written", "linked", "unlinked", "mkdir", "rmdir", "symlink", "renamed", "utime")

    def __init__(self, jobs: int = 1) -> None:
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.bookkeeping = 0  # manifest, state and lock writes, reported apart from the trees
        self.jobs, self.guard = jobs, threading.Lock()

    def count(self, kind: str, n: int = 1) -> None:
        with self.guard:
            self.counts[kind] += n

    def summary(self) -> dict[str, int]:
        return {**self.counts, "total": sum(self.counts.values()), "bookkeeping": self.bookkeeping}

    def do(self, kind: str, func: Callable[..., object], *args: str) -> None:
        func(*args)
        self.count(kind)

    def write_file(self, source: Source, rel: str, dst: str) -> None:
        """A new inode under the final name (the slot is not live); the mode is given at creation (umask
        applies, like rsync without -p), the source mtime set after (rsync -t). The bytes are hashed as they
        are copied: a source changed since it was hashed fails the run instead of publishing other bytes
        than the manifest records (the path stays pending: the next run rewrites it)."""
        want, digest = source.tree[rel], hashlib.sha256()
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, want.mode)
        self.count("written")
        try:
            with open(source.origin[rel], "rb") as fin:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    digest.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
            if digest.hexdigest() != want.digest:
                raise UserError(f"source file {rel} changed during the publish; run it again")
            mtime = source.mtime[rel]
            os.utime(out, ns=(mtime, mtime))
            self.count("utime")
        finally:
            os.close(out)

    def unlink(self, path: str) -> None:
        """A file, or whatever is there (a directory edited in by hand); absent is fine."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except (IsADirectoryError, PermissionError):  # Linux says EISDIR, POSIX allows EPERM
            if not os.path.isdir(path) or os.path.islink(path):
                raise
            self.remove_tree(path)
            return
        self.count("unlinked")

    def rmdir(self, path: str) -> None:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.remove_tree(path)  # holds files the manifest does not know: added by hand
            return
        self.count("rmdir")

    def remove_tree(self, path: str) -> None:
        with os.scandir(path) as it:
            for child in list(it):
                if child.is_dir(follow_symlinks=False):
                    self.remove_tree(child.path)
                else:
                    self.do("unlinked", os.unlink, child.path)
        self.do("rmdir", os.rmdir, path)


def by_depth(paths: Iterable[str], deepest_first: bool = False) -> list[list[str]]:
    levels: dict[int, list[str]] = {}
    for path in paths:
        levels.setdefault(path.count("/"), []).append(path)
    return [levels[depth] for depth in sorted(levels, reverse=deepest_first)]


class Plan(NamedTuple):
    remove: list  # present but unwanted (or of another kind), with every known path below them
    mkdir: list
    write: list  # files to (re)write: absent, different, or of unknown content

    def empty(self) -> bool:
        return not (self.remove or self.mkdir or self.write)

    def touched(self) -> set[str]:
        return set(self.remove) | set(self.mkdir) | set(self.write)


def diff(want: Tree, have: Tree) -> Plan:
    """What turns a slot holding `have` into `want`; compares manifests only."""
    remove = [rel for rel, item in have.items() if item.kind == "?" or want.get(rel, Item("?")).kind != item.kind]
    dirs = {rel for rel in remove if have[rel].kind == "d"}
    if dirs:  # everything known below a removed directory goes with it
        below = [rel for rel in have if rel not in dirs and any(a in dirs for a in ancestors(rel))]
        remove = list(dict.fromkeys(remove + below))
    gone = set(remove)
    mkdir = [rel for rel, item in want.items() if item.kind == "d" and (rel in gone or rel not in have)]
    write = [rel for rel, item in want.items() if item.kind == "f" and (rel in gone or not item.same(have.get(rel)))]
    return Plan(remove, mkdir, write)


def ancestors(rel: str) -> Iterator[str]:
    parts = rel.split("/")
    for n in range(1, len(parts)):
        yield "/".join(parts[:n])


def apply(plan: Plan, source: Source, have: Tree, target: str, ops: Ops, link_from: str | None = None) -> None:
    """Execute a plan, `ops.jobs` calls at a time; with link_from (a complete slot of the same tree) files
    are hard-linked from it instead of written."""
    gone = set(plan.remove)
    parallel(ops.jobs, lambda rel: ops.unlink(f"{target}/{rel}"), [r for r in plan.remove if have[r].kind != "d"])
    for level in by_depth((r for r in plan.remove if have[r].kind == "d"), deepest_first=True):
        parallel(ops.jobs, lambda rel: ops.rmdir(f"{target}/{rel}"), level)
    for level in by_depth(plan.mkdir):
        parallel(ops.jobs, lambda rel: make_dir(f"{target}/{rel}", ops), level)

    def put(rel: str) -> None:
        path = f"{target}/{rel}"
        if rel in have and rel not in gone:  # a different file there: a new inode, never an in-place write
            ops.unlink(path)
        try:
            if link_from:
                ops.do("linked", os.link, f"{link_from}/{rel}", path)
            else:
                ops.write_file(source, rel, path)
        except FileExistsError:  # left by an interrupted run that the manifest could not record
            ops.unlink(path)
            put(rel)

    parallel(ops.jobs, put, plan.write)


def make_dir(path: str, ops: Ops) -> None:
    try:
        ops.do("mkdir", os.mkdir, path)
    except FileExistsError:
        if not os.path.isdir(path) or os.path.islink(path):
            ops.unlink(path)
            ops.do("mkdir", os.mkdir, path)


def scan_slot(path: str, jobs: int) -> Tree:
    """What a slot really holds: every entry lstat()ed and every file read and hashed (--verify, recovery)."""
    tree: Tree = {}

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            for entry in sorted(it, key=lambda e: e.name):
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    tree[rel] = Item("d")
                    walk(entry.path, rel + "/")
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    tree[rel] = Item("f", st.st_size, stat.S_IMODE(st.st_mode))
                else:
                    tree[rel] = Item("?")

    def digest(rel: str) -> None:
        tree[rel] = tree[rel]._replace(digest=sha256_file(f"{path}/{rel}"))

    if os.path.isdir(path):
        walk(path, "")
        parallel(jobs, digest, [rel for rel, item in tree.items() if item.kind == "f"])
    return tree
