"""Story: the Celery broker is an ElastiCache replication group. TLS (verified) is the default, the
AUTH token is sealed when the group has one, and a token ElastiCache would refuse never gets in.
(That the broker then really works is tests/test_runtime.py's job.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_gitops.sealing.rules import check_plaintext
from helpers.copying import assert_nothing_written
from helpers.make import run_validate
from helpers.paths import load_module
from helpers.render import merged_values
from helpers.secrets import PASSWORDS
from standins.controller import make_cert, make_key

seal = load_module("template/scripts/seal.py", "broker_seal")
BAD_TOKENS = ["short-T0ken", "has/slash-0123456789", 'has"quote-0123456789', "has@at-0123456789",
              "has space 0123456789", "has$dollar-0123456789", "x" * 129]
BAD_DB_PASSWORDS = ["has/slash-123", "has'quote-123", "has$dollar-1", "back\\slash1", "has space-1", "short"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> Path:
    return make_cert(make_key(2048), tmp_path_factory.mktemp("cert") / "cert.pem")


def test_tls_and_auth_by_default(tmp_path, copy_project, demo_answers) -> None:
    values = merged_values(copy_project(tmp_path / "repo", demo_answers), "dev")["externalRedis"]
    assert values["properties"] == ("?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt"
                                    "&ssl_check_hostname=true")
    assert (values["passwordSecret"], values["passwordSecretKey"]) == ("airflow-redis", "password")


def test_tls_without_auth_has_no_token_anywhere(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "redis_auth": False})
    values = merged_values(repo, "dev")["externalRedis"]
    assert "passwordSecret" not in values and values["properties"].startswith("?ssl_cert_reqs=required")
    assert not (repo / "deploy/overlays/dev/secrets/airflow-redis.yaml").exists()
    result = run_validate(repo)
    assert result.returncode == 0 and "airflow-redis" not in result.stdout, result.stdout


def test_auth_without_tls_is_refused(tmp_path, copy_project, demo_answers) -> None:
    dst = tmp_path / "dst"
    with pytest.raises(ValueError, match=r"'redis_auth'.*needs redis_tls: ElastiCache only accepts an AUTH token"):
        copy_project(dst, {**demo_answers, "redis_tls": False, "redis_auth": True})
    assert_nothing_written(dst)


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_a_token_elasticache_refuses_is_rejected_at_copy_time(tmp_path, copy_project, demo_answers, cert,
                                                              monkeypatch, token) -> None:
    for name, value in PASSWORDS.items():
        monkeypatch.setenv(name, value)
    dst = tmp_path / "dst"
    with pytest.raises(ValueError) as excinfo:  # typed at the (hidden) prompt
        copy_project(dst, {**demo_answers, "sealed_secrets_cert": str(cert), "redis_password": token})
    assert "'redis_password'" in str(excinfo.value) and "ElastiCache AUTH token is 16-128" in str(excinfo.value)
    assert_nothing_written(dst)
    monkeypatch.setenv("AIRFLOW_REDIS_PASSWORD", token)  # or from the environment
    with pytest.raises(ValueError, match=r"'redis_password'.*ElastiCache AUTH token is 16-128"):
        copy_project(dst, {**demo_answers, "sealed_secrets_cert": str(cert)})
    assert_nothing_written(dst)


@pytest.mark.parametrize("password", BAD_DB_PASSWORDS)
def test_a_db_password_the_chart_would_mangle_is_rejected(password: str) -> None:
    assert "breaks a rule: the RDS password is 8-128" in check_plaintext("airflow-db", "password", password)


def test_make_seal_refuses_a_bad_token_and_keeps_the_file(tmp_path, copy_project, demo_answers, cert) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    path = repo / "deploy/overlays/dev/secrets/airflow-redis.yaml"
    before = path.read_text()
    env = dict(os.environ, AIRFLOW_REDIS_PASSWORD="has/slash-0123456789", SEALED_SECRETS_CERT=str(cert))
    result = subprocess.run(["make", "-s", "-C", str(repo), "seal", "ENV=dev", "SECRET=airflow-redis",
                             f"TOOLS_PYTHON={sys.executable}"], env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "AIRFLOW_REDIS_PASSWORD: airflow-redis/password breaks a rule: an ElastiCache AUTH token" in result.stderr
    assert path.read_text() == before
