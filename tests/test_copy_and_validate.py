"""Story: a platform engineer runs `copier copy`, then `make validate` in the generated repo."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops.facts import DAG_CLAIM
from helpers.copying import staging_answers
from helpers.make import run_validate, validate_env
from helpers.render import kustomize_build

ANSWER_MATRIX = {
    "celery-ap-ingress": {},
    "celery-noingress": {"web_hostname": ""},
    "kubernetes-ap": {"executor": "KubernetesExecutor", "web_hostname": ""},
    "kubernetes-ingress-verified-rds": {"executor": "KubernetesExecutor", "rds_tls_verify": True},
    "celerykubernetes-pip": {
        "executor": "CeleryKubernetesExecutor",
        "extra_pip_packages": ["apache-airflow-providers-slack==8.6.0"],
    },
}


@pytest.fixture(params=sorted(ANSWER_MATRIX))
def variant(request: pytest.FixtureRequest, tmp_path: Path, copy_project, demo_answers) -> tuple[Path, dict]:
    answers = {**demo_answers, **ANSWER_MATRIX[request.param]}
    return copy_project(tmp_path / "repo", answers), answers


def test_generated_repo_validates(variant: tuple[Path, dict[str, Any]]) -> None:
    repo, answers = variant
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout
    # Placeholders are reported, one line per unsealed entry, with the command that seals it.
    warnings = [line for line in result.stdout.splitlines() if "UNSEALED" in line or "make seal" in line]
    expected = 5 if answers["executor"] != "KubernetesExecutor" else 4
    assert len(warnings) == expected, result.stdout


def test_strict_validation_fails_on_placeholders(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    result = run_validate(repo, strict=True)
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 5, result.stdout
    assert all("make seal ENV=dev SECRET=" in line for line in errors)


def test_ci_gets_junit_and_json_reports(tmp_path: Path, copy_project, demo_answers) -> None:
    """`make validate FORMAT=junit OUTPUT=...`: Jenkins' junit step sees one failure per ERROR line."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    values = repo / "deploy/overlays/dev/values.yaml"
    values.write_text(values.read_text() + "\nairflow:\n  fernetKey: not-a-key\n")
    text = run_validate(repo, strict=True)
    junit = run_validate(repo, "FORMAT=junit", "OUTPUT=build/validate.xml", strict=True)
    assert junit.returncode == text.returncode != 0
    assert junit.stdout == text.stdout  # the console keeps the text report
    errors = [line for line in text.stdout.splitlines() if line.startswith("ERROR")]
    suites = ET.parse(repo / "build/validate.xml").getroot()
    failures = [case.find("failure").text for case in suites.iter("testcase") if case.find("failure") is not None]
    assert sorted(failures) == sorted(errors) and any("fernet" in e for e in errors), text.stdout
    assert int(suites.get("failures")) == len(errors)
    assert {s.get("name") for s in suites.findall("testsuite")} >= {"deploy/overlays/dev", "clusters/demo-cluster"}
    report = json.loads(run_validate(repo, "FORMAT=json").stdout)
    assert report["summary"]["ok"] is False and report["summary"]["errors"] == len(errors) - 5  # not strict
    assert any(i["level"] == "ERROR" and "fernet" in i["message"] for i in report["issues"])


def test_layout_one_concern_per_file(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    files = {str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()}
    for expected in [
        ".copier-answers.yml", "README.md", "Makefile", "scripts/validate.py",
        "clusters/demo-cluster/infrastructure.yaml", "clusters/demo-cluster/dev/airflow.yaml",
        "clusters/demo-cluster/dev/secrets.yaml", "deploy/overlays/dev/secrets/kustomization.yaml",
        "deploy/overlays/dev/secrets/namespace.yaml",
        "infrastructure/kustomization.yaml", "infrastructure/storageclass.yaml",
        "infrastructure/sealed-secrets/helmrelease.yaml", "infrastructure/sealed-secrets/helmrepository.yaml",
        "deploy/base/helmrelease.yaml", "deploy/base/helmrepository.yaml", "deploy/base/values.yaml",
        "deploy/base/pv.yaml", "deploy/base/pvc.yaml",
        "deploy/overlays/dev/values.yaml", "deploy/overlays/dev/pv-patch.yaml",
        "deploy/overlays/dev/secrets/airflow-db.yaml", "deploy/overlays/dev/secrets/airflow-redis.yaml",
    ]:
        assert expected in files
    for path in repo.rglob("*.yaml"):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(docs) <= 1, f"{path} holds {len(docs)} objects: one concern per file"


def test_flux_objects_wired(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    built = kustomize_build(repo / "deploy/overlays/dev")
    by_kind = {(o["kind"], o["metadata"]["name"]): o for o in built}
    release = by_kind[("HelmRelease", "airflow")]["spec"]
    assert release["chart"]["spec"]["version"] == "8.9.0"
    assert release["releaseName"] == "airflow"
    assert release["install"]["remediation"]["retries"] > 0
    # Migrations are forward-only: a failed upgrade is retried, never rolled back.
    assert release["upgrade"]["strategy"] == {"name": "RetryOnFailure", "retryInterval": "10m"}
    assert "remediation" not in release["upgrade"]
    assert release["driftDetection"]["mode"] == "enabled"
    # valuesFrom names the hashed generator output, base first, then the environment.
    names = [ref["name"] for ref in release["valuesFrom"]]
    assert [n.rsplit("-", 1)[0] for n in names] == ["airflow-base-values", "airflow-env-values", "airflow-env-values"]
    keys = [ref["valuesKey"] for ref in release["valuesFrom"]]
    assert keys == ["values.yaml", "values.yaml", "secrets-revision.yaml"]  # the last one: make seal's stamps
    assert all(("ConfigMap", n) in by_kind for n in names)
    repo_obj = by_kind[("HelmRepository", "airflow-stable")]
    assert repo_obj["spec"]["url"] == "https://airflow-helm.github.io/charts"
    assert {o["metadata"].get("namespace") for o in built if o["kind"] != "PersistentVolume"} - {None} == {
        "airflow-dev"
    }
    pv = by_kind[("PersistentVolume", "airflow-dev-dags")]["spec"]
    assert pv["csi"] == {"driver": "efs.csi.aws.com", "volumeHandle": "fs-0123456789abcdef0::fsap-0123456789abcdef0"}
    assert pv["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["accessModes"] == ["ReadWriteMany"]
    pvc = by_kind[("PersistentVolumeClaim", DAG_CLAIM)]["spec"]
    assert pvc["volumeName"] == "airflow-dev-dags"
    assert pvc["storageClassName"] == pv["storageClassName"]

    cluster = {o["metadata"]["name"]: o["spec"] for o in _cluster_objects(repo)}
    # infrastructure -> the secrets (Ready once all decrypt) -> the release: no install against placeholders.
    assert cluster["airflow-dev-secrets"]["dependsOn"] == [{"name": "infrastructure"}]
    assert cluster["airflow-dev"]["dependsOn"] == [{"name": "airflow-dev-secrets"}]
    assert cluster["airflow-dev"]["path"] == "./deploy/overlays/dev"
    assert cluster["airflow-dev-secrets"]["path"] == "./deploy/overlays/dev/secrets"
    checks = cluster["airflow-dev-secrets"]["healthCheckExprs"]
    assert [(c["kind"], "Synced" in c["current"], "False" in c["failed"]) for c in checks] == \
        [("SealedSecret", True, True)]
    secrets = kustomize_build(repo / "deploy/overlays/dev/secrets")
    assert {o["kind"] for o in secrets} == {"Namespace", "SealedSecret"}
    assert not [o for o in built if o["kind"] in ("SealedSecret", "Namespace")], "one owner per object"
    for spec in cluster.values():
        assert spec["prune"] is True and spec["wait"] is True and spec["timeout"]
        assert "postBuild" not in spec


def _cluster_objects(repo: Path, cluster: str = "demo-cluster") -> list[dict]:
    """What `flux bootstrap --path clusters/<cluster>` applies: every YAML file below it."""
    return [yaml.safe_load(p.read_text()) for p in sorted((repo / "clusters" / cluster).rglob("*.yaml"))]


def test_dag_volume_is_bound_to_its_claim_through_the_access_point(tmp_path: Path, copy_project,
                                                                   demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    built = kustomize_build(repo / "deploy/overlays/dev")
    pv = next(o for o in built if o["kind"] == "PersistentVolume")
    pvc = next(o for o in built if o["kind"] == "PersistentVolumeClaim")
    assert pv["spec"]["csi"]["volumeHandle"] == "fs-0123456789abcdef0::fsap-0123456789abcdef0"
    assert pv["spec"]["claimRef"] == {"namespace": pvc["metadata"]["namespace"], "name": pvc["metadata"]["name"]}
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    # A PV any claim could take, or one without an access point, fails validation.
    patch = repo / "deploy/overlays/dev/pv-patch.yaml"
    text = patch.read_text()
    patch.write_text(text.replace(f"  claimRef:\n    namespace: airflow-dev\n    name: {DAG_CLAIM}\n", ""))
    assert "spec.claimRef (namespace and name) must bind the volume" in run_validate(repo).stdout
    patch.write_text(text.replace("::fsap-0123456789abcdef0", ""))
    assert "has no access point: the EFS root is owned by root" in run_validate(repo).stdout


def test_two_environments_share_a_cluster(tmp_path: Path, copy_project, demo_answers) -> None:
    """A second env on the same EKS cluster: cluster-scoped names differ, shared objects are identical."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    copy_project(repo, staging_answers(demo_answers), answers_file=".copier-answers.staging.yml")
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout + result.stderr

    pvs = {
        env: next(o for o in kustomize_build(repo / "deploy/overlays" / env) if o["kind"] == "PersistentVolume")
        for env in ("dev", "staging")
    }
    assert pvs["dev"]["metadata"]["name"] != pvs["staging"]["metadata"]["name"]
    # One Flux path holds both: the add-ons once, each environment's own objects; no id twice.
    names = [o["metadata"]["name"] for o in _cluster_objects(repo)]
    assert sorted(names) == ["airflow-dev", "airflow-dev-secrets", "airflow-staging", "airflow-staging-secrets",
                             "infrastructure"]
    assert "0 errors" in result.stdout  # validate built clusters/demo-cluster as Flux would (no duplicate id)


def test_kubernetes_executor_has_no_redis(tmp_path: Path, copy_project, demo_answers) -> None:
    answers = {**demo_answers, "executor": "KubernetesExecutor"}
    answers.pop("redis_host")
    answers.pop("redis_port")
    repo = copy_project(tmp_path / "repo", answers)
    assert not (repo / "deploy/overlays/dev/secrets/airflow-redis.yaml").exists()
    text = "\n".join(p.read_text() for p in (repo / "deploy").rglob("*.yaml"))
    assert "externalRedis" not in text and "airflow-redis" not in text
    stored = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    assert "redis_host" not in stored


def test_readme_demo_command(tmp_path: Path, template_src: Path) -> None:
    """The documented CLI call, answers from examples/demo.yml, then the repo's own validation."""
    dst = tmp_path / "demo"
    cmd = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet",
           "--data-file", str(template_src / "examples/demo.yml"), str(template_src), str(dst)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v0.1.0" and answers["environment"] == "dev"
    result = run_validate(dst)
    assert result.returncode == 0, result.stdout + result.stderr


def test_key_typos_are_found_without_reference_data(tmp_path: Path, copy_project, demo_answers) -> None:
    """The repo carries the chart's key paths (scripts/chart_keys): no env var needed."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    values = repo / "deploy/overlays/dev/values.yaml"
    values.write_text(values.read_text().replace("airflow:\n", "airflow:\n  extraEnvv: []\n", 1))
    env = {k: v for k, v in validate_env().items() if k != "AIRFLOW_CHART_VALUES"}
    result = subprocess.run(["make", "-s", "-C", str(repo), "validate", f"TOOLS_PYTHON={sys.executable}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    assert "unknown key path `airflow.extraEnvv`" in result.stdout, result.stdout


def test_a_yaml_error_names_the_file_and_line(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    values = repo / "deploy/overlays/dev/values.yaml"
    lines = values.read_text().splitlines()
    broken = next(i for i, line in enumerate(lines) if line.startswith("serviceAccount:"))
    lines.insert(broken + 1, "  annotations: [unclosed")
    values.write_text("\n".join(lines) + "\n")
    result = run_validate(repo)
    assert result.returncode != 0
    located = [line for line in result.stdout.splitlines() if "deploy/overlays/dev/values.yaml:" in line]
    assert located and "invalid YAML" in located[0], result.stdout
    assert f"values.yaml:{broken + 3}:" in located[0] or f"values.yaml:{broken + 2}:" in located[0], located
