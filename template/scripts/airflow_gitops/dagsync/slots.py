"""Which slot is live (`current`), the state that describes it, the flip, rollback and grace rules."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from airflow_gitops.dagsync.layout import CURRENT, SLOTS, STATE, TMP
from airflow_gitops.dagsync.manifest import write_atomic
from airflow_gitops.dagsync.tree import epoch, iso
from airflow_gitops.dagsync.volume import Ops
from airflow_gitops.errors import IN_GRACE, UserError


def read_live(root: str) -> str | None:
    """The slot `current` points at, or None before the first publish."""
    path = os.path.join(root, CURRENT)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        raise UserError(f"{path} exists but is not a symlink; move it away first") from None
    if target not in SLOTS or not os.path.isdir(os.path.join(root, target)):
        raise UserError(f"{path} -> {target}: not one of this tool's slots {SLOTS}")
    return target


def other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def load_state(root: str) -> dict[str, Any]:
    try:
        with open(os.path.join(root, STATE), encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        state = {}
    except ValueError as exc:
        print(f"warning: ignoring unreadable {STATE}: {exc}", file=sys.stderr)
        state = {}
    return {"live": None, "previous": None, "slots": {}, **state}


def save_state(root: str, state: dict[str, Any], ops: Ops) -> None:
    state.update(version=2, updated_at=iso(time.time()))
    write_atomic(root, os.path.join(root, STATE), json.dumps(state, indent=2, sort_keys=True) + "\n", ops)
    fsync_dir(root)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reconcile(root: str, state: dict[str, Any], live: str | None) -> bool:
    """Make the state agree with `current` when a run was killed between its flip and its state write.
    Returns whether anything changed (the caller then saves the state)."""
    if live is None or state["live"] == live:
        return False
    flipped_at = iso(os.lstat(os.path.join(root, CURRENT)).st_mtime)  # the symlink was made by the flip
    slots, left = state["slots"], other(live)
    rec = slots.setdefault(live, {"state": "dirty"})
    if rec.get("state") != "complete":  # only fully synced trees are flipped to
        rec.update(state="complete", published_at=flipped_at)
    rec["switched_away_at"] = None
    if state["live"] == left or (left not in slots and os.path.isdir(os.path.join(root, left))):
        # It was live until the flip (or its history is lost): its readers get the grace period.
        slots.setdefault(left, {"state": "dirty"})["switched_away_at"] = flipped_at
    state.update(previous=left if state["live"] == left else state["previous"], live=live)
    return True


def repair(root: str, ops: Ops) -> None:
    """Temp files of an interrupted run in ROOT (the flip's link, manifests, state)."""
    with os.scandir(root) as it:
        for entry in list(it):
            if entry.name.startswith(TMP):
                ops.unlink(entry.path)


def flip(root: str, slot: str, ops: Ops) -> None:
    tmp = os.path.join(root, TMP + CURRENT)
    ops.do("symlink", os.symlink, slot, tmp)  # relative target: resolves wherever the volume is mounted
    ops.do("renamed", os.replace, tmp, os.path.join(root, CURRENT))
    fsync_dir(root)


def rollback_target(root: str, state: dict[str, Any], live: str) -> tuple[str | None, str]:
    prev = state["previous"]
    if prev is None or prev == live:
        return None, "there is no previous publish to roll back to"
    if not os.path.isdir(os.path.join(root, prev)):
        return None, f"the previous slot {prev} is absent"
    if state["slots"].get(prev, {}).get("state") != "complete":
        return None, f"the previous slot {prev} is dirty (a publish into it was interrupted); publish instead"
    return prev, ""


def wait_grace(state: dict[str, Any], slot: str, grace: float, no_wait: bool) -> None:
    """Airflow may still be reading a tree that stopped being live less than `grace` seconds ago."""
    left_at = epoch(state["slots"].get(slot, {}).get("switched_away_at"))
    remaining = grace - (time.time() - left_at) if left_at is not None else 0
    if remaining <= 0:
        return
    why = f"{slot} stopped being live {grace - remaining:.1f} s ago and the grace period is {grace:g} s"
    if no_wait:
        raise UserError(f"{why}: {remaining:.1f} s remain; retry later or drop --no-wait", IN_GRACE)
    print(f"waiting {remaining:.1f} s before writing into it: {why}", flush=True)
    time.sleep(remaining)
