#!/usr/bin/env python3
"""Benchmark `copier copy` of one environment against Copier's own floor (make bench-copy).

    python benchmarks/bench_copy.py [--runs 5] [--data-file examples/demo.yml] [--profile]

The floor is a hook-free template with the same files: the repository this template generates from
the answers, committed as a template of plain files (no Jinja extensions, no validators, no tasks, no
_external_data), so Copier does what it always does (clone, ask, walk, write, answers file) and
nothing of ours. Both run as fresh processes (`python -c "copier.run_copy(...)"`), in turn, in one run;
the report is each one's median wall time and the median of the pairwise ratios. --profile prints
where this template's extra time goes (cProfile of one copy, by file). Reports only: no timing is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
COPY = "import sys, copier, yaml; copier.run_copy(sys.argv[1], sys.argv[2], data=yaml.safe_load(open(sys.argv[3])), " \
       "defaults=True, unsafe=True, quiet=True)"


def snapshot(src: Path, dst: Path) -> Path:
    """This working tree as a tagged git repository, as users consume a template."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git", ".venv", ".tools", ".runtime", "build", ".cache",
                                                            "__pycache__", ".pytest_cache", ".ruff_cache"))
    return _commit(dst)


def _commit(repo: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "bench"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "tag", "v0.0.1"], check=True)
    return repo


def floor_template(generated: Path, answers: dict, dst: Path) -> Path:
    """The generated files as a template of plain files, with the same questions (defaults only)."""
    (dst / "template").mkdir(parents=True)
    for path in generated.rglob("*"):
        rel = path.relative_to(generated)
        if ".git" in rel.parts or rel.name.startswith(".copier-answers"):
            continue
        target = dst / "template" / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    questions = {k: {"type": "str" if isinstance(v, str) else "yaml", "default": v} for k, v in answers.items()}
    config = {"_subdirectory": "template", "_answers_file": ".copier-answers.yml", **questions}
    (dst / "copier.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (dst / "template" / "{{ _copier_conf.answers_file }}.jinja").write_text(
        "# Changes here will be overwritten by Copier\n{{ _copier_answers|to_nice_yaml -}}\n")
    return _commit(dst)


def timed_copy(template: Path, data: Path, work: Path) -> float:
    dst = work / f"dst-{time.monotonic_ns()}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", COPY, str(template), str(dst), str(data)], check=True,
                   capture_output=True)
    took = time.perf_counter() - started
    shutil.rmtree(dst)
    return took


def profile(template: Path, data: Path, work: Path) -> str:
    import copier

    prof = cProfile.Profile()
    prof.enable()
    copier.run_copy(str(template), work / "profiled", data=yaml.safe_load(data.read_text()), defaults=True,
                    unsafe=True, quiet=True)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-file", type=Path, default=ROOT / "examples/demo.yml")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        work = Path(tmp)
        ours = snapshot(ROOT, work / "template")
        answers = yaml.safe_load(args.data_file.read_text())
        import copier

        copier.run_copy(str(ours), work / "generated", data=answers, defaults=True, unsafe=True, quiet=True)
        floor = floor_template(work / "generated", answers, work / "floor")
        files = sum(1 for p in (work / "generated").rglob("*") if p.is_file() and ".git" not in p.parts)
        timed_copy(ours, args.data_file, work), timed_copy(floor, args.data_file, work)  # warm caches
        pairs = [(timed_copy(ours, args.data_file, work), timed_copy(floor, args.data_file, work))
                 for _ in range(args.runs)]
        med_ours = statistics.median(p[0] for p in pairs)
        med_floor = statistics.median(p[1] for p in pairs)
        ratio = statistics.median(p[0] / p[1] for p in pairs)
        print(f"copier copy of one environment ({files} files, {args.runs} runs in turn):")
        print(f"  this template     {med_ours:6.2f} s (median)")
        print(f"  Copier's floor    {med_floor:6.2f} s (the same files, no hooks)")
        print(f"  ratio             {ratio:6.2f}x (median of the pairwise ratios; goal <= 1.30x)")
        if args.profile:
            print(profile(ours, args.data_file, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
