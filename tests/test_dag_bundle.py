"""Story: the official chart's DAG bundle (deploy/base/efs_release_bundle.py) reads what the Jenkins
job publishes. Each release is a bundle version: the dag-processor sees the live one as of its last
refresh, a task gets its run's release, a pruned release fails naming the retention, and a publish
killed at any instant leaves the bundle on a complete release. Real Airflow (each official chart's
newest proven release, and the oldest) imports the module as the pods do, from a directory on sys.path.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from airflow_gitops import facts
from airflow_gitops.dagsync import layout
from helpers.paths import ROOT
from helpers.sync_dags import PYTHON, TOOL, live_id, ok, publish, published, snapshot, start_publish, write_tree
from helpers.tools import airflow_python

BUNDLE = ROOT / "template/deploy/base/{% if airflow_chart == 'official' %}efs_release_bundle.py{% endif %}"
# The oldest and the newest Airflow an official chart is proven with (facts.CHARTS).
OFFICIAL = [c for c in facts.CHARTS.values() if c.flavor == "official"]
AIRFLOWS = sorted({OFFICIAL[0].proven[0], OFFICIAL[-1].proven[-1]})

QUERY = """import json, os, sys
sys.path.insert(0, sys.argv[1])
from efs_release_bundle import EfsReleaseBundle
root, version, refresh = sys.argv[2], sys.argv[3] or None, sys.argv[4] == "1"
bundle = EfsReleaseBundle(name="dags-folder", root=root, version=version, refresh_interval=30)
try:
    bundle.initialize()
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
    sys.exit()
if refresh:
    bundle.refresh()
current = bundle.get_current_version()
print(json.dumps({"version": getattr(current, "version", current), "path": os.path.realpath(bundle.path),
                  "versioned": bundle.supports_versioning}))
"""

# One dag-processor across a publish. It queues files with the bundle's `path` of the moment and
# parses them later, recording the version of its latest refresh: so `path` stays the same, and the
# tree behind it changes only when it refreshes, to that refresh's version.
ACROSS_A_PUBLISH = """import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from efs_release_bundle import EfsReleaseBundle
bundle = EfsReleaseBundle(name="dags-folder", root=sys.argv[2], refresh_interval=30)
bundle.initialize()
queued = bundle.path
seen = [(bundle.get_current_version(), (queued / "story.py").read_text())]
subprocess.run(json.loads(sys.argv[3]), check=True, capture_output=True)  # the Jenkins job publishes
seen.append((bundle.get_current_version(), (queued / "story.py").read_text()))
bundle.refresh()
assert bundle.path == queued, (bundle.path, queued)
seen.append((bundle.get_current_version(), (queued / "story.py").read_text()))
print(json.dumps([(getattr(v, "version", v), text) for v, text in seen]))
"""


def test_the_pods_carry_the_bundle_files_hash() -> None:
    """A subPath mount never updates: the pods' annotation (the file's hash) restarts them on a new file."""
    digest = hashlib.sha256(BUNDLE.read_bytes()).hexdigest()
    assert digest == facts.DAG_BUNDLE_SHA256, (
        f"{BUNDLE.name} changed: set facts.DAG_BUNDLE_SHA256 = {digest!r} (the pods' annotation follows)")


def test_the_bundle_reads_the_publishers_names() -> None:
    """The module runs in the Airflow image without scripts/: it names the layout itself, the same."""
    tree = ast.parse(BUNDLE.read_text())
    assign = next(n for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple)
                  and [t.id for t in n.targets[0].elts] == ["RELEASES", "CURRENT"])
    assert ast.literal_eval(assign.value) == (layout.RELEASES, layout.CURRENT)
    assert f"{BUNDLE.name.split('}')[1].split('.')[0]}.EfsReleaseBundle" == facts.DAG_BUNDLE_CLASSPATH


class Bundle:
    """The bundle as a pod imports it (a copy of the module in a directory on sys.path)."""

    def __init__(self, python: Path, root: Path, tmp: Path) -> None:
        self.python, self.root, self.home = python, root, tmp / "airflow-home"
        self.path = tmp / "config"
        self.path.mkdir()
        shutil.copy(BUNDLE, self.path / f"{facts.DAG_BUNDLE_MODULE}.py")

    def query(self, version: str | None = None, refresh: bool = False) -> dict:
        return self.run(QUERY, version or "", "1" if refresh else "0")

    def run(self, script: str, *args: str) -> object:
        env = {**os.environ, "AIRFLOW_HOME": str(self.home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        proc = subprocess.run([str(self.python), "-c", script, str(self.path), str(self.root), *args],
                              capture_output=True, text=True, timeout=180, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])


def release(root: Path, release_id: str) -> str:
    return str(root / layout.RELEASES / release_id)


@pytest.mark.slow
@pytest.mark.parametrize("airflow", AIRFLOWS)
def test_each_release_is_a_bundle_version(airflow: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bundle = Bundle(airflow_python(airflow), root, tmp_path)
    assert bundle.query() == {"version": None, "path": str(root / "current"), "versioned": True}  # nothing yet

    v1 = write_tree(tmp_path / "v1", {"story.py": "VERSION = 1\n"})
    ok(publish(v1, root))
    first = live_id(root)
    assert bundle.query() == {"version": first, "path": release(root, first), "versioned": True}

    # The dag-processor records what it parses from `path` under the version of its last refresh: the
    # tree behind `path` is the one of that version until the next refresh, whatever `current` does.
    v2 = write_tree(tmp_path / "v2", {"story.py": "VERSION = 2\n"})
    command = [PYTHON, str(TOOL), "publish", "--source", str(v2), "--root", str(root), "--grace", "0"]
    seen = bundle.run(ACROSS_A_PUBLISH, json.dumps(command))
    second = live_id(root)
    assert seen == [[first, "VERSION = 1\n"], [first, "VERSION = 1\n"], [second, "VERSION = 2\n"]]

    assert bundle.query(refresh=True)["version"] == second
    # A task of a run that started on the first release gets it, although it is no longer live.
    pinned = bundle.query(first)
    assert pinned == {"version": first, "path": release(root, first), "versioned": True}
    assert Path(pinned["path"], "story.py").read_text() == "VERSION = 1\n"

    ok(publish(write_tree(tmp_path / "v3", {"story.py": "VERSION = 3\n"}), root, "--keep-last", "0",
               "--keep-for", "0"))
    assert not Path(release(root, first)).exists()
    error = bundle.query(first)["error"]
    assert error.startswith("ReleasePruned:") and first in error and "--keep-for" in error


@pytest.mark.slow
def test_a_legacy_slot_is_read_as_no_version(tmp_path: Path) -> None:
    """Until the first publish of 0.2.0 moves it to releases/, a 0.1 slot has no id: no version."""
    root = tmp_path / "root"
    (root / ".slot-a").mkdir(parents=True)
    os.symlink(".slot-a", root / "current")
    bundle = Bundle(airflow_python(AIRFLOWS[-1]), root, tmp_path)
    assert bundle.query() == {"version": None, "path": str(root / ".slot-a"), "versioned": True}


@pytest.mark.slow
def test_a_killed_publish_leaves_the_bundle_on_a_complete_release(tmp_path: Path) -> None:
    seed = int(os.environ.get("SYNC_DAGS_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    trees = [write_tree(tmp_path / f"v{n}", {f"dags/dag_{i}.py": f"VERSION = {n}  # {i}\n" for i in range(400)})
             for n in range(3)]
    root = tmp_path / "root"
    ok(publish(trees[0], root))
    started = time.monotonic()
    ok(publish(trees[1], root))
    full = time.monotonic() - started
    bundle = Bundle(airflow_python(AIRFLOWS[-1]), root, tmp_path)
    for trial in range(4):
        proc = start_publish(trees[trial % 3], root)
        time.sleep(rng.uniform(0, full * 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen = bundle.query()
        where = f"trial {trial}, seed {seed}"
        assert seen["version"] == live_id(root), where
        assert snapshot(Path(seen["path"])) in [published(tree) for tree in trees], where
