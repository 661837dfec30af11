"""The values we hand to airflow-helm 8.9.0 are right for that chart (REFERENCE.md §1).

The chart cannot be downloaded here, so we test against its facts: its default
values.yaml (every key we set must exist there) and its validation rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops import validate  # imported before any copy: copier's hooks swap airflow_gitops
from airflow_gitops.facts import DAG_CLAIM
from helpers.paths import ROOT, shared_path
from helpers.render import merged_values

VARIANTS = {
    "celery": {},
    "kubernetes": {"executor": "KubernetesExecutor"},
    "celerykubernetes": {"executor": "CeleryKubernetesExecutor", "web_hostname": ""},
}
# Maps whose keys are free: every `{}` default, plus these (REFERENCE.md §1.2).
EXTRA_OPEN = {"airflow.defaultSecurityContext", "postgresql.master.podAnnotations",
              "redis.master.podAnnotations", "redis.slave.podAnnotations"}
FORBIDDEN_CONFIG = {
    f"AIRFLOW__{key}{suffix}"
    for key in ("CORE__EXECUTOR", "CORE__DAGS_FOLDER", "CELERY__BROKER_URL", "CELERY__RESULT_BACKEND",
                "CORE__SQL_ALCHEMY_CONN", "DATABASE__SQL_ALCHEMY_CONN")
    for suffix in ("", "_CMD")
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def generated(request, tmp_path_factory, copy_project, demo_answers) -> tuple[dict[str, Any], dict[str, Any]]:
    answers = {**demo_answers, **VARIANTS[request.param]}
    repo = copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers)
    return merged_values(repo, "dev"), answers


def key_paths(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        out.append((path, value))
        if isinstance(value, dict):
            out.extend(key_paths(value, path + "."))
    return out


def unknown_paths(values: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    known = dict(key_paths(defaults))
    open_maps = {p for p, v in known.items() if v == {}} | EXTRA_OPEN
    return [
        path for path, _ in key_paths(values)
        if path not in known and not any(path.startswith(m + ".") for m in open_maps)
    ]


@pytest.fixture(scope="module")
def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load(shared_path("chart", "airflow-8.9.0-values.yaml").read_text())


def test_every_key_path_exists_in_chart_defaults(generated, chart_defaults) -> None:
    values, _ = generated
    unknown = unknown_paths(values, chart_defaults)
    assert unknown == [], f"keys absent from chart 8.9.0 values.yaml (Helm would ignore them): {unknown}"


def test_a_misspelled_key_is_caught(generated, chart_defaults) -> None:
    """The key-path check can fail: `worker` (for `workers`) and a typo under a closed map are found."""
    values, _ = generated
    broken = {**values, "worker": {"enabled": True}, "dags": {**values["dags"], "pth": "/x"}}
    assert sorted(unknown_paths(broken, chart_defaults)) == ["dags.pth", "worker", "worker.enabled"]
    # ...while keys under open maps (airflow.config) are free.
    assert unknown_paths({"airflow": {"config": {"AIRFLOW__ANY__KEY": "1"}}}, chart_defaults) == []


def test_chart_validation_rules_hold(generated) -> None:
    values, answers = generated
    airflow = values["airflow"]
    assert len(answers["project_name"]) <= 40
    assert airflow["executor"] in ("CeleryExecutor", "CeleryKubernetesExecutor", "KubernetesExecutor")
    assert airflow["image"]["tag"].startswith("2.")
    assert not FORBIDDEN_CONFIG & set(airflow["config"])
    assert values["postgresql"] == {"enabled": False}
    assert values["externalDatabase"]["host"] == answers["rds_host"] != "localhost"
    assert values["externalDatabase"]["type"] == "postgres"
    assert values["redis"] == {"enabled": False}
    if airflow["executor"] == "KubernetesExecutor":
        assert values["workers"]["enabled"] is False and values["flower"]["enabled"] is False
        assert "externalRedis" not in values
    else:
        assert values["workers"]["enabled"] is True
        assert values["externalRedis"]["host"] == answers["redis_host"] != "localhost"
        assert values["externalRedis"]["port"] == answers["redis_port"]


def test_the_generator_validator_agrees(generated) -> None:
    """The generated repo's own checker reports no chart-rule violation for these values."""
    values, answers = generated
    assert validate.check_airflow_values(values, answers["project_name"]) == []


def test_secrets_never_in_values(generated) -> None:
    values, _ = generated
    airflow = values["airflow"]
    assert airflow["fernetKey"] == "" and airflow["webserverSecretKey"] == ""
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in airflow["extraEnv"]}
    assert env["AIRFLOW__CORE__FERNET_KEY"] == {"name": "airflow-fernet-key", "key": "value"}
    assert env["AIRFLOW__WEBSERVER__SECRET_KEY"] == {"name": "airflow-webserver-secret-key", "key": "value"}
    db = values["externalDatabase"]
    assert "password" not in db and "user" not in db
    assert (db["passwordSecret"], db["userSecret"]) == ("airflow-db", "airflow-db")
    # No admin/admin: every user field that matters comes from a Secret template.
    for user in airflow["users"]:
        assert re.fullmatch(r"\$\{[A-Z_]+\}", user["password"])
        assert user["password"].strip("${}") in airflow["usersTemplates"]


def test_dags_from_efs_current(generated) -> None:
    values, _ = generated
    assert values["dags"]["path"] == "/opt/efs/dags/current"
    assert values["dags"]["persistence"]["enabled"] is False
    assert values["dags"]["gitSync"]["enabled"] is False
    mounts = values["airflow"]["extraVolumeMounts"]
    volumes = {v["name"]: v for v in values["airflow"]["extraVolumes"]}
    assert [m["mountPath"] for m in mounts] == ["/opt/efs"]
    assert volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"] == DAG_CLAIM
    # logs stay off the EFS mount, so the chart's log cleanup rules do not bite (rule 8/9)
    assert not values["logs"].get("path", "/opt/airflow/logs").startswith("/opt/efs")


def test_s3_logging_and_irsa(generated) -> None:
    values, answers = generated
    config = values["airflow"]["config"]
    assert config["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert config["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "aws_default"
    assert config["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == (
        f"s3://{answers['s3_log_bucket']}/{answers['s3_log_prefix']}"
    )
    deprecated = [k for k in config if k.startswith(("AIRFLOW__CORE__REMOTE", "AIRFLOW__KUBERNETES_ENVIRONMENT"))]
    assert deprecated == []
    (conn,) = values["airflow"]["connections"]
    assert conn["id"] == "aws_default" and conn["type"] == "aws"
    assert yaml.safe_load(conn["extra"]) == {"region_name": answers["aws_region"]}
    assert not {"login", "password"} & set(conn)
    annotations = values["serviceAccount"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": answers["irsa_role_arn"]}


def test_pgbouncer_fits_rds(generated) -> None:
    values, _ = generated
    assert values["pgbouncer"]["enabled"] is True
    assert values["pgbouncer"]["authType"] == "scram-sha-256"
    assert values["pgbouncer"]["serverSSL"]["mode"] in ("require", "verify-ca", "verify-full")


def test_extra_pip_packages_from_answer(tmp_path: Path, copy_project, demo_answers) -> None:
    pkgs = ['apache-airflow-providers-slack[common.sql]==8.6.0; python_version >= "3.8"']
    repo = copy_project(tmp_path / "repo", {**demo_answers, "extra_pip_packages": pkgs})
    assert merged_values(repo, "dev")["airflow"]["extraPipPackages"] == pkgs


def test_ingress_only_when_hostname(generated) -> None:
    values, answers = generated
    if answers["web_hostname"]:
        assert values["ingress"]["enabled"] is True
        assert values["ingress"]["web"]["host"] == answers["web_hostname"]
        assert values["ingress"]["web"].get("path", "") == ""
    else:
        assert "ingress" not in values


def test_shipped_key_paths_are_the_real_charts() -> None:
    """scripts/chart_keys/airflow-8.9.0.json is the key skeleton of the chart's own values.yaml."""
    import json
    import tarfile

    with tarfile.open(shared_path("charts", "airflow-8.9.0.tgz")) as tar:
        values = yaml.safe_load(tar.extractfile("airflow/values.yaml"))  # type: ignore[arg-type]
    shipped = json.loads((ROOT / "template/scripts/chart_keys/airflow-8.9.0.json").read_text())
    assert shipped == validate.key_skeleton(values)
    assert shipped["airflow"]["fernetKey"] is None  # no public default is carried into repos
