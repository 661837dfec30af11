"""Per slot, the manifest of what it holds, so that a publish reads two files instead of the trees."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterable
from typing import Any

from airflow_gitops.dagsync.layout import MANIFEST_VERSION, TMP
from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Item, Tree
from airflow_gitops.dagsync.volume import Ops, Plan, apply, diff, scan_slot


def manifest_path(root: str, slot: str) -> str:
    return os.path.join(root, f"{slot}.manifest.json")


def read_manifest(root: str, slot: str) -> dict[str, Any] | None:
    try:
        with open(manifest_path(root, slot), encoding="utf-8") as fh:
            data = json.load(fh)
        tree = {rel: Item(*value) for rel, value in data["entries"].items()}
        return {"clean": bool(data["clean"]), "tree": tree, "pending": list(data.get("pending", []))}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        print(f"warning: ignoring unreadable {manifest_path(root, slot)}: {exc}", file=sys.stderr)
        return None


def write_manifest(root: str, slot: str, tree: Tree, ops: Ops, pending: Iterable[str] | None = None) -> None:
    """clean: the slot holds exactly `tree`. Not clean: it holds `tree` for sure, and the `pending` paths
    are being written (a run killed now leaves them in any state)."""
    body = {"version": MANIFEST_VERSION, "slot": slot, "clean": pending is None,
            "entries": {rel: item.dump() for rel, item in tree.items()}}
    if pending is not None:
        body["pending"] = sorted(pending)
    write_atomic(root, manifest_path(root, slot), json.dumps(body, separators=(",", ":")), ops)


def write_atomic(root: str, path: str, text: str, ops: Ops) -> None:
    """tmp + fsync + rename: readers and crashes see the old or the new file, never half of one."""
    tmp = os.path.join(root, TMP + os.path.basename(path))
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    ops.bookkeeping += 2


def slot_content(root: str, slot: str, verify: bool, ops: Ops) -> tuple[Tree, str]:
    """What the slot holds and how that is known: manifest (trusted), recovered (an interrupted run's
    pending paths looked at), scanned (no manifest, or --verify), or empty (no slot directory)."""
    path = os.path.join(root, slot)
    manifest = None if verify else read_manifest(root, slot)
    if manifest is None:
        if not os.path.lexists(path):
            return {}, "empty"
        return scan_slot(path, ops.jobs), "scanned"
    tree = manifest["tree"]
    if manifest["clean"]:
        return tree, "manifest"
    for rel in manifest["pending"]:  # parents first: a pending directory's children are pending too
        try:
            st = os.lstat(f"{path}/{rel}")
        except (FileNotFoundError, NotADirectoryError):
            continue
        tree[rel] = Item("d") if stat.S_ISDIR(st.st_mode) else Item("f" if stat.S_ISREG(st.st_mode) else "?")
    return tree, "recovered"


def sync_slot(root: str, slot: str, source: Source, ops: Ops, verify: bool,
              before_write: Callable[[], None] = lambda: None, link_from: str | None = None) -> tuple[Plan, str]:
    """Make `slot` hold the source tree; its manifest records the paths in flight before anything is written."""
    have, how = slot_content(root, slot, verify, ops)
    plan = diff(source.tree, have)
    target = os.path.join(root, slot)
    if not plan.empty():
        before_write()
        touched = plan.touched()
        known = {rel: item for rel, item in have.items() if rel not in touched}
        write_manifest(root, slot, known, ops, pending=touched)
    if not os.path.isdir(target):
        ops.do("mkdir", os.mkdir, target)
    if not plan.empty():
        apply(plan, source, have, target, ops, link_from)
    if not plan.empty() or how != "manifest":
        write_manifest(root, slot, source.tree, ops)
    return plan, how
