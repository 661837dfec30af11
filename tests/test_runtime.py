"""Story: the release a user generates deploys and runs a DAG, against real components.

`copier copy` (secrets sealed for a throwaway controller key), the repository's own `make render`
of the real airflow-helm 8.9.0 chart, then the rendered pods run as the kubelet would run them
(tests/runtime): PostgreSQL 15 with SCRAM and SSL behind the chart's pgbouncer configuration,
redis-server with TLS and AUTH for ElastiCache, real Apache Airflow 2.8.4 from PyPI as scheduler
and Celery worker, DAGs published by scripts/sync_dags.py. A DAG is triggered and must succeed
on the worker. The slow tier: about a minute and a half per scenario.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from helpers.make import validate_env
from helpers.paths import shared_path, skip_or_fail
from helpers.secrets import PASSWORDS, environ
from helpers.tools import airflow_python
from runtime.deployment import RELEASE_TIMEOUT, Deployment, fernet_decrypt, make_workdir, remove_workdir
from runtime.sandbox import HarnessError, unavailable, wait_for
from runtime.scenario import BROKER_FAILURES, DAG, trust_rds
from runtime.tls import CertificateAuthority
from standins.controller import make_cert, make_key

pytestmark = [pytest.mark.slow, pytest.mark.runtime]

SCENARIOS = {
    "celery-tls-auth-production": {"rds_tls_verify": True, "production_like": True},  # HA values, PDBs, spread
    "celery-tls-noauth": {"redis_auth": False},
    "celerykubernetes-tls-auth": {"executor": "CeleryKubernetesExecutor"},
}


@pytest.fixture(scope="module")
def prerequisites() -> tuple[Path, Path]:
    reason = unavailable()
    if reason:
        skip_or_fail(reason)
    return airflow_python("2.8.4"), shared_path("charts", "airflow-8.9.0.tgz")


@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


@pytest.fixture
def sealed_repo(tmp_path: Path, copy_project, demo_answers, controller_key) -> Any:
    """`copier copy` with the answers, every secret sealed for the throwaway controller key."""
    def make(**overrides: Any) -> Path:
        cert = make_cert(controller_key, tmp_path / "cert.pem")
        with environ(PASSWORDS):
            return copy_project(tmp_path / "repo", {**demo_answers, **overrides, "sealed_secrets_cert": str(cert)})
    return make


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = make_workdir("scenario")
    yield path
    remove_workdir(path)


def bring_up(dep: Deployment, chart: Path, workloads: tuple[str, ...]) -> None:
    """What Flux does once the secrets decrypt: every workload at once; their init containers
    (check-db, wait-for-db-migrations) order them, as on a cluster."""
    trust_rds(dep.repo, dep.ca.bundle)
    dep.render(chart)
    dep.start_services()
    dep.publish_dags()
    for workload in ("airflow-pgbouncer", "airflow-db-migrations", *workloads):
        dep.start(workload)
    dep.wait_log("airflow-pgbouncer", "process up", 60)
    dep.wait_log("airflow-scheduler", "Starting the scheduler", RELEASE_TIMEOUT)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_release_runs_a_dag_on_the_celery_worker(scenario, prerequisites, sealed_repo, workdir,
                                                   controller_key) -> None:
    python, chart = prerequisites
    repo = sealed_repo(**SCENARIOS[scenario])
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ("airflow-scheduler", "airflow-worker", "airflow-sync-connections", "airflow-sync-users"))
        dep.wait_log("airflow-worker", "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        dep.wait_dag(DAG, 120)
        run_id = dep.trigger(DAG)
        dep.wait_run(DAG, run_id, 240, evidence_from=("airflow-scheduler", "airflow-worker"))

        # The task ran on the Celery worker pod, through the broker, with its result in Postgres.
        host = dep.sql(f"SELECT hostname FROM task_instance WHERE run_id = '{run_id}'")
        assert host == "airflow-worker-0", f"task ran on {host!r}, not the worker pod"
        # The worker writes the Celery result after the task marked itself success: wait for it.
        dep.wait_for_sql("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'", "1", 60)
        assert dep.redis is not None and dep.redis.stat("total_connections_received") > 0
        # DAGs came from the published tree at the rendered DAGS_FOLDER.
        folder = dep.pod("airflow-scheduler").containers[0].env["AIRFLOW__CORE__DAGS_FOLDER"]
        assert folder == "/opt/efs/dags/current"
        assert dep.sql(f"SELECT fileloc FROM dag WHERE dag_id = '{DAG}'").startswith(folder + "/")
        # Metadata through pgbouncer: SCRAM-hashed password, TLS on the pgbouncer -> RDS leg
        # (verified against the RDS CA bundle and host name where rds_tls_verify is on).
        ini = dep.objects.secrets["airflow-pgbouncer"]["pgbouncer.ini"]
        expected_mode = "verify-full" if dep.answers.get("rds_tls_verify") else "require"
        assert f"server_tls_sslmode = {expected_mode}" in ini
        user = dep.objects.secrets["airflow-db"]["username"]
        assert dep.postgres.psql(f"SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                                 f"WHERE rolname = '{user}'") == "t"
        assert dep.postgres.psql(f"SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                 f"WHERE a.usename = '{user}'") == "t"
        # The kubelet's probes pass: no restart loop after the first deploy.
        for workload in ("airflow-scheduler", "airflow-worker", "airflow-pgbouncer"):
            dep.probe(workload)
        # The sealed fernet key encrypts what Airflow stores; it reads back with the same key.
        encrypted, token = dep.connection_extra("aws_default")
        assert encrypted, "aws_default extra is stored in clear: no fernet key in effect"
        key = dep.objects.secrets["airflow-fernet-key"]["value"]
        assert json.loads(fernet_decrypt(key, token)) == {"region_name": dep.answers["aws_region"]}
        # The chart's sync-users Deployment made the admin from the values and the sealed Secret.
        admin = dep.rendered.values["airflow"]["users"][0]["username"]
        email = dep.objects.secrets["airflow-admin-user"]["email"]
        dep.wait_for_sql("SELECT username, email FROM ab_user", f"{admin}|{email}", 60)


BROKEN_BROKERS = {  # answers that do not match an ElastiCache with TLS and AUTH -> what the worker sees
    "plain-redis": ({"redis_tls": False, "redis_auth": False}, "Connection reset by peer"),
    "auth-dropped": ({"redis_tls": True, "redis_auth": False}, "Authentication required"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_BROKERS))
def test_broker_mismatch_with_elasticache_fails_clearly(case, prerequisites, sealed_repo, workdir,
                                                        controller_key) -> None:
    """The harness can fail: against an ElastiCache with TLS and AUTH, a repo speaking plain
    redis:// (or without the token) never gets a worker up, and the failure names the broker."""
    python, chart = prerequisites
    answers, evidence = BROKEN_BROKERS[case]
    repo = sealed_repo(**answers)
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env(), redis_tls=True,
                    redis_password=PASSWORDS["AIRFLOW_REDIS_PASSWORD"]) as dep:
        bring_up(dep, chart, ("airflow-scheduler", "airflow-worker"))
        with pytest.raises(HarnessError, match="the Celery worker cannot reach the broker") as failure:
            dep.wait_log("airflow-worker", "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        assert evidence in str(failure.value)


def test_kubernetes_executor_task_pod_runs_the_dag(prerequisites, sealed_repo, workdir, controller_key) -> None:
    """KubernetesExecutor: the real scheduler builds the task pod from the rendered pod template and
    submits it to the API stand-in (runtime/kubeapi.py, no cluster here); the harness then runs that
    pod as the kubelet would, and the DAG must succeed."""
    python, chart = prerequisites
    repo = sealed_repo(executor="KubernetesExecutor")
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ("airflow-scheduler", "airflow-sync-connections"))
        assert dep.redis is None and dep.rendered.find("StatefulSet", "airflow-worker") is None
        dep.wait_dag(DAG, 120)
        run_id = dep.trigger(DAG)
        wait_for("the KubernetesExecutor submits a task pod", lambda: bool(dep.task_pods()), 120,
                 evidence=lambda: dep.process("airflow-scheduler").tail(40))
        (task_pod,) = dep.task_pods()
        kubernetes_validate.validate(task_pod, "1.34.0", strict=True)
        container = task_pod["spec"]["containers"][0]
        assert container["image"] == dep.rendered.values["airflow"]["image"]["repository"] + ":" + \
            dep.rendered.values["airflow"]["image"]["tag"]
        assert container["args"][:5] == ["airflow", "tasks", "run", DAG, "hello"]
        assert task_pod["spec"]["serviceAccountName"] == dep.rendered.release["release"]
        dep.start("task-pod", obj=task_pod)  # its env, secrets and volumes must all resolve
        dep.wait_run(DAG, run_id, 240, evidence_from=("airflow-scheduler", "task-pod"))
        host = dep.sql(f"SELECT hostname FROM task_instance WHERE run_id = '{run_id}'")
        assert host == task_pod["metadata"]["name"], f"task ran on {host!r}, not in the task pod"


def test_pgbouncer_refuses_an_rds_certificate_it_cannot_verify(prerequisites, sealed_repo, workdir,
                                                                controller_key) -> None:
    """verify-full is real: with a CA bundle that did not sign the RDS certificate, pgbouncer's own
    liveness probe (psql through pgbouncer to RDS) fails, so Airflow would never reach the database."""
    python, chart = prerequisites
    repo = sealed_repo(rds_tls_verify=True)
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        other = CertificateAuthority(workdir / "other-ca", name="a CA that did not sign the RDS certificate")
        trust_rds(repo, other.bundle)
        dep.render(chart)
        dep.start_services()
        dep.start("airflow-pgbouncer")
        dep.wait_log("airflow-pgbouncer", "process up", 60)
        with pytest.raises(HarnessError, match="probe of airflow-pgbouncer") as failure:
            dep.probe("airflow-pgbouncer")
        assert "certificate verify failed" in dep.process("airflow-pgbouncer").text(), failure.value
