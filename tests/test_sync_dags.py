"""template/scripts/sync_dags.py: DAG trees published as immutable releases behind an atomic relative `current` symlink.

The tool runs as a subprocess on real directories, the way the Jenkins agent runs it; a few tests import it
to interrupt a publish at a precise point, or to make the volume refuse hard links.
"""

from __future__ import annotations

import errno
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
    live_id,
    live_release,
    make_tree,
    ok,
    publish,
    published,
    releases,
    run,
    snapshot,
    start_publish,
    state,
    stats,
    status,
    write_tree,
)


# --------------------------------------------------------------------------------------------- publishing
def test_first_publish_makes_a_relative_symlink_to_a_complete_release(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 60)
    (src / "team00/sql").mkdir()
    (src / "team00/sql/query.sql").write_text("select 1\n")
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(src), "commit", "-qm", "dags"], check=True, env={**os.environ, **GIT_ENV})
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    root = tmp_path / "efs/dags"

    ok(publish(src, root))

    rid = live_id(root)  # current -> releases/<id>: relative, it resolves wherever the volume is mounted
    assert len(rid) == 16 and int(rid, 16) >= 0, rid
    expected = {k: v for k, v in snapshot(src).items() if not k.startswith(".git")}
    assert snapshot(live(root)) == expected
    manifest = json.loads((root / f"releases/{rid}.manifest.json").read_text())
    assert manifest["revision"] == head and manifest["published_at"].endswith("Z")
    assert manifest["entries"]["team00/sql/query.sql"][0] == "f" and len(manifest["entries"]) == len(expected)
    report = status(root)
    assert report["live"] == f"releases/{rid}" and report["live_id"] == rid
    assert live_release(root)["revision"] == head and live_release(root)["files"] == 61
    assert report["can_rollback"] is False and report["rollback_to"] is None
    assert report["retention"] == {"keep_last": 5, "keep_for": 86400.0, "grace": 360.0}
    assert f"revision {head}  61 files" in ok(run("status", "--root", root)).stdout
    assert sorted(os.listdir(root)) == [".lock", ".state.json", "current", "releases"]


def test_a_new_release_links_what_is_unchanged_and_writes_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    v1 = make_tree(tmp_path / "v1", 500)
    ok(publish(v1, root))
    first = live(root)
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team07/dag_00007.py").write_text("# changed\nVALUE = 'seven'\n")

    result = stats(ok(publish(v2, root, "--stats")))

    assert result["action"] == "published" and result["base"] == "manifest", result
    assert (result["written"], result["linked"], result["copied"]) == (1, 499, 0), result
    assert snapshot(live(root)) == snapshot(v2)
    assert snapshot(first) == snapshot(v1)  # the release that was live is never modified
    dag = "team03/dag_00003.py"
    assert (first / dag).stat().st_ino == (live(root) / dag).stat().st_ino  # linked, not copied

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
    (v3 / "team06/dag_00006.py").chmod(0o600)  # a new mode is a new inode: a shared one is never chmod()ed

    ok(publish(v3, root, "--stats"))

    tree = live(root)
    assert snapshot(tree) == published(v3)
    assert not (tree / "team01/dag_00001.py").exists() and not (tree / "team02").exists()
    assert (tree / "new/deeper/fresh.py").read_text() == "VALUE = 'new'\n"
    # links inside the source are published as what they point to: nothing can dangle or loop on the volume
    assert not os.path.islink(tree / "new/alias.py") and (tree / "new/alias.py").read_text() == "# dag 3\nVALUE = 3\n"
    assert not os.path.islink(tree / "team04_link") and (tree / "team04_link/dag_00004.py").is_file()
    assert (tree / "team06/dag_00006.py").stat().st_mode & 0o777 == 0o600
    assert (first / "team06/dag_00006.py").stat().st_mode & 0o777 != 0o600

    v4 = copy_tree(v1, tmp_path / "v4")  # v1's tree again: its release, still kept, goes live as it is
    st = stats(ok(publish(v4, root, "--stats")))
    assert st["action"] == "reused" and (st["written"], st["linked"]) == (0, 0), st
    assert live(root) == first and snapshot(live(root)) == snapshot(v1)


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
    """The id is the content: new mtimes or another checkout of the same tree are the same release."""
    src = make_tree(tmp_path / "src", 50)
    root = tmp_path / "root"
    ok(publish(src, root))
    before = (os.readlink(root / "current"), (root / ".state.json").stat().st_mtime_ns)
    os.utime(src / "team01/dag_00001.py", (1_000_000_000, 1_000_000_000))  # same bytes, new mtime
    again = copy_tree(src, tmp_path / "elsewhere")

    proc = ok(publish(again, root, "--stats"))

    assert "already live" in proc.stdout
    assert stats(proc)["total"] == 0 and stats(proc)["action"] == "already-live"
    assert (os.readlink(root / "current"), (root / ".state.json").stat().st_mtime_ns) == before
    assert releases(root) == [live_id(root)]


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
    assert live_release(root)["revision"] == "r2"


def test_a_refused_hard_link_is_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """EFS refuses a 178th link to one file (EMLINK); other volumes refuse links altogether (EXDEV, EPERM).
    The publish copies those files from the source instead and says so: the release is still complete."""
    v1 = make_tree(tmp_path / "v1", 60)
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team00/dag_00000.py").write_text("VALUE = 'two'\n")
    root = tmp_path / "root"
    ok(publish(v1, root))
    real_link, calls = os.link, []

    def capped_link(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        if len(calls) % 3 == 0:
            raise OSError(errno.EMLINK, os.strerror(errno.EMLINK))
        if len(calls) % 7 == 0:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real_link(*args, **kwargs)

    monkeypatch.setattr(os, "link", capped_link)
    assert main(["publish", "--source", str(v2), "--root", str(root), "--grace", "0", "--stats"]) == 0
    monkeypatch.undo()

    out, err = capsys.readouterr()
    result = json.loads(err.strip().splitlines()[-1])
    refused = len([n for n in range(1, len(calls) + 1) if n % 3 == 0 or n % 7 == 0])
    assert result["copied"] == refused > 0 and result["linked"] == 59 - refused, result
    assert result["refused"] == {"EMLINK": len(calls) // 3, "EXDEV": refused - len(calls) // 3}, result
    assert f"{refused} copied (hard link refused" in out and "EMLINK" in out
    assert snapshot(live(root)) == snapshot(v2)
    manifest = json.loads((root / f"releases/{live_id(root)}.manifest.json").read_text())
    assert len([e for e in manifest["entries"].values() if e[0] == "f"]) == 60


def test_keep_last_near_the_link_cap_warns(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", 5)
    proc = ok(publish(src, tmp_path / "root", "--keep-last", "170"))
    assert "EFS allows 177 hard links per file" in proc.stderr and "copied instead of linked" in proc.stderr
    assert "warning" not in ok(publish(src, tmp_path / "root")).stderr


# --------------------------------------------------------------------------------------------- crash safety
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
    was_live = live_id(root)
    killed = subprocess.run([PYTHON, "-c", KILL_AFTER_FLIP, str(TOOL), "publish", "--source", str(v3), "--root",
                             str(root), "--grace", "0", "--revision", "r3"], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    now_live = live_id(root)
    assert now_live != was_live and snapshot(live(root)) == snapshot(v3)
    assert state(root)["live"] == was_live  # the instant under test: the state still names the old release

    proc = ok(publish(v3, root, "--revision", "r3"))

    recorded = state(root)
    assert recorded["live"] == now_live, recorded
    assert "already live" in proc.stdout and "state reconciled" in proc.stdout
    assert recorded["releases"][now_live]["revision"] == "r3"
    assert recorded["releases"][was_live]["superseded_at"] is not None  # its readers get the retention from then
    assert live_release(root)["revision"] == "r3"
    ok(run("rollback", "--root", root))
    assert snapshot(live(root)) == snapshot(v2)


def test_a_publish_killed_while_building_leaves_the_live_release(tmp_path: Path) -> None:
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    ok(publish(v2, root))

    class Killed(BaseException):
        """Stands in for SIGKILL: nothing in the tool catches it."""

    real_write, writes = Ops.write_file, []

    def dying_write(self: Any, *args: Any, **kwargs: Any) -> None:
        writes.append(args)
        if len(writes) > 1:
            raise Killed
        real_write(self, *args, **kwargs)

    v4 = make_tree(tmp_path / "v4", 40)
    for dag in v4.rglob("*.py"):
        dag.write_text(dag.read_text() + "# v4\n")
    Ops.write_file = dying_write
    try:
        with pytest.raises(Killed):
            main(["publish", "--source", str(v4), "--root", str(root), "--grace", "0", "--jobs", "1"])
    finally:
        Ops.write_file = real_write
    assert snapshot(live(root)) == snapshot(v2) and leftovers(root)  # a half-built release, under a temp name
    assert status(root)["rollback_to"] is not None

    ok(publish(v3, root))

    assert snapshot(live(root)) == snapshot(v3) and not leftovers(root)


def test_verify_trusts_no_manifest_and_repairs_only_a_hand_edited_release(tmp_path: Path) -> None:
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    ok(publish(v2, root))
    tree = live(root)
    (tree / "team00/dag_00000.py").unlink()  # v2's own file (team00/dag_00000 differs in every version)
    (tree / "team00/dag_00000.py").write_text("# edited on the live tree\n")
    (tree / "team02/dag_00002.py").unlink()
    (tree / "stray.py").write_text("x = 1\n")

    trusting = stats(ok(publish(v2, root, "--stats")))  # trusts the id: the tree is live, nothing to do
    assert trusting["action"] == "already-live" and trusting["total"] == 0

    proc = ok(publish(v2, root, "--verify", "--stats"))  # the same tree asked for: repaired in place, said so

    assert "edited by hand; repaired in place (2 files rewritten, 1 entries removed" in proc.stdout, proc.stdout
    assert snapshot(live(root)) == snapshot(v2) and live(root) == tree

    (tree / "team00/dag_00000.py").unlink()
    (tree / "team00/dag_00000.py").write_text("# edited again\n")
    (tree / "team03/dag_00003.py").unlink()  # a file v3 shares: linking it would fail
    (tree / "team03/dag_00003.py").write_text("# edited\n")

    proc = ok(publish(v3, root, "--verify", "--stats"))  # a new release: nothing edited is linked into it

    assert "differs from its manifest (edited by hand?)" in proc.stdout
    result = stats(proc)
    assert result["base"] == "scanned" and result["written"] == 2, result  # dag_00000 (v3's) and dag_00003
    assert snapshot(live(root)) == snapshot(v3)
    assert (tree / "team03/dag_00003.py").read_text() == "# edited\n"  # the superseded release is left as it is


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
        ok(publish(trees[1], fresh))
        assert snapshot(live(fresh)) == snaps[1] and not leftovers(fresh)

    # Kept releases would be reused: with --keep-last 0 --keep-for 0 each publish of the cycle builds its release
    # anew, linking from the live one, and prunes the one it supersedes.
    durations: dict[int, float] = {}  # the longest whole publish of each version, in the steady v1 -> v2 -> v3 cycle
    for version in (1, 2, 3, 1, 2, 3):
        started = time.monotonic()
        assert start_publish(trees[version], root).wait() == 0  # as in the trials (fsync makes it vary)
        durations[version] = max(durations.get(version, 0), time.monotonic() - started)
        ok(publish(trees[version], root, "--keep-last", "0", "--keep-for", "0"))  # prunes the one superseded
    live_version, killed, outcomes = 3, 0, []
    for trial in range(20):
        target = live_version % 3 + 1
        full = durations[target]
        delay = rng.uniform(0, full * 1.15)  # from interpreter start to a little after a normal finish
        proc = start_publish(trees[target], root)  # default retention: nothing pruned, a little shorter
        time.sleep(delay)
        proc.kill()
        killed += proc.wait() == -signal.SIGKILL
        where = f"trial {trial}, delay {delay:.3f} s of {full:.3f} s, seed {seed}"
        seen = snapshot(live(root))
        assert seen in (snaps[live_version], snaps[target]), where
        outcomes.append("killed before the flip" if seen == snaps[live_version] else
                        "killed after the flip" if proc.returncode < 0 else "finished")

        ok(publish(trees[target], root, "--keep-last", "0", "--keep-for", "0"))

        assert snapshot(live(root)) == snaps[target], where
        assert not leftovers(root), where
        assert state(root)["live"] == live_id(root), where
        assert releases(root) == [live_id(root)], where  # the one superseded is pruned, whatever the kill left
        live_version = target
    print({outcome: outcomes.count(outcome) for outcome in set(outcomes)}, durations)
    assert killed >= 5, f"only {killed} of 20 publishes were interrupted: the delays do not cover the run"


# --------------------------------------------------------------------------------------------- retention
def versions(tmp_path: Path, count: int) -> list[Path]:
    base = make_tree(tmp_path / "v0", 20)
    out = [base]
    for n in range(1, count):
        version = copy_tree(base, tmp_path / f"v{n}")
        (version / "team00/dag_00000.py").write_text(f"VERSION = {n}\n")
        out.append(version)
    return out


def kept(root: Path, *extra: str) -> dict[str, Any]:
    report = json.loads(ok(run("status", "--root", root, "--json", *extra)).stdout)
    return {rel["revision"]: rel["kept"] for rel in report["releases"]}


def test_publish_keeps_the_live_release_and_the_last_n(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for n, version in enumerate(versions(tmp_path, 6)):
        ok(publish(version, root, "--revision", f"r{n}", "--keep-last", "2", "--keep-for", "0"))

    assert kept(root) == {"r5": "live", "r4": "last-N", "r3": "last-N"}
    assert len(releases(root)) == 3 and not leftovers(root)


def test_superseded_releases_are_kept_for_the_longest_run_then_pruned(tmp_path: Path) -> None:
    """--keep-for: a queued or running DAG run, or a cleared task, may still need the tree it started on."""
    root = tmp_path / "root"
    vs = versions(tmp_path, 4)
    for n, version in enumerate(vs):
        ok(publish(version, root, "--revision", f"r{n}", "--keep-last", "0", "--keep-for", "3600"))
    assert kept(root, "--keep-last", "0") == {"r3": "live", "r2": "keep-for", "r1": "keep-for", "r0": "keep-for"}
    first = next(r["id"] for r in status(root)["releases"] if r["revision"] == "r0")

    # a lower --keep-for is floored by --grace (Airflow lists the folder every dag_dir_list_interval)
    assert kept(root, "--keep-last", "0", "--keep-for", "0", "--grace", "600")["r1"] == "grace"
    ok(run("prune", "--root", root, "--keep-last", "0", "--keep-for", "0", "--grace", "600"))
    assert len(releases(root)) == 4

    proc = ok(run("prune", "--root", root, "--keep-last", "0", "--keep-for", "0", "--grace", "0", "--keep", first))

    assert kept(root, "--keep-last", "0", "--keep-for", "0", "--grace", "0") == {"r3": "live", "r0": None}
    assert "pruned 2" in proc.stdout and sorted(releases(root)) == sorted([first, live_id(root)])
    assert not any((root / "releases").glob(f"{TMP_PREFIX}*")) and len(list((root / "releases").glob("*.json"))) == 2


def test_prune_removes_files_added_to_a_release_by_hand(tmp_path: Path) -> None:
    """A tree is removed from its manifest, without listing it; what the manifest does not know goes too."""
    root = tmp_path / "root"
    v0, v1 = versions(tmp_path, 2)
    ok(publish(v0, root))
    old = live(root)
    ok(publish(v1, root))
    (old / "team01/added_by_hand.py").write_text("x = 1\n")
    (old / "extra/deeper").mkdir(parents=True)
    (old / "extra/deeper/notes.txt").write_text("x\n")

    result = json.loads(ok(run("prune", "--root", root, "--keep-last", "0", "--keep-for", "0", "--grace", "0",
                               "--stats")).stderr.strip().splitlines()[-1])

    assert result["pruned"] == 1 and not old.exists() and releases(root) == [live_id(root)], result
    assert snapshot(live(root)) == snapshot(v1)


# --------------------------------------------------------------------------------------------- rollback
def three_versions(tmp_path: Path) -> list[Path]:
    v1 = make_tree(tmp_path / "v1", 30)
    versions = [v1]
    for n in (2, 3):
        version = copy_tree(v1, tmp_path / f"v{n}")
        (version / "team00/dag_00000.py").write_text(f"VERSION = {n}\n")
        versions.append(version)
    return versions


def test_rollback_goes_to_the_release_published_before_the_live_one(tmp_path: Path) -> None:
    v1, v2, v3 = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root, "--revision", "r1"))
    refused = run("rollback", "--root", root)
    assert refused.returncode == 5 and "no release was published before the live one" in refused.stderr
    ok(publish(v2, root, "--revision", "r2"))
    ok(publish(v3, root, "--revision", "r3"))
    assert status(root)["rollback_to"] == next(r["id"] for r in status(root)["releases"] if r["revision"] == "r2")

    ok(run("rollback", "--root", root))

    assert snapshot(live(root)) == snapshot(v2)
    report = status(root)
    r3 = next(rel for rel in report["releases"] if rel["revision"] == "r3")
    assert live_release(root)["revision"] == "r2" and r3["superseded_at"] is not None and r3["kept"] == "last-N"
    ok(run("rollback", "--root", root))  # further back, one release at a time
    assert snapshot(live(root)) == snapshot(v1)
    assert run("rollback", "--root", root).returncode == 5
    proc = ok(publish(v3, root, "--revision", "r3", "--stats"))  # forward again: its release, reused
    assert stats(proc)["action"] == "reused" and snapshot(live(root)) == snapshot(v3)
    assert status(root)["rollback_to"] is not None  # back to r2's: published before r3's last publish
    ok(run("rollback", "--root", root))
    assert live_release(root)["revision"] == "r2"


def test_flip_without_state_write_is_reconciled(tmp_path: Path) -> None:
    """A rollback killed between its flip and its state write: `current` on disk wins."""
    v1, v2, _ = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root, "--revision", "r1"))
    first = live_id(root)
    ok(publish(v2, root, "--revision", "r2"))
    second = live_id(root)
    os.symlink(f"releases/{first}", root / "tmp-link")
    os.replace(root / "tmp-link", root / "current")  # a rollback's flip, its state write never happened

    report = status(root)

    assert report["live_id"] == first and live_release(root)["revision"] == "r1"
    assert next(rel for rel in report["releases"] if rel["id"] == second)["superseded_at"] is not None


def test_a_current_pointing_at_a_removed_release_is_repaired_by_a_publish(tmp_path: Path) -> None:
    v1, v2, _ = three_versions(tmp_path)
    root = tmp_path / "root"
    ok(publish(v1, root))
    shutil.rmtree(live(root))  # removed by hand

    refused = run("status", "--root", root)
    proc = ok(publish(v2, root))

    assert refused.returncode == 2 and "which is absent: publish to repair it" in refused.stderr
    assert "publishing repairs it" in proc.stderr and snapshot(live(root)) == snapshot(v2)
    assert [rel["id"] for rel in status(root)["releases"]] == [live_id(root)]


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
    assert recorded["live"] == live_id(root)
    assert recorded["releases"][recorded["live"]]["revision"] == winner
    (other,) = [rid for rid in recorded["releases"] if rid != recorded["live"]]
    assert recorded["releases"][other]["revision"] == loser and recorded["releases"][other]["superseded_at"]


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
    report = json.loads(tool("status", "--root", root, "--json").stdout)
    assert next(rel for rel in report["releases"] if rel["live"])["revision"] == "r1"
    tool("prune", "--root", root, "--keep-last", "0", "--keep-for", "0", "--grace", "0")
    assert releases(root) == [live_id(root)]
    assert "check passed" in tool("check", "--source", v2, "--ignore-syntax", "glob").stdout


def test_help_documents_exit_codes(tmp_path: Path) -> None:
    text = ok(run("--help")).stdout
    for line in ("0  success", "1  DAG check failed", "2  usage or I/O error", "3  the lock", "5  rollback impossible"):
        assert line in text, line
    assert "  4  " not in text  # retired: a publish never waits, releases are never overwritten
    publish_help = ok(run("publish", "--help")).stdout
    assert "one JSON line on stderr" in publish_help and "--keep-for" in publish_help
    assert "--no-wait" not in publish_help
    assert "--keep-last" in ok(run("prune", "--help")).stdout
    missing = run("status", "--root", tmp_path)
    assert missing.returncode == 2 and "has no current" in missing.stderr


def test_no_wait_is_accepted_and_says_it_is_no_longer_needed(tmp_path: Path) -> None:
    proc = ok(publish(make_tree(tmp_path / "src", 3), tmp_path / "root", "--no-wait"))
    assert "--no-wait is no longer needed" in proc.stderr
