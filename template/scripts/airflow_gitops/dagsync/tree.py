"""A tree as the tool compares it (path -> Item), and the small helpers every module uses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, NamedTuple

from airflow_gitops.dagsync.layout import ID_LENGTH


class Item(NamedTuple):
    """One path of a tree: a directory, or a file with its size, permission bits and SHA-256."""

    kind: str  # "d" directory, "f" regular file, "?" anything else found on the volume
    size: int = 0
    mode: int = 0
    digest: str = ""  # "" = unknown content: never equal to anything

    def same(self, other: Item | None) -> bool:
        if other is None or other.kind != self.kind or self.kind == "?":
            return False
        return self.kind == "d" or (bool(self.digest) and self == other)

    def dump(self) -> list[Any]:
        return ["d"] if self.kind == "d" else [self.kind, self.size, self.mode, self.digest]


Tree = dict  # "/"-separated relative path -> Item, parents before their children


def release_id(tree: Tree) -> str:
    """The content address of a tree: equal trees are one release, whatever their revision or mtimes."""
    lines = sorted(f"{item.kind} {item.mode:o} {item.digest or '-'} {rel}" for rel, item in tree.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:ID_LENGTH]


def same_tree(a: Tree, b: Tree) -> bool:
    return a.keys() == b.keys() and all(item.same(b[rel]) for rel, item in a.items())


def iso(ts: float) -> str:
    utc = datetime.fromtimestamp(ts, timezone.utc)  # noqa: UP017 (datetime.UTC is 3.11+)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parallel(jobs: int, func: Callable[[Any], object], items: Iterable[Any]) -> None:
    """func over items, `jobs` threads at a time (on EFS a call waits for the network, not the CPU); the
    first exception is raised once the others have finished. Items go in batches: a thread per item costs
    more than a local call."""
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            func(item)
        return
    batches = [items[n::jobs * 4] for n in range(min(len(items), jobs * 4))]
    with ThreadPoolExecutor(max_workers=min(jobs, len(batches))) as pool:
        for _ in pool.map(lambda batch: [func(item) for item in batch], batches):
            pass
