"""The calls on the volume (counted: each one a network round trip on EFS), directory fds, scans and removal."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections import Counter
from collections.abc import Iterable

from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Item, Tree, parallel, sha256_file
from airflow_gitops.errors import UserError

O_PATH = getattr(os, "O_PATH", os.O_RDONLY)  # Linux: a handle for *at() calls, no open of the directory itself


class Ops:
    """Performs and counts the calls on the volume (each one a network round trip on EFS); thread-safe."""

    KINDS = ("written", "linked", "copied", "unlinked", "mkdir", "rmdir", "symlink", "renamed", "utime", "fsync")

    def __init__(self, jobs: int = 1) -> None:
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.bookkeeping = 0  # manifest, state and lock writes, reported apart from the trees
        self.refused: Counter[str] = Counter()  # why hard links were refused (errno names), when they were
        self.jobs, self.guard = jobs, threading.Lock()

    def count(self, kind: str, n: int = 1) -> None:
        with self.guard:
            self.counts[kind] += n

    def summary(self) -> dict[str, int]:
        return {**self.counts, "total": sum(self.counts.values()), "bookkeeping": self.bookkeeping}

    def write_file(self, source: Source, rel: str, dir_fd: int, name: str, kind: str = "written") -> None:
        """A new inode; the mode is given at creation (umask applies, like rsync without -p), the source mtime
        set after (rsync -t), then fsync. The bytes are hashed as they are copied: a source changed since it
        was hashed fails the run instead of publishing other bytes than the manifest records."""
        want, digest = source.tree[rel], hashlib.sha256()
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, want.mode, dir_fd=dir_fd)
        self.count(kind)
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
            os.fsync(out)
            self.count("fsync")
        finally:
            os.close(out)

    def link_or_copy(self, source: Source, rel: str, src_fd: int, dst_fd: int, name: str) -> None:
        """A hard link to the live release's inode; where the volume refuses one (EMLINK: EFS allows 177 links
        per file; EXDEV, EPERM, ...), a copy from the source, which holds the same bytes."""
        try:
            os.link(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError as exc:
            with self.guard:
                self.refused[errno.errorcode.get(exc.errno or 0, str(exc.errno))] += 1
            self.write_file(source, rel, dst_fd, name, "copied")
            return
        self.count("linked")


class Dirs:
    """Directory fds under one base, each opened once: every later call names one entry relative to its
    directory's fd instead of walking the path (on EFS each path component is a lookup). Thread-safe."""

    def __init__(self, base: str, writable: bool = False) -> None:
        self.base, self.flags = base, (os.O_RDONLY if writable else O_PATH) | os.O_DIRECTORY  # fsync: a real fd
        self.fds = {"": os.open(base, self.flags)}
        self.guard = threading.Lock()

    def fd(self, rel_dir: str) -> int:
        fd = self.fds.get(rel_dir)
        if fd is None:
            parent, _, name = rel_dir.rpartition("/")
            fd = os.open(name, self.flags, dir_fd=self.fd(parent))
            with self.guard:
                fd, spare = self.fds.setdefault(rel_dir, fd), fd
            if spare != fd:  # another thread opened it first
                os.close(spare)
        return fd

    def mkdir(self, rel: str, ops: Ops) -> None:
        parent, _, name = rel.rpartition("/")
        os.mkdir(name, dir_fd=self.fd(parent))
        ops.count("mkdir")
        self.fd(rel)

    def fsync_all(self, ops: Ops) -> None:
        def sync(fd: int) -> None:
            try:
                os.fsync(fd)
            except OSError as exc:  # some filesystems cannot fsync a directory: their metadata is synchronous
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                    raise
            ops.count("fsync")

        parallel(ops.jobs, sync, list(self.fds.values()))

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def __enter__(self) -> Dirs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    return parent, name


def by_depth(paths: Iterable[str], deepest_first: bool = False) -> list[list[str]]:
    levels: dict[int, list[str]] = {}
    for path in paths:
        levels.setdefault(path.count("/"), []).append(path)
    return [levels[depth] for depth in sorted(levels, reverse=deepest_first)]


def scan_tree(path: str, jobs: int, hashed: bool = True) -> Tree:
    """What a tree really holds: every entry lstat()ed and, when hashed, every file read (--verify)."""
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
        if hashed:
            parallel(jobs, digest, [rel for rel, item in tree.items() if item.kind == "f"])
    return tree


def remove_trees(trees: list[tuple[str, Tree | None]], ops: Ops) -> None:
    """Remove whole trees, `ops.jobs` calls at a time across all of them: the entries from each tree's
    manifest (no listing of the tree, so the cost is that tree's size, whatever else is kept), or from a
    listing when there is none. Entries the manifest does not know (added by hand) are found when their
    directory refuses to go, and removed with it."""
    work = []
    for path, tree in trees:
        if not os.path.isdir(path) or os.path.islink(path):
            remove_entry(path, ops)
            continue
        work.append((path, scan_tree(path, ops.jobs, hashed=False) if tree is None else tree, Dirs(path)))
    try:
        files = [(dirs, rel) for _, tree, dirs in work for rel, item in tree.items() if item.kind != "d"]
        parallel(ops.jobs, lambda job: unlink_at(job[0], job[1], ops), files)
        levels: dict[int, list[tuple[Dirs, str]]] = {}
        for _, tree, dirs in work:
            for rel, item in tree.items():
                if item.kind == "d":
                    levels.setdefault(rel.count("/"), []).append((dirs, rel))
        for depth in sorted(levels, reverse=True):
            parallel(ops.jobs, lambda job: rmdir_at(job[0], job[1], ops), levels[depth])
    finally:
        for _, _, dirs in work:
            dirs.close()
    for path, _, _ in work:
        rmdir_at(None, path, ops)


def unlink_at(dirs: Dirs, rel: str, ops: Ops) -> None:
    parent, name = split(rel)
    try:
        os.unlink(name, dir_fd=dirs.fd(parent))
    except FileNotFoundError:
        return
    except (IsADirectoryError, PermissionError):  # a directory where the manifest says file: edited by hand
        remove_entry(os.path.join(dirs.base, rel), ops)
        return
    ops.count("unlinked")


def rmdir_at(dirs: Dirs | None, rel: str, ops: Ops) -> None:
    parent, name = split(rel) if dirs else ("", rel)
    try:
        os.rmdir(name, dir_fd=dirs.fd(parent)) if dirs else os.rmdir(rel)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        remove_entry(os.path.join(dirs.base, rel) if dirs else rel, ops)  # holds entries added by hand
        return
    ops.count("rmdir")


def remove_entry(path: str, ops: Ops) -> None:
    """Whatever is at path, listed as it goes (temp leftovers, and entries no manifest knows); absent is fine."""
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return
    if not is_dir:
        os.unlink(path)
        ops.count("unlinked")
        return
    with os.scandir(path) as it:
        children = list(it)
    for child in children:
        remove_entry(child.path, ops)
    os.rmdir(path)
    ops.count("rmdir")
