"""sync_dags.py on a FUSE passthrough that counts every call reaching the "volume" (benchmarks/latencyfs.py).

Counts, never times. A new release costs one link per unchanged file and one write per changed one, and
never a listing or a read of the live tree (its manifest says what it holds); an unchanged re-publish
makes a handful of calls whatever the size; removing a release costs its own size, whatever is kept.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.paths import ROOT, skip_or_fail
from helpers.sync_dags import copy_tree, make_tree, ok, publish, releases, run

sys.path.insert(0, str(ROOT / "benchmarks"))
import latencyfs  # benchmarks/ is not a package

pytestmark = pytest.mark.slow  # a FUSE latency filesystem (root, /dev/fuse)

sys.path.pop(0)
LOOKS = ("readdir", "opendir", "read")  # listing or reading a tree on the volume (reads: a manifest 8x the size)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[tuple[Path, latencyfs.Mount]]:
    reason = latencyfs.unavailable()
    if reason:
        skip_or_fail(f"no FUSE latency filesystem here: {reason}")
    backing = tmp_path / "backing"
    backing.mkdir()
    # counts only: no added latency, and no kernel cache, so that every lookup and stat of a tree is counted
    with latencyfs.Mount(backing, tmp_path / "mnt", latency_ms=0, cache=False) as fs:
        yield tmp_path / "mnt", fs


def counted(fs: latencyfs.Mount, *args: object) -> dict[str, int]:
    fs.reset()
    ok(run(*args))
    return fs.counts()


def test_calls_on_the_volume_follow_what_changed_not_what_is_there(tmp_path: Path,
                                                                    volume: tuple[Path, latencyfs.Mount]) -> None:
    mnt, fs = volume
    one, same, prune = {}, {}, {}
    for files in (200, 1600):
        src, root = make_tree(tmp_path / f"src{files}", files), mnt / f"dags{files}"
        first = counted(fs, "publish", "--source", src, "--root", root)
        assert first["create"] >= files and "link" not in first  # the first release writes every file
        dag = src / "team05/dag_00005.py"
        dag.write_text(dag.read_text() + "# changed\n")
        one[files] = counted(fs, "publish", "--source", src, "--root", root)
        assert one[files]["link"] == files - 1 and one[files]["create"] <= 3, one[files]  # + manifest, state
        same[files] = sum(counted(fs, "publish", "--source", src, "--root", root).values())
        assert (root / "current/team05/dag_00005.py").read_text().endswith("# changed\n")
        prune[files] = counted(fs, "prune", "--root", root, "--keep-last", "0", "--keep-for", "0", "--grace", "0")
        assert prune[files]["unlink"] == files + 1, prune[files]  # its files and its manifest
    for calls in (one, prune):  # the live tree is never listed or read: its manifest is
        assert all(calls[1600].get(op, 0) <= calls[200].get(op, 0) + 3 for op in LOOKS), calls
    rest = {n: sum(v for op, v in one[n].items() if op not in ("link", "getattr")) for n in one}
    assert rest[1600] <= rest[200] + 5, one  # besides one link and its lookups per file: what changed
    assert one[1600]["getattr"] <= 2.2 * 1600, one  # the lookups of a link's two names, no stat() of the tree
    assert same[1600] <= same[200] + 5 and same[1600] < 60, same


def test_removing_a_release_costs_the_same_however_many_are_kept(tmp_path: Path,
                                                                  volume: tuple[Path, latencyfs.Mount]) -> None:
    mnt, fs = volume
    base = make_tree(tmp_path / "base", 200)
    cost = {}
    for kept in (2, 12):
        root = mnt / f"kept{kept}"
        for n in range(kept + 2):  # the live one, `kept` more, and the oldest one to remove
            version = copy_tree(base, tmp_path / f"k{kept}-v{n}")
            (version / "team00/dag_00000.py").write_text(f"VERSION = {n}\n")
            ok(publish(version, root, "--keep-last", "100"))
        cost[kept] = counted(fs, "prune", "--root", root, "--keep-last", str(kept), "--keep-for", "0", "--grace", "0")
        assert len(releases(root)) == kept + 1
    assert cost[12]["unlink"] == cost[2]["unlink"] == 201, cost
    assert sum(cost[12].values()) <= sum(cost[2].values()) * 1.05, cost  # no listing of the trees kept
