#!/usr/bin/env python3
"""Benchmark template/scripts/sync_dags.py against `cp -a` and `rsync -a` (make bench).

    python benchmarks/bench_sync_dags.py [--files 10000] [--latency-ms 1] [--serial] [--local-only]

Builds --files DAG files of ~2 KB in 300 directories, then, side by side in one run and for each
filesystem: `cp -a` of the tree (the baseline every ratio is relative to), and for each step `rsync -a`
into a copy of the previous version and a `sync_dags.py publish` (a new release: unchanged files
hard-linked): the first publish, one file changed, 100 files changed, and an unchanged re-publish.
Then the removal of one release by `prune` with 2 and with 12 releases kept besides the live one
(against `rm -rf` of a copy of the tree): the cost of a removal must not grow with what is kept.

Filesystems: a FUSE passthrough that adds --latency-ms to every call (benchmarks/latencyfs.py, a model
of EFS where each call is a network round trip) and counts the calls, reads included; then the local
disk. The FUSE part needs /dev/fuse, root, fusermount3 and mfusepy, and is skipped with the reason
otherwise. --serial adds a first publish with --jobs 1 (the tool's parallelism switched off).
Reports only: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import latencyfs

TOOL = Path(__file__).resolve().parent.parent / "template/scripts/sync_dags.py"
TEAMS, DIRS_PER_TEAM = 20, 15
READS = ("getattr", "readdir", "opendir", "releasedir", "read", "readlink", "access", "statfs")  # look, change nothing
GOALS = {"first publish": 1.2, "one file changed": 0.05, "100 files changed": None, "unchanged re-publish": 0.02}
DAG = '''"""DAG {i}: nightly load of {team}/{domain}."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

DEFAULT_ARGS = {{"owner": "{team}", "retries": 2, "retry_delay": timedelta(minutes=5)}}

with DAG(
    dag_id="{team}_{domain}_{i:05d}",
    start_date=datetime(2024, 1, 1),
    schedule="@daily",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["{team}", "{domain}"],
) as dag:
    extract = BashOperator(task_id="extract", bash_command="echo extract {i}")
    load = BashOperator(task_id="load", bash_command="echo load {i}")
    extract >> load
'''


class Run(NamedTuple):
    seconds: float
    calls: dict[str, int]  # per FUSE op; empty on local disk
    stats: dict[str, Any]  # sync_dags --stats

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def reads(self) -> int:
        return sum(n for op, n in self.calls.items() if op in READS)


def build_tree(root: Path, files: int) -> int:
    """files of ~2 KB in TEAMS * DIRS_PER_TEAM directories; returns the byte count."""
    total = 0
    for i in range(files):
        team, domain = f"team{i % TEAMS:02d}", f"domain{i // TEAMS % DIRS_PER_TEAM:02d}"
        text = DAG.format(i=i, team=team, domain=domain)
        text += "# " + "padding " * ((2048 - len(text)) // 8) + "\n"
        path = root / team / domain / f"dag_{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        total += len(text)
    return total


def change(src: Path, count: int, tag: str) -> None:
    """Rewrite `count` files spread over the tree (each one line longer)."""
    files = sorted(src.rglob("*.py"))
    for path in files[:: max(1, len(files) // count)][:count]:
        path.write_text(path.read_text() + f"# {tag}\n")


def timed(command: list[str], fs: latencyfs.Mount | None) -> Run:
    os.sync()  # one step's writeback is not billed to the next
    if fs:
        fs.reset()
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    lines = proc.stderr.strip().splitlines()
    stats = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return Run(elapsed, fs.counts() if fs else {}, stats)


def suite(volume: Path, work: Path, files: int, fs: latencyfs.Mount | None, serial: bool) -> dict[str, Any]:
    src = work / "src"
    build_tree(src, files)
    publish = [sys.executable, str(TOOL), "publish", "--source", str(src), "--root", str(volume / "dags"),
               "--grace", "0", "--revision", "bench", "--stats"]
    rsync = ["rsync", "-a", f"{src}/", f"{volume}/rsync/"]
    results: dict[str, Any] = {"cp -a": timed(["cp", "-a", str(src), str(volume / "cp-copy")], fs)}
    if serial:
        results["first publish, --jobs 1"] = {"sync_dags": timed(
            [*publish[:6], str(volume / "serial"), *publish[7:], "--jobs", "1"], fs)}
    for step, changes in (("first publish", 0), ("one file changed", 1), ("100 files changed", 100),
                          ("unchanged re-publish", 0)):
        if changes:
            change(src, changes, step)
        results[step] = {"rsync -a": timed(rsync, fs), "sync_dags": timed(publish, fs)}
    for n in range(11):  # 14 releases in all: the live one, 12 to keep, the oldest to remove
        change(src, 1, f"release {n}")
        timed([*publish, "--keep-last", "100"], None)
    prune = [sys.executable, str(TOOL), "prune", "--root", str(volume / "dags"), "--keep-for", "0", "--grace", "0",
             "--stats", "--keep-last"]
    for kept in (12, 2):
        if kept == 2:
            timed([*prune, "3"], None)  # down to the live one and 3: the timed prune removes one again
        subprocess.run(["cp", "-a", str(src), str(volume / "rm-copy")], check=True)
        results[f"prune 1 release, {kept} kept"] = {"rm -rf": timed(["rm", "-rf", str(volume / "rm-copy")], fs),
                                                     "sync_dags": timed([*prune, str(kept)], fs)}
    return results


def ratio(run: Run | None, base: Run) -> str:
    return "-" if run is None else f"{run.seconds / base.seconds:.3f}x"


def calls(run: Run | None) -> str:
    if run is None:
        return "-"
    if run.calls:
        return f"{run.total:,} ({run.reads:,} reads)"
    stats = run.stats
    return f"{stats['total']} ops + {stats['bookkeeping']} bookkeeping" if stats else "-"


def table(title: str, results: dict[str, Any], goals: bool) -> None:
    base: Run = results["cp -a"]
    print(f"\n{title}")
    header = (f"{'step':<26} {'rsync -a':>9} {'sync_dags':>9} {'rsync/cp':>9} {'sync/cp':>8}  {'goal':<7} "
              f"{'verdict':<8} {'calls rsync -a (reads)':>24} {'calls sync_dags (reads)':>24}")
    print(header + "\n" + "-" * len(header))
    print(f"{'cp -a (full copy)':<26} {base.seconds:>8.2f}s {'':>9} {'1x':>9} {'':>8}  {'':<16} {calls(base):>24}")
    for step, runs in results.items():
        if step == "cp -a":
            continue
        ours, theirs = runs["sync_dags"], runs.get("rsync -a", runs.get("rm -rf"))  # rm -rf: for a prune
        goal = GOALS.get(step)
        met = (goal is None or ours.seconds / base.seconds <= goal) and theirs is not None and (
            ours.seconds < theirs.seconds)
        verdict = "-" if theirs is None or not goals else "ok" if met else "MISSED"
        goal_text = "-" if not goals or theirs is None else f"<={goal}x" if goal else "< rsync"
        rsync_time = f"{theirs.seconds:>8.2f}s" if theirs else f"{'-':>9}"
        print(f"{step:<26} {rsync_time} {ours.seconds:>8.2f}s {ratio(theirs, base):>9} {ratio(ours, base):>8}  "
              f"{goal_text:<7} {verdict:<8} {calls(theirs):>24} {calls(ours):>24}")
    if any("rm -rf" in runs for runs in results.values() if isinstance(runs, dict)):
        print("(prune rows: the rsync -a column is `rm -rf` of a copy of the tree, serial like rsync)")


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--files", type=int, default=10_000)
    cli.add_argument("--latency-ms", type=float, default=1.0)
    cli.add_argument("--serial", action="store_true", help="also a first publish with --jobs 1")
    cli.add_argument("--local-only", action="store_true", help="skip the FUSE latency filesystem")
    args = cli.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sync-dags-") as tmp:
        size = build_tree(Path(tmp) / "probe", args.files)
        print(f"sync_dags benchmark: {args.files:,} files, {size / args.files / 1024:.1f} KB each, "
              f"{TEAMS * (DIRS_PER_TEAM + 1)} directories, {size / 2**20:.0f} MB; {os.cpu_count()} CPUs; "
              "sync_dags --jobs 16 (default); goals: every row ahead of rsync -a, and the ratio to cp -a")
        reason = "--local-only" if args.local_only else latencyfs.unavailable()
        if reason:
            print(f"\nFUSE latency filesystem SKIPPED: {reason}")
        else:
            backing, mnt = Path(tmp) / "backing", Path(tmp) / "mnt"
            backing.mkdir()
            with latencyfs.Mount(backing, mnt, args.latency_ms) as fs:
                fuse = suite(mnt, Path(tmp) / "fuse-work", args.files, fs, args.serial)
            table(f"FUSE passthrough, +{args.latency_ms:g} ms per call (calls counted by the FUSE daemon)", fuse,
                  goals=args.latency_ms == 1)
        local = Path(tmp) / "local"
        local.mkdir()
        table("local disk (calls: sync_dags --stats, operations on the trees)",
              suite(local, Path(tmp) / "local-work", args.files, None, args.serial), goals=False)
    print(f"\nbench finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
