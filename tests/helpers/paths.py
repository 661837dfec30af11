"""Where things are: this checkout, the reference data in ../shared, modules outside sys.path."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The generated repository's tooling (scripts/airflow_gitops: facts, validate) imports normally in tests.
sys.path.insert(0, str(ROOT / "template" / "scripts"))
SHARED = Path(os.environ.get("AIRFLOW_GITOPS_SHARED", ROOT.parent / "shared"))


def load_module(relpath: str, name: str) -> ModuleType:
    """Import a file that is not on sys.path (hooks and the generated repo's scripts)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def skip_or_fail(reason: str) -> None:
    """Skip a check whose prerequisite is absent; CI (AIRFLOW_GITOPS_NO_SKIP=1) fails instead."""
    if os.environ.get("AIRFLOW_GITOPS_NO_SKIP") == "1":
        pytest.fail(f"{reason} (AIRFLOW_GITOPS_NO_SKIP=1: nothing may be skipped)")
    pytest.skip(reason)


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip saying exactly what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        skip_or_fail(f"reference data {path} is absent (set AIRFLOW_GITOPS_SHARED): check not run")
    return path


def chart_tgz(flavor: str = "official", version: str | None = None) -> Path:
    """The real chart a flavor's version renders with (../shared/charts); the newest one by default."""
    from airflow_gitops import facts

    version = version or facts.default_version(flavor)
    return shared_path("charts", f"{'apache-airflow' if flavor == 'official' else 'airflow'}-{version}.tgz")
