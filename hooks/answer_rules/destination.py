"""Rules that look at the destination: the environments this repository already has, and the files
a first copy would overwrite. They run at copy time only (the hooks pass Copier's dst_path).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from airflow_gitops import facts

from .base import dns_label, matches

RECOPY_ENV = "AIRFLOW_GITOPS_RECOPY"
# The template's own files (template/): this module is hooks/answer_rules/destination.py.
# Only copier copy asks (first_copy_conflicts); in a generated repository nothing calls it.
_TEMPLATE = Path(__file__).resolve().parents[2] / "template"


def environment(value: Any, dst_path: Any = None, answers_file: Any = None, overwrite: Any = False) -> str:
    """A DNS label, and not an environment this repository already has (copy refuses)."""
    err = dns_label("environment", 20)(value)
    if err or not dst_path or not answers_file:
        return err
    dst = Path(str(dst_path))
    answers = dst / str(answers_file)
    if conflicts := first_copy_conflicts(dst, answers, bool(overwrite)):
        shown = ", ".join(conflicts[:6]) + (f" and {len(conflicts) - 6} more" if len(conflicts) > 6 else "")
        return (f"environment: {dst} already has {shown}, which this template writes; a copy "
                "without a terminal would stop at the first one, half-written. Move them aside, or pass "
                "--overwrite to replace them")
    recorded = read_answers(answers).get("environment")
    if recorded is not None and recorded != value:
        return (f"environment: {answers.name} belongs to environment {recorded!r}; to add {value!r} "
                f"run copier copy with -a .copier-answers.{value}.yml")
    if recorded == value and copier_operation() == "copy" and os.environ.get(RECOPY_ENV) != "1":
        # copier copy over an existing environment (--overwrite) would replace the user's edits.
        return (f"environment {value!r} already exists in {dst} ({answers.name}): copier copy would overwrite "
                f"your edits. Change it with `make update` (or copier update); for copier recopy set {RECOPY_ENV}=1")
    overlay = dst / "deploy" / "overlays" / value
    # Files, not directories: a copy that failed may leave empty directories behind, retry is fine.
    if recorded is None and overlay.is_dir() and any(p.is_file() for p in overlay.rglob("*")):
        return (f"environment {value!r} already exists in {dst} (deploy/overlays/{value}); "
                "use copier update to change it, or pick another name")
    return ""


def first_copy_conflicts(dst: Path, answers: Path, overwrite: bool) -> list[str]:
    """Files of a directory that is not yet a generated repository which the first copy would write
    (plainly named template paths: README.md, Makefile, scripts/...). Copier asks about each at a
    terminal; without one it stops at the first, with the files before it already written."""
    if overwrite or answers.exists() or (dst / facts.ANSWERS_FILE).exists() or not dst.is_dir() or sys.stdin.isatty():
        return []  # a generated repository (a further environment writes no repo-wide file), or asked
    ours = [path.relative_to(_TEMPLATE) for path in _TEMPLATE.rglob("*") if path.is_file()
            and "{" not in str(path.relative_to(_TEMPLATE)) and "__pycache__" not in path.parts]
    return sorted(str(rel.with_suffix("") if rel.suffix == ".jinja" else rel) for rel in ours
                  if (dst / (rel.with_suffix("") if rel.suffix == ".jinja" else rel)).is_file())


def copier_operation() -> str | None:
    """copy or update: Copier exposes it to templates only in _tasks/_exclude, so read its context."""
    try:
        from copier._main import _operation  # copier 9.19 (pinned): a ContextVar set by run_copy/run_update
    except ImportError:
        return None
    return _operation.get(None)


def read_answers(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml  # copier depends on PyYAML

    data = yaml.safe_load(path.read_text()) or {}
    return data if isinstance(data, dict) else {}


def other_environments(dst_path: Any, answers_file: Any) -> list[tuple[str, dict]]:
    """(file name, answers) of the repository's other environments (none in update's temp copies)."""
    if not dst_path:
        return []
    dst = Path(str(dst_path))
    return [(p.name, a) for p in sorted(dst.glob(".copier-answers*.yml"))
            if p.name != str(answers_file) and (a := read_answers(p)).get("environment")]


def namespace(value: Any, cluster: Any = None, dst_path: Any = None, answers_file: Any = None) -> str:
    """Unique per cluster: two environments in one namespace share the release, the PV and the Secrets."""
    err = dns_label("namespace", 63)(value)
    for name, other in [] if err else other_environments(dst_path, answers_file):
        if other.get("namespace") == value and other.get("eks_cluster_name") == cluster:
            return (f"namespace {value!r} is already environment {other['environment']!r}'s on cluster "
                    f"{cluster!r} ({name}): two environments in one namespace would share the Helm release, "
                    "the DAG volume and the Secrets; pick another namespace")
    return err


def s3_log_prefix(value: Any, bucket: Any = None, dst_path: Any = None, answers_file: Any = None) -> str:
    err = matches("s3_log_prefix", value, r"[A-Za-z0-9!_.*()-]+(/[A-Za-z0-9!_.*()-]+)*",
                  "must be a key prefix like airflow/dev/logs: S3-safe characters, "
                  "'/'-separated, no leading or trailing '/'", optional=True)
    for name, other in [] if err else other_environments(dst_path, answers_file):
        mine, theirs = str(value or "").strip("/"), str(other.get("s3_log_prefix") or "").strip("/")
        overlapping = mine == theirs or mine.startswith(theirs + "/") or theirs.startswith(mine + "/") \
            or not mine or not theirs
        if other.get("s3_log_bucket") == bucket and overlapping:
            return (f"s3_log_prefix {value!r} overlaps environment {other['environment']!r}'s "
                    f"{other.get('s3_log_prefix')!r} in bucket {bucket!r} ({name}): task logs of the two "
                    "environments would mix; pick a prefix of its own")
    return err
