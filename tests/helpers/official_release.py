"""The official release as the engine brings it up in the runtime harness (tests/runtime): its
workloads by name, the order a sync starts them in, and calls on its api-server from inside its pod."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_gitops import facts
from runtime.deployment import Deployment
from runtime.sandbox import HarnessError, unavailable
from runtime.scenario import trust_rds
from standins.controller import make_cert

from helpers.paths import chart_tgz, skip_or_fail
from helpers.secrets import PASSWORDS, environ
from helpers.tools import airflow_python

WORKLOADS = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")
DB_FAILURES = {"password authentication failed": "Airflow cannot log in to the metadata database",
               "SASL authentication failed": "pgbouncer cannot log in to RDS"}


def runtime(chart_version: str, release: str) -> tuple[Path, Path]:
    """The installed Airflow `release` and the real chart `chart_version`, or skip saying what is missing."""
    reason = unavailable()
    if reason:
        skip_or_fail(reason)
    return airflow_python(release), chart_tgz("official", chart_version)


def sealed_copy(copy_project: Callable[..., Path], answers: dict[str, Any], key: Any, tmp_path: Path,
                **overrides: Any) -> Path:
    """`copier copy` of the official chart into tmp_path/repo, every secret sealed for `key`'s certificate."""
    cert = make_cert(key, tmp_path / "cert.pem")
    with environ(PASSWORDS):
        return copy_project(tmp_path / "repo", {**answers, **overrides, "sealed_secrets_cert": str(cert)})


def live_release(dep: Deployment) -> str:
    """The release id `current` points at on the DAG volume (releases/<id>)."""
    parent, _, release = os.readlink(dep.efs / "dags" / "current").rpartition("/")
    assert parent == "releases", f"current -> {parent}/{release}: not a release"
    return release


def name(dep: Deployment, component: str) -> str:
    return f"{dep.answers['project_name']}-{component}"


def bring_up(dep: Deployment, chart: Path, components: tuple[str, ...] = WORKLOADS,
             before: Callable[[Deployment], None] = lambda dep: None) -> None:
    """What the engine does once the secrets decrypt: every workload and Job at once; the init
    containers (wait-for-airflow-migrations) order them, as on a cluster. `before` runs once the
    AWS stand-ins are up (a database as an earlier release left it)."""
    trust_rds(dep.repo, dep.ca.bundle)
    dep.render(chart)
    dep.start_services()
    before(dep)
    dep.publish_dags()
    dep.start(name(dep, "pgbouncer"), skip=("metrics-exporter",))  # no exporter binary here; it only reads stats
    dep.wait_log(name(dep, "pgbouncer"), "process up", 60)
    dep.start(name(dep, "run-airflow-migrations"))
    for component in components:
        dep.start(name(dep, component))


def api_health(dep: Deployment) -> dict:
    """GET the api-server's health endpoint from inside its pod, as the kubelet's probe does."""
    port = api_port(dep)
    code = (f"import json, urllib.request; print(urllib.request.urlopen("
            f"'http://127.0.0.1:{port}{facts.API_SERVER_HEALTH_PATH}', timeout=5).read().decode())")
    proc = dep.exec(name(dep, "api-server"), ["python", "-c", code], timeout=30)
    if proc.returncode != 0:
        raise HarnessError(f"health endpoint not answering: {proc.stderr[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def api_port(dep: Deployment) -> int:
    container = dep.rendered.get("Deployment", name(dep, "api-server"))["spec"]["template"]["spec"]["containers"][0]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == facts.API_SERVER_HEALTH_PATH
    return int(probe["port"])


def healthy(dep: Deployment) -> bool:
    try:
        health = api_health(dep)
    except (HarnessError, ValueError):
        return False
    return health.get("metadatabase", {}).get("status") == "healthy"



def api(dep: Deployment, method: str, path: str, body: Any = None) -> Any:
    """Call the REST API from inside the api-server pod as the admin (a token from FAB's /auth/token,
    with the sealed admin password): the JSON answer, or HarnessError with the status and body."""
    port, secret = api_port(dep), dep.objects.secrets["airflow-admin-user"]
    code = f"""import json, sys, urllib.error, urllib.request
base = "http://127.0.0.1:{port}"
def call(method, path, body, token=None):
    headers = {{"Content-Type": "application/json", **({{"Authorization": "Bearer " + token}} if token else {{}})}}
    req = urllib.request.Request(base + path, json.dumps(body).encode() if body is not None else None, headers,
                                 method=method)
    try:
        return json.loads(urllib.request.urlopen(req, timeout=30).read() or b"null")
    except urllib.error.HTTPError as e:
        sys.exit(f"{{method}} {{path}}: HTTP {{e.code}}: {{e.read().decode()[:500]}}")
token = call("POST", "/auth/token", {{"username": "admin", "password": sys.argv[1]}})["access_token"]
print(json.dumps(call(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), token)))
"""
    proc = dep.exec(name(dep, "api-server"), ["python", "-c", code, secret["password"], method, path,
                                               json.dumps(body)], timeout=60)
    if proc.returncode != 0:
        raise HarnessError(f"{method} {path} failed: {(proc.stderr or proc.stdout)[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
