"""The four commands: publish, rollback, status and check."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from airflow_gitops.dagsync.checks import run_checks
from airflow_gitops.dagsync.layout import CURRENT, SLOTS
from airflow_gitops.dagsync.lock import Lock
from airflow_gitops.dagsync.manifest import read_manifest, sync_slot, write_manifest
from airflow_gitops.dagsync.slots import (
    flip,
    load_state,
    other,
    read_live,
    reconcile,
    repair,
    rollback_target,
    save_state,
    wait_grace,
)
from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Tree, iso
from airflow_gitops.dagsync.volume import Ops, scan_slot
from airflow_gitops.errors import NO_ROLLBACK, OK, UserError


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
    if args.check:
        print(f"check passed: {run_checks(source, args)}")  # before anything is written
    source.hash_all()
    info = {"revision": args.revision or git_revision(source.root), "files": source.files()}
    ops = Ops(args.jobs)
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # exist_ok: a concurrent first publish may create it too
        ops.count("mkdir")
    with Lock(root, args.lock_timeout, ops, "publish"):
        repair(root, ops)
        live = read_live(root)
        state = load_state(root)
        reconciled = reconcile(root, state, live)
        if live is None:
            action, how = first_publish(root, source, state, info, args, ops)
        else:
            action, how = publish_idle(root, source, state, info, live, args, ops, reconciled)
    if args.stats:
        stats = {"action": action, **ops.summary(), "hashed": len(source.origin), "idle": how,
                 "seconds": round(time.monotonic() - started, 3)}
        print(json.dumps(stats), file=sys.stderr)
    return OK


def first_publish(root: str, source: Source, state: dict, info: dict, args: argparse.Namespace,
                  ops: Ops) -> tuple[str, str]:
    """Write the first slot, go live, then fill the other slot with hard links so that the next publish
    is incremental too. Run again, it resumes an interrupted first publish."""
    fresh, spare = SLOTS
    for slot in SLOTS:
        state["slots"][slot] = {"state": "dirty", **info, "published_at": None, "switched_away_at": None}
    save_state(root, state, ops)
    _, how = sync_slot(root, fresh, source, ops, args.verify)
    flip(root, fresh, ops)
    sync_slot(root, spare, source, ops, args.verify, link_from=os.path.join(root, fresh))
    state["slots"][fresh].update(state="complete", published_at=iso(time.time()))
    state["slots"][spare]["state"] = "complete"  # the same tree, but never live: not a rollback target
    state.update(live=fresh, previous=None)
    save_state(root, state, ops)
    print(f"published {info['files']} files (revision {info['revision']}): current -> {fresh}; "
          f"{spare} seeded with hard links")
    return "first-publish", how


def live_matches(root: str, live: str, source: Source, args: argparse.Namespace, ops: Ops) -> bool:
    """Is the live slot the source tree? From its manifest, or with --verify from the volume (a hand edit
    found there is written into the manifest, so that the next publish into that slot repairs it)."""
    if not args.verify:
        manifest = read_manifest(root, live)
        return bool(manifest and manifest["clean"] and same_tree(manifest["tree"], source.tree))
    real = scan_slot(os.path.join(root, live), ops.jobs)
    manifest = read_manifest(root, live)
    if not (manifest and manifest["clean"] and same_tree(manifest["tree"], real)):
        print(f"--verify: the live slot {live} differs from its manifest (edited by hand?); manifest rewritten")
        write_manifest(root, live, real, ops)
    return same_tree(real, source.tree)


def same_tree(a: Tree, b: Tree) -> bool:
    return a.keys() == b.keys() and all(item.same(b[rel]) for rel, item in a.items())


def publish_idle(root: str, source: Source, state: dict, info: dict, live: str, args: argparse.Namespace,
                 ops: Ops, reconciled: bool) -> tuple[str, str]:
    if live_matches(root, live, source, args, ops):
        rec = state["slots"].setdefault(live, {"state": "complete"})
        recorded = rec.get("revision")
        if reconciled or recorded != info["revision"] or rec.get("files") != info["files"]:
            rec.update(info)  # the live tree is this revision's tree too
            save_state(root, state, ops)
        print(f"already live: {live} holds {source.root} (revision {info['revision']}"
              + (f", recorded before as {recorded}" if recorded not in (None, info["revision"]) else "")
              + (", state reconciled with `current`" if reconciled else "") + "); no tree written")
        return "already-live", "untouched"
    idle = other(live)

    def before_write() -> None:  # readers may still be in the idle tree: wait before touching it
        wait_grace(state, idle, args.grace, args.no_wait)
        left_at = state["slots"].get(idle, {}).get("switched_away_at")
        state["slots"][idle] = {"state": "dirty", **info, "switched_away_at": left_at}
        save_state(root, state, ops)

    plan, how = sync_slot(root, idle, source, ops, args.verify, before_write)
    flip(root, idle, ops)
    now = iso(time.time())
    state["slots"][idle] = {"state": "complete", **info, "published_at": now, "switched_away_at": None}
    state["slots"].setdefault(live, {"state": "dirty"})["switched_away_at"] = now
    state.update(live=idle, previous=live)
    save_state(root, state, ops)
    print(f"published revision {info['revision']} ({info['files']} files): current -> {idle}; "
          f"{len(plan.write)} written, {len(plan.remove)} removed, {len(plan.mkdir)} dirs made ({how})")
    return "published", how


def rollback(args: argparse.Namespace) -> int:
    root, ops = os.path.abspath(args.root), Ops()
    if not os.path.isdir(root):
        raise UserError(f"cannot roll back: {root} does not exist (nothing published)", NO_ROLLBACK)
    with Lock(root, args.lock_timeout, ops, "rollback"):
        repair(root, ops)
        live = read_live(root)
        if live is None:
            raise UserError(f"cannot roll back: {root} has no {CURRENT} (nothing published)", NO_ROLLBACK)
        state = load_state(root)
        reconcile(root, state, live)
        target, reason = rollback_target(root, state, live)
        if target is None:
            raise UserError(f"cannot roll back: {reason}", NO_ROLLBACK)
        flip(root, target, ops)
        state["slots"].setdefault(live, {"state": "dirty"})["switched_away_at"] = iso(time.time())
        state["slots"][target]["switched_away_at"] = None
        state.update(live=target, previous=live)
        save_state(root, state, ops)
    print(f"rolled back: current -> {target} (revision {state['slots'][target].get('revision', 'unknown')}); "
          f"{live} is now the previous tree")
    return OK


def status(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    live = read_live(root) if os.path.isdir(root) else None
    if live is None:
        raise UserError(f"{root} has no {CURRENT}: nothing has been published there")
    state = load_state(root)
    reconcile(root, state, live)  # in memory only: status never writes
    target, reason = rollback_target(root, state, live)
    keys = ("state", "revision", "files", "published_at", "switched_away_at")
    slot = {s: {"slot": s, **{k: state["slots"].get(s, {}).get(k) for k in keys}} for s in SLOTS}
    report = {"root": root, "live": slot[live], "previous": slot.get(state["previous"] or ""),
              "can_rollback": target is not None, "rollback_blocker": reason or None}
    if args.json:
        print(json.dumps(report, indent=2))
        return OK
    cur, prev = report["live"], report["previous"]
    print(f"live:     {live}  revision {cur['revision']}  {cur['files']} files  published {cur['published_at']}")
    if prev:
        print(f"previous: {prev['slot']}  revision {prev['revision']}  {prev['state']}  "
              f"left live {prev['switched_away_at']}")
    print("rollback: " + ("possible" if target else f"impossible: {reason}"))
    return OK


def check(args: argparse.Namespace) -> int:
    print(f"check passed: {run_checks(Source(args.source), args)}")
    return OK
