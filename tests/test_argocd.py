"""Story: a team on Argo CD generates the same deployment as Application objects."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.copying import COPIER, GIT_ENV, commit_all, staging_answers
from helpers.make import make_update, run_validate
from helpers.paths import shared_path
from helpers.render import kustomize_build

GIT_REPO = "https://github.com/example/airflow-gitops.git"
ARGO = {"gitops_engine": "argocd", "git_repo_url": GIT_REPO, "git_revision": "main"}
FLUX_GROUPS = ("helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io")


def all_objects(repo: Path) -> list[dict]:
    """Every object in every YAML file of the repo (not only what a build includes)."""
    objects = []
    for path in repo.rglob("*.yaml"):
        if ".git" not in path.parts:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and "kind" in d]
    return objects


def api_group(obj: dict) -> str:
    return obj.get("apiVersion", "").split("/")[0] if "/" in obj.get("apiVersion", "") else ""


@pytest.fixture(scope="module", params=["CeleryExecutor", "KubernetesExecutor"])
def argo_repo(request, tmp_path_factory, copy_project, demo_answers) -> Path:
    answers = {**demo_answers, **ARGO, "executor": request.param}
    return copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers)


def test_argo_repo_validates(argo_repo: Path) -> None:
    result = run_validate(argo_repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_applications_are_schema_checked(argo_repo: Path) -> None:
    shared_path("schemas", "application-argoproj.io-v1alpha1.json")
    result = run_validate(argo_repo)
    assert "Application (argoproj.io/v1alpha1)" not in result.stdout, "Applications must be schema-checked"


def test_no_flux_objects_in_an_argo_repo(argo_repo: Path) -> None:
    flux = [f"{o['kind']}/{o['metadata']['name']}" for o in all_objects(argo_repo) if api_group(o) in FLUX_GROUPS]
    assert flux == []


def test_no_argo_objects_in_a_flux_repo(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    assert [o for o in all_objects(repo) if api_group(o) == "argoproj.io"] == []


def test_application_deploys_chart_and_overlay(argo_repo: Path) -> None:
    answers = yaml.safe_load((argo_repo / ".copier-answers.yml").read_text())
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize_build(argo_repo / "clusters/demo-cluster/dev")}
    app = objects[("Application", "airflow-dev")]["spec"]
    chart, values = app["sources"]
    assert (chart["repoURL"], chart["chart"], chart["targetRevision"]) == (
        "https://airflow-helm.github.io/charts", "airflow", answers["chart_version"])
    assert chart["helm"]["releaseName"] == answers["project_name"]
    for value_file in chart["helm"]["valueFiles"]:
        assert value_file.startswith("$values/") and (argo_repo / value_file.removeprefix("$values/")).is_file()
    assert chart["helm"]["valueFiles"][-2:] == ["$values/deploy/overlays/dev/values.yaml",
                                                "$values/deploy/overlays/dev/secrets-revision.yaml"]
    assert (values["repoURL"], values["targetRevision"], values["ref"]) == (GIT_REPO, "main", "values")
    assert (argo_repo / values["path"] / "kustomization.yaml").is_file()
    assert app["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "airflow-dev"}
    assert app["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in app["syncPolicy"]["syncOptions"]
    # least privilege: the project allows exactly these sources and this namespace
    project = objects[("AppProject", app["project"])]["spec"]
    assert sorted(project["sourceRepos"]) == sorted([GIT_REPO, "https://airflow-helm.github.io/charts"])
    assert project["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "airflow-dev"}]
    addons = {(o["kind"], o["metadata"]["name"]): o for o in kustomize_build(argo_repo / "clusters/demo-cluster")}
    assert addons[("Application", "sealed-secrets")]["spec"]["destination"]["namespace"] == "kube-system"
    assert set(addons) == {("AppProject", "platform"), ("Application", "infrastructure"),
                           ("Application", "sealed-secrets")}, "add-ons once per cluster, nothing per environment"


def test_overlay_objects_sync_before_the_chart(argo_repo: Path) -> None:
    built = kustomize_build(argo_repo / "deploy/overlays/dev")
    assert {o["kind"] for o in built} >= {"Namespace", "PersistentVolume", "PersistentVolumeClaim", "SealedSecret"}
    assert {o["kind"] for o in built} <= {"Namespace", "PersistentVolume", "PersistentVolumeClaim", "SealedSecret",
                                          "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"}
    for obj in built:
        assert obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1", obj["kind"]


def test_values_are_shared_with_the_flux_flavor(argo_repo: Path, tmp_path, copy_project, demo_answers) -> None:
    answers = yaml.safe_load((argo_repo / ".copier-answers.yml").read_text())
    flux = copy_project(tmp_path / "flux", {**demo_answers, "executor": answers["executor"]})
    for path in ["deploy/base/values.yaml", "deploy/overlays/dev/values.yaml", "deploy/overlays/dev/pv-patch.yaml",
                 "Jenkinsfile", "scripts/seal.py", "deploy/overlays/dev/secrets/airflow-db.yaml"]:
        assert (argo_repo / path).read_text() == (flux / path).read_text(), path
    assert yaml.safe_load((argo_repo / "deploy/base/values.yaml").read_text())["airflow"]["connectionsUpdate"] is True


@pytest.mark.slow
def test_switch_from_flux_to_argo_with_copier_update(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    copy_project(repo, staging_answers(demo_answers), answers_file=".copier-answers.staging.yml")
    commit_all(repo, "flux, two environments")
    env = dict(os.environ, **GIT_ENV)
    subprocess.run([COPIER, "update", "--trust", "--defaults", "--vcs-ref", ":current:",
                    "-d", "gitops_engine=argocd", "-d", f"git_repo_url={GIT_REPO}"],
                   cwd=repo, check=True, capture_output=True, env=env)
    commit_all(repo, "switch primary to Argo CD")
    result = make_update(repo, "VERSION=v0.1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    flux = [f"{o['kind']}/{o['metadata']['name']}" for o in all_objects(repo) if api_group(o) in FLUX_GROUPS]
    assert flux == [], "no Flux objects left behind"
    assert not (repo / "deploy/base/helmrelease.yaml").exists()
    assert not (repo / "infrastructure/sealed-secrets").exists()
    for env_name in ("dev", "staging"):
        assert (repo / f"clusters/demo-cluster/{env_name}/kustomization.yaml").is_file()
        app = yaml.safe_load((repo / f"clusters/demo-cluster/{env_name}/airflow.yaml").read_text())
        assert app["kind"] == "Application" and app["spec"]["destination"]["namespace"] == f"airflow-{env_name}"


def test_jenkinsfile_image_checked_against_argo_values(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, **ARGO})
    jenkinsfile = repo / "Jenkinsfile"
    jenkinsfile.write_text(jenkinsfile.read_text().replace("apache/airflow:2.8.4-python3.9", "apache/airflow:2.9.3"))
    result = run_validate(repo)
    assert result.returncode != 0
    expected = "AIRFLOW_IMAGE 'apache/airflow:2.9.3' != the deployed image 'apache/airflow:2.8.4-python3.9'"
    assert expected in result.stdout
