"""Copier runs and git: the template as users consume it, answer sets, a committed repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import git
import yaml

from helpers.paths import ROOT

SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".tools", ".runtime", "build", ".cache", "__pycache__", ".pytest_cache", ".ruff_cache"
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}
COPIER = str(Path(sys.executable).with_name("copier"))
# The official chart's demo answers on each GitOps engine (added to examples/demo.yml).
ENGINES = {
    "flux": {},
    "argocd": {"gitops_engine": "argocd", "git_repo_url": "https://github.com/example/airflow-gitops.git",
               "executor": "KubernetesExecutor", "aws_identity": "pod-identity", "production_like": True},
}


def commit_all(repo: Path, message: str, tag: str | None = None) -> git.Repo:
    """Commit the whole tree of `repo` (initialising it if needed); optionally tag it."""
    r = git.Repo.init(repo) if not (repo / ".git").exists() else git.Repo(repo)
    with r.git.custom_environment(**GIT_ENV):
        r.git.add("-A")
        r.git.commit("-q", "--allow-empty", "-m", message)
        if tag:
            r.git.tag(tag)
    return r


def repo_wide_questions() -> set[str]:
    """Questions asked once, on the primary answers file (copier.yml marks them with `ask`)."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    return {name for name, spec in config.items()
            if isinstance(spec, dict) and spec.get("ask") == "{{ repo_role == 'primary' }}"}


def staging_answers(demo_answers: dict[str, Any]) -> dict[str, Any]:
    """A second environment, given only per-environment answers (the primary's repo-wide ones apply)."""
    per_env = {k: v for k, v in demo_answers.items() if k not in repo_wide_questions()}
    return {**per_env, "environment": "staging", "namespace": "airflow-staging", "s3_log_prefix": "airflow/staging",
            "irsa_role_arn": "arn:aws:iam::123456789012:role/airflow-staging",
            "web_hostname": "airflow-staging.example.com"}


def change_answers(repo: Path, **answers: Any) -> subprocess.CompletedProcess[str]:
    """`copier update` of the same template version with new answers (how a user changes one),
    on a committed repo; the generated repo's own make seal / validate come after."""
    data = [arg for name, value in answers.items()
            for arg in ("--data", f"{name}={value if isinstance(value, str) else json.dumps(value)}")]
    return subprocess.run([COPIER, "update", "--trust", "--defaults", "--quiet", "--vcs-ref", ":current:", *data],
                          cwd=repo, capture_output=True, text=True, env=dict(os.environ, **GIT_ENV), timeout=300)


def assert_nothing_written(dst: Path) -> None:
    assert not dst.exists() or not any(dst.iterdir()), f"a rejected copy left files in {dst}"
