"""The five commands: publish, prune, rollback, status and check."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from airflow_gitops.dagsync.build import build, repair
from airflow_gitops.dagsync.checks import run_checks
from airflow_gitops.dagsync.layout import CURRENT, LEGACY_SLOTS, link_target, release_dir
from airflow_gitops.dagsync.lock import Lock
from airflow_gitops.dagsync.manifest import read_manifest, write_manifest
from airflow_gitops.dagsync.releases import (
    clean_leftovers,
    flip,
    load_state,
    names,
    prune,
    read_live,
    reconcile,
    retention,
    rollback_target,
    save_state,
)
from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Tree, iso, release_id, same_tree
from airflow_gitops.dagsync.volume import Ops, scan_tree
from airflow_gitops.errors import NO_ROLLBACK, OK, USAGE, UserError


def git_revision(source: str) -> str:
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def publish(args: argparse.Namespace) -> int:
    started, root = time.monotonic(), os.path.abspath(args.root)
    source = Source(args.source)
    if os.path.commonpath([source.root, os.path.realpath(root)]) in (source.root, os.path.realpath(root)):
        raise UserError(f"source {source.root} and root {root} must not contain one another")
    if args.no_wait:
        print("note: --no-wait is no longer needed: a publish never waits (releases are never overwritten)",
              file=sys.stderr)
    if args.check:
        print(f"check passed: {run_checks(source, args)}")  # before anything is written
    source.hash_all()
    rid, ops = release_id(source.tree), Ops(args.jobs)
    info = {"revision": args.revision or git_revision(source.root), "files": source.files()}
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # exist_ok: a concurrent first publish may create it too
        ops.count("mkdir")
    with Lock(root, args.lock_timeout, ops, "publish"):
        clean_leftovers(root, ops)
        live = read_live(root, repairing=True)
        state = load_state(root)
        dirty = reconcile(root, state, live)
        if live == rid:
            action, base = "already-live", "untouched"
            dirty = already_live(root, rid, source, state, info, args, ops, dirty)
        else:
            action, base = go_live(root, rid, source, state, info, live, args, ops)
            dirty = True
        known = set(state["releases"])
        removed = prune(root, state, rid, args, ops)
        if dirty or known != set(state["releases"]):
            save_state(root, state, ops)
    if removed:
        print(f"pruned {len(removed)}: {', '.join(removed)}")
    if args.stats:
        stats = {"action": action, "release": rid, **ops.summary(), "hashed": len(source.origin), "base": base,
                 "pruned": len(removed), "refused": dict(ops.refused), "seconds": round(time.monotonic() - started, 3)}
        print(json.dumps(stats), file=sys.stderr)
    return OK


def already_live(root: str, rid: str, source: Source, state: dict[str, Any], info: dict[str, Any],
                 args: argparse.Namespace, ops: Ops, reconciled: bool) -> bool:
    """The same tree is live: nothing is written (--verify first repairs it if it was edited by hand)."""
    if args.verify:
        verify_in_place(root, rid, source, ops)
    rec = state["releases"].setdefault(rid, {})
    recorded, dirty = rec.get("revision"), reconciled
    if recorded != info["revision"] or rec.get("files") != info["files"]:
        rec.update(info)  # the live tree is this revision's tree too
        dirty = True
    print(f"already live: {link_target(rid)} holds {source.root} (revision {info['revision']}"
          + (f", recorded before as {recorded}" if recorded not in (None, info["revision"]) else "")
          + (", state reconciled with `current`" if reconciled else "")
          + "); no tree written")
    return dirty


def verify_in_place(root: str, rid: str, source: Source, ops: Ops) -> None:
    """--verify on a release that is (or becomes) live again: scanned and hashed; if it was edited by hand,
    repaired in place, the one time a published release is modified."""
    real = scan_tree(release_dir(root, rid), ops.jobs)
    if same_tree(real, source.tree):
        return
    plan = repair(release_dir(root, rid), source, real, ops)
    print(f"--verify: release {rid} was edited by hand; repaired in place ({len(plan.write)} files rewritten, "
          f"{len(plan.remove)} entries removed, {len(plan.mkdir)} directories made)")


def link_base(root: str, live: str | None, verify: bool, ops: Ops) -> tuple[Tree, str]:
    """What the live tree holds, to link from: its manifest, or (--verify, or none usable) a scan."""
    if live is None:
        return {}, "none"
    manifest = read_manifest(root, live)
    if manifest and not verify:
        return manifest["tree"], "manifest"
    real = scan_tree(release_dir(root, live), ops.jobs)
    if manifest and not same_tree(manifest["tree"], real):
        print(f"--verify: the live tree {live} differs from its manifest (edited by hand?): its differing "
              "files are written from the source, not linked")
    return real, "scanned"


def go_live(root: str, rid: str, source: Source, state: dict[str, Any], info: dict[str, Any], live: str | None,
            args: argparse.Namespace, ops: Ops) -> tuple[str, str]:
    """Build the release (or reuse the one of the same tree), then flip `current` to it."""
    now = iso(time.time())
    if os.path.isdir(release_dir(root, rid)):  # published before: complete, since it has its final name
        action, base = "reused", "untouched"
        if args.verify:
            verify_in_place(root, rid, source, ops)
        if read_manifest(root, rid) is None:  # a run killed between the rename and the manifest
            write_manifest(root, rid, source.tree, info["revision"], now, ops)
    else:
        have, base = link_base(root, live, args.verify, ops)
        build(root, rid, source, live, have, ops)
        write_manifest(root, rid, source.tree, info["revision"], now, ops)
        action = "first-publish" if live is None else "published"
    flip(root, rid, ops)
    now = iso(time.time())
    if live is not None:
        state["releases"].setdefault(live, {})["superseded_at"] = now
    state["releases"][rid] = {**info, "published_at": now, "live_since": now, "superseded_at": None}
    state["live"] = rid
    counts = ops.counts
    copied = f", {counts['copied']} copied (hard link refused: {dict(ops.refused)})" if counts["copied"] else ""
    print(f"published revision {info['revision']} ({info['files']} files): {CURRENT} -> {link_target(rid)}"
          + (" (the same tree as an earlier release, reused)" if action == "reused" else
             f"; {counts['written']} written, {counts['linked']} linked{copied}"
             + (f" from {live}" if live else "")))
    return action, base


def locked(args: argparse.Namespace, command: str, ops: Ops) -> tuple[str, Lock]:
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        raise UserError(f"cannot {command}: {root} does not exist (nothing published)",
                        NO_ROLLBACK if command == "rollback" else USAGE)
    return root, Lock(root, args.lock_timeout, ops, command)


def rollback(args: argparse.Namespace) -> int:
    ops = Ops()
    root, lock = locked(args, "rollback", ops)
    with lock:
        clean_leftovers(root, ops)
        live = read_live(root)
        if live is None:
            raise UserError(f"cannot roll back: {root} has no {CURRENT} (nothing published)", NO_ROLLBACK)
        state = load_state(root)
        reconcile(root, state, live)
        target, reason = rollback_target(state, names(root), live)
        if target is None:
            raise UserError(f"cannot roll back: {reason}", NO_ROLLBACK)
        flip(root, target, ops)
        now = iso(time.time())
        state["releases"].setdefault(live, {})["superseded_at"] = now
        state["releases"].setdefault(target, {}).update(live_since=now, superseded_at=None)
        state["live"] = target
        save_state(root, state, ops)
    print(f"rolled back: {CURRENT} -> {link_target(target)} (revision "
          f"{state['releases'][target].get('revision') or 'unknown'}); {live} is superseded (kept by retention)")
    return OK


def prune_command(args: argparse.Namespace) -> int:
    started, ops = time.monotonic(), Ops(args.jobs)
    root, lock = locked(args, "prune", ops)
    with lock:
        clean_leftovers(root, ops)
        live = read_live(root)
        state = load_state(root)
        reconcile(root, state, live)
        removed = prune(root, state, live, args, ops)
        save_state(root, state, ops)
    print(f"pruned {len(removed)}" + (f": {', '.join(removed)}" if removed else "") + f"; {len(names(root))} kept")
    if args.stats:
        print(json.dumps({"action": "prune", **ops.summary(), "pruned": len(removed),
                          "seconds": round(time.monotonic() - started, 3)}), file=sys.stderr)
    return OK


def status(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    live = read_live(root) if os.path.isdir(root) else None
    if live is None:
        raise UserError(f"{root} has no {CURRENT}: nothing has been published there")
    state = load_state(root)
    reconcile(root, state, live)  # in memory only: status never writes
    found = names(root)
    kept = retention(state, found, live, args.keep_last, args.keep_for, args.grace)
    target, reason = rollback_target(state, found, live)
    keys = ("revision", "files", "published_at", "live_since", "superseded_at")

    def entry(name: str) -> dict[str, Any]:
        rec = state["releases"].get(name, {})
        if rec.get("files") is None and name not in LEGACY_SLOTS:  # unknown to the state: its manifest says
            manifest = read_manifest(root, name) or {}
            rec = {**rec, "revision": manifest.get("revision"), "published_at": manifest.get("published_at"),
                   "files": sum(1 for item in manifest.get("tree", {}).values() if item.kind == "f") or None}
        return {"live": name == live, "kept": kept[name], **{k: rec.get(k) for k in keys}}

    order = sorted(found, key=lambda n: state["releases"].get(n, {}).get("published_at") or "", reverse=True)
    report = {"root": root, "live": link_target(live), "live_id": None if live in LEGACY_SLOTS else live,
              "releases": [{"id": n, **entry(n)} for n in order if n not in LEGACY_SLOTS],
              "legacy_slots": [{"slot": n, **entry(n)} for n in order if n in LEGACY_SLOTS],
              "can_rollback": target is not None, "rollback_to": target, "rollback_blocker": reason or None,
              "retention": {"keep_last": args.keep_last, "keep_for": args.keep_for, "grace": args.grace}}
    if args.json:
        print(json.dumps(report, indent=2))
        return OK
    print(f"live:     {report['live']}")
    policy = report["retention"]
    print(f"releases: {len(report['releases'])} (retention: live + last {policy['keep_last']} + superseded less "
          f"than {policy['keep_for']:g} s ago, at least {policy['grace']:g} s)")
    for rel in report["releases"] + report["legacy_slots"]:
        name = rel.get("id") or rel["slot"] + " (two-slot layout)"
        when = (f"live since {rel['live_since']}" if rel["live"] else f"superseded {rel['superseded_at']}"
                if rel["superseded_at"] else "never live")
        print(f"  {'*' if rel['live'] else ' '} {name}  revision {rel['revision']}  {rel['files']} files  "
              f"published {rel['published_at']}  {when}  kept: {rel['kept'] or 'no (the next publish prunes it)'}")
    print("rollback: " + (f"to {target} (revision {state['releases'].get(target, {}).get('revision')})"
                          if target else f"impossible: {reason}"))
    return OK


def check(args: argparse.Namespace) -> int:
    print(f"check passed: {run_checks(Source(args.source), args)}")
    return OK
