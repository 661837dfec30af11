"""The Jenkinsfile's ENVIRONMENTS map: one entry a line, the Jenkins cloud of each cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_gitops.facts.repository import DAG_CLAIM


# ---------------------------------------------------------------- the Jenkinsfile's ENVIRONMENTS map
def cluster_slug(name: object) -> str:
    """clusters/<slug>/: an EKS cluster name (letters, digits, '-', '_') as a DNS-safe directory name."""
    return str(name).lower().replace("_", "-")


def jenkins_cloud(eks_cluster_name: object) -> str:
    """The Jenkins Kubernetes cloud that starts the DAG publisher's pods on this EKS cluster: named like
    its clusters/<cluster>/ directory. Without a cloud, the Kubernetes plugin takes the first Kubernetes
    cloud of Jenkins (PodTemplateStepExecution.resolveCloud), whatever cluster that is."""
    return cluster_slug(eks_cluster_name)


# The ENVIRONMENTS map, one entry a line (groups: opening line, entries, closing line).
JENKINS_ENVIRONMENTS = re.compile(r"(@Field final Map ENVIRONMENTS = \[\n)(.*?)(^\]\n)", re.S | re.M)
_GROOVY_STR = r"'((?:[^'\\]|\\.)*)'"
# One entry per line: 'env': [cloud: '...', namespace: '...', claim: '...', productionLike: true|false],
# Lines written before v0.2.0 have no cloud (migrations.py add-jenkins-clouds gives them one).
JENKINS_ENTRY = re.compile(rf"^\s*{_GROOVY_STR}\s*:\s*\[(?:cloud:\s*{_GROOVY_STR},\s*)?namespace:\s*{_GROOVY_STR},\s*"
                           rf"claim:\s*{_GROOVY_STR},\s*productionLike:\s*(true|false)\],?\s*$", re.M)


def groovy_str(value: object) -> str:
    """A single-quoted Groovy string literal (no interpolation) holding exactly ``value``."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'"


def _groovy_unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


@dataclass(frozen=True)
class JenkinsEntry:
    """An environment as the DAG publishing job sees it."""

    namespace: str
    claim: str
    production_like: bool
    cloud: str | None  # None: a line from before v0.2.0


def jenkins_entry(env: str, namespace: str, production_like: bool, cloud: str) -> str:
    """One line of `ENVIRONMENTS` (Jenkinsfile.jinja renders it, register_environment.py adds it)."""
    flag = "true" if production_like else "false"
    return (f"    {groovy_str(env)}: [cloud: {groovy_str(cloud)}, namespace: {groovy_str(namespace)}, "
            f"claim: {groovy_str(DAG_CLAIM)}, productionLike: {flag}],")


def jenkins_entries(text: str) -> dict[str, JenkinsEntry]:
    """env -> its entry, from a Jenkinsfile's ENVIRONMENTS lines."""
    return {_groovy_unquote(env): JenkinsEntry(_groovy_unquote(ns), _groovy_unquote(claim), flag == "true",
                                               _groovy_unquote(cloud) if cloud else None)
            for env, cloud, ns, claim, flag in JENKINS_ENTRY.findall(text)}
