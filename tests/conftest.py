"""Shared fixtures: a git snapshot of this template, copier runs, the generated repo's `make validate`."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import copier
import git
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The generated repository's tooling (scripts/airflow_gitops: facts, validate) imports normally in tests.
sys.path.insert(0, str(ROOT / "template" / "scripts"))
SHARED = Path(os.environ.get("AIRFLOW_GITOPS_SHARED", ROOT.parent / "shared"))
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".tools", ".runtime", "build", ".cache", "__pycache__", ".pytest_cache", ".ruff_cache"
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


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


def kubectl_path() -> Path:
    path = Path(os.environ.get("KUBECTL", ROOT / ".tools/bin/kubectl"))
    if not path.exists():
        skip_or_fail(f"kubectl not found at {path}: run `make setup` first")
    return path


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


@pytest.fixture(scope="session")
def demo_answers() -> dict[str, Any]:
    """The community chart's demo answers: most stories here are told on it (examples/demo-community.yml)."""
    return yaml.safe_load((ROOT / "examples/demo-community.yml").read_text())


@pytest.fixture(scope="session")
def official_answers() -> dict[str, Any]:
    """The default product's demo answers: the official chart, Airflow 3 (examples/demo.yml)."""
    return yaml.safe_load((ROOT / "examples/demo.yml").read_text())


def commit_all(repo: Path, message: str, tag: str | None = None) -> git.Repo:
    """Commit the whole tree of `repo` (initialising it if needed); optionally tag it."""
    r = git.Repo.init(repo) if not (repo / ".git").exists() else git.Repo(repo)
    with r.git.custom_environment(**GIT_ENV):
        r.git.add("-A")
        r.git.commit("-q", "--allow-empty", "-m", message)
        if tag:
            r.git.tag(tag)
    return r


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


def helm_path() -> Path:
    path = Path(os.environ.get("HELM", ROOT / ".tools/bin/helm"))
    if not path.exists():
        skip_or_fail(f"helm not found at {path}: run `make setup` first")
    return path


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


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(kubectl_path()), "kustomize", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def merged_values(repo: Path, env: str) -> dict[str, Any]:
    """Values the HelmRelease hands to Helm for `env`: base, then env (Helm's coalesce)."""
    built = kustomize_build(repo / "deploy/overlays" / env)
    release = next(o for o in built if o["kind"] == "HelmRelease")
    configmaps = {o["metadata"]["name"]: o for o in built if o["kind"] == "ConfigMap"}
    values: dict[str, Any] = {}
    for ref in release["spec"]["valuesFrom"]:
        layer = yaml.safe_load(configmaps[ref["name"]]["data"][ref.get("valuesKey", "values.yaml")])
        values = deep_merge(values, layer or {})
    return values


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def repo_wide_questions() -> set[str]:
    """Questions asked once, on the primary answers file (copier.yml marks them with `ask`)."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    return {name for name, spec in config.items()
            if isinstance(spec, dict) and spec.get("ask") == "{{ repo_role == 'primary' }}"}


COPIER = str(Path(sys.executable).with_name("copier"))


def staging_answers(demo_answers: dict[str, Any]) -> dict[str, Any]:
    """A second environment, given only per-environment answers (the primary's repo-wide ones apply)."""
    per_env = {k: v for k, v in demo_answers.items() if k not in repo_wide_questions()}
    return {**per_env, "environment": "staging", "namespace": "airflow-staging", "s3_log_prefix": "airflow/staging",
            "irsa_role_arn": "arn:aws:iam::123456789012:role/airflow-staging",
            "web_hostname": "airflow-staging.example.com"}


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


def change_answers(repo: Path, **answers: Any) -> subprocess.CompletedProcess[str]:
    """`copier update` of the same template version with new answers (how a user changes one),
    on a committed repo; the generated repo's own make seal / validate come after."""
    data = [arg for name, value in answers.items()
            for arg in ("--data", f"{name}={value if isinstance(value, str) else json.dumps(value)}")]
    return subprocess.run([COPIER, "update", "--trust", "--defaults", "--quiet", "--vcs-ref", ":current:", *data],
                          cwd=repo, capture_output=True, text=True, env=dict(os.environ, **GIT_ENV), timeout=300)


def assert_nothing_written(dst: Path) -> None:
    assert not dst.exists() or not any(dst.iterdir()), f"a rejected copy left files in {dst}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest first, so xdist's workers finish together: the runtime harness, then the slow tier."""
    def weight(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("runtime") else 1 if item.get_closest_marker("slow") else 2
    items.sort(key=weight)  # stable: file order within a weight
