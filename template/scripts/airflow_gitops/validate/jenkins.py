"""The DAG publishing job (Jenkinsfile) against what the overlays deploy: each ENVIRONMENTS entry's
cloud (its answers' cluster), namespace and claim, the agent's ServiceAccount and RoleBinding, and
the Airflow image it checks DAGs with."""

from __future__ import annotations

import re
from pathlib import Path

from airflow_gitops.facts import ANSWERS_FILE, JENKINS_AGENT_RBAC, jenkins_cloud, jenkins_entries
from airflow_gitops.objects import dig, find
from airflow_gitops.validate.community import CHART_DEFAULTS
from airflow_gitops.validate.official import image_of
from airflow_gitops.validate.report import ERROR, WARN, Issue
from airflow_gitops.values import deployed_releases

JENKINS_IMAGE = re.compile(r"AIRFLOW_IMAGE\s*=\s*'([^']*)'")
JENKINS_AGENT_SA = re.compile(r"AGENT_SERVICE_ACCOUNT\s*=\s*'([^']*)'")


def check_jenkinsfile(text: str, overlays: dict[str, list[dict]], images: dict[str, str],
                      jenkins_sa: str | None = None, answers: dict[str, dict] | None = None) -> list[Issue]:
    """The DAG publisher must target each environment's cloud, namespace, DAG claim and Airflow image.

    ``images`` maps an environment to the image its Airflow release deploys (from the merged values),
    ``answers`` to its answers file (the cloud is its EKS cluster's).
    """
    parsed = jenkins_entries(text)
    entries = {env: (e.namespace, e.claim) for env, e in parsed.items()}
    image = JENKINS_IMAGE.search(text)
    issues = [Issue(ERROR, "Jenkinsfile", f"environment {env!r} has no deploy/overlays/{env}")
              for env in sorted(set(entries) - set(overlays))]
    for env, objs in sorted(overlays.items()):
        if env not in entries:
            issues.append(Issue(ERROR, "Jenkinsfile", f"no entry for environment {env!r}: "
                                "the DAG job cannot publish there"))
            continue
        namespace, claim = entries[env]
        issues += _cloud(env, parsed[env].cloud, (answers or {}).get(env))
        built_ns = {o["metadata"]["name"] for o in objs if o.get("kind") == "Namespace"}
        if built_ns and namespace not in built_ns:
            issues.append(Issue(ERROR, "Jenkinsfile", f"{env}: namespace {namespace!r} != overlay namespace "
                                f"{', '.join(sorted(built_ns))}"))
        if not find(objs, "PersistentVolumeClaim", claim, namespace):
            issues.append(Issue(ERROR, "Jenkinsfile", f"{env}: claim {claim!r} is not a PVC of the overlay"))
        issues += _agent_identity(text, env, objs, namespace, jenkins_sa)
        wanted = images.get(env)
        # The same image pulled through a mirror (image_mirror) is the same Python.
        if image and wanted and same_image(image.group(1)) != same_image(wanted):
            issues.append(Issue(ERROR, "Jenkinsfile", f"{env}: AIRFLOW_IMAGE {image.group(1)!r} != the "
                                f"deployed image {wanted!r} (the DAG check must use the same Python)"))
    return issues


def same_image(ref: str) -> tuple[str, str]:
    """(upstream repository, tag) of an image reference, through a pull-through mirror or not."""
    from airflow_gitops.images import split_ref

    return split_ref(ref)


def _cloud(env: str, cloud: str | None, answers: dict | None) -> list[Issue]:
    """The agent pod must start on the environment's own cluster: the Kubernetes plugin takes Jenkins'
    first Kubernetes cloud for an agent that names none, and the namespace does not exist elsewhere."""
    if not answers or not answers.get("eks_cluster_name"):
        return [] if cloud else [Issue(ERROR, "Jenkinsfile", f"{env}: its ENVIRONMENTS entry names no cloud: "
                                       "the agent pod would start on Jenkins' first Kubernetes cloud")]
    wanted, name = jenkins_cloud(answers["eks_cluster_name"]), answers.get("_answers_file", ANSWERS_FILE)
    if cloud is None:
        return [Issue(ERROR, "Jenkinsfile", f"{env}: its ENVIRONMENTS entry names no cloud, so the agent pod "
                      f"would start on Jenkins' first Kubernetes cloud: add cloud: '{wanted}', before namespace: "
                      f"(eks_cluster_name {answers['eks_cluster_name']} in {name}; or run make update)")]
    if cloud != wanted:
        return [Issue(ERROR, "Jenkinsfile", f"{env}: cloud {cloud!r} != {wanted!r}, the Jenkins cloud of its "
                      f"cluster {answers['eks_cluster_name']} (eks_cluster_name in {name})")]
    return []


def jenkins_clouds(text: str, answers: dict[str, dict]) -> list[str]:
    """One line per Jenkins cloud the Jenkinsfile names: its EKS cluster and the namespaces it starts
    agent pods in. Read from the Jenkinsfile, so it includes every environment `copier copy` added."""
    clouds: dict[str, list[str]] = {}
    for env, entry in jenkins_entries(text).items():
        clouds.setdefault(entry.cloud or "(none: Jenkins' first Kubernetes cloud)", []).append(
            f"{entry.namespace} ({env})")
    clusters = {jenkins_cloud(a["eks_cluster_name"]): str(a["eks_cluster_name"])
                for a in answers.values() if a.get("eks_cluster_name")}
    return [f"Jenkins cloud {cloud!r}: EKS cluster {clusters.get(cloud, '?')}, namespaces {', '.join(namespaces)}"
            for cloud, namespaces in clouds.items()]


def _agent_identity(text: str, env: str, objs: list[dict], namespace: str, jenkins_sa: str | None) -> list[Issue]:
    """The agent pod's ServiceAccount ships with the overlay (without a token), and the RoleBinding lets
    the Jenkins controller's identity (answer jenkins_service_account) manage the agent pods."""
    issues = []
    sa = JENKINS_AGENT_SA.search(text)
    account = find(objs, "ServiceAccount", sa.group(1), namespace) if sa else None
    if sa and account is None:
        issues.append(Issue(ERROR, "Jenkinsfile", f"{env}: agent ServiceAccount {sa.group(1)!r} is not in the "
                            "overlay (deploy/base/jenkins-agent-serviceaccount.yaml)"))
    elif sa and account is not None and account.get("automountServiceAccountToken") is not False:
        issues.append(Issue(WARN, "Jenkinsfile", f"{env}: ServiceAccount {sa.group(1)} mounts an API token "
                            "the agent pod does not need (automountServiceAccountToken: false)"))
    binding = find(objs, "RoleBinding", JENKINS_AGENT_RBAC, namespace)
    if binding is not None and jenkins_sa and "/" in jenkins_sa:
        sa_ns, sa_name = jenkins_sa.split("/", 1)
        if {"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns} not in (binding.get("subjects") or []):
            issues.append(Issue(ERROR, "Jenkinsfile", f"{env}: RoleBinding/{namespace}/{JENKINS_AGENT_RBAC} does "
                                f"not bind {jenkins_sa} (jenkins_service_account): Jenkins could not start agent "
                                "pods"))
    return issues


def deployed_images(every: dict[str, list[dict]], repo: Path) -> dict[str, str]:
    """Environment -> Airflow image, from a HelmRelease (Flux) or an Application (Argo CD)."""
    default = CHART_DEFAULTS["airflow"]["image"]
    return {env: image_of(d.values) if d.flavor == "official" else
            (f"{dig(d.values, 'airflow.image.repository', default['repository'])}:"
             f"{dig(d.values, 'airflow.image.tag', default['tag'])}")
            for env, d in deployed_releases(every, repo).items()}
