"""Shared fixtures (and pytest hooks) only: the answers, a git snapshot of this template, copier runs.

Helpers are in tests/helpers/ (one module per concept), stand-ins in tests/standins/, the runtime
harness in tests/runtime/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from helpers.copying import SNAPSHOT_IGNORE, commit_all
from helpers.paths import ROOT  # first: puts template/scripts (airflow_gitops) on sys.path


@pytest.fixture(scope="session")
def demo_answers() -> dict[str, Any]:
    """The community chart's demo answers: most stories here are told on it (examples/demo-community.yml)."""
    return yaml.safe_load((ROOT / "examples/demo-community.yml").read_text())


@pytest.fixture(scope="session")
def official_answers() -> dict[str, Any]:
    """The default product's demo answers: the official chart, Airflow 3 (examples/demo.yml)."""
    return yaml.safe_load((ROOT / "examples/demo.yml").read_text())


@pytest.fixture(scope="session")
def template_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This working tree as a tagged git repository, as users consume a template."""
    dst = tmp_path_factory.mktemp("template") / "airflow-eks-gitops"
    shutil.copytree(ROOT, dst, ignore=SNAPSHOT_IGNORE)
    commit_all(dst, "template snapshot", tag="v0.1.0")
    return dst


@pytest.fixture(scope="session")
def copy_project(template_src: Path) -> Callable[..., Path]:
    """Run `copier copy` non-interactively (answers validated as at the prompt)."""

    def run(dst: Path, answers: dict[str, Any], **kwargs: Any) -> Path:
        copier.run_copy(str(template_src), dst, data=answers, defaults=True, unsafe=True,
                        quiet=True, **kwargs)
        return dst

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest first, so xdist's workers finish together: the runtime harness, then the slow tier."""
    def weight(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("runtime") else 1 if item.get_closest_marker("slow") else 2
    items.sort(key=weight)  # stable: file order within a weight
