"""Per release, the manifest of what it holds (read instead of the tree), and atomic bookkeeping writes."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from airflow_gitops.dagsync.layout import LEGACY_SLOTS, MANIFEST_VERSION, TMP, manifest_path
from airflow_gitops.dagsync.tree import Item, Tree
from airflow_gitops.dagsync.volume import Ops


def read_manifest(root: str, name: str) -> dict[str, Any] | None:
    """{"tree", "revision", "published_at"}, or None when absent or unusable. A two-slot layout manifest counts
    only when it was "clean" (its slot held exactly that tree)."""
    path = manifest_path(root, name)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        tree = {rel: Item(*value) for rel, value in data["entries"].items()}
        if name in LEGACY_SLOTS and not data.get("clean"):
            return None
        return {"tree": tree, "revision": data.get("revision"), "published_at": data.get("published_at")}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        print(f"warning: ignoring unreadable {path}: {exc}", file=sys.stderr)
        return None


def write_manifest(root: str, name: str, tree: Tree, revision: str, published_at: str, ops: Ops) -> None:
    """Written once, when the release is published: every path with kind, size, mode and SHA-256."""
    body = {"version": MANIFEST_VERSION, "id": name, "revision": revision, "published_at": published_at,
            "entries": {rel: item.dump() for rel, item in tree.items()}}
    write_atomic(manifest_path(root, name), json.dumps(body, separators=(",", ":")), ops)


def write_atomic(path: str, text: str, ops: Ops) -> None:
    """tmp + fsync + rename: readers and crashes see the old or the new file, never half of one."""
    tmp = os.path.join(os.path.dirname(path), TMP + os.path.basename(path))
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    ops.bookkeeping += 2
