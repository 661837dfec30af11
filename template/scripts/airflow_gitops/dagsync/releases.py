"""Which release is live (`current`), the state that describes the releases, the flip, retention and rollback."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

from airflow_gitops.dagsync.layout import (
    CURRENT,
    LEGACY_SLOTS,
    LINK_CAP,
    RELEASES,
    STATE,
    TMP,
    link_target,
    manifest_path,
    release_dir,
)
from airflow_gitops.dagsync.manifest import read_manifest, write_atomic
from airflow_gitops.dagsync.tree import Tree, epoch, iso
from airflow_gitops.dagsync.volume import Ops, fsync_dir, remove_trees
from airflow_gitops.errors import UserError

RELEASE_NAME = re.compile(r"[0-9a-f]{16}")


def read_live(root: str, repairing: bool = False) -> str | None:
    """The release (or old slot) `current` points at, or None before the first publish (or, when repairing,
    if it points at nothing: a publish then makes it point at a complete release again)."""
    path = os.path.join(root, CURRENT)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        raise UserError(f"{path} exists but is not a symlink; move it away first") from None
    name = target[len(RELEASES) + 1:] if target.startswith(RELEASES + "/") else target
    if not (name in LEGACY_SLOTS or RELEASE_NAME.fullmatch(name)) or link_target(name) != target:
        raise UserError(f"{path} -> {target}: not one of this tool's releases ({RELEASES}/<id>)")
    if not os.path.isdir(release_dir(root, name)):
        if repairing:
            print(f"warning: {path} -> {target}, which is absent (removed by hand?): publishing repairs it",
                  file=sys.stderr)
            return None
        raise UserError(f"{path} -> {target}, which is absent: publish to repair it")
    return name


def names(root: str) -> list[str]:
    """Every release and old slot on the volume (one listing of releases/, whatever the state says)."""
    try:
        with os.scandir(os.path.join(root, RELEASES)) as it:
            found = [e.name for e in it if RELEASE_NAME.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        found = []
    return sorted(found) + [slot for slot in LEGACY_SLOTS if os.path.isdir(os.path.join(root, slot))]


def load_state(root: str) -> dict[str, Any]:
    """The state; a two-slot layout state (per slot) converted: each slot became a superseded tree like any other."""
    try:
        with open(os.path.join(root, STATE), encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        state = {}
    except ValueError as exc:
        print(f"warning: ignoring unreadable {STATE}: {exc}", file=sys.stderr)
        state = {}
    if "slots" in state and "releases" not in state:
        state["releases"] = {slot: {"revision": rec.get("revision"), "files": rec.get("files"),
                                    "published_at": rec.get("published_at"), "live_since": rec.get("published_at"),
                                    "superseded_at": rec.get("switched_away_at")}
                             for slot, rec in state.pop("slots").items()}
    return {"live": None, "releases": {}, **state}


def save_state(root: str, state: dict[str, Any], ops: Ops) -> None:
    state.pop("previous", None)  # the two-slot layout's
    state.update(version=3, updated_at=iso(time.time()))
    write_atomic(os.path.join(root, STATE), json.dumps(state, indent=2, sort_keys=True) + "\n", ops)
    fsync_dir(root)


def reconcile(root: str, state: dict[str, Any], live: str | None) -> bool:
    """Make the state agree with `current` when a run was killed between its flip and its state write
    (`current` on disk is the truth). Returns whether anything changed (the caller then saves the state)."""
    if live is None or state["live"] == live:
        return False
    flipped_at = iso(os.lstat(os.path.join(root, CURRENT)).st_mtime)  # the symlink was made by the flip
    releases, before = state["releases"], state["live"]
    if before in releases and not releases[before].get("superseded_at"):
        releases[before]["superseded_at"] = flipped_at  # its readers get the retention from the flip on
    rec = releases.setdefault(live, {})
    if not rec.get("published_at"):  # a new release: what its manifest says
        manifest = read_manifest(root, live) or {}
        rec.update(revision=manifest.get("revision"), published_at=manifest.get("published_at") or flipped_at,
                   files=sum(1 for item in manifest.get("tree", {}).values() if item.kind == "f") or None)
    rec.update(live_since=flipped_at, superseded_at=None)
    state["live"] = live
    return True


def clean_leftovers(root: str, ops: Ops) -> list[str]:
    """Temp names of an interrupted run: the flip's link, bookkeeping files, a release being built or removed."""
    found = []
    for directory in (root, os.path.join(root, RELEASES)):
        try:
            with os.scandir(directory) as it:
                found += [e.path for e in it if e.name.startswith(TMP)]
        except FileNotFoundError:
            continue
    remove_trees([(path, None) for path in found], ops)  # a half-built release: listed, removed --jobs at a time
    return found


def flip(root: str, name: str, ops: Ops) -> None:
    """symlink(tmp) + rename(tmp, current): atomic (`ln -sfn` is unlink + symlink, not atomic)."""
    tmp = os.path.join(root, TMP + CURRENT)
    os.symlink(link_target(name), tmp)  # relative target: resolves wherever the volume is mounted
    ops.count("symlink")
    os.replace(tmp, os.path.join(root, CURRENT))
    ops.count("renamed")
    fsync_dir(root)


def published(state: dict[str, Any], name: str) -> float:
    return epoch(state["releases"].get(name, {}).get("published_at")) or 0.0


def retention(state: dict[str, Any], found: list[str], live: str | None, keep_last: int, keep_for: float,
              grace: float, pins: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Why each tree is kept (live, pinned, last-N, keep-for, grace), or None: it is pruned. Old slots are
    kept only by time, like any superseded tree; never-live trees only as one of the last N."""
    now = time.time()
    newest = sorted((n for n in found if n != live and n not in LEGACY_SLOTS), key=lambda n: -published(state, n))
    last = set(newest[:keep_last])
    reasons: dict[str, str | None] = {}
    for name in found:
        left = epoch(state["releases"].get(name, {}).get("superseded_at"))
        age = now - left if left is not None else None
        reasons[name] = ("live" if name == live else "pinned" if name in pins else "last-N" if name in last
                         else "keep-for" if age is not None and age < keep_for
                         else "grace" if age is not None and age < grace else None)
    return reasons


def warn_links(keep_last: int, kept: int) -> None:
    """Every kept release holds one link to each file unchanged since: EFS refuses links past its cap, and
    the publisher then copies those files (correct, but slower and bigger)."""
    worst = max(keep_last + 1, kept) + 1  # the kept ones, and the one being built
    if worst > LINK_CAP * 0.8:
        print(f"warning: up to {worst} releases may share a file's inode (--keep-last {keep_last}, {kept} kept "
              f"now); EFS allows {LINK_CAP} hard links per file, past which files are copied instead of linked",
              file=sys.stderr)


def prune(root: str, state: dict[str, Any], live: str | None, args: Any, ops: Ops) -> list[str]:
    """Remove the trees no retention rule keeps: each renamed to a temp name first (a prune killed midway
    leaves a leftover for the next run, never a half tree under a release's name), then removed from its
    own manifest, all of them --jobs calls at a time."""
    found = names(root)
    for name in set(state["releases"]) - set(found):  # removed by hand, or by a prune killed before its state write
        del state["releases"][name]
    reasons = retention(state, found, live, args.keep_last, args.keep_for, args.grace, tuple(args.keep or ()))
    warn_links(args.keep_last, sum(1 for r in reasons.values() if r))
    doomed = [name for name, reason in reasons.items() if reason is None]
    trees: list[tuple[str, Tree | None]] = []
    for name in doomed:
        manifest = read_manifest(root, name)
        path = release_dir(root, name)
        gone = os.path.join(os.path.dirname(path), f"{TMP}rm.{os.path.basename(path)}")
        os.rename(path, gone)
        ops.count("renamed")
        if manifest is not None or os.path.lexists(manifest_path(root, name)):
            os.unlink(manifest_path(root, name))
            ops.bookkeeping += 1
        trees.append((gone, manifest["tree"] if manifest else None))
        state["releases"].pop(name, None)
    remove_trees(trees, ops)
    return doomed


def rollback_target(state: dict[str, Any], found: list[str], live: str) -> tuple[str | None, str]:
    """The release published before the live one."""
    if live in LEGACY_SLOTS:
        return None, f"the live tree is {live} of the old two-slot layout: publish once to move to {RELEASES}/"
    earlier = sorted((n for n in found if n != live and published(state, n) < published(state, live)),
                     key=lambda n: -published(state, n))
    if not earlier:
        return None, f"no release was published before the live one ({live})"
    target = earlier[0]
    if target in LEGACY_SLOTS:
        revision = state["releases"].get(target, {}).get("revision") or "unknown"
        return None, (f"the tree published before the live one is {target} of the old two-slot layout: rolling "
                      f"back to a slot is not supported; publish its revision ({revision}) again instead")
    return target, ""
