#!/usr/bin/env python3
"""Publish a DAG tree atomically onto the shared EFS volume that Airflow reads.

    python sync_dags.py publish --source DIR --root /opt/efs/dags [--check] [--grace 360] [--stats]
    python sync_dags.py check --source DIR
    python sync_dags.py rollback --root /opt/efs/dags
    python sync_dags.py status --root /opt/efs/dags [--json]

Layout under ROOT (Airflow's DAGS_FOLDER is ROOT/current, so the hidden names are invisible to it):
    .slot-a/ .slot-b/    two complete trees used in turn
    current -> .slot-a   relative symlink (agents and pods mount the volume at different paths)
    .lock                flock()ed by publish/rollback; holds "pid=.. host=.. since=.. command=.."
    .state.json          metadata per slot; `current` on disk is the truth, this file describes it

A publish syncs the source into the idle slot (the one `current` does not point at), writing only what
differs, then swaps `current` by symlink(tmp) + rename(tmp, current): `ln -sfn` is unlink + symlink, not
atomic. The live tree is never written. On EFS each create/link/unlink/rename/mkdir/utime is a network
round trip, so a publish costs writes in proportion to the changed files; the trees are only read and
stat()ed. The first publish copies the tree and fills the other slot with hard links: safe because files
are never modified in place (a changed file is a temp file renamed over the old name).
Python 3.9+ standard library only: it runs inside the apache/airflow:2.8.4-python3.9 image.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import heapq
import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, NamedTuple

SLOTS = (".slot-a", ".slot-b")
CURRENT, LOCK, STATE = "current", ".lock", ".state.json"
TMP = ".~sync_dags."  # prefix of every temp name: never published, removed by the next run
EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_LOCK, EXIT_GRACE, EXIT_ROLLBACK = range(6)
EXIT_CODES = """exit codes:
  0  success: published, already live, rolled back, check passed, status shown
  1  DAG check failed (--check or `check`): one `file:line:message` per problem; nothing written
  2  usage or I/O error (bad arguments, missing directory, `status` on a ROOT without `current`)
  3  the lock was not taken within --lock-timeout (the message names the holder)
  4  the idle slot is still within its grace period and --no-wait was given
  5  rollback impossible: no previous tree, or it is dirty (a publish into it was interrupted)"""
STATS_HELP = """--stats prints one JSON line on stderr: {"action", "written", "linked", "unlinked", "renamed",
"mkdir", "rmdir", "symlink", "utime", "total" (their sum: operations on the trees and `current`),
"bookkeeping" (state-file and lock-file writes), "seconds"}."""
DAGBAG_PROBE = """import json, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
print("SYNC_DAGS_IMPORT_ERRORS " + json.dumps({str(k): str(v) for k, v in bag.import_errors.items()}))
"""


class Fail(Exception):
    """An expected failure: printed without a traceback, exits with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Entry(NamedTuple):
    kind: str  # "d" directory, "f" regular file, "l" symlink
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0
    target: str = ""


Tree = dict  # "/"-separated relative path -> Entry, parents before their children


def iso(ts: float) -> str:
    utc = datetime.fromtimestamp(ts, timezone.utc)  # noqa: UP017 (datetime.UTC is 3.11+)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class Ops:
    """Performs and counts the metadata operations (each one a network round trip on EFS)."""

    def __init__(self) -> None:
        kinds = ("written", "linked", "unlinked", "renamed", "mkdir", "rmdir", "symlink", "utime")
        self.counts = dict.fromkeys(kinds, 0)
        self.bookkeeping = 0  # state-file and lock-file writes, reported apart from the trees

    def summary(self) -> dict[str, int]:
        return {**self.counts, "total": sum(self.counts.values()), "bookkeeping": self.bookkeeping}

    def do(self, kind: str, func: Callable[..., object], *args: str) -> None:
        func(*args)
        self.counts[kind] += 1

    def copy_file(self, src: str, dst: str, entry: Entry) -> None:
        # The mode is given at creation (umask applies, like rsync without -p): no chmod round trip.
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, entry.mode & 0o777)
        self.counts["written"] += 1
        try:
            with open(src, "rb") as fin:
                copy_bytes(fin.fileno(), out)
            self.do("utime", lambda: os.utime(out, ns=(entry.mtime_ns, entry.mtime_ns)))
        finally:
            os.close(out)

    def remove(self, path: str) -> None:
        """A file, symlink or whole directory; symlinks are never followed."""
        if os.path.isdir(path) and not os.path.islink(path):
            with os.scandir(path) as it:
                for child in list(it):
                    self.remove(child.path)
            self.do("rmdir", os.rmdir, path)
        else:
            self.do("unlinked", os.unlink, path)


def copy_bytes(fd_in: int, fd_out: int) -> None:
    offset = 0
    try:
        while True:
            sent = os.sendfile(fd_out, fd_in, offset, 1 << 24)
            if not sent:
                return
            offset += sent
    except OSError as exc:  # sendfile unsupported on this file system: plain copy
        if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    while True:
        chunk = memoryview(os.read(fd_in, 1 << 20))
        if not chunk:
            return
        while chunk:
            chunk = chunk[os.write(fd_out, chunk):]


# ------------------------------------------------------------------------------------------------ trees
class Ignore:
    """`.git`, `__pycache__`, `*.pyc` and the regexps of the top-level .airflowignore.

    .airflowignore uses Airflow's default (regexp) syntax: one pattern per line, `#` starts a comment, and
    a file or directory is excluded when a pattern re.search()es its path relative to the source, e.g.
    `^scratch/` or `_test\\.py$`; excluded directories are not descended. Nested .airflowignore files are
    published as they are, and Airflow applies them when it parses.
    """

    def __init__(self, source: str) -> None:
        self.patterns = []
        path = os.path.join(source, ".airflowignore")
        lines = []
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        for number, line in enumerate(lines, 1):
            pattern = re.sub(r"\s*#.*", "", line).strip()
            try:
                self.patterns += [re.compile(pattern)] if pattern else []
            except re.error as exc:
                raise Fail(EXIT_USAGE, f"{path}:{number}: invalid regexp {pattern!r}: {exc}") from None

        # One alternation: a single search per entry instead of one per pattern.
        self.regex = re.compile("|".join(f"(?:{p.pattern})" for p in self.patterns)) if self.patterns else None

    def excluded(self, rel: str, name: str) -> bool:
        if name in (".git", "__pycache__") or name.startswith(TMP) or name.endswith(".pyc"):
            return True
        return bool(self.regex and self.regex.search(rel))


def scan(root: str, ignore: Ignore | None = None) -> Tree:
    """Everything under root, lstat()ed; symlinks are entries, never followed (rsync -rlt semantics)."""
    tree: Tree = {}

    def walk(path: str, prefix: str) -> None:
        with os.scandir(path) as it:
            for item in it:
                rel = prefix + item.name
                if ignore and ignore.excluded(rel, item.name):
                    continue
                # d_type from readdir answers dir/symlink without a stat call per entry
                if item.is_dir(follow_symlinks=False):
                    tree[rel] = Entry("d")
                    walk(item.path, rel + "/")
                elif item.is_symlink():
                    tree[rel] = Entry("l", target=os.readlink(item.path))
                elif item.is_file(follow_symlinks=False):
                    st = item.stat(follow_symlinks=False)
                    tree[rel] = Entry("f", st.st_size, st.st_mtime_ns, st.st_mode)
                else:
                    print(f"warning: skipping special file {item.path}", file=sys.stderr)

    walk(root, "")
    return tree


def same_bytes(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True


def same_entry(want: Entry, have: Entry, src: str, dst: str) -> bool:
    """For files rsync's quick check (size + mtime), then the bytes: equal content is never rewritten."""
    if want.kind != have.kind or want.target != have.target or want.size != have.size:
        return False
    return want.kind != "f" or want.mtime_ns == have.mtime_ns or same_bytes(src, dst)


class Plan(NamedTuple):
    remove: list  # deleted with everything below them
    mkdir: list
    create: list  # absent from the target: written under their final name (the target is not live)
    replace: list  # different in the target: written to a temp name, then renamed over it

    def empty(self) -> bool:
        return not (self.remove or self.mkdir or self.create or self.replace)


def diff(source: str, src: Tree, target: str, dst: Tree) -> Plan:
    """What turns target into a copy of source. Reads only."""
    plan, skip = Plan([], [], [], []), set()  # skip: directories removed or kept whole
    for rel, have in dst.items():
        parent, _, name = rel.rpartition("/")
        want = src.get(rel)
        # Bytecode caches Airflow wrote into a once-live tree stay: deleting them every time costs O(tree).
        if parent in skip or (want is None and (name == "__pycache__" or name.endswith(".pyc"))):
            skip.update([rel] if have.kind == "d" else [])
        elif want is None or want.kind != have.kind:
            plan.remove.append(rel)
            skip.update([rel] if have.kind == "d" else [])
    for rel, want in src.items():
        have = dst.get(rel)
        if have is None or have.kind != want.kind:
            (plan.mkdir if want.kind == "d" else plan.create).append(rel)
        elif not same_entry(want, have, f"{source}/{rel}", f"{target}/{rel}"):
            plan.replace.append(rel)
    return plan


def apply(plan: Plan, source: str, src: Tree, target: str, ops: Ops, link_from: str | None = None) -> None:
    """Execute a plan; with link_from (a complete tree of the same source) files are hard-linked, not copied."""

    def put(rel: str, path: str) -> None:
        want = src[rel]
        if want.kind == "l":
            ops.do("symlink", os.symlink, want.target, path)
        elif link_from:
            ops.do("linked", os.link, f"{link_from}/{rel}", path)
        else:
            ops.copy_file(f"{source}/{rel}", path, want)

    for rel in plan.remove:
        ops.remove(f"{target}/{rel}")
    for rel in plan.mkdir:
        ops.do("mkdir", os.mkdir, f"{target}/{rel}")
    for rel in plan.create:
        put(rel, f"{target}/{rel}")
    for rel in plan.replace:
        head, _, name = f"{target}/{rel}".rpartition("/")
        put(rel, f"{head}/{TMP}{name}")
        ops.do("renamed", os.replace, f"{head}/{TMP}{name}", f"{head}/{name}")


def matches(source: str, src: Tree, target: str) -> bool:
    """Is target identical to source? The newest source files first: a fresh change shows in a few stats."""
    for _, rel in heapq.nlargest(16, ((e.mtime_ns, rel) for rel, e in src.items() if e.kind == "f")):
        try:
            st = os.lstat(f"{target}/{rel}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        have = Entry("f" if stat.S_ISREG(st.st_mode) else "?", st.st_size, st.st_mtime_ns)
        if not same_entry(src[rel], have, f"{source}/{rel}", f"{target}/{rel}"):
            return False
    return diff(source, src, target, scan(target)).empty()


# ------------------------------------------------------------------------------------------------ checks
def check_tree(source: str, src: Tree) -> list[str]:
    """compile() every published .py (no .pyc written), then Airflow's DagBag when airflow is importable."""
    import importlib.util
    import warnings

    problems = []
    for rel in (rel for rel, e in src.items() if e.kind == "f" and rel.endswith(".py")):
        with open(f"{source}/{rel}", "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are not failures
            try:
                compile(fh.read(), rel, "exec", dont_inherit=True)
            except SyntaxError as exc:
                problems.append(f"{rel}:{exc.lineno or 0}:{exc.msg}")
            except ValueError as exc:  # null bytes
                problems.append(f"{rel}:0:{exc}")
    if not problems and importlib.util.find_spec("airflow") is not None:
        problems = dagbag_problems(source)
    return problems


def dagbag_problems(source: str) -> list[str]:
    """The DagBag loads in a child process: DAG files run arbitrary code, and airflow is slow to import."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", DAGBAG_PROBE, source], capture_output=True, text=True)
    found = [line for line in proc.stdout.splitlines() if line.startswith("SYNC_DAGS_IMPORT_ERRORS ")]
    if proc.returncode or not found:
        return [f"{source}:0:the DagBag did not load (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"]
    problems = []
    for path, trace in json.loads(found[-1].split(" ", 1)[1]).items():
        lines = re.findall(rf'File "{re.escape(path)}", line (\d+)', trace) or ["0"]
        message = ([line.strip() for line in trace.splitlines() if line.strip()] or ["import error"])[-1]
        problems.append(f"{os.path.relpath(path, source)}:{lines[-1]}:{message}")
    return sorted(problems)


def run_checks(source: str, src: Tree) -> None:
    problems = check_tree(source, src)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise Fail(EXIT_CHECK, f"DAG check failed: {len(problems)} problem(s) in {source}; nothing published")


# ------------------------------------------------------------------------------------------------ ROOT
class Lock:
    """flock() on ROOT/.lock (NFSv4 locks on EFS), polled so that a timeout can name the recorded holder."""

    def __init__(self, root: str, timeout: float, ops: Ops, command: str) -> None:
        self.path, self.timeout, self.ops, self.command = os.path.join(root, LOCK), timeout, ops, command

    def __enter__(self) -> Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, announced = time.monotonic() + self.timeout, False
        while not self.try_lock():
            holder = os.pread(self.fd, 512, 0).decode(errors="replace").strip() or "unknown (no pid recorded)"
            if time.monotonic() >= deadline:
                os.close(self.fd)
                raise Fail(EXIT_LOCK, f"lock {self.path} not acquired within {self.timeout:g} s: held by {holder}")
            if not announced:
                print(f"waiting for the lock {self.path}, held by {holder}", flush=True)
                announced = True
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.001)))
        record = f"pid={os.getpid()} host={os.uname().nodename} since={iso(time.time())} command={self.command}\n"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, record.encode(), 0)
        self.ops.bookkeeping += 1
        return self

    def try_lock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock; the kernel does the same for a SIGKILLed holder


def read_live(root: str) -> str | None:
    """The slot `current` points at, or None before the first publish."""
    path = os.path.join(root, CURRENT)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        raise Fail(EXIT_USAGE, f"{path} exists but is not a symlink; move it away first") from None
    if target not in SLOTS or not os.path.isdir(os.path.join(root, target)):
        raise Fail(EXIT_USAGE, f"{path} -> {target}: not one of this tool's slots {SLOTS}")
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
    """tmp + fsync + rename: readers and crashes see the old or the new file, never half of one."""
    state.update(version=1, updated_at=iso(time.time()))
    tmp = os.path.join(root, TMP + "state")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(root, STATE))
    fsync_dir(root)
    ops.bookkeeping += 2


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reconcile(root: str, state: dict[str, Any], live: str | None) -> None:
    """Make the state agree with `current` when a run was killed between its flip and its state write."""
    if live is None or state["live"] == live:
        return
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


def repair(root: str, ops: Ops) -> None:
    """Leftovers of an interrupted run in ROOT; those inside the idle slot go with its next sync."""
    for path in (os.path.join(root, TMP + CURRENT), os.path.join(root, TMP + "state")):
        if os.path.lexists(path):
            ops.remove(path)


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
        raise Fail(EXIT_GRACE, f"{why}: {remaining:.1f} s remain; retry later or drop --no-wait")
    print(f"waiting {remaining:.1f} s before writing into it: {why}", flush=True)
    time.sleep(remaining)


# ------------------------------------------------------------------------------------------------ commands
def git_revision(source: str) -> str:
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def source_tree(path: str) -> tuple[str, Tree]:
    if not os.path.isdir(path):
        raise Fail(EXIT_USAGE, f"source {path} is not a directory")
    source = os.path.realpath(path)
    return source, scan(source, Ignore(source))


def publish(args: argparse.Namespace) -> int:
    started, root = time.monotonic(), os.path.abspath(args.root)
    source, src = source_tree(args.source)
    if os.path.commonpath([source, os.path.realpath(root)]) in (source, os.path.realpath(root)):
        raise Fail(EXIT_USAGE, f"source {source} and root {root} must not contain one another")
    if args.check:
        run_checks(source, src)  # before anything is written
    info = {"revision": args.revision or git_revision(source), "published_at": None,
            "files": sum(1 for e in src.values() if e.kind != "d")}
    ops = Ops()
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # exist_ok: a concurrent first publish may create it too
        ops.counts["mkdir"] += 1
    with Lock(root, args.lock_timeout, ops, "publish"):
        repair(root, ops)
        live = read_live(root)
        state = load_state(root)
        reconcile(root, state, live)
        if live is None:
            action = first_publish(root, source, src, state, info, ops)
        else:
            action = publish_idle(root, source, src, state, info, live, args, ops)
    if args.stats:
        stats = {"action": action, **ops.summary(), "seconds": round(time.monotonic() - started, 3)}
        print(json.dumps(stats), file=sys.stderr)
    return EXIT_OK


def first_publish(root: str, source: str, src: Tree, state: dict, info: dict, ops: Ops) -> str:
    """Copy into the first slot, go live, then fill the other slot with hard links so that the next
    publish is incremental too. Run again, it resumes an interrupted first publish."""
    fresh, spare = SLOTS
    for slot in SLOTS:
        state["slots"][slot] = {"state": "dirty", **info, "switched_away_at": None}
    save_state(root, state, ops)
    for slot, link_from in ((fresh, None), (spare, os.path.join(root, fresh))):
        target = os.path.join(root, slot)
        if not os.path.isdir(target):
            ops.do("mkdir", os.mkdir, target)
        apply(diff(source, src, target, scan(target)), source, src, target, ops, link_from)
        if slot == fresh:
            flip(root, fresh, ops)
    state["slots"][fresh].update(state="complete", published_at=iso(time.time()))
    state["slots"][spare]["state"] = "complete"  # the same tree, but never live: not a rollback target
    state.update(live=fresh, previous=None)
    save_state(root, state, ops)
    print(f"published {info['files']} files (revision {info['revision']}): current -> {fresh}; "
          f"{spare} seeded with hard links")
    return "first-publish"


def publish_idle(root: str, source: str, src: Tree, state: dict, info: dict, live: str,
                 args: argparse.Namespace, ops: Ops) -> str:
    if matches(source, src, os.path.join(root, live)):
        print(f"already live: {live} matches {source} (live revision "
              f"{state['slots'].get(live, {}).get('revision', 'unknown')}); nothing written")
        return "already-live"
    idle = other(live)
    target = os.path.join(root, idle)
    plan = diff(source, src, target, scan(target) if os.path.isdir(target) else {})
    if not plan.empty():  # readers may still be in the idle tree: wait before touching it
        wait_grace(state, idle, args.grace, args.no_wait)
        left_at = state["slots"].get(idle, {}).get("switched_away_at")
        state["slots"][idle] = {"state": "dirty", **info, "switched_away_at": left_at}
        save_state(root, state, ops)
        if not os.path.isdir(target):
            ops.do("mkdir", os.mkdir, target)
        apply(plan, source, src, target, ops)
    flip(root, idle, ops)
    now = iso(time.time())
    state["slots"][idle] = {"state": "complete", **info, "published_at": now, "switched_away_at": None}
    state["slots"].setdefault(live, {"state": "dirty"})["switched_away_at"] = now
    state.update(live=idle, previous=live)
    save_state(root, state, ops)
    print(f"published revision {info['revision']} ({info['files']} files): current -> {idle}; "
          f"{len(plan.create) + len(plan.replace)} written, {len(plan.remove)} removed, {len(plan.mkdir)} dirs made")
    return "published"


def rollback(args: argparse.Namespace) -> int:
    root, ops = os.path.abspath(args.root), Ops()
    if not os.path.isdir(root):
        raise Fail(EXIT_ROLLBACK, f"cannot roll back: {root} does not exist (nothing published)")
    with Lock(root, args.lock_timeout, ops, "rollback"):
        repair(root, ops)
        live = read_live(root)
        if live is None:
            raise Fail(EXIT_ROLLBACK, f"cannot roll back: {root} has no {CURRENT} (nothing published)")
        state = load_state(root)
        reconcile(root, state, live)
        target, reason = rollback_target(root, state, live)
        if target is None:
            raise Fail(EXIT_ROLLBACK, f"cannot roll back: {reason}")
        flip(root, target, ops)
        state["slots"].setdefault(live, {"state": "dirty"})["switched_away_at"] = iso(time.time())
        state["slots"][target]["switched_away_at"] = None
        state.update(live=target, previous=live)
        save_state(root, state, ops)
    print(f"rolled back: current -> {target} (revision {state['slots'][target].get('revision', 'unknown')}); "
          f"{live} is now the previous tree")
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    live = read_live(root) if os.path.isdir(root) else None
    if live is None:
        raise Fail(EXIT_USAGE, f"{root} has no {CURRENT}: nothing has been published there")
    state = load_state(root)
    reconcile(root, state, live)  # in memory only: status never writes
    target, reason = rollback_target(root, state, live)
    keys = ("state", "revision", "files", "published_at", "switched_away_at")
    slot = {s: {"slot": s, **{k: state["slots"].get(s, {}).get(k) for k in keys}} for s in SLOTS}
    report = {"root": root, "live": slot[live], "previous": slot.get(state["previous"] or ""),
              "can_rollback": target is not None, "rollback_blocker": reason or None}
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    cur, prev = report["live"], report["previous"]
    print(f"live:     {live}  revision {cur['revision']}  {cur['files']} files  published {cur['published_at']}")
    if prev:
        print(f"previous: {prev['slot']}  revision {prev['revision']}  {prev['state']}  "
              f"left live {prev['switched_away_at']}")
    print("rollback: " + ("possible" if target else f"impossible: {reason}"))
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    source, src = source_tree(args.source)
    run_checks(source, src)
    print(f"check passed: {sum(1 for r, e in src.items() if e.kind == 'f' and r.endswith('.py'))} python files")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    def sub(name: str, func: Callable[[argparse.Namespace], int], help_text: str, epilog: str = EXIT_CODES):
        cmd = subs.add_parser(name, help=help_text, epilog=epilog, formatter_class=fmt)
        cmd.set_defaults(func=func)
        return cmd

    fmt = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=fmt)
    subs = top.add_subparsers(dest="command", required=True)
    pub = sub("publish", publish, "sync SOURCE into the idle slot and switch `current` to it",
              EXIT_CODES + "\n\n" + STATS_HELP)
    pub.add_argument("--source", required=True, help="the DAG tree to publish (a git checkout)")
    pub.add_argument("--root", required=True, help="directory holding the slots and `current`")
    pub.add_argument("--check", action="store_true", help="run the DAG checks first; publish nothing if they fail")
    pub.add_argument("--grace", type=float, default=360.0, help="seconds a tree stays untouched after it "
                     "stopped being live (default 360: dag_dir_list_interval 300 s + parse time)")
    pub.add_argument("--no-wait", action="store_true", help="exit 4 instead of waiting out the grace period")
    pub.add_argument("--revision", help="revision to record (default: git -C SOURCE rev-parse HEAD, else unknown)")
    pub.add_argument("--lock-timeout", type=float, default=600.0, help="seconds to wait for the lock (default 600)")
    pub.add_argument("--stats", action="store_true", help="print operation counts as one JSON line on stderr")
    sub("check", check, "compile the DAG files, and load a DagBag when airflow is importable").add_argument(
        "--source", required=True)
    rol = sub("rollback", rollback, "point `current` back at the previous tree")
    rol.add_argument("--root", required=True)
    rol.add_argument("--lock-timeout", type=float, default=600.0, help="seconds to wait for the lock (default 600)")
    sta = sub("status", status, "show the live and the previous tree")
    sta.add_argument("--root", required=True)
    sta.add_argument("--json", action="store_true", help="machine-readable output")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except Fail as exc:
        print(f"sync_dags: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"sync_dags: I/O error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
