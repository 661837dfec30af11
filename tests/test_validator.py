"""Tests of the generated repo's `make validate` (template/scripts/airflow_gitops/validate/).

Fixture repos are written by hand in tmp_path with the generated layout (clusters/<env>,
infrastructure/, deploy/base + deploy/overlays/<env>), built with the real kubectl, then
mutated one defect at a time to prove each check fires.
"""

from __future__ import annotations

import base64
import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops import build as kbuild
from airflow_gitops import objects
from airflow_gitops import validate as V
from airflow_gitops import values as values_of
from airflow_gitops.facts import DAG_CLAIM, EFS_HANDLE
from helpers.paths import ROOT, shared_path
from helpers.tools import kubectl_path

SCRIPT = ROOT / "template/scripts/validate.py"  # the entry point users' CI calls


@pytest.fixture
def kubectl(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real kubectl the validator builds with (skips, or fails in CI, without it)."""
    path = kubectl_path()
    monkeypatch.setenv("KUBECTL", str(path))
    return path


needs_kubectl = pytest.mark.usefixtures("kubectl")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Deterministic and offline: an empty schema dir means "no schema", never a download."""
    for var in ("STRICT", "AIRFLOW_CHART_VALUES", "KUBERNETES_VERSION"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "no-schemas"
    empty.mkdir()
    monkeypatch.setenv("AIRFLOW_GITOPS_SCHEMA_DIR", str(empty))


@pytest.fixture
def schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_GITOPS_SCHEMA_DIR", str(shared_path("schemas")))


@pytest.fixture
def chart_values(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    path = shared_path("chart", "airflow-8.9.0-values.yaml")
    monkeypatch.setenv("AIRFLOW_CHART_VALUES", str(path))
    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------- fixture repo
def ks(name: str, path: str, depends: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"interval": "10m", "path": path, "prune": True, "wait": True,
                            "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
    if depends:
        spec["dependsOn"] = [{"name": d} for d in depends]
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"}, "spec": spec}


def sealed(name: str, ns: str, keys: list[str]) -> dict[str, Any]:
    return {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"encryptedData": {k: "AgBy3i4OJSWK+PiTySYZZA9rO43cGDEqAx" for k in keys},
                     "template": {"type": "Opaque", "metadata": {"name": name, "namespace": ns}}}}


def values_for(env: str) -> dict[str, Any]:
    secret_env = [("AIRFLOW__CORE__FERNET_KEY", "airflow-fernet-key"),
                  ("AIRFLOW__WEBSERVER__SECRET_KEY", "airflow-webserver-secret-key")]
    return {
        "airflow": {
            "image": {"repository": "apache/airflow", "tag": "2.8.4-python3.9"},
            "executor": "CeleryExecutor", "fernetKey": "", "webserverSecretKey": "",
            "config": {"AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
                       "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://demo-logs/airflow/{env}",
                       "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
                       "AIRFLOW__WEBSERVER__BASE_URL": "https://airflow.example.com/airflow"},
            "extraEnv": [{"name": n, "valueFrom": {"secretKeyRef": {"name": s, "key": "value"}}}
                         for n, s in secret_env],
            "users": [{"username": "admin", "password": "${ADMIN_PASSWORD}", "role": "Admin",
                       "email": "admin@example.com", "firstName": "Airflow", "lastName": "Admin"}],
            "usersTemplates": {"ADMIN_PASSWORD": {"kind": "secret", "name": "airflow-admin-user",
                                                  "key": "password"}},
            "connections": [{"id": "aws_default", "type": "aws", "extra": '{"region_name": "eu-west-1"}'}],
            "extraVolumes": [{"name": "efs-dags",
                              "persistentVolumeClaim": {"claimName": DAG_CLAIM, "readOnly": True}}],
            "extraVolumeMounts": [{"name": "efs-dags", "mountPath": "/opt/efs", "readOnly": True}],
        },
        "dags": {"path": "/opt/efs/dags/current"},
        "workers": {"enabled": True, "replicas": 2},
        "flower": {"enabled": False},
        "ingress": {"enabled": True, "web": {"host": "airflow.example.com", "path": "/airflow",
                                             "ingressClassName": "alb"}},
        "serviceAccount": {"annotations": {
            "eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/airflow-{env}"}},
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "externalDatabase": {"type": "postgres", "host": "airflow.abcdefghijkl.eu-west-1.rds.amazonaws.com",
                             "userSecret": "airflow-db", "userSecretKey": "username",
                             "passwordSecret": "airflow-db", "passwordSecretKey": "password",
                             "properties": "?sslmode=require"},
        "externalRedis": {"host": "airflow.abcdef.ng.0001.euw1.cache.amazonaws.com",
                          "properties": "?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt",
                          "passwordSecret": "airflow-redis", "passwordSecretKey": "password"},
        "pgbouncer": {"authType": "scram-sha-256", "serverSSL": {"mode": "require"}},
    }


def overlay_files(env: str, pv_name: str | None = None, handle: str | None = None) -> dict[str, Any]:
    ns = f"airflow-{env}"
    pv = pv_name or f"{DAG_CLAIM}-{env}"
    d = f"deploy/overlays/{env}"
    return {
        f"{d}/kustomization.yaml": {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": ns,
            "resources": ["../../base", "namespace.yaml", "storage.yaml", "secrets.yaml"],
            "configMapGenerator": [{"name": "airflow-values", "files": ["values.yaml"]}],
            "configurations": ["../../base/kustomizeconfig.yaml"]},
        f"{d}/namespace.yaml": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        f"{d}/storage.yaml": [
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
             "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
                      "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "efs-sc",
                      "claimRef": {"namespace": ns, "name": DAG_CLAIM},
                      "csi": {"driver": "efs.csi.aws.com",
                              "volumeHandle": handle or "fs-0123456789abcdef0::fsap-0123456789abcdef0"}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": DAG_CLAIM},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc", "volumeName": pv,
                      "resources": {"requests": {"storage": "5Gi"}}}}],
        f"{d}/secrets.yaml": [sealed("airflow-db", ns, ["username", "password"]),
                              sealed("airflow-redis", ns, ["password"]),
                              sealed("airflow-fernet-key", ns, ["value"]),
                              sealed("airflow-webserver-secret-key", ns, ["value"]),
                              sealed("airflow-admin-user", ns, ["password"])],
        f"{d}/values.yaml": values_for(env),
        f"clusters/{env}/infrastructure.yaml": ks("infrastructure", "./infrastructure"),
        f"clusters/{env}/airflow.yaml": ks(f"airflow-{env}", f"./deploy/overlays/{env}", ["infrastructure"]),
        # What `flux bootstrap` commits (minus the CRDs): a nested kustomization dir.
        f"clusters/{env}/flux-system/kustomization.yaml": {"resources": ["gotk-sync.yaml"]},
        f"clusters/{env}/flux-system/gotk-sync.yaml": [
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
             "metadata": {"name": "flux-system", "namespace": "flux-system"},
             "spec": {"interval": "1m", "url": "ssh://git@github.com/example/airflow-gitops.git",
                      "ref": {"branch": "main"}, "secretRef": {"name": "flux-system"}}},
            ks("flux-system", f"./clusters/{env}")],
    }


def base_files() -> dict[str, Any]:
    release = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": {"name": "airflow"},
        "spec": {"interval": "30m", "timeout": "15m", "releaseName": "airflow",
                 "chart": {"spec": {"chart": "airflow", "version": "8.9.0",
                                    "sourceRef": {"kind": "HelmRepository", "name": "airflow-stable"}}},
                 "install": {"remediation": {"retries": 3}},
                 "upgrade": {"strategy": {"name": "RetryOnFailure", "retryInterval": "10m"}},
                 "valuesFrom": [{"kind": "ConfigMap", "name": "airflow-values", "valuesKey": "values.yaml"}]}}
    return {
        "deploy/base/kustomization.yaml": {"resources": ["helmrepository.yaml", "helmrelease.yaml"]},
        "deploy/base/kustomizeconfig.yaml": {"nameReference": [{"kind": "ConfigMap", "version": "v1", "fieldSpecs": [
            {"path": "spec/valuesFrom/name", "kind": "HelmRelease"}]}]},
        "deploy/base/helmrepository.yaml": {
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
            "metadata": {"name": "airflow-stable"},
            "spec": {"interval": "24h", "url": "https://airflow-helm.github.io/charts"}},
        "deploy/base/helmrelease.yaml": release,
        "infrastructure/kustomization.yaml": {"resources": ["sealed-secrets.yaml", "storageclass.yaml"]},
        "infrastructure/sealed-secrets.yaml": [
            {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository",
             "metadata": {"name": "sealed-secrets", "namespace": "kube-system"},
             "spec": {"interval": "24h", "url": "https://bitnami-labs.github.io/sealed-secrets"}},
            {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
             "metadata": {"name": "sealed-secrets", "namespace": "kube-system"},
             "spec": {"interval": "1h", "releaseName": "sealed-secrets-controller",
                      "chart": {"spec": {"chart": "sealed-secrets", "version": "2.18.0",
                                         "sourceRef": {"kind": "HelmRepository", "name": "sealed-secrets"}}},
                      "values": {"fullnameOverride": "sealed-secrets-controller"}}}],
        "infrastructure/storageclass.yaml": {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                             "metadata": {"name": "efs-sc"}, "provisioner": "efs.csi.aws.com"},
    }


def write(root: Path, files: dict[str, Any]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        docs = content if isinstance(content, list) else [content]
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def edit(root: Path, rel: str, fn: Callable[[list[dict[str, Any]]], None]) -> None:
    """Apply `fn` to the parsed documents of one fixture file and write it back."""
    path = root / rel
    docs = list(yaml.safe_load_all(path.read_text()))
    fn(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, base_files() | overlay_files("dev"))
    return root


def run(root: Path, strict: bool = False) -> Any:
    return V.validate_repo(root, strict)


def errors(report: Any) -> list[str]:
    return [line for line in report.lines if line.startswith("ERROR")]


def only_error(report: Any, *needles: str) -> str:
    """Exactly one ERROR line, and it contains every needle."""
    errs = errors(report)
    assert len(errs) == 1, "\n".join(report.lines)
    assert all(n in errs[0] for n in needles), errs[0]
    return errs[0]


def set_values(root: Path, fn: Callable[[dict[str, Any]], None], env: str = "dev") -> None:
    edit(root, f"deploy/overlays/{env}/values.yaml", lambda docs: fn(docs[0]))


# ---------------------------------------------------------------- whole-repo runs
@needs_kubectl
def test_valid_fixture_passes(repo: Path, schemas: None, chart_values: dict[str, Any]) -> None:
    report = run(repo)
    assert report.errors == 0 and report.warnings == 0, "\n".join(report.lines)
    assert report.builds == 3  # clusters/dev (generated), deploy/overlays/dev, infrastructure
    assert report.summary() == f"validate: 3 builds, {report.objects} objects, 0 errors, 0 warnings"


@needs_kubectl
def test_without_reference_data_warns_once_and_skips_key_paths(repo: Path) -> None:
    report = run(repo)
    assert report.errors == 0, "\n".join(report.lines)
    warns = [line for line in report.lines if line.startswith("WARN")]
    assert len(warns) == 1 and "not schema-checked" in warns[0]
    assert all(k in warns[0] for k in ("HelmRelease", "Kustomization", "SealedSecret", "GitRepository"))
    assert any(line.startswith("INFO values: key-path check skipped") for line in report.lines)


@needs_kubectl
def test_cli_exit_codes(repo: Path) -> None:
    ok = subprocess.run([sys.executable, str(SCRIPT), "--repo", str(repo)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1].startswith("validate: 3 builds"), ok.stdout
    set_values(repo, lambda v: v["airflow"].update(fernetKey="x"))
    bad = subprocess.run([sys.executable, str(SCRIPT)], cwd=repo, capture_output=True, text=True)
    assert bad.returncode == 1 and ", 1 errors," in bad.stdout.splitlines()[-1], bad.stdout


@needs_kubectl
def test_failed_build_is_one_condensed_error(repo: Path) -> None:
    edit(repo, "deploy/overlays/dev/kustomization.yaml", lambda d: d[0]["resources"].append("missing.yaml"))
    line = only_error(run(repo), "ERROR deploy/overlays/dev: kustomize build failed:", "missing.yaml")
    assert "\n" not in line


@needs_kubectl
def test_valuesfrom_name_typo(repo: Path) -> None:
    edit(repo, "deploy/base/helmrelease.yaml", lambda d: d[0]["spec"]["valuesFrom"][0].update(name="airflow-valuez"))
    only_error(run(repo), "HelmRelease/airflow-dev/airflow", "valuesFrom[0] ConfigMap/airflow-valuez",
               "not produced in namespace airflow-dev")


@needs_kubectl
def test_valuesfrom_without_name_reference_hints_at_generated_name(repo: Path) -> None:
    edit(repo, "deploy/overlays/dev/kustomization.yaml", lambda d: d[0].pop("configurations"))
    only_error(run(repo), "generated airflow-values-", "nameReference")


@needs_kubectl
def test_missing_secret_key(repo: Path) -> None:
    edit(repo, "deploy/overlays/dev/secrets.yaml", lambda d: d[0]["spec"]["encryptedData"].pop("password"))
    only_error(run(repo), "externalDatabase.passwordSecret", "'airflow-db' has no key 'password'")


@needs_kubectl
def test_missing_secret(repo: Path) -> None:
    edit(repo, "deploy/overlays/dev/secrets.yaml", lambda d: d.pop(2))  # airflow-fernet-key
    only_error(run(repo), "airflow.extraEnv[0] (AIRFLOW__CORE__FERNET_KEY)", "'airflow-fernet-key' is not produced")


@needs_kubectl
def test_pvc_pv_mismatch(repo: Path) -> None:
    def mutate(docs: list[dict[str, Any]]) -> None:
        docs[0]["spec"]["accessModes"] = ["ReadOnlyMany"]
        docs[1]["spec"]["storageClassName"] = "gp3"

    edit(repo, "deploy/overlays/dev/storage.yaml", mutate)
    errs = errors(run(repo))
    assert len(errs) == 2, errs
    assert f"storageClassName 'gp3' != PersistentVolume/{DAG_CLAIM}-dev storageClassName 'efs-sc'" in errs[0]
    assert "accessModes ['ReadWriteMany'] not offered" in errs[1]


@needs_kubectl
def test_pvc_volume_name_and_claim_name_must_resolve(repo: Path) -> None:
    set_values(repo, lambda v: v["airflow"]["extraVolumes"][0]["persistentVolumeClaim"].update(claimName="dags"))
    edit(repo, "deploy/overlays/dev/storage.yaml", lambda d: d[1]["spec"].update(volumeName="nope"))
    errs = errors(run(repo))
    assert any("spec.volumeName 'nope': no PersistentVolume" in e for e in errs), errs
    assert any("PersistentVolumeClaim 'dags' is not produced" in e for e in errs), errs


@needs_kubectl
def test_bad_volume_handle_and_reclaim_policy(repo: Path) -> None:
    def mutate(docs: list[dict[str, Any]]) -> None:
        docs[0]["spec"]["csi"]["volumeHandle"] = "efs:fs-0123456789abcdef0"
        docs[0]["spec"]["persistentVolumeReclaimPolicy"] = "Delete"

    edit(repo, "deploy/overlays/dev/storage.yaml", mutate)
    report = run(repo)
    only_error(report, f"PersistentVolume/{DAG_CLAIM}-dev", "csi.volumeHandle 'efs:fs-0123456789abcdef0'")
    assert any("should be Retain" in line for line in report.lines if line.startswith("WARN"))


@needs_kubectl
def test_flux_schema_errors(repo: Path, schemas: None) -> None:
    edit(repo, "clusters/dev/airflow.yaml", lambda d: d[0]["spec"].update(interval=30, prune="yes"))
    errs = errors(run(repo))
    assert len(errs) == 2, errs
    assert "ERROR clusters/dev: Kustomization/flux-system/airflow-dev: schema: $.spec.interval:" in errs[0]
    assert "$.spec.prune: 'yes' is not of type 'boolean'" in errs[1]


@needs_kubectl
def test_helmrelease_schema_typo(repo: Path, schemas: None) -> None:
    edit(repo, "deploy/base/helmrelease.yaml", lambda d: d[0]["spec"].update(valuesFrm=[]))
    only_error(run(repo), "HelmRelease/airflow-dev/airflow", "schema: $.spec:", "'valuesFrm' was unexpected")


@needs_kubectl
def test_unknown_core_field(repo: Path) -> None:
    edit(repo, "deploy/overlays/dev/storage.yaml", lambda d: d[1]["spec"].update(storageClass="efs-sc"))
    only_error(run(repo), f"PersistentVolumeClaim/airflow-dev/{DAG_CLAIM}", "$.spec:", "'storageClass' was unexpected")


@needs_kubectl
def test_forbidden_airflow_config_key(repo: Path) -> None:
    set_values(repo, lambda v: v["airflow"]["config"].update(AIRFLOW__CORE__SQL_ALCHEMY_CONN_CMD="cat /x"))
    only_error(run(repo), "Don't define `airflow.config.AIRFLOW__CORE__SQL_ALCHEMY_CONN_CMD`")


@needs_kubectl
def test_broker_auth_without_tls(repo: Path) -> None:
    """ElastiCache AUTH always means in-transit encryption: a plain redis:// broker is reset."""
    set_values(repo, lambda v: v["externalRedis"].pop("properties"))
    only_error(run(repo), "the broker authenticates (externalRedis.passwordSecret) but `externalRedis.properties` "
                          "has no ssl_cert_reqs")


@needs_kubectl
def test_broker_tls_without_verification(repo: Path) -> None:
    set_values(repo, lambda v: v["externalRedis"].update(properties="?ssl_cert_reqs=none"))
    only_error(run(repo), "sets ssl_cert_reqs=none: the broker would not verify the ElastiCache certificate")


@needs_kubectl
def test_templated_user_name(repo: Path) -> None:
    """The chart substitutes templates only in password/email/firstName/lastName (sync_users.py)."""
    set_values(repo, lambda v: v["airflow"]["users"][0].update(username="${ADMIN_USERNAME}"))
    only_error(run(repo), "`airflow.users[0].username` is a template")


@needs_kubectl
def test_default_fernet_key(repo: Path) -> None:
    set_values(repo, lambda v: v["airflow"].pop("fernetKey"))
    only_error(run(repo), "`airflow.fernetKey` must be \"\" (unset, so the chart's public default applies)")


@needs_kubectl
def test_localhost_database(repo: Path) -> None:
    set_values(repo, lambda v: v["externalDatabase"].pop("host"))
    only_error(run(repo), "`externalDatabase.host` is localhost/empty")


@needs_kubectl
def test_kubernetes_executor_with_workers(repo: Path) -> None:
    set_values(repo, lambda v: v["airflow"].update(executor="KubernetesExecutor"))
    only_error(run(repo), "If `airflow.executor=KubernetesExecutor`, then all of [`workers.enabled`")


@needs_kubectl
def test_release_name_41_chars(repo: Path) -> None:
    edit(repo, "deploy/base/helmrelease.yaml", lambda d: d[0]["spec"].update(releaseName="a" * 41))
    only_error(run(repo), "The `.Release.name` must be <= 40 characters")


@needs_kubectl
def test_misspelled_key_paths_with_chart_values(repo: Path, chart_values: dict[str, Any]) -> None:
    def mutate(v: dict[str, Any]) -> None:
        v["worker"] = v.pop("workers")  # top level: caught even without the chart values
        v["scheduler"] = {"logCleanup": {"enable": False}}  # nested: needs the chart values

    set_values(repo, mutate)
    errs = errors(run(repo))
    assert len(errs) == 2, errs
    assert any("unknown top-level values key `worker`" in e for e in errs)
    assert any("unknown key path `scheduler.logCleanup.enable`" in e for e in errs)


@needs_kubectl
def test_cluster_scoped_conflict_between_overlays(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, base_files() | overlay_files("dev", pv_name=DAG_CLAIM)
          | overlay_files("prod", pv_name=DAG_CLAIM, handle="fs-00000000000000001::fsap-00000000000000001"))
    report = run(root)
    only_error(report, f"ERROR deploy/overlays/prod: PersistentVolume/{DAG_CLAIM}:",
               "differs from the one built by deploy/overlays/dev")
    assert report.builds == 5


@needs_kubectl
def test_two_overlays_with_distinct_cluster_objects_pass(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    prod = overlay_files("prod", handle="fs-00000000000000001::fsap-00000000000000001")
    write(root, base_files() | overlay_files("dev") | prod)
    assert errors(run(root)) == []


@needs_kubectl
def test_overlay_needs_its_namespace_object(repo: Path) -> None:
    edit(repo, "deploy/overlays/dev/kustomization.yaml", lambda d: d[0]["resources"].remove("namespace.yaml"))
    only_error(run(repo), "ERROR deploy/overlays/dev: expected exactly one Namespace 'airflow-dev', found none")


@needs_kubectl
@pytest.mark.parametrize("strict", ["flag", "env"])
def test_placeholder_warns_then_fails_strict(repo: Path, strict: str, monkeypatch: pytest.MonkeyPatch) -> None:
    placeholder = "UNSEALED: run make seal ENV=dev SECRET=airflow-db"
    edit(repo, "deploy/overlays/dev/secrets.yaml", lambda d: d[0]["spec"]["encryptedData"].update(password=placeholder))
    lenient = run(repo)
    assert lenient.errors == 0 and sum("placeholder" in line for line in lenient.lines) == 1, lenient.lines
    expected = ("deploy/overlays/dev: SealedSecret/airflow-dev/airflow-db: encryptedData.password is a "
                "placeholder: run `make seal ENV=dev SECRET=airflow-db`")
    assert f"WARN {expected}" in lenient.lines
    if strict == "env":
        monkeypatch.setenv("STRICT", "1")
        assert V.main(["--repo", str(repo)]) == 1
    else:
        assert f"ERROR {expected}" in run(repo, strict=True).lines


@needs_kubectl
def test_kustomization_depends_on_missing(repo: Path) -> None:
    edit(repo, "clusters/dev/airflow.yaml", lambda d: d[0]["spec"].update(dependsOn=[{"name": "infra"}]))
    only_error(run(repo), "Kustomization/flux-system/airflow-dev", "dependsOn flux-system/infra: no such Kustomization")


@needs_kubectl
def test_kustomization_path_missing(repo: Path) -> None:
    edit(repo, "clusters/dev/airflow.yaml", lambda d: d[0]["spec"].update(path="./deploy/overlays/dve"))
    only_error(run(repo), "spec.path './deploy/overlays/dve' does not exist")


@needs_kubectl
def test_helmrelease_source_and_version(repo: Path) -> None:
    def mutate(docs: list[dict[str, Any]]) -> None:
        chart = docs[0]["spec"]["chart"]["spec"]
        chart.update(version="8.x")
        chart["sourceRef"]["name"] = "airflow"

    edit(repo, "deploy/base/helmrelease.yaml", mutate)
    errs = errors(run(repo))
    assert len(errs) == 2, errs
    assert "sourceRef HelmRepository/airflow not found" in errs[0]
    assert "must pin an exact version (got '8.x')" in errs[1]


@needs_kubectl
@pytest.mark.parametrize("upgrade, how", [
    ({"remediation": {"retries": 3}}, "rollback"),  # helm-controller's default strategy
    ({"remediation": {"retries": -1, "strategy": "uninstall"}}, "uninstall"),
    ({"remediation": {"remediateLastFailure": True}}, "rollback"),
])
def test_a_failed_upgrade_must_not_roll_back_past_the_migrations(repo: Path, upgrade: dict[str, Any],
                                                                 how: str) -> None:
    edit(repo, "deploy/base/helmrelease.yaml", lambda docs: docs[0]["spec"].update(upgrade=upgrade))
    only_error(run(repo), f"a failed upgrade would be remediated by {how}", "RetryOnFailure")


@needs_kubectl
def test_an_upgrade_without_remediation_passes(repo: Path) -> None:
    no_remediation = {"remediation": {"retries": 0}}
    edit(repo, "deploy/base/helmrelease.yaml", lambda docs: docs[0]["spec"].update(upgrade=no_remediation))
    assert errors(run(repo)) == []


# ---------------------------------------------------------------- pure functions
def test_values_merge_like_helm() -> None:
    cms = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": "ns"},
            "data": {"values.yaml": yaml.safe_dump(d)}}
           for n, d in (("a", {"x": {"keep": 1, "list": [1, 2]}, "s": "a"}), ("b", {"x": {"list": [3]}, "s": "b"}))]
    cms.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec", "namespace": "ns"},
                "data": {"extra.yaml": base64.b64encode(b"y: from-secret\ns: secret").decode()}})
    hr = {"kind": "HelmRelease", "metadata": {"name": "r", "namespace": "ns"},
          "spec": {"valuesFrom": [{"kind": "ConfigMap", "name": "a"}, {"kind": "ConfigMap", "name": "b"},
                                  {"kind": "ConfigMap", "name": "c", "optional": True},
                                  {"kind": "Secret", "name": "sec", "valuesKey": "extra.yaml"},
                                  {"kind": "Configmap", "name": "a"}],
                   "values": {"s": "inline"}}}
    values, errs, warns = values_of.helm_values(hr, cms)
    assert values == {"x": {"keep": 1, "list": [3]}, "s": "inline", "y": "from-secret"}
    assert errs == ["valuesFrom[4] Configmap/a: kind must be ConfigMap or Secret (case-sensitive)"]
    assert warns == []


def test_null_removes_a_chart_default() -> None:
    assert "users" not in V.effective_values({"airflow": {"users": None}})["airflow"]


@pytest.mark.parametrize(("handle", "ok"), [
    ("fs-0123abcd", True), ("fs-0123abcd:/dags", True), ("fs-0123abcd::fsap-0123abcd9", True),
    ("fs-0123abcd:/dags:fsap-0123abcd", True), ("fs-x", False), ("efs:fs-0123abcd", False),
    ("fs-0123abcd::fsap-x", False), ("fs-0123ABCD", False), ("fs-0123abcd:dags", False)])
def test_efs_volume_handle_grammar(handle: str, ok: bool) -> None:
    assert bool(EFS_HANDLE.match(handle)) is ok


def test_check_airflow_values_rules() -> None:
    good = values_for("dev")
    assert V.check_airflow_values(good, "airflow") == []
    bad = copy.deepcopy(good)
    bad["airflow"]["users"][0]["password"] = "admin"
    bad["airflow"]["connections"].append({"id": "s3", "type": "aws", "extra": '{"aws_access_key_id": "AKIA"}'})
    bad["airflow"]["config"]["AIRFLOW__CORE__REMOTE_LOGGING"] = "True"
    bad["airflow"]["extraEnv"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x"})
    bad["airflow"]["image"]["tag"] = "3.0.0"
    bad["externalRedis"]["password"] = "hunter2"
    bad["redis"] = {"enabled": False, "architecture": "standalone"}
    bad["ingress"]["web"]["path"] = "/airflow/"
    bad["airflow"]["connections"].append({"id": "pg", "type": "postgres", "login": "${PG_USER}", "password": "pw"})
    bad["airflow"]["connections"].append({"id": "ok", "type": "postgres", "login": "${PG_USER}"})
    msgs = "\n".join(i.message for i in V.check_airflow_values(bad, "airflow"))
    for needle in ("users[0].password` must be a `${NAME}`", "static AWS keys in extra",
                   "AIRFLOW__CORE__REMOTE_LOGGING` in airflow.config is deprecated",
                   "AIRFLOW__LOGGING__REMOTE_LOGGING", "extraEnv[2]` sets static AWS keys", "'3.0.0'",
                   "`externalRedis.password` is plain text", "`redis` must be exactly",
                   "should NOT include a trailing '/'", "must be compatible with",
                   "`airflow.connections[2]` (pg) sets login/password"):
        assert needle in msgs, msgs
    assert "(ok)" not in msgs


def test_kubectl_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    assert kbuild.find_kubectl(tmp_path) is None
    report = run(tmp_path)
    assert report.errors == 1 and "run `make tools`" in report.lines[0]
    local = tmp_path / ".tools/bin/kubectl"
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\n")
    local.chmod(0o755)
    assert kbuild.find_kubectl(tmp_path) == str(local)
    monkeypatch.setenv("KUBECTL", "/opt/kubectl")
    assert kbuild.find_kubectl(tmp_path) == "/opt/kubectl"


def test_unknown_key_paths(chart_values: dict[str, Any]) -> None:
    values = {"airflow": {"config": {"ANY": "x"}, "defaultSecurityContext": {"runAsUser": 1},
                          "image": {"tag": "2.8.4", "digest": "x"}, "extraEnv": [{"name": "A", "whatever": 1}]},
              "workers": {"celery": {"gracefulTermination": True}, "podAnnotations": {"a": "b"}},
              "redis": {"master": {"podAnnotations": {"x": "y"}}}, "global": {}, "helmWait": True}
    assert V.unknown_key_paths(values, chart_values) == [
        "airflow.image.digest", "workers.celery.gracefulTermination", "helmWait"]


def test_sealed_secret_moved_by_the_build_is_an_error() -> None:
    obj = sealed("airflow-db", "airflow-dev", ["password"])
    obj["spec"]["template"]["metadata"].update(name="airflow-database", namespace="airflow")
    issues = V.check_sealed_secrets([obj], "dev")
    assert [i.level for i in issues] == ["ERROR", "ERROR"]
    assert "spec.template.metadata.name 'airflow-database'" in issues[0].message
    # cluster-wide sealing binds neither name nor namespace: only a warning remains
    obj["metadata"]["annotations"] = {"sealedsecrets.bitnami.com/cluster-wide": "true"}
    assert [i.level for i in V.check_sealed_secrets([obj], "dev")] == ["WARN", "WARN"]


def test_generated_kustomization_mirrors_kustomize_controller(tmp_path: Path) -> None:
    write(tmp_path, {"c/a.yaml": {"kind": "X"}, "c/sub/b.yml": {"kind": "Y"},
                     "c/flux-system/kustomization.yaml": {}, "c/flux-system/gotk.yaml": {}})
    (tmp_path / "c/notes.txt").write_text("ignored")
    gen = yaml.safe_load(kbuild.generated_kustomization(tmp_path / "c", tmp_path / "gen"))
    assert gen["resources"] == ["../c/a.yaml", "../c/flux-system", "../c/sub/b.yml"]


# ---------------------------------------------------------------- Argo CD flavor
GIT_URL = "https://github.com/example/airflow-gitops.git"
AIRFLOW_CHARTS = "https://airflow-helm.github.io/charts"
SEALED_CHARTS = "https://bitnami-labs.github.io/sealed-secrets"
IN_CLUSTER = "https://kubernetes.default.svc"


def argo_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "argocd"}, "spec": spec}


def argo_files(env: str = "dev") -> dict[str, Any]:
    """The gitops_engine: argocd layout: Applications in clusters/<env>, plain value files."""
    ns, d, c = f"airflow-{env}", f"deploy/overlays/{env}", f"clusters/{env}"
    flux_overlay = overlay_files(env)
    base_values = values_for(env)
    env_values = {"serviceAccount": base_values.pop("serviceAccount")}
    sync = {"automated": {"prune": True, "selfHeal": True},
            "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
            "retry": {"limit": 10, "refresh": True,
                      "backoff": {"duration": "30s", "factor": 2, "maxDuration": "10m"}}}
    return {
        ".copier-answers.yml": {"_commit": "v1.0.0", "_src_path": "/templates/airflow-eks-gitops",
                                "gitops_engine": "argocd", "git_repo_url": GIT_URL, "git_revision": "main",
                                "project_name": "airflow", "environment": env, "namespace": ns},
        f"{c}/kustomization.yaml": {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": ["project-platform.yaml", "project.yaml", "infrastructure.yaml", "sealed-secrets.yaml",
                          "airflow.yaml"]},
        f"{c}/project-platform.yaml": argo_object("AppProject", "platform", {
            "sourceRepos": [GIT_URL, SEALED_CHARTS],
            "destinations": [{"server": IN_CLUSTER, "namespace": "kube-system"},
                             {"server": IN_CLUSTER, "namespace": ""}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}),
        f"{c}/project.yaml": argo_object("AppProject", ns, {
            "sourceRepos": [GIT_URL, AIRFLOW_CHARTS],
            "destinations": [{"server": IN_CLUSTER, "namespace": ns}],
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"},
                                         {"group": "", "kind": "PersistentVolume"}]}),
        f"{c}/infrastructure.yaml": argo_object("Application", "infrastructure", {
            "project": "platform", "source": {"repoURL": GIT_URL, "targetRevision": "main", "path": "infrastructure"},
            "destination": {"server": IN_CLUSTER}, "syncPolicy": {"automated": {"prune": True}}}),
        f"{c}/sealed-secrets.yaml": argo_object("Application", "sealed-secrets", {
            "project": "platform",
            "source": {"repoURL": SEALED_CHARTS, "chart": "sealed-secrets", "targetRevision": "2.18.0",
                       "helm": {"releaseName": "sealed-secrets-controller",
                                "valuesObject": {"fullnameOverride": "sealed-secrets-controller"}}},
            "destination": {"server": IN_CLUSTER, "namespace": "kube-system"}}),
        f"{c}/airflow.yaml": argo_object("Application", ns, {
            "project": ns, "destination": {"server": IN_CLUSTER, "namespace": ns},
            "sources": [
                {"repoURL": AIRFLOW_CHARTS, "chart": "airflow", "targetRevision": "8.9.0",
                 "helm": {"releaseName": "airflow",
                          "valueFiles": ["$values/deploy/base/values.yaml", f"$values/{d}/values.yaml"]}},
                {"repoURL": GIT_URL, "targetRevision": "main", "ref": "values", "path": d}],
            "syncPolicy": sync}),
        "infrastructure/kustomization.yaml": {"resources": ["storageclass.yaml"]},
        "infrastructure/storageclass.yaml": base_files()["infrastructure/storageclass.yaml"],
        "deploy/base/values.yaml": base_values,
        f"{d}/kustomization.yaml": {
            "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": ns,
            "resources": ["namespace.yaml", "storage.yaml", "secrets.yaml"],
            "commonAnnotations": {"argocd.argoproj.io/sync-wave": "-1"}},
        f"{d}/values.yaml": env_values,
    } | {f"{d}/{f}": flux_overlay[f"{d}/{f}"] for f in ("namespace.yaml", "storage.yaml", "secrets.yaml")}


@pytest.fixture
def argo_repo(tmp_path: Path) -> Path:
    root = tmp_path / "argo"
    write(root, argo_files())
    return root


@pytest.fixture(scope="module")
def argo_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The kubectl builds of the Argo fixture, made once; tests mutate deep copies."""
    kubectl = kubectl_path()
    root = tmp_path_factory.mktemp("argo-built")
    write(root, argo_files())
    return {b: kbuild.kustomize_build(str(kubectl), root / b, root_only=True)
            for b in ("clusters/dev", "deploy/overlays/dev", "infrastructure")}


@pytest.fixture
def builds(argo_built: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return copy.deepcopy(argo_built)


def argo_obj(builds: dict[str, list[dict[str, Any]]], kind: str, name: str,
             build: str = "clusters/dev") -> dict[str, Any]:
    return next(o for o in builds[build] if o["kind"] == kind and o["metadata"]["name"] == name)


def argo_app(builds: dict[str, list[dict[str, Any]]], name: str = "airflow-dev") -> dict[str, Any]:
    return argo_obj(builds, "Application", name)


def argo_lines(root: Path, builds: dict[str, list[dict[str, Any]]], chart: dict[str, Any] | None = None) -> list[str]:
    report = V.Report()
    report.extend(V.check_argo_applications(builds, root, chart))
    return report.lines


def one(lines: list[str], level: str, *needles: str) -> str:
    """Exactly one line of `level` (and none of ERROR otherwise), containing every needle."""
    hits = [line for line in lines if line.startswith(level)]
    assert len(hits) == 1 and all(n in hits[0] for n in needles), "\n".join(lines)
    assert level == "ERROR" or not [line for line in lines if line.startswith("ERROR")], "\n".join(lines)
    return hits[0]


@needs_kubectl
def test_argo_valid_fixture_passes(argo_repo: Path, schemas: None, chart_values: dict[str, Any]) -> None:
    report = run(argo_repo)
    assert report.errors == 0, "\n".join(report.lines)
    assert report.builds == 3  # clusters/dev (its own kustomization), deploy/overlays/dev, infrastructure
    warns = [line for line in report.lines if line.startswith("WARN")]
    assert warns == ["WARN schemas: not schema-checked (no schema: none for it in AIRFLOW_GITOPS_SCHEMA_DIR, which "
                     "turns the online catalog off): "
                     "AppProject (argoproj.io/v1alpha1)"], report.lines


def test_argo_pure_checks_pass(argo_repo: Path, builds: dict[str, list[dict[str, Any]]],
                               chart_values: dict[str, Any]) -> None:
    assert argo_lines(argo_repo, builds, chart_values) == []
    assert V.check_engine_purity(builds, "argocd") == []
    assert objects.env_of("deploy/overlays/dev") == objects.env_of("clusters/dev") == "dev"


@pytest.mark.parametrize("retry", [{"limit": -1}, {"limit": 5, "refresh": False}])
def test_argo_retries_must_take_the_latest_revision(argo_repo: Path, builds: dict[str, list[dict[str, Any]]],
                                                    retry: dict[str, Any]) -> None:
    """argo-cd#11494: without refresh, retries re-sync the revision the first sync started with."""
    argo_app(builds)["spec"]["syncPolicy"]["retry"] = retry
    one(argo_lines(argo_repo, builds), "ERROR", "Application/argocd/airflow-dev: spec.syncPolicy.retry",
        "retry.refresh: true")
    argo_app(builds)["spec"]["syncPolicy"]["retry"] = {"limit": 0}
    assert argo_lines(argo_repo, builds) == []


def test_argo_source_not_allowed_by_project(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_app(builds)["spec"]["sources"][0]["repoURL"] = "https://charts.example.com/airflow"
    one(argo_lines(argo_repo, builds), "ERROR", "clusters/dev: Application/argocd/airflow-dev: sources[0]: "
        "repoURL 'https://charts.example.com/airflow' is not in AppProject airflow-dev sourceRepos")


def test_argo_source_repos_globs(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    repos = argo_obj(builds, "AppProject", "airflow-dev")["spec"]["sourceRepos"]
    repos[:] = ["https://github.com/example/*", "https://airflow-helm.github.io/*"]
    assert argo_lines(argo_repo, builds) == []
    repos[:] = ["https://github.com/*", AIRFLOW_CHARTS]  # `*` stops at `/`
    one(argo_lines(argo_repo, builds), "ERROR", "sources[1]: repoURL")
    repos[:] = ["https://github.com/**", f"!{GIT_URL.upper()}", AIRFLOW_CHARTS]  # normalized, deny wins
    one(argo_lines(argo_repo, builds), "ERROR", "sources[1]: repoURL")
    repos[:] = ["*"]
    assert argo_lines(argo_repo, builds) == []


def test_argo_destination_not_allowed(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    dests = argo_obj(builds, "AppProject", "airflow-dev")["spec"]["destinations"]
    dests[0]["namespace"] = "airflow-prod"
    one(argo_lines(argo_repo, builds), "ERROR", "destination server https://kubernetes.default.svc namespace "
        "'airflow-dev' is not allowed by AppProject airflow-dev destinations")
    dests[0]["namespace"] = "airflow-*"
    assert argo_lines(argo_repo, builds) == []


def test_argo_cluster_scoped_destination(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    platform = argo_obj(builds, "AppProject", "platform")["spec"]
    platform["destinations"].pop()  # "" namespace: the infrastructure app has none
    one(argo_lines(argo_repo, builds), "ERROR", "Application/argocd/infrastructure: destination",
        "namespace '(none: cluster-scoped only)' is not allowed by AppProject platform")


def test_argo_deployed_kinds_must_be_whitelisted(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_obj(builds, "AppProject", "airflow-dev")["spec"]["clusterResourceWhitelist"].pop()
    one(argo_lines(argo_repo, builds), "ERROR", "deploy/overlays/dev deploys PersistentVolume (core), not permitted "
        "by AppProject airflow-dev clusterResourceWhitelist")


def test_argo_project_rules(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_obj(builds, "AppProject", "airflow-dev")["spec"]["clusterResourceWhitelist"] = [{"group": "*", "kind": "*"}]
    one(argo_lines(argo_repo, builds), "WARN", "clusterResourceWhitelist allows every cluster-scoped kind (`*`)")
    argo_app(builds)["spec"]["project"] = "default"
    one(argo_lines(argo_repo, builds), "WARN", "spec.project 'default' allows every source")
    argo_app(builds)["spec"]["project"] = "airflow"
    one(argo_lines(argo_repo, builds), "ERROR", "spec.project 'airflow': no AppProject airflow in namespace argocd")


def test_argo_app_project_structure(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_obj(builds, "AppProject", "platform")["spec"].pop("sourceRepos")
    lines = argo_lines(argo_repo, builds)
    assert "ERROR clusters/dev: AppProject/argocd/platform: spec.sourceRepos must be a non-empty list " \
           "(Argo CD denies everything without it)" in lines, lines
    assert sum("is not in AppProject platform sourceRepos (none)" in line for line in lines) == 2, lines


def test_argo_missing_values_file(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    (argo_repo / "deploy/overlays/dev/values.yaml").unlink()
    one(argo_lines(argo_repo, builds), "ERROR", "sources[0]: helm.valueFiles[1] '$values/deploy/overlays/dev/"
        "values.yaml': 'deploy/overlays/dev/values.yaml' does not exist in the repo")
    argo_app(builds)["spec"]["sources"][0]["helm"]["ignoreMissingValueFiles"] = True
    one(argo_lines(argo_repo, builds), "WARN", "does not exist in the repo")


def test_argo_values_need_a_ref_source(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_app(builds)["spec"]["sources"][1].pop("ref")
    lines = argo_lines(argo_repo, builds)
    errs = [line for line in lines if line.startswith("ERROR")]
    assert len(errs) == 2 and all("no source has `ref: values`" in e for e in errs), lines


def test_argo_values_ref_mid_path(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_app(builds)["spec"]["sources"][0]["helm"]["valueFiles"][1] = "deploy/$values/overlays/dev/values.yaml"
    one(argo_lines(argo_repo, builds), "ERROR", "helm.valueFiles[1] 'deploy/$values/overlays/dev/values.yaml': "
        "`$<ref>/` is only expanded at the start of the path")


def test_argo_relative_value_file_warns(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_app(builds)["spec"]["sources"][0]["helm"]["valueFiles"].append("values-prod.yaml")
    one(argo_lines(argo_repo, builds), "WARN", "'values-prod.yaml': a relative value file resolves inside the chart")


def test_argo_release_name(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    helm = argo_app(builds)["spec"]["sources"][0]["helm"]
    helm.pop("releaseName")
    one(argo_lines(argo_repo, builds), "ERROR", "sources[0]: helm.releaseName must be set (default is the "
        "Application name 'airflow-dev'")
    helm["releaseName"] = "a" * 41
    one(argo_lines(argo_repo, builds), "ERROR", "values: The `.Release.name` must be <= 40 characters")
    helm["releaseName"] = "Airflow_1"
    one(argo_lines(argo_repo, builds), "ERROR", "helm.releaseName 'Airflow_1' is not a DNS-1123 label")


def test_argo_chart_revision_must_be_exact(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    argo_app(builds)["spec"]["sources"][0]["targetRevision"] = "8.*"
    one(argo_lines(argo_repo, builds), "ERROR", "sources[0]: chart airflow targetRevision must pin an exact "
        "version (got '8.*')")


def test_argo_source_and_sources(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    app = argo_app(builds)
    app["spec"]["source"] = copy.deepcopy(app["spec"]["sources"][1])
    one(argo_lines(argo_repo, builds), "ERROR", "spec.source and spec.sources are both set: Argo CD ignores "
        "spec.source")


def test_argo_ref_source_with_chart_and_bad_path(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    sources = argo_app(builds)["spec"]["sources"]
    sources[0]["ref"] = "chart"
    argo_app(builds, "infrastructure")["spec"]["source"]["path"] = "deploy/base"  # values.yaml only
    lines = argo_lines(argo_repo, builds)
    errs = [line for line in lines if line.startswith("ERROR")]
    assert len(errs) == 2, lines
    assert "sources[0]: a `ref` source cannot have `chart` ('airflow')" in errs[0]
    assert "source: path 'deploy/base' has no kustomization.yaml" in errs[1]


def test_argo_git_sources_follow_the_answers(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    edit(argo_repo, ".copier-answers.yml", lambda d: d[0].update(git_repo_url="git@github.com:example/other.git"))
    lines = argo_lines(argo_repo, builds)
    errs = [line for line in lines if line.startswith("ERROR")]
    assert len(errs) == 2, lines  # infrastructure and airflow-dev
    assert all(f"repoURL '{GIT_URL}' != git_repo_url 'git@github.com:example/other.git' in .copier-answers.yml"
               in e for e in errs), errs
    edit(argo_repo, ".copier-answers.yml", lambda d: d[0].update(git_repo_url=GIT_URL))
    argo_app(builds)["spec"]["sources"][1]["targetRevision"] = "develop"
    one(argo_lines(argo_repo, builds), "ERROR", "sources[1]: targetRevision 'develop' != git_revision 'main'")


def test_argo_values_forbidden_config_key(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    edit(argo_repo, "deploy/base/values.yaml",
         lambda d: d[0]["airflow"]["config"].update(AIRFLOW__CORE__EXECUTOR="LocalExecutor"))
    one(argo_lines(argo_repo, builds), "ERROR", "Application/argocd/airflow-dev: values: Don't define "
        "`airflow.config.AIRFLOW__CORE__EXECUTOR`")


def test_argo_values_merge_order(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    """valueFiles in order, then helm.values, then helm.valuesObject; maps merge, lists replace."""
    source = argo_app(builds)["spec"]["sources"][0]
    helm = source["helm"]
    edit(argo_repo, "deploy/overlays/dev/values.yaml", lambda d: d[0].update(airflow={"fernetKey": "x"}))
    one(argo_lines(argo_repo, builds), "ERROR", "`airflow.fernetKey` must be \"\"")
    helm["values"] = "airflow:\n  fernetKey: ''\n  executor: KubernetesExecutor\n"
    one(argo_lines(argo_repo, builds), "ERROR", "If `airflow.executor=KubernetesExecutor`")
    helm["valuesObject"] = {"airflow": {"executor": "CeleryExecutor"}}
    assert argo_lines(argo_repo, builds) == []
    helm["valuesObject"]["airflow"]["extraEnv"] = []
    values, errs = values_of.argo_values(source, {"values"}, argo_repo)
    assert errs == [] and values["airflow"]["fernetKey"] == "" and values["airflow"]["extraEnv"] == []
    assert values["airflow"]["users"][0]["username"] == "admin" and values["airflow"]["executor"] == "CeleryExecutor"
    helm["values"] = "- not a mapping"
    one(argo_lines(argo_repo, builds), "ERROR", "sources[0]: helm.values must hold a YAML mapping")


def test_argo_values_missing_sealed_secret_key(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    sealed_db = argo_obj(builds, "SealedSecret", "airflow-db", "deploy/overlays/dev")
    sealed_db["spec"]["encryptedData"].pop("password")
    one(argo_lines(argo_repo, builds), "ERROR", "values: externalDatabase.passwordSecret: Secret 'airflow-db' has "
        "no key 'password'")


def test_argo_values_refs_need_the_ref_build(argo_repo: Path, builds: dict[str, list[dict[str, Any]]]) -> None:
    del builds["deploy/overlays/dev"]  # e.g. its build failed (reported there)
    one(argo_lines(argo_repo, builds), "INFO", "Secret/PVC references not checked (deploy/overlays/dev not built)")


def test_argo_hook_jobs(argo_repo: Path, builds: dict[str, list[dict[str, Any]]], chart_values: dict[str, Any]) -> None:
    edit(argo_repo, "deploy/overlays/dev/values.yaml", lambda d: d[0].update(airflow={"connectionsUpdate": False}))
    one(argo_lines(argo_repo, builds, chart_values), "ERROR", "`airflow.connectionsUpdate` must be true under Argo CD")
    edit(argo_repo, "deploy/overlays/dev/values.yaml", lambda d: d[0].update(
        airflow={"poolsUpdate": False, "dbMigrations": {"runAsJob": True}}))
    lines = argo_lines(argo_repo, builds, chart_values)
    warns = [line for line in lines if line.startswith("WARN")]
    assert len(warns) == 2 and not [line for line in lines if line.startswith("ERROR")], lines
    assert "`airflow.poolsUpdate=false` renders a Helm-hook Job" in warns[0]
    assert "`airflow.dbMigrations.runAsJob=true`" in warns[1]


def test_engine_purity(builds: dict[str, list[dict[str, Any]]]) -> None:
    issues = V.check_engine_purity(builds, "flux")
    assert len(issues) == 5 and all(i.where == "clusters/dev" and i.level == "ERROR" for i in issues), issues
    assert issues[0].message.startswith("Argo CD object in a gitops_engine: flux repo")
    assert V.check_engine_purity(builds, None) == []
    assert "neither flux nor argocd" in V.check_engine_purity(builds, "argo")[0].message


@needs_kubectl
def test_flux_object_in_argo_repo(argo_repo: Path) -> None:
    repo_obj = base_files()["deploy/base/helmrepository.yaml"]
    write(argo_repo, {"infrastructure/helmrepository.yaml": repo_obj})
    edit(argo_repo, "infrastructure/kustomization.yaml", lambda d: d[0]["resources"].append("helmrepository.yaml"))
    only_error(run(argo_repo), "ERROR infrastructure: HelmRepository/airflow-stable: Flux object in a "
               "gitops_engine: argocd repo")


@needs_kubectl
def test_argo_builds_are_root_only(argo_repo: Path) -> None:
    """Argo CD runs kustomize with its default load restrictor: no files from outside the path."""
    write(argo_repo, {"deploy/shared/extra.yaml": {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "extra"}}})
    edit(argo_repo, "deploy/overlays/dev/kustomization.yaml",
         lambda d: d[0]["resources"].append("../../shared/extra.yaml"))
    only_error(run(argo_repo), "ERROR deploy/overlays/dev: kustomize build failed:", "security;",
               "LoadRestrictionsRootOnly")
