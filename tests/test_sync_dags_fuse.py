"""sync_dags.py on a FUSE passthrough that counts every call reaching the "volume" (benchmarks/latencyfs.py).

Counts, never times: a publish of one changed file, or of an unchanged tree, makes a number of calls on the
volume that does not grow with the tree (it reads manifests instead of stat()ing the trees).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.paths import ROOT, skip_or_fail
from helpers.sync_dags import make_tree, ok, publish

sys.path.insert(0, str(ROOT / "benchmarks"))
import latencyfs  # benchmarks/ is not a package

pytestmark = pytest.mark.slow  # a FUSE latency filesystem (root, /dev/fuse)

sys.path.pop(0)


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[tuple[Path, latencyfs.Mount]]:
    reason = latencyfs.unavailable()
    if reason:
        skip_or_fail(f"no FUSE latency filesystem here: {reason}")
    backing = tmp_path / "backing"
    backing.mkdir()
    # counts only: no added latency, and no kernel cache, so that every stat of a tree would be counted
    with latencyfs.Mount(backing, tmp_path / "mnt", latency_ms=0, cache=False) as fs:
        yield tmp_path / "mnt", fs


def publish_counts(src: Path, root: Path, fs: latencyfs.Mount) -> int:
    fs.reset()
    ok(publish(src, root))
    return sum(fs.counts().values())


def test_calls_on_the_volume_do_not_grow_with_the_tree(tmp_path: Path, volume: tuple[Path, latencyfs.Mount]) -> None:
    mnt, fs = volume
    one, same = {}, {}
    for files in (200, 1600):
        src, root = make_tree(tmp_path / f"src{files}", files), mnt / f"dags{files}"
        first = publish_counts(src, root, fs)
        assert first > 4 * files  # the first publish writes every file, twice (copies, then hard links)
        dag = src / "team05/dag_00005.py"
        dag.write_text(dag.read_text() + "# changed\n")
        one[files] = publish_counts(src, root, fs)
        same[files] = publish_counts(src, root, fs)
        assert (root / "current/team05/dag_00005.py").read_text().endswith("# changed\n")
    # manifests of 8x the entries take a few more read/write calls; a scan of the trees would take thousands
    assert one[1600] <= one[200] + 20 and one[1600] < 200, one
    assert same[1600] <= same[200] + 5 and same[1600] < 60, same
