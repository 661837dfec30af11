"""Running template/scripts/sync_dags.py on real directories, as the Jenkins agent does, and describing trees."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from helpers.paths import ROOT

# SYNC_DAGS_TOOL: run the tests against another version, e.g. `git show v0.1.0:template/scripts/sync_dags.py`
TOOL = Path(os.environ.get("SYNC_DAGS_TOOL", ROOT / "template/scripts/sync_dags.py"))
PYTHON = os.environ.get("SYNC_DAGS_PYTHON", sys.executable)  # e.g. a python3.9 like the Airflow image's
TMP_PREFIX = ".~sync_dags."
Snapshot = dict[str, tuple[Any, ...]]


def run(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, str(TOOL), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def publish(source: Path, root: Path, *extra: object) -> subprocess.CompletedProcess[str]:
    """--grace 0 unless the caller passes its own (argparse keeps the last occurrence)."""
    return run("publish", "--source", source, "--root", root, "--grace", "0", *extra)


def start_publish(source: Path, root: Path) -> subprocess.Popen[bytes]:
    """A publish in the background, to be killed at some instant (--grace 0)."""
    return subprocess.Popen([PYTHON, str(TOOL), "publish", "--source", str(source), "--root", str(root),
                             "--grace", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def stats(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(proc.stderr.strip().splitlines()[-1])


def status(root: Path) -> dict[str, Any]:
    return json.loads(ok(run("status", "--root", root, "--json")).stdout)


def state(root: Path) -> dict[str, Any]:
    return json.loads((root / ".state.json").read_text())


def live(root: Path) -> Path:
    return Path(os.path.realpath(root / "current"))


def live_id(root: Path) -> str:
    """The release `current` points at (its target is relative: releases/<id>)."""
    target = os.readlink(root / "current")
    assert target.startswith("releases/") and not os.path.isabs(target), target
    return target.split("/", 1)[1]


def live_release(root: Path) -> dict[str, Any]:
    """The live release's entry in `status --json`."""
    return next(rel for rel in status(root)["releases"] if rel["live"])


def releases(root: Path) -> list[str]:
    """The release ids on the volume."""
    return sorted(p.name for p in (root / "releases").iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX))


def two_slot_layout(root: Path, source: Path, revision: str, published_at: str = "2026-01-05T10:00:00.000000Z",
                    idle_left_at: str | None = None) -> Path:
    """ROOT as the two-slot publisher (0.1.0) left it: `.slot-a` live, `.slot-b` its hard-linked twin, clean
    per-slot manifests, the version-2 state, `current -> .slot-a`."""
    entries: dict[str, list[Any]] = {}
    for slot in (".slot-a", ".slot-b"):
        for dirpath, dirnames, filenames in os.walk(source):
            rel_dir = os.path.relpath(dirpath, source)
            for name in sorted(dirnames):
                rel = os.path.normpath(os.path.join(rel_dir, name))
                (root / slot / rel).mkdir(parents=True, exist_ok=True)
                entries[rel] = ["d"]
            for name in sorted(filenames):
                rel = os.path.normpath(os.path.join(rel_dir, name))
                (root / slot / rel).parent.mkdir(parents=True, exist_ok=True)
                if slot == ".slot-a":
                    shutil.copy2(Path(dirpath) / name, root / slot / rel)
                else:
                    os.link(root / ".slot-a" / rel, root / slot / rel)
                st = (root / slot / rel).stat()
                entries[rel] = ["f", st.st_size, stat.S_IMODE(st.st_mode),
                                hashlib.sha256((root / slot / rel).read_bytes()).hexdigest()]
        manifest = {"version": 1, "slot": slot, "clean": True, "entries": dict(sorted(entries.items()))}
        (root / f"{slot}.manifest.json").write_text(json.dumps(manifest))
    files = sum(1 for item in entries.values() if item[0] == "f")
    slots = {".slot-a": {"state": "complete", "revision": revision, "files": files, "published_at": published_at,
                         "switched_away_at": None},
             ".slot-b": {"state": "complete", "revision": revision, "files": files, "published_at": None,
                         "switched_away_at": idle_left_at}}
    (root / ".state.json").write_text(json.dumps({"version": 2, "live": ".slot-a", "previous": None,
                                                  "slots": slots}))
    os.symlink(".slot-a", root / "current")
    (root / ".lock").touch()
    return root


def snapshot(tree: Path) -> Snapshot:
    """Every entry, symlinks not followed: ('d',), ('l', target) or ('f', bytes)."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, tree)
            if os.path.islink(path):
                out[rel] = ("l", os.readlink(path))
            elif os.path.isdir(path):
                out[rel] = ("d",)
            else:
                out[rel] = ("f", Path(path).read_bytes())
    return out


def published(tree: Path) -> Snapshot:
    """What a publish of `tree` must produce: symlinks inside it followed (a linked file is a file, a linked
    directory a directory), `.git`, `__pycache__` and `*.pyc` left out; everything else, .airflowignore'd or not."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(tree, followlinks=True):
        dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__") and not d.startswith(TMP_PREFIX)]
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), tree)] = ("d",)
        for name in filenames:
            if not name.endswith(".pyc") and not name.startswith(TMP_PREFIX):
                path = os.path.join(dirpath, name)
                out[os.path.relpath(path, tree)] = ("f", Path(path).read_bytes())
    return out


def make_tree(path: Path, files: int) -> Path:
    return write_tree(path, dags(files))


def dags(files: int, dirs: int = 20) -> dict[str, str]:
    return {f"team{i % dirs:02d}/dag_{i:05d}.py": f"# dag {i}\nVALUE = {i}\n" for i in range(files)}


def write_tree(path: Path, files: dict[str, str], links: dict[str, str] | None = None,
               like: tuple[Path, dict[str, str]] | None = None) -> Path:
    """Faster than copytree for big trees: files equal to those of `like` (tree, contents) are hard-linked,
    and equal content gets an equal mtime, as in an unchanged checkout."""
    for rel in sorted({os.path.dirname(rel) for rel in files}):
        (path / rel).mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        if like and like[1].get(rel) == text:
            os.link(like[0] / rel, path / rel)
            continue
        (path / rel).write_text(text)
        stamp = 1_600_000_000 + zlib.crc32(text.encode())
        os.utime(path / rel, (stamp, stamp))
    for rel, target in (links or {}).items():
        os.symlink(target, path / rel)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)  # copy2: mtimes kept, like an unchanged checkout
    return dst


def leftovers(root: Path) -> list[str]:
    return [os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs if n.startswith(TMP_PREFIX)]
