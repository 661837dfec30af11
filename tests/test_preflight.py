"""Story: before the first deploy, a platform engineer runs `make preflight ENV=dev` against the EKS
cluster their kubectl points at, and learns what is missing or too old before Flux or Argo CD fails
on it. The real kubectl (.tools/bin/kubectl) talks HTTPS to a read-only API stand-in
(tests/runtime/clusterapi.py) serving hand-made objects (tests/fixtures/cluster/); each broken cluster
is the ready one with one object removed or changed."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow_gitops import facts
from helpers.copying import staging_answers
from helpers.make import run_make
from helpers.tools import kubectl_path
from runtime.clusterapi import ClusterAPI, Objects, kubeconfig

CHECK = ("OK", "WARN", "MISSING", "TOO OLD")


@pytest.fixture(scope="module")
def flux_repo(tmp_path_factory, copy_project, official_answers) -> Path:
    """Flux, official chart, KEDA, Prometheus Operator metrics and an ALB Ingress (demo.yml has web_hostname)."""
    answers = {**official_answers, "keda_autoscaling": True, "metrics": "prometheus-operator"}
    return copy_project(tmp_path_factory.mktemp("flux") / "repo", answers)


@pytest.fixture(scope="module")
def argocd_repo(tmp_path_factory, copy_project, demo_answers) -> Path:
    """Argo CD, community chart, no Ingress: neither KEDA, nor metrics, nor the ALB controller."""
    answers = {**demo_answers, "gitops_engine": "argocd", "git_repo_url": "https://github.com/example/gitops.git",
               "web_hostname": ""}
    return copy_project(tmp_path_factory.mktemp("argocd") / "repo", answers)


def preflight(repo: Path, cluster: Objects, workdir: Path, *make_vars: str) -> tuple[Any, ClusterAPI]:
    """`make preflight` with the real kubectl pointed at the stand-in serving `cluster`."""
    api = ClusterAPI(cluster, workdir)
    with api.serving():
        done = run_make(repo, "preflight", *make_vars,
                        env={"KUBECONFIG": str(api.kubeconfig), "KUBECTL": str(kubectl_path())})
    return done, api


def status(done: Any) -> int:
    """preflight.py's exit status: make itself exits 2 on any failing recipe and names the status."""
    if done.returncode == 0:
        return 0
    found = re.search(r"preflight\] Error (\d+)", done.stderr)
    assert found, done.stderr
    return int(found.group(1))


def checks(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(CHECK)]


def change(edit: Callable[[Objects], Any]) -> Objects:
    cluster = Objects.recorded()
    edit(cluster)
    return cluster


def image(cluster: Objects, kind: str, name: str, namespace: str, new: str) -> None:
    cluster.find(kind, name, namespace)["spec"]["template"]["spec"]["containers"][0]["image"] = new


def test_a_ready_cluster_passes_every_check(flux_repo, tmp_path) -> None:
    done, api = preflight(flux_repo, Objects.recorded(), tmp_path, "ENV=dev")
    assert status(done) == 0, done.stdout + done.stderr
    lines = checks(done.stdout)
    assert lines and all(line.startswith("OK ") for line in lines), done.stdout
    for subject in ("Kubernetes v1.34.2", "Flux helm-controller v1.4.5", "Flux kustomize-controller",
                    "CRD helmreleases.helm.toolkit.fluxcd.io v2", "CRD sealedsecrets.bitnami.com v1alpha1",
                    "AWS EFS CSI driver v2.1.12", "CSIDriver efs.csi.aws.com", "IngressClass alb",
                    "KEDA 2.17.2", "CRD scaledobjects.keda.sh", "Prometheus Operator v0.86.2",
                    "Namespace jenkins", "ServiceAccount jenkins/jenkins", "Namespace keda", "Namespace monitoring"):
        assert any(subject in line for line in lines), f"{subject!r} not checked:\n{done.stdout}"
    assert "kubectl context stand-in" in done.stdout and f"{len(lines)} OK, 0 WARN, 0 failed" in done.stdout
    assert {method for method, _ in api.requests} == {"GET"}  # read-only


def test_an_argo_cd_repository_checks_argo_cd_and_only_what_its_answers_use(argocd_repo, tmp_path) -> None:
    done, _ = preflight(argocd_repo, Objects.recorded(), tmp_path)
    assert status(done) == 0, done.stdout + done.stderr
    lines = checks(done.stdout)
    assert all(line.startswith("OK ") for line in lines), done.stdout
    assert any("Argo CD v3.2.1 (StatefulSet argocd/argocd-application-controller" in line for line in lines)
    assert any("CRD applications.argoproj.io v1alpha1" in line for line in lines)
    for unused in ("Flux", "KEDA", "Prometheus", "Load Balancer", "IngressClass"):
        assert not any(unused in line for line in lines), f"{unused} checked though unused:\n{done.stdout}"


BROKEN = {
    "a missing CRD": (lambda c: c.remove("CustomResourceDefinition", "scaledobjects.keda.sh"),
                      "MISSING  CRD scaledobjects.keda.sh v1alpha1: install KEDA >= 2.9.0"),
    "an old Flux helm-controller": (
        lambda c: image(c, "Deployment", "helm-controller", "flux-system", "ghcr.io/fluxcd/helm-controller:v1.3.0"),
        "TOO OLD  Flux helm-controller v1.3.0 (Deployment flux-system/helm-controller): needs >= 1.4.5, "
        "for HelmRelease v2 with `upgrade.strategy.name: RetryOnFailure`"),
    "a helm-controller whose RetryOnFailure grows its status without bound": (  # fluxcd/helm-controller#1359
        lambda c: image(c, "Deployment", "helm-controller", "flux-system", "ghcr.io/fluxcd/helm-controller:v1.4.4"),
        "TOO OLD  Flux helm-controller v1.4.4 (Deployment flux-system/helm-controller): needs >= 1.4.5"),
    "an AWS Load Balancer Controller before networking.k8s.io/v1": (
        lambda c: image(c, "Deployment", "aws-load-balancer-controller", "kube-system",
                        "public.ecr.aws/eks/aws-load-balancer-controller:v2.3.1"),
        "TOO OLD  AWS Load Balancer Controller v2.3.1 (Deployment kube-system/aws-load-balancer-controller): "
        "needs >= 2.4.0"),
    "a Flux without healthCheckExprs": (
        lambda c: image(c, "Deployment", "kustomize-controller", "flux-system",
                        "ghcr.io/fluxcd/kustomize-controller:v1.4.0"),
        "TOO OLD  Flux kustomize-controller v1.4.0 (Deployment flux-system/kustomize-controller): needs >= 1.5.0"),
    "a HelmRelease CRD without v2": (
        lambda c: c.find("CustomResourceDefinition", "helmreleases.helm.toolkit.fluxcd.io")["spec"].update(
            versions=[{"name": "v2beta2", "served": True, "storage": True}]),
        "TOO OLD  CRD helmreleases.helm.toolkit.fluxcd.io v2: the CRD serves v2beta2, not v2"),
    "a missing namespace": (lambda c: c.remove("Namespace", "jenkins"),
                            "MISSING  Namespace jenkins: jenkins_service_account jenkins/jenkins"),
    "an old Kubernetes": (lambda c: c.version.update(gitVersion="v1.30.14-eks-931bdca", minor="30"),
                          "TOO OLD  Kubernetes v1.30.14-eks-931bdca: needs >= 1.31"),
    "no EFS CSI driver": (lambda c: c.remove("CSIDriver", "efs.csi.aws.com"),
                          "MISSING  CSIDriver efs.csi.aws.com: install AWS EFS CSI driver >= 1.0.0"),
    "an IngressClass alb of another controller": (
        lambda c: c.find("IngressClass", "alb")["spec"].update(controller="k8s.io/ingress-nginx"),
        "MISSING  IngressClass alb belongs to 'k8s.io/ingress-nginx', not ingress.k8s.aws/alb"),
    "no Prometheus Operator": (
        lambda c: c.remove("Deployment", "kube-prometheus-stack-operator", "monitoring"),
        "MISSING  Prometheus Operator (a Deployment in monitoring running the prometheus-operator image)"),
    "an old KEDA": (lambda c: image(c, "Deployment", "keda-operator", "keda", "ghcr.io/kedacore/keda:2.8.1"),
                    "TOO OLD  KEDA 2.8.1 (Deployment keda/keda-operator): needs >= 2.9.0"),
}


def test_pod_identity_needs_its_agent(tmp_path, copy_project, official_answers) -> None:
    """aws_identity: pod-identity: without the agent no pod gets credentials (and S3 logs fail quietly)."""
    repo = copy_project(tmp_path / "repo", {**official_answers, "aws_identity": "pod-identity"})
    done, _ = preflight(repo, Objects.recorded(), tmp_path / "good", "ENV=dev")
    assert status(done) == 0 and any(line.startswith("OK") and "EKS Pod Identity Agent v0.1.29" in line
                                     for line in checks(done.stdout)), done.stdout
    gone = change(lambda c: c.remove("DaemonSet", "eks-pod-identity-agent", "kube-system"))
    done, _ = preflight(repo, gone, tmp_path / "gone", "ENV=dev")
    assert status(done) == 1 and [line for line in checks(done.stdout) if not line.startswith("OK")] == [
        "MISSING  EKS Pod Identity Agent (DaemonSet kube-system/eks-pod-identity-agent): install EKS Pod Identity "
        "Agent >= 0.0.1, for aws_identity: pod-identity (the pods' AWS credentials)"], done.stdout


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_missing_or_old_piece_is_named_and_fails(case, flux_repo, tmp_path) -> None:
    edit, expected = BROKEN[case]
    done, _ = preflight(flux_repo, change(edit), tmp_path, "ENV=dev")
    assert status(done) == 1, done.stdout + done.stderr
    failed = [line for line in checks(done.stdout) if not line.startswith("OK ")]
    assert len(failed) == 1 and failed[0].startswith(expected), done.stdout
    assert "1 failed" in done.stdout


@pytest.mark.parametrize("case, edit, expected", [
    ("a controller pinned by digest",
     lambda c: image(c, "Deployment", "helm-controller", "flux-system",
                     "ghcr.io/fluxcd/helm-controller@sha256:" + "4f" * 32),
     "WARN     Flux helm-controller (Deployment flux-system/helm-controller): image ghcr.io/fluxcd/helm-controller"
     "@sha256:"),
    ("sealed-secrets before the first sync",
     lambda c: c.remove("Deployment", "sealed-secrets-controller", "kube-system"),
     "WARN     Sealed Secrets controller (Deployment kube-system/sealed-secrets-controller): not installed yet; "
     "this repository installs"),
])
def test_what_preflight_cannot_tell_is_a_warning_not_ok(case, edit, expected, flux_repo, tmp_path) -> None:
    done, _ = preflight(flux_repo, change(edit), tmp_path, "ENV=dev")
    assert status(done) == 0, done.stdout + done.stderr
    not_ok = [line for line in checks(done.stdout) if not line.startswith("OK ")]
    assert len(not_ok) == 1 and not_ok[0].startswith(expected), done.stdout


def test_an_unreachable_cluster_is_a_clear_error(flux_repo, tmp_path) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", None, "unused", context="prod-eks")
    done = run_make(flux_repo, "preflight", env={"KUBECONFIG": str(config), "KUBECTL": str(kubectl_path())})
    assert status(done) == 2, done.stdout + done.stderr
    assert ("preflight: cannot check the cluster: cannot query the API server of kubectl context prod-eks "
            "(https://127.0.0.1:1): ") in done.stderr and "refused" in done.stderr
    assert not checks(done.stdout)


def test_a_kubeconfig_the_cluster_refuses_is_a_clear_error(flux_repo, tmp_path) -> None:
    api = ClusterAPI(Objects.recorded(), tmp_path)
    with api.serving():
        stranger = kubeconfig(tmp_path / "stranger", api.url, api.ca_bundle, "not-the-token")
        done = run_make(flux_repo, "preflight", env={"KUBECONFIG": str(stranger), "KUBECTL": str(kubectl_path())})
    assert status(done) == 2 and "(Unauthorized)" in done.stderr, done.stdout + done.stderr


def test_an_unknown_env_is_refused_naming_the_environments(flux_repo, tmp_path) -> None:
    done, api = preflight(flux_repo, Objects.recorded(), tmp_path, "ENV=prod")
    assert status(done) == 2
    assert "ENV=prod: no such environment (this repository has dev)" in done.stderr
    assert not api.requests


def test_environments_on_two_clusters_need_env(flux_repo, tmp_path, copy_project, official_answers) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(flux_repo, repo)
    copy_project(repo, {**staging_answers(official_answers), "eks_cluster_name": "other-cluster"},
                 answers_file=".copier-answers.staging.yml")
    done, _ = preflight(repo, Objects.recorded(), tmp_path)
    assert status(done) == 2
    assert ("the environments run on different clusters: dev (demo-cluster), staging (other-cluster)"
            in done.stderr)
    done, _ = preflight(repo, Objects.recorded(), tmp_path, "ENV=staging")
    assert status(done) == 0, done.stdout + done.stderr
    assert done.stdout.startswith("preflight: staging on cluster other-cluster")


def test_the_stand_in_refuses_as_the_api_does(tmp_path) -> None:
    """A missing object is a 404 Status (reason NotFound, its name, group and resource); no token is
    401; writes are 405. The real kubectl reads the first as NotFound (test_each_missing...)."""
    api = ClusterAPI(Objects.recorded(), tmp_path)

    def call(path: str, token: str | None = api.token, method: str = "GET") -> tuple[int, dict]:
        request = urllib.request.Request(api.url + path, method=method,
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            trust = ssl.create_default_context(cafile=str(api.ca_bundle))
            with urllib.request.urlopen(request, context=trust, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    with api.serving():
        code, body = call("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        assert (code, body["kind"], body["reason"], body["code"]) == (404, "Status", "NotFound", 404)
        assert body["details"] == {"name": "widgets.example.com", "group": "apiextensions.k8s.io",
                                   "kind": "customresourcedefinitions"}
        assert body["message"] == 'customresourcedefinitions.apiextensions.k8s.io "widgets.example.com" not found'
        assert call("/api/v1/namespaces/nowhere")[1]["message"] == 'namespaces "nowhere" not found'
        assert call("/apis/apps/v1/namespaces/nowhere/deployments") == (200, {
            "kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "1000"}, "items": []})
        assert call("/apis/example.com/v1/frobs")[1]["message"] == "the server could not find the requested resource"
        assert call("/version", token=None)[0] == 401
        assert call("/api/v1/namespaces/jenkins", method="DELETE")[0] == 405
        assert call("/api/v1/namespaces/jenkins")[1]["metadata"]["labels"]["kubernetes.io/metadata.name"] == "jenkins"


def test_the_minimums_are_the_facts_the_readme_states(flux_repo) -> None:
    readme = (flux_repo / "README.md").read_text()
    for req in facts.cluster_requirements("flux", keda=True, metrics=True, ingress=True):
        assert f"| {req.name} | {req.minimum} | {req.why} |" in readme
    assert "make preflight ENV=dev" in readme.split("## First deploy", 1)[1]
