"""The generated repository's own Makefile, run the way a user runs it (this interpreter as TOOLS_PYTHON)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers.copying import COPIER, GIT_ENV
from helpers.paths import SHARED, shared_path
from helpers.tools import helm_path, kubectl_path


def validate_env() -> dict[str, str]:
    env = dict(os.environ, KUBECTL=str(kubectl_path()), HELM=str(helm_path()))
    if (SHARED / "schemas").is_dir():
        env["AIRFLOW_GITOPS_SCHEMA_DIR"] = str(SHARED / "schemas")
    if (SHARED / "chart").is_dir():
        env["AIRFLOW_CHART_VALUES"] = str(SHARED / "chart/airflow-8.9.0-values.yaml")
    return env


def run_make(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A target of the generated repo's own Makefile, with this interpreter as TOOLS_PYTHON (env: added)."""
    return subprocess.run(["make", "-s", "-C", str(repo), *args, f"TOOLS_PYTHON={sys.executable}"],
                          capture_output=True, text=True, env={**validate_env(), **(env or {})}, timeout=300)


def install_rds_ca(repo: Path, pem: bytes, env: str = "dev") -> None:
    """What `make rds-ca` does, with a test certificate standing in for AWS's RDS bundle: write it,
    then stamp the revision pgbouncer restarts on."""
    (repo / "deploy/overlays" / env / "rds-ca-bundle.pem").write_bytes(pem)
    result = run_make(repo, "stamp", f"ENV={env}")
    assert result.returncode == 0, result.stdout + result.stderr


def run_validate(repo: Path, *make_vars: str, strict: bool = False) -> subprocess.CompletedProcess[str]:
    """The generated repo's own `make validate` (plus make_vars, e.g. FORMAT=junit)."""
    return run_make(repo, "validate", *make_vars, *(["STRICT=1"] if strict else []))


def render_dev(repo: Path) -> subprocess.CompletedProcess[str]:
    """`make render ENV=dev` with the real airflow-helm chart from ../shared."""
    return run_make(repo, "render", "ENV=dev", f"CHART={shared_path('charts', 'airflow-8.9.0.tgz')}")


def make_update(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The generated repo's `make update`, with this environment's copier."""
    env = dict(validate_env(), COPIER=COPIER, **GIT_ENV)
    return subprocess.run(["make", "-C", str(repo), "update", f"TOOLS_PYTHON={sys.executable}", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def make_upgrade(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The generated repo's `make upgrade AIRFLOW=... [CHART=...]`, offline with the chart from ../shared."""
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text()) or {}
    flavor = answers.get("airflow_chart", "community")
    versions = {str(answers["chart_version"])} | {a.split("=", 1)[1] for a in args if a.startswith("CHART=")}
    tgz = " ".join(str(shared_path("charts", f"apache-airflow-{v}.tgz" if flavor == "official" else f"airflow-{v}.tgz"))
                   for v in sorted(versions))  # the deployed chart (make diff's base) and the new one
    env = dict(validate_env(), COPIER=COPIER, **GIT_ENV)
    return subprocess.run(["make", "-s", "-C", str(repo), "upgrade", f"TOOLS_PYTHON={sys.executable}",
                           f"CHART_TGZ={tgz}", *args], capture_output=True, text=True, env=env, timeout=900)
