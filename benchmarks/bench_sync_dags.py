#!/usr/bin/env python3
"""Benchmark template/scripts/sync_dags.py against `cp -a` (make bench).

Builds 10,000 DAG files of ~2 KB in a few hundred directories in a temp dir, then times, in one run:
`cp -a` of the tree, the first publish, a publish with one file changed and a re-publish of the unchanged
tree (all with --grace 0), and prints them side by side with the metadata operations from --stats.
On EFS each metadata operation is a ~1 ms network round trip, so the ops column is what scales there;
wall times here are local-disk times. Pending writes are flushed (sync) before each timed step so that
one step's writeback is not billed to the next. Reports only: nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "template/scripts/sync_dags.py"
FILES, TEAMS, DIRS_PER_TEAM = 10_000, 20, 15
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


def build_tree(root: Path) -> int:
    """FILES files of ~2 KB in TEAMS * DIRS_PER_TEAM directories; returns the byte count."""
    total = 0
    for i in range(FILES):
        team, domain = f"team{i % TEAMS:02d}", f"domain{i // TEAMS % DIRS_PER_TEAM:02d}"
        text = DAG.format(i=i, team=team, domain=domain)
        text += "# " + "padding " * ((2048 - len(text)) // 8) + "\n"
        path = root / team / domain / f"dag_{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        total += len(text)
    return total


def timed(command: list[str]) -> tuple[float, dict[str, int]]:
    os.sync()
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    lines = proc.stderr.strip().splitlines()
    return elapsed, json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def ops_text(stats: dict[str, int]) -> str:
    if not stats:
        return "-"
    skip = ("action", "total", "bookkeeping", "seconds")
    kinds = ", ".join(f"{k} {v}" for k, v in stats.items() if v and k not in skip)
    return f"{stats['total']}" + (f" ({kinds})" if kinds else "") + f" + {stats['bookkeeping']} state/lock"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-sync-dags-") as tmp:
        src, root = Path(tmp) / "src", Path(tmp) / "efs/dags"
        size = build_tree(src)
        publish = [sys.executable, str(TOOL), "publish", "--source", str(src), "--root", str(root),
                   "--grace", "0", "--revision", "bench", "--stats"]
        cp_time, _ = timed(["cp", "-a", str(src), str(Path(tmp) / "cp-copy")])
        first, first_stats = timed(publish)
        changed = src / "team07/domain03/dag_00067.py"
        changed.write_text(changed.read_text() + "# one change\n")
        one, one_stats = timed(publish)
        again, again_stats = timed(publish)

    rows = [("cp -a of the tree", cp_time, None, "-"),
            ("first publish", first, 1.5, ops_text(first_stats)),
            ("one file changed", one, 0.1, ops_text(one_stats)),
            ("re-publish, unchanged", again, None, ops_text(again_stats))]
    print(f"sync_dags benchmark: {FILES:,} files, {size / FILES / 1024:.1f} KB each, "
          f"{TEAMS * (DIRS_PER_TEAM + 1)} directories, {size / 2**20:.0f} MB; {os.cpu_count()} CPUs\n")
    print(f"{'step':<24} {'wall':>8} {'vs cp -a':>9}  {'target':<13} metadata ops (tree) + bookkeeping")
    for name, seconds, target, ops in rows:
        ratio = seconds / cp_time
        verdict = "-" if target is None else f"<= {target}x " + ("ok" if ratio <= target else "MISSED")
        print(f"{name:<24} {seconds:>7.3f}s {ratio:>8.2f}x  {verdict:<13} {ops}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
