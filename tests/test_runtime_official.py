"""Story: the default release (the official Apache Airflow chart, Airflow 3) deploys and runs a DAG,
against real components, on every (chart version, Airflow release) pair facts.py declares proven.

`copier copy` with the official chart (secrets sealed for a throwaway controller key), the
repository's own `make render` of the real chart from ../shared, then the rendered pods run as
the kubelet would run them (tests/runtime): PostgreSQL 15 with SCRAM and SSL behind the pgbouncer.ini
this repository seals, redis-server with TLS and AUTH for ElastiCache, real Apache Airflow from
PyPI as migration Job, api-server, scheduler, dag-processor, triggerer and Celery worker (which runs
the task through the api-server's Execution API), DAGs published by scripts/sync_dags.py.

The full story runs on the newest release proven on each chart (FULL); every other proven release
gets the smoke (SMOKE: migrations, the api-server healthy, one task on the worker), ~2 minutes less.
The other stories run on the default pair new copies get.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from airflow_gitops import facts
from airflow_gitops.sealing.crypto import seal_value
from helpers.chart_switch import FERNET, community_repo, switch_to_official
from helpers.copying import change_answers, commit_all
from helpers.make import make_upgrade, run_make, validate_env
from helpers.official_release import DB_FAILURES, api_port, bring_up, healthy, live_release, name, runtime, sealed_copy
from helpers.paths import chart_tgz
from helpers.secrets import PASSWORDS
from helpers.tools import airflow_python
from runtime import keda
from runtime.deployment import MIGRATED, RELEASE_TIMEOUT, Deployment, make_workdir, remove_workdir
from runtime.sandbox import HarnessError, wait_for
from runtime.scenario import BROKER_FAILURES, DAG, trust_rds
from standins.controller import make_key, unseal_object

pytestmark = [pytest.mark.slow, pytest.mark.runtime]

DEFAULT = facts.chart("official")
AIRFLOW = DEFAULT.default_tag  # what new copies run
# (chart version, Airflow release): each release facts lists as proven on each official chart.
PROVEN = [(c.version, release) for c in facts.CHARTS.values() if c.flavor == "official" for release in c.proven]
FULL = [(c.version, c.proven[-1]) for c in facts.CHARTS.values() if c.flavor == "official"]
SMOKE = [pair for pair in PROVEN if pair not in FULL]
@pytest.fixture(scope="module")
def prerequisites() -> tuple[Path, Path]:
    return runtime(DEFAULT.version, AIRFLOW)


def pair_id(pair: tuple[str, str]) -> str:
    return f"chart-{pair[0]}-airflow-{pair[1]}"


@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


@pytest.fixture
def workdir():
    path = make_workdir("official")
    yield path
    remove_workdir(path)


@pytest.fixture
def official_repo(tmp_path: Path, copy_project, official_answers, controller_key) -> Any:
    def make(**overrides: Any) -> Path:
        return sealed_copy(copy_project, official_answers, controller_key, tmp_path,
                           **{"rds_tls_verify": True, **overrides})
    return make


# A path the api-server's access log records: Airflow 3.2+ logs requests in its own middleware
# (api_fastapi/common/http_access_log.py), which leaves out the health endpoint.
LOGGED_PATH = "/api/v2/version"


def trusts_the_alb(dep: Deployment) -> bool:
    """A request as the ALB forwards it (X-Forwarded-Proto: https, the client in X-Forwarded-For):
    the api-server's access log names that client only if it applies the forwarded headers, the
    same middleware that gives the request its https scheme (Secure cookies, redirects). The answer
    itself may be a refusal (no token): the log line is what counts."""
    client = "10.0.12.34"
    code = ("import urllib.error, urllib.request\ntry:\n    urllib.request.urlopen(urllib.request.Request("
            f"'http://127.0.0.1:{api_port(dep)}{LOGGED_PATH}', headers="
            f"{{'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '{client}'}}), timeout=5).read()\n"
            "except urllib.error.HTTPError as e:\n    print(e.code)")
    proc = dep.exec(name(dep, "api-server"), ["python", "-c", code], timeout=30)
    if proc.returncode != 0:
        raise HarnessError(f"request failed: {proc.stderr[-500:]}")
    dep.wait_log(name(dep, "api-server"), f"{client}:", 30)
    return True


def pinned(pair: tuple[str, str]) -> dict[str, str]:
    return {"chart_version": pair[0], "airflow_image_tag": pair[1]}


@pytest.mark.parametrize("pair", FULL, ids=pair_id)
def test_airflow3_release_runs_a_dag_on_the_celery_worker(pair, official_repo, workdir, controller_key) -> None:
    python, chart = runtime(*pair)
    repo = official_repo(keda_autoscaling=True, metrics="prometheus-operator", production_like=True, **pinned(pair))
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, before=capture_statsd)
        dep.start(name(dep, "create-user"))
        dep.wait_log(name(dep, "worker"), "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        wait_for("the api-server reports healthy", lambda: healthy(dep), RELEASE_TIMEOUT,
                 evidence=lambda: dep.process(name(dep, "api-server")).tail(40))
        assert trusts_the_alb(dep), "behind the ALB the api-server must see https"
        assert async_engine_works(dep), "the api-server's async engine (asyncpg) reaches the database"
        dep.wait_dag(DAG, 180)
        run_id = dep.trigger(DAG)
        dep.wait_run(DAG, run_id, 300, evidence_from=(name(dep, "scheduler"), name(dep, "worker"),
                                                      name(dep, "api-server")))
        # The task ran in the Celery worker pod, reported through the api-server's Execution API.
        worker = dep.pod(name(dep, "worker")).name
        host = dep.sql(f"SELECT hostname FROM task_instance WHERE run_id = '{run_id}'")
        assert host == dep.cluster.ip_of(worker), f"task ran on {host!r}, not the worker pod"
        # A running task's log comes from its worker's log server at the host the task recorded: the
        # pod's address answers; its name would not resolve (a Deployment's pod has no DNS record).
        assert log_server_answer(dep, host).startswith("HTTP "), log_server_answer(dep, host)
        assert "unreachable: <urlopen error [Errno -" in log_server_answer(dep, worker)  # getaddrinfo failed
        assert dep.redis is not None and dep.redis.stat("total_connections_received") > 0
        # DAGs came from the published release, through the repository's bundle: the DAG's version is it.
        assert dep.sql(f"SELECT bundle_name, bundle_version FROM dag WHERE dag_id = '{DAG}'") == \
            f"{facts.DAG_BUNDLE_NAME}|{live_release(dep)}"
        # Each as the user its image and securityContext give (pgbouncer's image: `nobody`, by number).
        assert dep.user_of(name(dep, "pgbouncer"), "pgbouncer") == (facts.NOBODY_UID, facts.NOBODY_UID)
        assert dep.user_of(name(dep, "worker")) == (facts.AIRFLOW_UID, facts.AIRFLOW_GID)
        # pgbouncer -> RDS over verified TLS, SCRAM-hashed password.
        user, _ = dep.db_login()
        assert dep.postgres.psql(f"SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                 f"WHERE a.usename = '{user}'") == "t"
        # The create-user Job made the admin from the sealed Secret (FAB auth manager).
        email = dep.objects.secrets["airflow-admin-user"]["email"]
        dep.wait_job(name(dep, "create-user"), RELEASE_TIMEOUT)
        assert dep.sql("SELECT username, email FROM ab_user") == f"admin|{email}"
        assert keda_query(dep) == 0, "nothing queued or running once the run succeeded"
        # Every Airflow metric an alert reads is one real Airflow sends, named as the chart's
        # statsd-exporter mappings name it.
        wait_for("Airflow sends the metrics the alerts read", lambda: not alert_metrics_missing(dep), 120,
                 evidence=lambda: f"missing: {alert_metrics_missing(dep)}; seen: {sorted(statsd_names(dep))[:40]}")


@pytest.mark.parametrize("pair", SMOKE, ids=pair_id)
def test_airflow3_release_migrates_serves_and_runs_a_task(pair, official_repo, workdir, controller_key) -> None:
    """The smoke on a release that is not its chart's newest: the migration Job, the api-server
    healthy on the database, one DAG run on the Celery worker."""
    python, chart = runtime(*pair)
    repo = official_repo(**pinned(pair))
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart)
        dep.wait_log(name(dep, "run-airflow-migrations"), MIGRATED, RELEASE_TIMEOUT,
                     fatal=DB_FAILURES)
        dep.wait_log(name(dep, "worker"), "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        wait_for("the api-server reports healthy", lambda: healthy(dep), RELEASE_TIMEOUT,
                 evidence=lambda: dep.process(name(dep, "api-server")).tail(40))
        dep.wait_dag(DAG, 180)
        run_id = dep.trigger(DAG)
        dep.wait_run(DAG, run_id, 300, evidence_from=(name(dep, "scheduler"), name(dep, "worker"),
                                                      name(dep, "api-server")))
        host = dep.sql(f"SELECT hostname FROM task_instance WHERE run_id = '{run_id}'")
        assert host == dep.cluster.ip_of(dep.pod(name(dep, "worker")).name), f"task ran on {host!r}, not the worker"


def log_server_answer(dep: Deployment, host: str) -> str:
    """GET the worker's log server at `host` from inside the api-server pod, as the api-server does for
    a running task's log: "HTTP <status>" once reached (unsigned, so refused), else why it was not."""
    url = f"http://{host}:{facts.LOG_SERVER_PORTS[0]}/log/harness.log"
    code = ("import urllib.error, urllib.request\ntry:\n    urllib.request.urlopen("
            f"{url!r}, timeout=5)\n    print('HTTP 200')\nexcept urllib.error.HTTPError as e:\n"
            "    print(f'HTTP {e.code}')\nexcept OSError as e:\n    print(f'unreachable: {e}')")
    proc = dep.exec(name(dep, "api-server"), ["python", "-c", code], timeout=30)
    return (proc.stdout.strip().splitlines() or [proc.stderr[-300:]])[-1]


def admin_password_is(dep: Deployment, password: str) -> bool:
    """The FAB user `admin` logs in with `password` (its stored hash, checked as FAB checks it)."""
    stored = dep.sql("SELECT password FROM ab_user WHERE username = 'admin'")
    code = "import sys; from werkzeug.security import check_password_hash as c; print(c(sys.argv[1], sys.argv[2]))"
    proc = subprocess.run([str(dep.airflow_python), "-c", code, stored, password], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "True"


def test_a_resealed_admin_password_takes_effect(prerequisites, official_repo, workdir, controller_key,
                                                tmp_path) -> None:
    """Day 2: the admin password is sealed again, and the next create-user Job (a new one at the next
    upgrade or sync) sets it on the existing user: `users create` alone exits 0 and keeps the old one."""
    python, chart = prerequisites
    repo = official_repo()
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ())
        dep.start(name(dep, "create-user"))
        dep.wait_job(name(dep, "create-user"), RELEASE_TIMEOUT)
        assert admin_password_is(dep, PASSWORDS["AIRFLOW_ADMIN_PASSWORD"])
        new = "admin-Resealed-7f3e91c2"
        env = {"SEALED_SECRETS_CERT": str(tmp_path / "cert.pem"), **PASSWORDS, "AIRFLOW_ADMIN_PASSWORD": new}
        resealed = run_make(repo, "seal", "ENV=dev", "SECRET=airflow-admin-user", env=env)
        assert resealed.returncode == 0, resealed.stdout + resealed.stderr
        dep.rerun_job(name(dep, "create-user"), chart)
        assert admin_password_is(dep, new), "the re-sealed admin password did not reach the user"
        assert not admin_password_is(dep, PASSWORDS["AIRFLOW_ADMIN_PASSWORD"])


def test_the_harness_refuses_an_airflow_that_is_not_the_rendered_release(prerequisites, official_repo, workdir,
                                                                          controller_key) -> None:
    """The harness can fail: a repo answered with another release than the installed Airflow it is given
    (a proof that would run the wrong Airflow) is refused at render, naming both."""
    python, _ = prerequisites
    other = next(pair for pair in PROVEN if pair[1] != AIRFLOW)
    repo = official_repo(**pinned(other))
    refused = rf"deploys apache/airflow {other[1]}, but this Deployment runs Airflow {AIRFLOW}"
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep, \
            pytest.raises(HarnessError, match=refused):
        dep.render(chart_tgz("official", other[0]))


def async_engine_works(dep: Deployment) -> bool:
    """Airflow 3's second engine (settings.async_engine: postgresql+asyncpg, its URL derived from the
    sealed metadata connection) connects from the api-server pod: asyncpg refuses libpq-only URL
    parameters such as sslmode (TypeError), which would fail every async endpoint."""
    code = ("import asyncio; from sqlalchemy import text; from airflow import settings\n"
            "async def main():\n"
            "    async with settings.async_engine.connect() as c:\n"
            "        print('async', (await c.execute(text('SELECT 1'))).scalar())\n"
            "asyncio.run(main())")
    proc = dep.exec(name(dep, "api-server"), ["python", "-c", code], timeout=60)
    if proc.returncode != 0 or "async 1" not in proc.stdout:
        raise HarnessError(f"the async engine cannot connect: {(proc.stdout + proc.stderr)[-1500:]}")
    return True


def capture_statsd(dep: Deployment) -> None:
    """The statsd-exporter's ingest side: a UDP socket at the Service's port, logging what arrives
    (the exporter itself is on no registry reachable here)."""
    code = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.bind(('127.0.0.1', {facts.STATSD_PORTS['ingest']}))\n"
            "while True: sys.stdout.write(s.recv(65535).decode(errors='replace') + '\\n'); sys.stdout.flush()")
    dep.statsd = dep.sandbox.spawn("statsd-ingest", ["python3", "-u", "-c", code])


def statsd_names(dep: Deployment) -> set[str]:
    return {line.split(":", 1)[0] for line in dep.statsd.text().splitlines() if ":" in line}


def prometheus_name(statsd_name: str, mappings: list[dict]) -> str:
    """statsd_exporter's naming: the first matching mapping (glob: `*` is one dot-free part), else
    the name with every character Prometheus does not allow made `_`."""
    for m in mappings:
        pattern = m["match"] if m.get("match_type") == "regex" else \
            "^" + re.escape(m["match"]).replace(r"\*", "([^.]+)") + "$"
        if re.fullmatch(pattern, statsd_name):
            return re.sub(pattern, m["name"].replace("$", "\\"), statsd_name)
    return re.sub(r"[^a-zA-Z0-9_]", "_", statsd_name)


def alert_metrics_missing(dep: Deployment) -> list[str]:
    mappings = yaml.safe_load(dep.rendered.get("ConfigMap", name(dep, "statsd"))["data"]["mappings.yml"])["mappings"]
    (rule,) = dep.rendered.kinds("PrometheusRule")
    wanted = {m for r in rule["spec"]["groups"][0]["rules"] for m in re.findall(r"\b(airflow_\w+)\{", r["expr"])}
    assert len(wanted) == 3, wanted  # heartbeat, import errors, queued tasks (pgbouncer's come from its exporter)
    seen = {prometheus_name(n, mappings) for n in statsd_names(dep)}
    return sorted(wanted - seen)


def keda_query(dep: Deployment) -> int:
    """The ScaledObject's query on the connection KEDA takes from the worker container's env,
    through pgbouncer, prepared as KEDA's pgx prepares it, over more than one server connection."""
    polls = keda.poll_across_servers(dep, name(dep, "worker"), "worker")
    assert polls.error is None, f"KEDA's poll failed after {len(polls.values)} polls: {polls.error}"
    assert len(set(polls.values)) == 1, polls.values
    return int(polls.values[0])


@pytest.mark.parametrize("sealed", ["as-sealed", "without-max-prepared-statements"])
def test_keda_polls_through_pgbouncer_with_prepared_statements(prerequisites, official_repo, workdir,
                                                               controller_key, sealed) -> None:
    """KEDA's postgresql scaler prepares its query (pgx). Through the rendered pgbouncer, run as the
    chart's pgbouncer image runs it (1.23.1: prepared statements only with max_prepared_statements),
    every poll answers, also those pgbouncer serves from a server connection the query was not
    prepared on: RDS with the tables the query reads, the pgbouncer pod, no Airflow. Without the
    setting (the pgbouncer.ini this template sealed before the fix) a poll must fail as pgx's does."""
    python, chart = prerequisites
    repo = official_repo(keda_autoscaling=True)
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        trust_rds(dep.repo, dep.ca.bundle)
        dep.render(chart)
        dep.start_services()
        user, _ = dep.db_login()
        _, query = keda.scaler(dep.rendered)
        # task_instance as Airflow's schema has the columns the query reads, 17 tasks waiting.
        dep.sql(f"CREATE TABLE task_instance (state VARCHAR(20), queue VARCHAR(256)); "
                f"ALTER TABLE task_instance OWNER TO \"{user}\"; "
                "INSERT INTO task_instance SELECT 'queued', 'default' FROM generate_series(1, 17);")
        expected = float(dep.sql(query))
        if sealed != "as-sealed":
            ini = next(data for data in dep.objects.secrets.values() if "pgbouncer.ini" in data)
            ini["pgbouncer.ini"] = "\n".join(line for line in ini["pgbouncer.ini"].splitlines()
                                              if not line.startswith("max_prepared_statements"))
        dep.start(name(dep, "pgbouncer"), skip=("metrics-exporter",))
        dep.wait_log(name(dep, "pgbouncer"), "process up", 60)
        polls = keda.poll_across_servers(dep, name(dep, "worker"), "worker")
        log = dep.process(name(dep, "pgbouncer")).text()
        if sealed != "as-sealed":
            # psycopg as pgx: prepared statement "_pg3_0" does not exist, on the second server connection
            assert polls.error is not None and "does not exist" in polls.error, polls
            return
        assert polls.error is None, f"poll {len(polls.values) + 1} failed: {polls.error}\n{log[-1500:]}"
        assert polls.values == [expected] * (keda.HELD_POLLS + 2)
        # pgbouncer served the polls from more than one RDS connection (one held by the transaction).
        backends = dep.sql(f"SELECT pid FROM pg_stat_activity WHERE usename = '{user}' AND backend_type = "
                           "'client backend'").split()
        assert len(backends) >= 2 and str(polls.held_backend) in backends, (backends, polls)


def test_moved_endpoints_reach_the_release_once_resealed(prerequisites, official_repo, workdir, controller_key,
                                                         tmp_path) -> None:
    """After go-live the RDS instance and the ElastiCache group move, and RDS verification goes on:
    `copier update` with the new answers, `make seal` of what validate names, and the release runs on
    the new endpoints (pgbouncer verifying the new RDS host, the worker on the new broker)."""
    python, chart = prerequisites
    repo = official_repo(rds_tls_verify=False)
    commit_all(repo, "sealed")
    moved = {"rds_host": "airflow-moved.zyxwvutsrqpo.eu-west-1.rds.amazonaws.com",
             "redis_host": "airflow-moved.fedcba.ng.0001.euw1.cache.amazonaws.com", "rds_tls_verify": True}
    changed = change_answers(repo, **moved)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    env = {"SEALED_SECRETS_CERT": str(tmp_path / "cert.pem"), **PASSWORDS}
    resealed = run_make(repo, "seal", "ENV=dev", "SECRET=airflow-broker-url", env=env)
    assert resealed.returncode == 0, resealed.stdout + resealed.stderr
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        assert (dep.answers["rds_host"], dep.answers["redis_host"]) == (moved["rds_host"], moved["redis_host"])
        bring_up(dep, chart, ("worker",))
        dep.wait_log(name(dep, "run-airflow-migrations"), MIGRATED, RELEASE_TIMEOUT,
                     fatal=DB_FAILURES)
        dep.wait_log(name(dep, "worker"), "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        user, _ = dep.db_login()
        assert dep.postgres.psql(f"SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                 f"WHERE a.usename = '{user}'") == "t"
        assert "server_tls_sslmode = verify-full" in dep.objects.secrets["airflow-pgbouncer"]["pgbouncer.ini"]


def test_a_broker_url_without_the_token_fails_naming_the_broker(prerequisites, official_repo, workdir,
                                                                 controller_key) -> None:
    """The harness can fail: the broker URL sealed without the AUTH token never gets a worker up
    against an ElastiCache with AUTH, and the failure names the broker."""
    python, chart = prerequisites
    repo = official_repo(redis_auth=False)
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env(), redis_tls=True,
                    redis_password=PASSWORDS["AIRFLOW_REDIS_PASSWORD"]) as dep:
        bring_up(dep, chart, ("worker",))
        with pytest.raises(HarnessError, match="the Celery worker cannot reach the broker") as failure:
            dep.wait_log(name(dep, "worker"), "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        assert "Authentication required" in str(failure.value)


def test_a_metadata_secret_with_the_wrong_password_fails_the_migrations(prerequisites, official_repo, workdir,
                                                                         controller_key) -> None:
    """A sealed metadata connection whose password is not pgbouncer's: the migration Job cannot log
    in, and the failure says so."""
    python, chart = prerequisites
    repo = official_repo()
    path = repo / "deploy/overlays/dev/secrets/airflow-metadata.yaml"
    doc = yaml.safe_load(path.read_text())
    url = doc["metadata"]["annotations"][facts.COMPOSE_ANNOTATION + "connection"]
    wrong = url.replace("${AIRFLOW_DB_PASSWORD}", "not-the-password")
    doc["spec"]["encryptedData"]["connection"] = seal_value(
        controller_key.public_key(), wrong.encode(), namespace=doc["metadata"]["namespace"], name="airflow-metadata")
    path.write_text(yaml.safe_dump(doc))
    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ())
        job = name(dep, "run-airflow-migrations")
        with pytest.raises(HarnessError, match="cannot log in"):
            dep.wait_log(job, MIGRATED, 120, fatal=DB_FAILURES)


LEGACY_AIRFLOW = "2.8.4"  # the community flavor's default image
LEGACY_SECRET = "s3cr3t-from-airflow-2"


def earlier_airflow(dep: Deployment, python: Path, fernet_key: str, *args: str) -> str:
    """An earlier release's Airflow CLI on the same RDS (straight to it, over SSL), with the sealed fernet
    key and the repository's DAGs: the database as that release left it."""
    user, password = dep.db_login()
    a = dep.answers
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(dep.workdir / f"airflow-{python.parent.parent.name}"),
           "AIRFLOW__CORE__FERNET_KEY": fernet_key, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(dep.repo / "dags"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":
           f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{a['rds_port']}/"
           f"{a['rds_database']}?sslmode=require"}
    proc = dep.sandbox.run([str(python), "-m", "airflow", *args], env=env, timeout=300)
    if proc.returncode != 0:
        raise HarnessError(f"airflow {' '.join(args)} ({python}) failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout


def test_an_airflow2_database_upgrades_in_place_and_keeps_its_connections(prerequisites, tmp_path, copy_project,
                                                                          demo_answers, controller_key,
                                                                          workdir) -> None:
    """The README's in-place runbook on real components: a community repo's Airflow 2 database (a
    connection encrypted with its fernet key), the repo switched with copier update + make seal, then
    the official release's migration Job upgrades the database to Airflow 3, a DAG runs, and Airflow 3
    decrypts the old connection with the fernet key the switch kept."""
    python, chart = prerequisites
    legacy = airflow_python(LEGACY_AIRFLOW)
    repo = community_repo(tmp_path, copy_project, demo_answers, controller_key)
    fernet_key = unseal_object(controller_key, yaml.safe_load((repo / FERNET).read_text()))["value"]
    switched = switch_to_official(repo)
    assert switched.returncode == 0, switched.stdout + switched.stderr
    revisions: dict[str, str] = {}

    def airflow2_database(dep: Deployment) -> None:
        earlier_airflow(dep, legacy, fernet_key, "db", "migrate")
        earlier_airflow(dep, legacy, fernet_key, "connections", "add", "legacy_api", "--conn-type", "http",
                 "--conn-host", "api.example.com", "--conn-password", LEGACY_SECRET)
        revisions["airflow2"] = dep.sql("SELECT version_num FROM alembic_version")

    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ("scheduler", "dag-processor", "worker", "api-server"), before=airflow2_database)
        dep.wait_log(name(dep, "run-airflow-migrations"), MIGRATED, RELEASE_TIMEOUT)
        revisions["airflow3"] = dep.sql("SELECT version_num FROM alembic_version")
        print(f"metadata database: Airflow {LEGACY_AIRFLOW} {revisions['airflow2']} -> {revisions['airflow3']}")
        assert revisions["airflow3"] != revisions["airflow2"]
        dep.wait_log(name(dep, "worker"), "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        dep.wait_dag(DAG, 180)
        run_id = dep.trigger(DAG)
        dep.wait_run(DAG, run_id, 300, evidence_from=(name(dep, "scheduler"), name(dep, "worker")))
        got = dep.exec(name(dep, "scheduler"), ["airflow", "connections", "get", "legacy_api", "-o", "json"])
        assert got.returncode == 0, got.stderr[-2000:]
        (conn,) = json.loads(got.stdout[got.stdout.index("["):])
        assert conn["password"] == LEGACY_SECRET and conn["is_encrypted"] in (True, "True")


PREVIOUS = ("1.20.0", "3.1.8")  # the previous default: where the upgrade lane starts
OLD_SECRET = "s3cr3t-from-airflow-3-1"


def test_make_upgrade_from_the_previous_default_migrates_in_place(tmp_path, official_repo, controller_key,
                                                                  workdir) -> None:
    """`make upgrade` from (chart 1.20.0, Airflow 3.1.8) to the newest proven pair, on real components:
    a database Airflow 3.1.8 created and used (a finished DAG run, a connection under the sealed fernet
    key) is migrated by the new release's migration Job; the old run and the connection survive, and
    a DAG runs. (The downgrade refusal is tests/test_upgrade.py's.)"""
    new_chart, new = DEFAULT.version, AIRFLOW
    python, chart = runtime(new_chart, new)
    old_python = airflow_python(PREVIOUS[1])
    repo = official_repo(chart_version=PREVIOUS[0], airflow_image_tag=PREVIOUS[1])
    commit_all(repo, f"on Airflow {PREVIOUS[1]}")
    upgraded = make_upgrade(repo, f"AIRFLOW={new}", f"CHART={new_chart}")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    commit_all(repo, f"make upgrade AIRFLOW={new} CHART={new_chart}")
    fernet = yaml.safe_load((repo / "deploy/overlays/dev/secrets/airflow-fernet-key.yaml").read_text())
    fernet_key = unseal_object(controller_key, fernet)["fernet-key"]
    before: dict[str, str] = {}

    def database_of_the_previous_release(dep: Deployment) -> None:
        earlier_airflow(dep, old_python, fernet_key, "db", "migrate")
        earlier_airflow(dep, old_python, fernet_key, "connections", "add", "old_api", "--conn-type", "http",
                        "--conn-host", "api.example.com", "--conn-password", OLD_SECRET)
        earlier_airflow(dep, old_python, fernet_key, "dags", "reserialize")
        earlier_airflow(dep, old_python, fernet_key, "dags", "test", DAG)
        before["revision"] = dep.sql("SELECT version_num FROM alembic_version")
        before["runs"] = dep.sql(f"SELECT run_id || '|' || state FROM dag_run WHERE dag_id = '{DAG}'")
        assert before["runs"].endswith("|success"), before

    with Deployment(repo, "dev", workdir, python, controller_key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ("scheduler", "dag-processor", "worker", "api-server"),
                 before=database_of_the_previous_release)
        dep.wait_log(name(dep, "run-airflow-migrations"), MIGRATED, RELEASE_TIMEOUT)
        after = dep.sql("SELECT version_num FROM alembic_version")
        print(f"metadata database: Airflow {PREVIOUS[1]} {before['revision']} -> {new} {after}")
        assert after != before["revision"]
        # The run 3.1.8 finished is still there, finished; its connection decrypts under the same key.
        assert dep.sql(f"SELECT run_id || '|' || state FROM dag_run WHERE dag_id = '{DAG}' "
                       f"AND run_id = '{before['runs'].split('|')[0]}'") == before["runs"]
        dep.wait_log(name(dep, "worker"), "ready.", RELEASE_TIMEOUT, fatal=BROKER_FAILURES)
        dep.wait_dag(DAG, 180)
        run_id = dep.trigger(DAG)
        dep.wait_run(DAG, run_id, 300, evidence_from=(name(dep, "scheduler"), name(dep, "worker")))
        got = dep.exec(name(dep, "scheduler"), ["airflow", "connections", "get", "old_api", "-o", "json"])
        assert got.returncode == 0, got.stderr[-2000:]
        (conn,) = json.loads(got.stdout[got.stdout.index("["):])
        assert conn["password"] == OLD_SECRET and conn["is_encrypted"] in (True, "True")
