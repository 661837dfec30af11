"""`check` and `publish --check`: compile what Airflow parses, and load its DagBag when it is there."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from airflow_gitops.dagsync.ignore import airflow_listing
from airflow_gitops.dagsync.layout import IGNORE_FILE
from airflow_gitops.dagsync.source import Source
from airflow_gitops.dagsync.tree import Item
from airflow_gitops.errors import PROBLEMS, UserError

# Airflow 3.3 moved DagBag to airflow.dag_processing.dagbag and dropped include_examples (examples
# follow [core] load_examples): take what the installed Airflow has.
DAGBAG_PROBE = """import inspect, json, os, sys
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
options = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
bag = DagBag(dag_folder=sys.argv[1], **options)
errors = {str(k): str(v) for k, v in bag.import_errors.items()}
print("SYNC_DAGS_DAGBAG " + json.dumps({"dags": len(bag.dags), "import_errors": errors}))
"""
NO_AIRFLOW = ("import errors were NOT checked: `airflow` is not importable by {python} (compile only); "
              "run the check in the Airflow image, as the Jenkinsfile does")


def might_contain_dag(path: str) -> bool:
    """Airflow's safe-mode heuristic: a file is parsed only if it mentions both "dag" and "airflow"."""
    with open(path, "rb") as fh:
        content = fh.read().lower()
    return b"dag" in content and b"airflow" in content


def config_flag(name: str, default: bool) -> bool:
    value = os.environ.get(f"AIRFLOW__CORE__{name}")
    return default if value is None else value.strip().lower() in ("true", "t", "1", "yes", "y")


def compile_problems(staged: str, rels: Iterable[str]) -> list[str]:
    import warnings

    problems = []
    for rel in rels:
        with open(os.path.join(staged, rel), "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are not failures
            try:
                compile(fh.read(), rel, "exec", dont_inherit=True)
            except SyntaxError as exc:
                problems.append(f"{rel}:{exc.lineno or 0}:{exc.msg}")
            except ValueError as exc:  # null bytes
                problems.append(f"{rel}:0:{exc}")
    return problems


@contextmanager
def staged_tree(source: Source) -> Iterator[str]:
    """The tree exactly as a publish would write it, in a local temp directory (hard links when possible)."""
    staged = tempfile.mkdtemp(prefix="sync_dags-check-")
    try:
        for rel, item in source.tree.items():
            path = os.path.join(staged, rel)
            if item.kind == "d":
                os.mkdir(path)
                continue
            try:
                os.link(source.origin[rel], path)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(source.origin[rel], path)
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def dagbag_problems(staged: str, plugins: str | None, syntax: str | None) -> tuple[list[str], int]:
    """Airflow's DagBag in a child process (DAG files run arbitrary code; airflow is slow to import), with
    the staged tree as DAGS_FOLDER: Airflow puts DAGS_FOLDER and PLUGINS_FOLDER on sys.path itself."""
    import subprocess

    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": staged, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.update({"AIRFLOW__CORE__PLUGINS_FOLDER": plugins} if plugins else {})
    env.update({"AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": syntax} if syntax else {})
    proc = subprocess.run([sys.executable, "-c", DAGBAG_PROBE, staged], capture_output=True, text=True, env=env)
    found = [line for line in proc.stdout.splitlines() if line.startswith("SYNC_DAGS_DAGBAG ")]
    if proc.returncode or not found:
        return [f".:0:the DagBag did not load (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"], 0
    result = json.loads(found[-1].split(" ", 1)[1])
    problems = []
    for path, trace in result["import_errors"].items():
        lines = re.findall(rf'File "{re.escape(path)}", line (\d+)', trace) or ["0"]
        message = ([line.strip() for line in trace.splitlines() if line.strip()] or ["import error"])[-1]
        problems.append(f"{os.path.relpath(path, staged)}:{lines[-1]}:{message}")
    return sorted(problems), result["dags"]


def airflow_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("airflow") is not None


def run_checks(source: Source, args: argparse.Namespace) -> str:
    """Raise UserError(code PROBLEMS) listing every problem; return the summary line of a passed check."""
    syntax = args.ignore_syntax or os.environ.get("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "regexp") or "regexp"
    if syntax not in ("regexp", "glob"):
        raise UserError(f"unsupported dag_ignore_file_syntax {syntax!r} (Airflow knows regexp and glob)")
    with staged_tree(source) as staged:
        warnings: list[str] = []
        listed, skipped_files = airflow_listing(staged, syntax, warnings)
        safe = config_flag("DAG_DISCOVERY_SAFE_MODE", True)
        parsed = [rel for rel in listed if rel.endswith(".py") and (not safe or might_contain_dag(
            os.path.join(staged, rel)))]
        problems = compile_problems(staged, parsed)
        others = sorted(set(r for r in source.origin if r.endswith(".py")) - set(parsed))
        warnings += [f"{p} (not parsed by Airflow; breaks any DAG importing it)" for p in compile_problems(
            staged, others)]
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        plugins = os.path.abspath(args.plugins) if args.plugins else (
            os.path.join(staged, "plugins") if source.tree.get("plugins", Item("f")).kind == "d" else None)
        what = (f"{len(parsed)} DAG files parsed ({len(skipped_files)} files ignored by {IGNORE_FILE}, "
                f"{syntax} syntax; {source.files()} files published)")
        if not problems and airflow_importable():
            problems, dags = dagbag_problems(staged, plugins, args.ignore_syntax)
            what += f"; DagBag: {dags} DAGs, no import errors"
        elif not problems:
            note = NO_AIRFLOW.format(python=sys.executable)
            print(f"warning: {note}", file=sys.stderr)
            what += f"; {note}"
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise UserError(f"DAG check failed: {len(problems)} problem(s) in {source.root}; nothing published", PROBLEMS)
    return what
