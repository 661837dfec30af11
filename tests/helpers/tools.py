"""The binaries the checks run: what `make setup` and `make runtime` install, or skip naming what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers.paths import ROOT, skip_or_fail


def kubectl_path() -> Path:
    path = Path(os.environ.get("KUBECTL", ROOT / ".tools/bin/kubectl"))
    if not path.exists():
        skip_or_fail(f"kubectl not found at {path}: run `make setup` first")
    return path


def helm_path() -> Path:
    path = Path(os.environ.get("HELM", ROOT / ".tools/bin/helm"))
    if not path.exists():
        skip_or_fail(f"helm not found at {path}: run `make setup` first")
    return path


def npm_tool(name: str, env_var: str) -> Path:
    """A linter `make setup` installs into .tools/npm ($env_var overrides; the Makefile exports it)."""
    path = Path(os.environ.get(env_var, ROOT / ".tools/npm/node_modules/.bin" / name))
    if not os.access(path, os.X_OK):
        skip_or_fail(f"{name} not installed at {path}: run `make setup`")
    return path


def groovy_lint(path: Path) -> subprocess.CompletedProcess[str]:
    """npm-groovy-lint 16.2.0 (the last release that runs on Node 20) on one Jenkinsfile."""
    tool = npm_tool("npm-groovy-lint", "GROOVY_LINT")
    return subprocess.run([str(tool), "--noserver", "--failon", "error", "--output", "txt", str(path)],
                          capture_output=True, text=True, timeout=300)


def airflow_python(version: str = "2.8.4") -> Path:
    """The interpreter of the real Airflow `make runtime` installs (tests/runtime/install.py)."""
    from runtime.install import RUNTIMES

    python = RUNTIMES[version].python
    if not (python.parent.parent / ".installed").is_file():
        skip_or_fail(f"Airflow {version} is not installed in {python.parent.parent}: run `make runtime`")
    return python


def python_interpreter(minor: str) -> Path:
    """An interpreter of Python <minor> ("3.12"): pyenv's build of it, else python<minor> on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    builds = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}"))
    found = str(builds[-1]) if builds else shutil.which(f"python{minor}")
    if not found:
        skip_or_fail(f"no Python {minor} found (pyenv's {pyenv} or python{minor} on PATH)")
    return Path(found)
