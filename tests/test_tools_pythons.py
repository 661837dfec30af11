"""Story: someone runs `make validate` in a freshly generated repository on the Python they have: a
laptop's, or CI's (python:3.12-bookworm on Jenkins, Python 3.12 on GitHub Actions). The repository's own
Makefile builds .venv with that interpreter from requirements-tools.txt (pip, from PyPI: pip's own cache
is shared between the runs), and every checker runs, parliament's IAM lint included: a misspelled action
fails the validation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from airflow_gitops.facts import TOOLS_PYTHONS
from helpers.make import validate_env
from helpers.paths import ROOT
from helpers.tools import python_interpreter

TEMPLATE = ROOT / "template"
JENKINS_CI = TEMPLATE / "{% if ci == 'jenkins' %}ci{% endif %}" / "Jenkinsfile"
GITHUB_CI = TEMPLATE / "{% if ci == 'github' %}.github{% endif %}" / "workflows" / "validate.yml.jinja"


def make_with(repo: Path, python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The generated repo's own Makefile with no TOOLS_PYTHON: it creates .venv with PYTHON."""
    env = {k: v for k, v in validate_env().items() if k != "TOOLS_PYTHON"}
    return subprocess.run(["make", "-s", "-C", str(repo), *args, f"PYTHON={python}"], capture_output=True,
                          text=True, env=env, timeout=300)


def test_ci_runs_a_python_the_tooling_is_tested_on() -> None:
    jenkins = re.findall(r"image: python:(\d+\.\d+)-", JENKINS_CI.read_text())
    github = re.findall(r'python-version: "(\d+\.\d+)"', GITHUB_CI.read_text())
    assert jenkins and github
    assert set(jenkins + github) <= set(TOOLS_PYTHONS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, copy_project, demo_answers) -> Path:
    return copy_project(tmp_path_factory.mktemp("generated") / "repo", demo_answers)


def test_the_readme_names_the_tested_pythons(generated) -> None:
    assert f"Python {', '.join(TOOLS_PYTHONS[:-1])} or {TOOLS_PYTHONS[-1]}" in (generated / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("minor", TOOLS_PYTHONS)
def test_make_validate_builds_its_venv_and_lints_iam_on(minor, generated, tmp_path) -> None:
    python = python_interpreter(minor)
    repo = Path(shutil.copytree(generated, tmp_path / "repo"))
    result = make_with(repo, python, "validate")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert result.stdout.splitlines()[-1].endswith(" 0 errors, 5 warnings"), out  # the unsealed placeholders
    assert "pkg_resources" not in out  # parliament's import warns of nothing either
    venv = subprocess.run([str(repo / ".venv/bin/python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True)
    assert venv.stdout.strip() == minor
    # parliament really lints in this .venv: the policy's misspelled action fails the validation.
    policy = repo / "deploy/overlays/dev/iam/s3-logs-policy.json"
    policy.write_text(policy.read_text().replace('"s3:GetObject"', '"s3:GetObjectt"'))
    broken = make_with(repo, python, "validate")
    assert broken.returncode != 0
    assert "parliament: UNKNOWN_ACTION" in broken.stdout, broken.stdout + broken.stderr
