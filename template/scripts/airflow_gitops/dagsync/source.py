"""SOURCE as it will be published: symlinks followed or refused, the skip list applied, hashed."""

from __future__ import annotations

import os
import stat
import sys

from airflow_gitops.dagsync.layout import TMP
from airflow_gitops.dagsync.tree import Item, Tree, sha256_file
from airflow_gitops.errors import PROBLEMS, UserError


def skipped(name: str) -> bool:
    return name in (".git", "__pycache__") or name.endswith(".pyc") or name.startswith(TMP)


class Source:
    """SOURCE as it will be published: symlinks inside it followed, the tool's skip list applied, hashed."""

    def __init__(self, path: str) -> None:
        if not os.path.isdir(path):
            raise UserError(f"source {path} is not a directory")
        self.root = os.path.realpath(path)
        self.tree: Tree = {}
        self.origin: dict[str, str] = {}  # rel -> the real file whose bytes are published there
        self.mtime: dict[str, int] = {}
        self.problems: list[str] = []
        self.walk(self.root, "", frozenset([self.root]))
        if self.problems:
            for problem in self.problems:
                print(problem, file=sys.stderr)
            raise UserError(f"{len(self.problems)} symlink problem(s) in {path}; nothing published", PROBLEMS)

    def files(self) -> int:
        return sum(1 for item in self.tree.values() if item.kind == "f")

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def walk(self, real_dir: str, prefix: str, ancestors: frozenset[str]) -> None:
        with os.scandir(real_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            if skipped(entry.name):
                continue
            if entry.is_symlink():
                self.follow(entry.path, rel, ancestors)
            elif entry.is_dir(follow_symlinks=False):
                self.tree[rel] = Item("d")
                self.walk(entry.path, rel + "/", ancestors | {entry.path})
            elif entry.is_file(follow_symlinks=False):
                self.add_file(rel, entry.path)
            else:
                print(f"warning: skipping special file {entry.path}", file=sys.stderr)

    def follow(self, link: str, rel: str, ancestors: frozenset[str]) -> None:
        target, real = os.readlink(link), os.path.realpath(link)
        where = f"{rel}:0:symlink -> {target}"
        if not self.inside(real):
            self.problems.append(f"{where} leaves the source (resolves to {real}); links are published as what "
                                 "they point to, so the target must be inside the source: move it in, or copy it")
        elif not os.path.exists(real):
            self.problems.append(f"{where} dangles (nothing at {real})")
        elif os.path.isdir(real):
            if real in ancestors:
                self.problems.append(f"{where} points at its own parent directory {real}: a loop")
                return
            self.tree[rel] = Item("d")
            self.walk(real, rel + "/", ancestors | {real})
        elif os.path.isfile(real):
            self.add_file(rel, real)
        else:
            print(f"warning: skipping {rel}: symlink to the special file {real}", file=sys.stderr)

    def add_file(self, rel: str, real: str) -> None:
        st = os.stat(real)
        self.tree[rel] = Item("f", st.st_size, stat.S_IMODE(st.st_mode))
        self.origin[rel], self.mtime[rel] = real, st.st_mtime_ns

    def hash_all(self) -> None:
        """Fill in every digest (local reads only: the source is on the agent's disk)."""

        for rel, real in self.origin.items():  # serially: local reads of small files, threads cost more
            self.tree[rel] = self.tree[rel]._replace(digest=sha256_file(real))
