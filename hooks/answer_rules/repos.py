"""Rules of the git repositories (the GitOps source, the DAGs) and the Jenkins job that publishes DAGs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import matches


def dags_repo_url(value: Any) -> str:
    if value in (None, ""):
        return ""  # DAGs live in dags/ of this repository
    return git_url("dags_repo_url")(value)


def git_url(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        return matches(field, value,
                       r"(https://|ssh://[A-Za-z0-9._-]+@)[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._~/-]+"
                       r"|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+",
                       "must be a git URL like https://github.com/org/repo.git or git@github.com:org/repo.git, "
                       "without credentials")
    return rule


def branch(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        err = matches(field, value, r"[A-Za-z0-9._/-]+",
                      "must be a branch name (letters, digits, '.', '_', '/', '-')")
        if not err and (".." in value or value.startswith(("/", "-")) or value.endswith((".lock", "/", "."))):
            err = f"{field} {value!r} is not a valid git branch name"
        return err
    return rule


def jenkins_credentials_id(value: Any) -> str:
    return matches("dags_repo_credentials_id", value, r"[A-Za-z0-9._-]{1,100}",
                   "must be empty or a Jenkins credentials ID (letters, digits, '.', '_', '-')", optional=True)


def jenkins_service_account(value: Any) -> str:
    err = matches("jenkins_service_account", value,
                  r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?",
                  "must be <namespace>/<name> of a Kubernetes ServiceAccount, e.g. jenkins/jenkins")
    if not err and len(value.split("/")[0]) > 63:
        err = "jenkins_service_account: the namespace part must be at most 63 characters"
    if not err and value.split("/")[1] == "default":
        err = ("jenkins_service_account must not be a namespace's default ServiceAccount: every pod there would "
               "get the agents' rights, and kustomize rewrites the namespace of a subject named default")
    return err
