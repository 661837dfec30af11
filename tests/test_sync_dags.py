"""template/scripts/sync_dags.py: DAG trees published into two slots behind an atomic relative `current` symlink.

The tool runs as a subprocess on real directories, the way the Jenkins agent runs it; a few tests import it
to interrupt a publish at a precise point.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from airflow_gitops.dagsync.cli import main
from airflow_gitops.dagsync.volume import Ops
from helpers.copying import GIT_ENV
from helpers.paths import skip_or_fail
from helpers.sync_dags import (
    PYTHON,
    TMP_PREFIX,
    TOOL,
    copy_tree,
    dags,
    leftovers,
    live,
    make_tree,
    ok,
    publish,
    published,
    run,
    snapshot,
    state,
    stats,
    status,
    write_tree,
)


# --------------------------------------------------------------------------------------------- publishing
def test_first_publish_makes_a_relative_symlink_to_an_identical_tree(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 60)
    (src / "team00/sql").mkdir()
    (src / "team00/sql/query.sql").write_text("select 1\n")
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(src), "commit", "-qm", "dags"], check=True, env={**os.environ, **GIT_ENV})
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    root = tmp_path / "efs/dags"

    ok(publish(src, root))

    target = os.readlink(root / "current")
    assert not os.path.isabs(target) and "/" not in target, target
    expected = {k: v for k, v in snapshot(src).items() if not k.startswith(".git")}
    assert snapshot(live(root)) == expected
    report = status(root)
    assert report["live"]["revision"] == head
    assert report["live"]["files"] == 61
    assert report["live"]["published_at"].endswith("Z")
    assert report["previous"] is None and report["can_rollback"] is False
    spare = root / (".slot-b" if target == ".slot-a" else ".slot-a")
    assert snapshot(spare) == expected  # the other slot is seeded, so the next publish is incremental
    dag = "team03/dag_00003.py"
    assert (spare / dag).stat().st_ino == (live(root) / dag).stat().st_ino  # ... with hard links, not copies
    assert f"revision {head}  61 files" in ok(run("status", "--root", root)).stdout


def test_incremental_publish_writes_only_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    v1 = make_tree(tmp_path / "v1", 500)
    ok(publish(v1, root))
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team07/dag_00007.py").write_text("# changed\nVALUE = 'seven'\n")

    result = stats(ok(publish(v2, root, "--stats")))

    assert result["action"] == "published"
    assert result["written"] == 1
    assert result["total"] <= 6, result  # temp file + utime + rename, symlink + rename for the flip
    assert snapshot(live(root)) == snapshot(v2)

    v3 = copy_tree(v2, tmp_path / "v3")
    (v3 / "team01/dag_00001.py").unlink()
    shutil.rmtree(v3 / "team02")
    (v3 / "new/deeper").mkdir(parents=True)
    (v3 / "new/deeper/fresh.py").write_text("VALUE = 'new'\n")
    os.symlink("../team03/dag_00003.py", v3 / "new/alias.py")
    os.symlink("team04", v3 / "team04_link")  # a directory symlink
    (v3 / "team05/dag_00005.py").unlink()
    (v3 / "team05/dag_00005.py").mkdir()  # file -> directory
    (v3 / "team05/dag_00005.py/inner.py").write_text("x = 1\n")

    ok(publish(v3, root, "--stats"))

    tree = live(root)
    assert snapshot(tree) == published(v3)
    assert not (tree / "team01/dag_00001.py").exists() and not (tree / "team02").exists()
    assert (tree / "new/deeper/fresh.py").read_text() == "VALUE = 'new'\n"
    # links inside the source are published as what they point to: nothing can dangle or loop on the volume
    assert not os.path.islink(tree / "new/alias.py") and (tree / "new/alias.py").read_text() == "# dag 3\nVALUE = 3\n"
    assert not os.path.islink(tree / "team04_link") and (tree / "team04_link/dag_00004.py").is_file()

    v4 = copy_tree(v1, tmp_path / "v4")  # back to v1: the slot last synced to v2 gets v1's tree
    st = stats(ok(publish(v4, root, "--stats")))
    assert snapshot(live(root)) == snapshot(v1)
    assert st["written"] <= 2, st  # only dag_00007 differs from that slot's v2 tree


def test_only_git_bytecode_and_temp_names_are_skipped(tmp_path: Path) -> None:
    """.airflowignore means "do not parse", never "do not ship": ignored files are published."""
    src = make_tree(tmp_path / "src", 5)
    (src / ".git").mkdir()
    (src / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (src / "team00/__pycache__").mkdir()
    (src / "team00/__pycache__/dag_00000.cpython-39.pyc").write_bytes(b"\0")
    (src / "team01/stray.pyc").write_bytes(b"\0")
    (src / f"team01/{TMP_PREFIX}leftover").write_text("x")
    (src / "scratch").mkdir()
    (src / "scratch/notes.py").write_text("x = 1\n")
    (src / "team02/dag_test.py").write_text("x = 1\n")
    (src / ".airflowignore").write_text("# not DAGs\n^scratch/\n_test\\.py$   # unit tests\n")
    root = tmp_path / "root"

    ok(publish(src, root))

    tree = snapshot(live(root))
    assert {".airflowignore", "team00/dag_00000.py", "scratch/notes.py", "team02/dag_test.py"} <= set(tree)
    for path in (".git", "team00/__pycache__", "team01/stray.pyc", f"team01/{TMP_PREFIX}leftover"):
        assert path not in tree, path
    assert tree == published(src)


def test_republishing_the_live_tree_writes_nothing(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 50)
    root = tmp_path / "root"
    ok(publish(src, root))
    before = (os.readlink(root / "current"), (root / ".state.json").stat().st_mtime_ns)
    os.utime(src / "team01/dag_00001.py", (1_000_000_000, 1_000_000_000))  # same bytes, new mtime

    proc = ok(publish(src, root, "--stats"))

    assert "already live" in proc.stdout
    assert stats(proc)["total"] == 0 and stats(proc)["action"] == "already-live"
    assert (os.readlink(root / "current"), (root / ".state.json").stat().st_mtime_ns) == before


def test_same_size_same_mtime_change_is_published(tmp_path: Path) -> None:
    """Build tools that pin timestamps, or two writes in one tick: only the content tells the change."""
    src = make_tree(tmp_path / "src", 50)
    root = tmp_path / "root"
    ok(publish(src, root, "--revision", "r1"))
    dag = src / "team07/dag_00007.py"
    before = dag.stat()
    dag.write_text(dag.read_text().replace("VALUE = 7", "VALUE = 9"))  # same length
    os.utime(dag, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (dag.stat().st_size, dag.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    result = stats(ok(publish(src, root, "--stats", "--revision", "r2")))

    assert result["action"] == "published" and result["written"] == 1, result
    assert (live(root) / "team07/dag_00007.py").read_text() == "# dag 7\nVALUE = 9\n"
    assert snapshot(live(root)) == snapshot(src)
    assert status(root)["live"]["revision"] == "r2"


KILL_AFTER_FLIP = """import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("sync_dags", sys.argv[1])
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
real_replace = os.replace
def replace_then_die(src, dst):  # the flip's rename, wherever the tool keeps it
    real_replace(src, dst)
    if os.path.basename(dst) == "current":
        os.kill(os.getpid(), signal.SIGKILL)  # `current` renamed, the state not yet written
os.replace = replace_then_die
sys.exit(tool.main(sys.argv[2:]))
"""


def test_killed_between_flip_and_state_write_the_next_run_saves_reconciled_state(tmp_path: Path) -> None:
    """The next run finds the tree already live: it must still write the state that `current` implies."""
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root, "--revision", "r1"))
    ok(publish(v2, root, "--revision", "r2"))
    was_live = os.readlink(root / "current")
    killed = subprocess.run([PYTHON, "-c", KILL_AFTER_FLIP, str(TOOL), "publish", "--source", str(v3), "--root",
                             str(root), "--grace", "0", "--revision", "r3"], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    now_live = os.readlink(root / "current")
    assert now_live != was_live and snapshot(live(root)) == snapshot(v3)
    assert state(root)["live"] == was_live  # the instant under test: the state still names the old slot

    proc = ok(publish(v3, root, "--revision", "r3"))

    recorded = state(root)
    assert recorded["live"] == now_live and recorded["previous"] == was_live, recorded
    assert "already live" in proc.stdout and "state reconciled" in proc.stdout
    assert recorded["slots"][now_live]["state"] == "complete" and recorded["slots"][now_live]["revision"] == "r3"
    assert recorded["slots"][was_live]["switched_away_at"] is not None  # its readers get the grace period
    assert status(root)["live"]["revision"] == "r3"
    refused = publish(v1, root, "--grace", "60", "--no-wait")
    assert refused.returncode == 4, refused.stderr  # the tree live until the flip is not written at once
    ok(run("rollback", "--root", root))
    assert snapshot(live(root)) == snapshot(v2)


def test_verify_repairs_a_slot_edited_by_hand(tmp_path: Path) -> None:
    v1, v2, _ = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    ok(publish(v2, root))
    idle = root / (".slot-a" if os.readlink(root / "current") == ".slot-b" else ".slot-b")
    (idle / "team01/dag_00001.py").write_text("# edited by hand\n")  # the manifest does not know
    (idle / "team02/dag_00002.py").unlink()
    (idle / "stray.py").write_text("x = 1\n")
    (live(root) / "team03/dag_00003.py").write_text("# edited on the live tree\n")

    trusting = stats(ok(publish(v2, root, "--stats")))  # trusts the live manifest: nothing to do
    assert trusting["action"] == "already-live" and trusting["total"] == 0

    proc = ok(publish(v2, root, "--verify", "--stats"))

    assert "differs from its manifest" in proc.stdout
    result = stats(proc)
    assert result["action"] == "published" and result["idle"] == "scanned", result
    assert snapshot(live(root)) == snapshot(v2)  # the hand-edited idle slot repaired, then made live
    # dag_00000 (v1 there), 00001, 00002 and 00003: edits in place reach the other slot through shared inodes
    assert result["written"] == 4 and result["unlinked"] == 4, result  # 3 replaced, stray.py removed
    ok(publish(v1, root))  # into the slot edited on the live tree: its manifest now says what it holds
    assert snapshot(live(root)) == snapshot(v1)


def test_slots_without_a_manifest_are_scanned_once(tmp_path: Path) -> None:
    """A ROOT written by 0.1.0 (no manifests, temp names left in a slot): scanned and hashed, then incremental."""
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    for manifest in root.glob("*.manifest.json"):
        manifest.unlink()
    idle = root / (".slot-b" if os.readlink(root / "current") == ".slot-a" else ".slot-a")
    (idle / f"team00/{TMP_PREFIX}dag_00000.py").write_text("half a file")

    first = stats(ok(publish(v2, root, "--stats")))
    again = stats(ok(publish(v3, root, "--stats")))

    assert first["idle"] == "scanned" and first["written"] == 1, first  # only what differs by content
    assert snapshot(live(root)) == snapshot(v3) and not leftovers(root)
    assert again["idle"] == "scanned" and again["written"] == 1, again  # the other slot, scanned once too
    assert stats(ok(publish(v2, root, "--stats")))["idle"] == "manifest"


# --------------------------------------------------------------------------------------------- grace period
def three_versions(tmp_path: Path) -> list[Path]:
    v1 = make_tree(tmp_path / "v1", 30)
    versions = [v1]
    for n in (2, 3):
        version = copy_tree(v1, tmp_path / f"v{n}")
        (version / "team00/dag_00000.py").write_text(f"VERSION = {n}\n")
        versions.append(version)
    return versions


def test_grace_period_with_no_wait_exits_4(tmp_path: Path) -> None:
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root, "--grace", "60", "--no-wait"))
    # The second publish goes into the slot seeded at the first one, which was never live: no readers.
    ok(publish(v2, root, "--grace", "60", "--no-wait"))
    current = os.readlink(root / "current")

    proc = publish(v3, root, "--grace", "60", "--no-wait")  # the idle slot was live a moment ago

    assert proc.returncode == 4, proc.stderr
    assert "grace period is 60 s" in proc.stderr and "remain" in proc.stderr
    assert os.readlink(root / "current") == current and snapshot(live(root)) == snapshot(v2)


def test_grace_period_is_waited_out(tmp_path: Path) -> None:
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    ok(publish(v2, root))
    idle = ".slot-a" if os.readlink(root / "current") == ".slot-b" else ".slot-b"
    left_at = status(root)["previous"]["switched_away_at"]
    assert status(root)["previous"]["slot"] == idle
    grace = 1.5
    started = time.time()
    remaining = grace - (started - _epoch(left_at))
    assert remaining > 0.3, "the setup took too long to test the wait"

    proc = ok(publish(v3, root, "--grace", grace))

    assert time.time() - started >= remaining - 0.005
    assert "waiting" in proc.stdout
    assert snapshot(live(root)) == snapshot(v3)


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------------------------- rollback
def test_rollback_returns_to_the_previous_tree(tmp_path: Path) -> None:
    v1, v2, _ = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root, "--revision", "r1"))
    refused = run("rollback", "--root", root)
    assert refused.returncode == 5 and "no previous publish" in refused.stderr
    ok(publish(v2, root, "--revision", "r2"))

    ok(run("rollback", "--root", root))

    assert snapshot(live(root)) == snapshot(v1)
    report = status(root)
    assert report["live"]["revision"] == "r1" and report["previous"]["revision"] == "r2"
    assert report["previous"]["switched_away_at"] is not None  # the grace applies to the tree we left
    ok(run("rollback", "--root", root))  # and forward again
    assert snapshot(live(root)) == snapshot(v2)


def test_rollback_refuses_a_slot_dirtied_by_an_interrupted_publish(tmp_path: Path) -> None:
    v1 = make_tree(tmp_path / "v1", 40)
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team00/dag_00000.py").write_text("VALUE = 2\n")
    v3 = make_tree(tmp_path / "v3", 40)
    for dag in v3.rglob("*.py"):
        dag.write_text(dag.read_text() + "# v3\n")
    root = tmp_path / "root"
    ok(publish(v1, root))
    ok(publish(v2, root))

    class Killed(BaseException):
        """Stands in for SIGKILL: nothing in the tool catches it."""

    real_copy, copies = Ops.write_file, []

    def dying_copy(self: Any, *args: Any) -> None:
        copies.append(args)
        if len(copies) > 5:
            raise Killed
        real_copy(self, *args)

    Ops.write_file = dying_copy
    try:
        with pytest.raises(Killed):
            main(["publish", "--source", str(v3), "--root", str(root), "--grace", "0", "--jobs", "1"])
    finally:
        Ops.write_file = real_copy
    assert snapshot(live(root)) == snapshot(v2)

    proc = run("rollback", "--root", root)

    assert proc.returncode == 5 and "dirty" in proc.stderr, proc.stderr
    assert status(root)["can_rollback"] is False
    ok(publish(v3, root))  # the next publish repairs the slot
    assert snapshot(live(root)) == snapshot(v3) and not leftovers(root)


def test_flip_without_state_write_is_reconciled(tmp_path: Path) -> None:
    """A run killed between its flip and its state write: `current` on disk wins, the grace still applies."""
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root, "--revision", "r1"))
    ok(publish(v2, root, "--revision", "r2"))
    back = os.readlink(root / "current")
    os.symlink(".slot-a" if back == ".slot-b" else ".slot-b", root / "tmp-link")
    os.replace(root / "tmp-link", root / "current")  # a rollback's flip, its state write never happened

    report = status(root)

    assert report["live"]["revision"] == "r1" and report["previous"]["slot"] == back
    proc = publish(v3, root, "--grace", "60", "--no-wait")
    assert proc.returncode == 4, proc.stderr


# --------------------------------------------------------------------------------------------- crash safety
def versioned_trees(tmp_path: Path, rng: random.Random, count: int, files: int) -> list[Path]:
    """v0 and count successors, each rewriting ~20% of the files, deleting and adding some, moving a symlink."""
    base = dags(files)
    trees = [write_tree(tmp_path / "v0", base)]
    for n in range(1, count + 1):
        version = dict(base)
        for rel in rng.sample(sorted(base), files // 5):
            version[rel] += f"# version {n}\n" * n
        for rel in rng.sample(sorted(base), 30):
            del version[rel]
        version.update({f"added{n}/dag_{i}.py": f"VERSION = {n}\n" for i in range(30)})
        trees.append(write_tree(tmp_path / f"v{n}", version, {"latest.py": f"added{n}/dag_0.py"}, (trees[0], base)))
    return trees


def start_publish(source: Path, root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PYTHON, str(TOOL), "publish", "--source", str(source), "--root", str(root),
                             "--grace", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_at_any_instant_leaves_a_complete_published_tree(tmp_path: Path) -> None:
    seed = int(os.environ.get("SYNC_DAGS_CRASH_SEED", time.time_ns() % 2**32))
    print(f"crash test seed: {seed} (rerun with SYNC_DAGS_CRASH_SEED={seed})")
    rng = random.Random(seed)
    trees = versioned_trees(tmp_path, rng, 3, 3000)
    snaps = [published(tree) for tree in trees]
    root = tmp_path / "root"

    started = time.monotonic()
    ok(publish(trees[0], root))
    first = time.monotonic() - started
    # A first publish killed part-way: no `current` yet, or a complete one.
    for trial in range(2):
        fresh = tmp_path / f"first{trial}"
        proc = start_publish(trees[0], fresh)
        time.sleep(rng.uniform(0, first))
        proc.kill()
        proc.wait()
        if os.path.lexists(fresh / "current"):
            assert snapshot(live(fresh)) == snaps[0], f"first-publish trial {trial}, seed {seed}"
        ok(publish(trees[0], fresh))
        assert snapshot(live(fresh)) == snaps[0]
        ok(publish(trees[1], fresh))  # into the other slot, however far its seeding got
        assert snapshot(live(fresh)) == snaps[1] and not leftovers(fresh)

    durations = {}  # of a whole publish into each version, in the steady v1 -> v2 -> v3 -> v1 cycle
    for version in (1, 2, 3, 1):
        started = time.monotonic()
        ok(publish(trees[version], root))
        durations[version] = time.monotonic() - started
    live_version, killed, outcomes = 1, 0, []
    for trial in range(20):
        target = live_version % 3 + 1
        full = durations[target]
        delay = rng.uniform(0, full * 1.15)  # from interpreter start to a little after a normal finish
        proc = start_publish(trees[target], root)
        time.sleep(delay)
        proc.kill()
        killed += proc.wait() == -signal.SIGKILL
        where = f"trial {trial}, delay {delay:.3f} s of {full:.3f} s, seed {seed}"
        seen = snapshot(live(root))
        assert seen in (snaps[live_version], snaps[target]), where
        outcomes.append("killed before the flip" if seen == snaps[live_version] else
                        "killed after the flip" if proc.returncode < 0 else "finished")

        ok(publish(trees[target], root))

        assert snapshot(live(root)) == snaps[target], where
        assert not leftovers(root), where
        assert state(root)["live"] == os.readlink(root / "current"), where
        live_version = target
    print({outcome: outcomes.count(outcome) for outcome in set(outcomes)}, durations)
    assert killed >= 5, f"only {killed} of 20 publishes were interrupted: the delays do not cover the run"


# --------------------------------------------------------------------------------------------- locking
def test_concurrent_publishers_are_serialised(tmp_path: Path) -> None:
    files = dags(3000)
    sources = {"ra": write_tree(tmp_path / "a", files),
               "rb": write_tree(tmp_path / "b", {**files, **{rel: "VALUE = 'b'\n" for rel in list(files)[:100]}},
                                like=(tmp_path / "a", files))}
    root = tmp_path / "root"

    procs = {rev: subprocess.Popen([PYTHON, str(TOOL), "publish", "--source", str(src), "--root", str(root),
                                    "--grace", "0", "--revision", rev], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
             for rev, src in sources.items()}
    outputs = {rev: proc.communicate(timeout=120) for rev, proc in procs.items()}

    assert all(proc.returncode == 0 for proc in procs.values()), outputs
    assert sum("waiting for the lock" in out for out, _ in outputs.values()) == 1, outputs
    tree = snapshot(live(root))
    winner = next(rev for rev, src in sources.items() if snapshot(src) == tree)
    loser = "rb" if winner == "ra" else "ra"
    recorded = state(root)
    assert recorded["live"] == os.readlink(root / "current")
    assert recorded["slots"][recorded["live"]]["revision"] == winner
    assert recorded["slots"][recorded["previous"]]["revision"] == loser
    assert all(slot["state"] == "complete" for slot in recorded["slots"].values())


def test_lock_timeout_exits_3_naming_the_holder(tmp_path: Path) -> None:
    v1, v2, _ = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    with open(root / ".lock", "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate()
        lock.write(f"pid={os.getpid()} host=test-runner command=publish\n")
        lock.flush()
        started = time.monotonic()
        proc = publish(v2, root, "--lock-timeout", "0.5")
        waited = time.monotonic() - started
        rollback = run("rollback", "--root", root, "--lock-timeout", "0.5")
    assert proc.returncode == 3, proc.stderr
    assert f"held by pid={os.getpid()} host=test-runner" in proc.stderr and "within 0.5 s" in proc.stderr
    assert waited >= 0.5
    assert rollback.returncode == 3
    assert snapshot(live(root)) == snapshot(v1)
    ok(publish(v2, root))


# --------------------------------------------------------------------------------------------- checks
def test_bad_dag_is_not_published(tmp_path: Path) -> None:
    good = make_tree(tmp_path / "good", 10)
    bad = copy_tree(good, tmp_path / "bad")
    (bad / "team03/broken.py").write_text("from airflow import DAG\n\ndef oops(:\n    pass\n")
    root = tmp_path / "root"
    ok(publish(good, root, "--check"))
    before = (os.readlink(root / "current"), (root / ".state.json").read_bytes())

    proc = publish(bad, root, "--check")

    assert proc.returncode == 1
    assert "team03/broken.py:3:" in proc.stderr
    assert (os.readlink(root / "current"), (root / ".state.json").read_bytes()) == before
    assert snapshot(live(root)) == snapshot(good)
    checked = run("check", "--source", bad)
    assert checked.returncode == 1 and "team03/broken.py:3:" in checked.stderr
    assert ok(run("check", "--source", good)).stdout.startswith("check passed")
    assert not list(good.rglob("__pycache__"))  # compile() writes no bytecode


def python39() -> str:
    """The Airflow image runs the tool with Python 3.9: an interpreter of that version here, or skip."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in [shutil.which("python3.9"), *sorted(glob.glob(f"{pyenv}/versions/3.9.*/bin/python3.9"))]:
        if candidate and subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                                        capture_output=True).returncode == 0:
            return candidate
    skip_or_fail("no Python 3.9 interpreter found (python3.9 on PATH or pyenv): the image's Python is not tested")
    raise AssertionError  # unreachable: skip_or_fail raises


def test_the_whole_cycle_runs_on_python_3_9(tmp_path: Path) -> None:
    python = python39()
    v1, v2, _ = three_versions(tmp_path)
    os.symlink("team01", v2 / "alias")
    root = tmp_path / "root"

    def tool(*args: object) -> subprocess.CompletedProcess[str]:
        return ok(subprocess.run([python, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120))

    tool("publish", "--source", v1, "--root", root, "--grace", "0", "--check", "--revision", "r1")
    tool("publish", "--source", v2, "--root", root, "--grace", "0", "--verify", "--stats", "--revision", "r2")
    assert snapshot(live(root)) == published(v2)
    tool("rollback", "--root", root)
    assert json.loads(tool("status", "--root", root, "--json").stdout)["live"]["revision"] == "r1"
    assert "check passed" in tool("check", "--source", v2, "--ignore-syntax", "glob").stdout


def test_help_documents_exit_codes(tmp_path: Path) -> None:
    text = ok(run("--help")).stdout
    for line in ("0  success", "1  DAG check failed", "2  usage or I/O error", "3  the lock", "4  the idle slot",
                 "5  rollback impossible"):
        assert line in text, line
    assert "one JSON line on stderr" in ok(run("publish", "--help")).stdout
    missing = run("status", "--root", tmp_path)
    assert missing.returncode == 2 and "has no current" in missing.stderr
