"""The runtime harness reads rendered pods the way the kubelet does (fast checks of its own rules): their env,
the user, working directory and argv from the image's facts, and the containers the kubelet refuses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops.facts import AIRFLOW_UID, DAG_CLAIM, NOBODY_UID
from helpers.paths import shared_path, skip_or_fail
from runtime import pgbouncer
from runtime.deployment import make_workdir, remove_workdir
from runtime.install import PGBOUNCER
from runtime.pods import Cluster, _strip_entrypoint, airflow_image, build_pod, complete_job, execute, stand_ins, start
from runtime.rendered import Objects, PodError, container_env, kube_expand
from runtime.sandbox import HarnessError, Sandbox, unavailable


@pytest.mark.parametrize(("value", "expected"), [
    ("$(A)-$(B)", "1-$(B)"),  # an unknown name stays as written
    ("$$(A)", "$(A)"),  # `$$` escapes
    ("$(eval $X_CMD)", "$(eval $X_CMD)"),  # not a variable name: left alone
    ("${A}", "${A}"),  # shell syntax is not Kubernetes syntax
])
def test_kubernetes_dependent_variable_expansion(value: str, expected: str) -> None:
    assert kube_expand(value, {"A": "1"}) == expected


def test_env_from_then_env_in_order_with_secret_refs() -> None:
    objs = Objects(secrets={"cfg": {"X": "from-envfrom", "Y": "y"}, "db": {"password": "pw"}})
    container = {"envFrom": [{"secretRef": {"name": "cfg"}}],
                 "env": [{"name": "X", "value": "literal $(Y)"},
                         {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                         {"name": "O", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}]}
    env = container_env({}, container, objs, "pod-0", "ns", "test")
    assert env == {"X": "literal y", "Y": "y", "P": "pw"}
    with pytest.raises(PodError, match="Secret 'db' has no key 'user'"):
        container_env({}, {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]},
                      objs, "pod-0", "ns", "test")


def test_image_entrypoint_is_dropped() -> None:
    assert _strip_entrypoint(["/usr/bin/dumb-init", "--", "/entrypoint", "bash", "-c", "x"]) == ["bash", "-c", "x"]
    assert _strip_entrypoint(["/usr/bin/dumb-init", "--rewrite=15:2", "--", "/bin/sh", "-c", "x"]) == \
        ["/bin/sh", "-c", "x"]


# ---------------------------------------------------------------- the kubelet's user and the image's facts
def cluster(tmp_path: Path) -> Cluster:
    """A namespace with no objects: enough for pods whose containers need no Secret or volume."""
    return Cluster(Objects(), {}, [], "airflow-dev", tmp_path / "ca.pem", stand_ins(Path(sys.executable)), tmp_path)


def pgbouncer_pod(pod_sc: dict) -> dict:
    """The official chart's pgbouncer pod as it renders, with the given pod securityContext."""
    return {"kind": "Deployment", "metadata": {"name": "airflow-pgbouncer"}, "spec": {"template": {"spec": {
        "securityContext": pod_sc,
        "containers": [{"name": "pgbouncer", "image": "apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1",
                        "command": ["pgbouncer", "-u", "nobody", "/etc/pgbouncer/pgbouncer.ini"]},
                       {"name": "metrics-exporter",
                        "image": "apache/airflow:airflow-pgbouncer-exporter-2025.03.05-0.18.0"}]}}}}


def test_the_harness_refuses_a_container_the_kubelet_refuses(tmp_path: Path) -> None:
    """runAsNonRoot without runAsUser, and the image runs as `nobody` (a name): the kubelet cannot
    verify the user is not root and never starts it. The harness must not start it either."""
    with pytest.raises(HarnessError, match=re.escape(
            "container pgbouncer: CreateContainerConfigError: container has runAsNonRoot and image has non-numeric "
            "user (nobody), cannot verify user is non-root (pod: \"airflow-pgbouncer-0_airflow-dev\", "
            "container: pgbouncer)")):
        build_pod(cluster(tmp_path), pgbouncer_pod({"runAsNonRoot": True}), "airflow-pgbouncer-0")
    with pytest.raises(HarnessError, match="container's runAsUser breaks non-root policy"):
        build_pod(cluster(tmp_path), pgbouncer_pod({"runAsNonRoot": True, "runAsUser": 0}), "airflow-pgbouncer-0")


def test_pgbouncer_runs_as_the_images_nobody_by_number(tmp_path: Path) -> None:
    pod = build_pod(cluster(tmp_path), pgbouncer_pod({"runAsNonRoot": True, "runAsUser": NOBODY_UID}),
                    "airflow-pgbouncer-0")
    pgbouncer, exporter = pod.containers
    assert (pgbouncer.uid, pgbouncer.gid) == (NOBODY_UID, NOBODY_UID)  # gid: nobody's passwd entry
    # The chart's command replaces the image's ENTRYPOINT; the exporter has neither: ENTRYPOINT + CMD.
    assert pgbouncer.argv == ["pgbouncer", "-u", "nobody", "/etc/pgbouncer/pgbouncer.ini"]
    assert (pgbouncer.cwd, pgbouncer.env["HOME"]) == ("/", "/")  # no WORKDIR; nobody's home in Alpine
    assert exporter.argv == ["/bin/pgbouncer_exporter", "server"]


def test_the_airflow_image_runs_as_its_user_in_its_workdir_through_its_entrypoint(tmp_path: Path) -> None:
    worker = {"kind": "Pod", "metadata": {"name": "task"}, "spec": {
        "securityContext": {"runAsNonRoot": True, "fsGroup": 0},
        "containers": [{"name": "base", "image": "apache/airflow:3.1.8", "args": ["tasks", "run", "$(DAG)"],
                        "env": [{"name": "DAG", "value": "hello"}]},
                       {"name": "other", "image": "apache/airflow:3.1.8", "workingDir": "/opt/efs",
                        "securityContext": {"runAsUser": 1234}, "args": ["bash", "-c", "id"]}]}}
    base, other = build_pod(cluster(tmp_path), worker, "task").containers
    # USER 50000 (numeric: the kubelet can check it), group 0 from its passwd entry, WORKDIR /opt/airflow
    assert (base.uid, base.gid, base.groups, base.cwd, base.env["HOME"]) == \
        (AIRFLOW_UID, 0, [0], "/opt/airflow", "/home/airflow")
    assert base.argv == ["airflow", "tasks", "run", "hello"]  # args after /entrypoint, which runs airflow
    # Another uid has no passwd entry: the entrypoint gives it one, with the airflow home.
    assert (other.uid, other.gid, other.cwd, other.env["HOME"], other.argv) == \
        (1234, 0, "/opt/efs", "/home/airflow", ["bash", "-c", "id"])
    assert other.passwd == ["default:x:1234:0:default user:/home/airflow:/sbin/nologin"]


def test_an_image_without_facts_is_refused(tmp_path: Path) -> None:
    pod = {"kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    with pytest.raises(HarnessError, match=r"image busybox:1.36 is unknown \(not in airflow_gitops/images.py\)"):
        build_pod(cluster(tmp_path), pod, "x")


def test_a_container_whose_interpreter_lives_under_tmp_runs() -> None:
    """A checkout cloned under /tmp (`mktemp -d`, mode 0700) holds the interpreters in .runtime/: the
    container's own tmpfs on /tmp must not hide them."""
    reason = unavailable()
    if reason:
        skip_or_fail(reason)
    checkout = Path(tempfile.mkdtemp(prefix="checkout-", dir="/tmp"))
    workdir = make_workdir("tmp-interpreter")
    try:
        venv = checkout / ".runtime" / "interpreter"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        (workdir / "ca.pem").write_text("")
        images = {**stand_ins(Path(sys.executable)), "apache/airflow": airflow_image(venv / "bin" / "python")}
        here = Cluster(Objects(), {}, [], "airflow-dev", workdir / "ca.pem", images, workdir)
        code = "import os, sys; print(sys.prefix, os.getuid(), os.getcwd())"
        pod = {"kind": "Pod", "metadata": {"name": "task"}, "spec": {
            "securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "base", "image": "apache/airflow:3.1.8", "args": ["python", "-c", code]}]}}
        (container,) = build_pod(here, pod, "task").containers
        sandbox = Sandbox(workdir)
        try:
            proc = execute(sandbox, here, container, container.argv, timeout=60)
        finally:
            sandbox.close()
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [str(venv), str(AIRFLOW_UID), "/opt/airflow"]
    finally:
        shutil.rmtree(checkout, ignore_errors=True)
        remove_workdir(workdir)


# ---------------------------------------------------------------- the DAG publisher, as the Jenkinsfile runs it
def test_the_dag_publisher_runs_as_the_jenkinsfile_says_through_the_access_point(copy_project, demo_answers) -> None:
    """The Jenkinsfile's agent pod runs its `airflow` container as uid 1000 (the jnlp image's user: they
    share the workspace), gid 0, HOME=/home/airflow. EFS with the access point (PosixUser 50000:0)
    ignores that uid: what it writes is 50000:0, as Airflow's pods expect. Without the access point the
    same container cannot even write the volume's root (50000:0, 0755), as on EFS."""
    reason = unavailable()
    if reason:
        skip_or_fail(reason)
    from runtime.deployment import AGENT_WORKSPACE, Deployment

    workdir = make_workdir("dag-publisher")
    try:
        repo = copy_project(workdir / "repo", demo_answers)
        dep = Deployment(repo, "dev", workdir, Path(sys.executable), None, tool_env={})
        (workdir / "ca.pem").write_text("")
        probe = ("import os; open('/opt/efs/dags/probe', 'w').write('x'); "
                 "print(os.getuid(), os.getgid(), os.environ['HOME'], os.getcwd())")
        try:
            for access_points in ({DAG_CLAIM: (AIRFLOW_UID, 0)}, {}):
                (dep.efs / "dags").mkdir(exist_ok=True)
                os.chown(dep.efs / "dags", AIRFLOW_UID, 0)
                dep.cluster = Cluster(Objects(), {DAG_CLAIM: dep.efs}, [], demo_answers["namespace"],
                                      workdir / "ca.pem", stand_ins(Path(sys.executable)), workdir,
                                      access_points=access_points)
                publisher = dep.dag_publisher()
                proc = execute(dep.sandbox, dep.cluster, publisher, ["python", "-c", probe], timeout=60)
                if access_points:
                    assert proc.returncode == 0, proc.stderr
                    assert proc.stdout.split() == ["1000", "0", "/home/airflow", AGENT_WORKSPACE]
                    written = (dep.efs / "dags/probe").stat()
                    assert (written.st_uid, written.st_gid) == (AIRFLOW_UID, 0), "the access point's identity"
                    (dep.efs / "dags/probe").unlink()
                else:
                    assert proc.returncode != 0 and "Permission denied: '/opt/efs/dags/probe'" in proc.stderr
        finally:
            dep.sandbox.close()
    finally:
        remove_workdir(workdir)


# ---------------------------------------------------------------- pgbouncer as each chart's image runs it
def chart_default(chart: str, member: str, *keys: str) -> Any:
    with tarfile.open(shared_path("charts", chart)) as tgz:
        values = yaml.safe_load(tgz.extractfile(member).read())  # type: ignore[union-attr]
    for key in keys:
        values = values[key]
    return values


def test_each_charts_pgbouncer_image_names_its_version() -> None:
    official = chart_default("apache-airflow-1.20.0.tgz", "airflow/values.yaml", "images", "pgbouncer")
    community = chart_default("airflow-8.9.0.tgz", "airflow/values.yaml", "pgbouncer", "image")
    assert pgbouncer.image_version(f"{official['repository']}:{official['tag']}") == "1.23.1"
    assert pgbouncer.image_version(f"{community['repository']}:{community['tag']}") == "1.22.1"
    exporter = chart_default("apache-airflow-1.20.0.tgz", "airflow/values.yaml", "images", "pgbouncerExporter")
    with pytest.raises(ValueError, match="no known tag grammar"):
        pgbouncer.image_version(f"{exporter['repository']}:{exporter['tag']}")


RENDERED = "[databases]\nm = host=rds port=5432 pool_size=10\n\n[pgbouncer]\npool_mode = transaction\n"


@pytest.mark.parametrize(("ini", "image", "defaults"), [
    (RENDERED, "1.23.1", {"max_prepared_statements": "0"}),  # 1.24.0 made it 200
    (RENDERED, "1.22.1", {"max_prepared_statements": "0"}),
    (RENDERED + "max_prepared_statements = 100\n", "1.23.1", {}),  # the file's own value stands
    (RENDERED, "1.24.1", {}),
])
def test_the_stand_in_takes_the_images_defaults(ini: str, image: str, defaults: dict[str, str]) -> None:
    assert pgbouncer.plan(ini, image, "1.24.1").defaults == defaults


@pytest.mark.parametrize(("line", "refusal"), [
    ("max_user_client_connections = 10", "unknown parameter: pgbouncer/max_user_client_connections"),
    ("[databases]\nm = host=rds reserve_pool_size=2", "unrecognized connection parameter: reserve_pool_size"),
    ("[users]\nairflow = query_timeout=30", "unrecognized user parameter: query_timeout"),
])
def test_the_stand_in_refuses_what_the_images_pgbouncer_does_not_know(line: str, refusal: str) -> None:
    (refused,) = pgbouncer.plan(RENDERED + line + "\n", "1.23.1", "1.24.1").refused
    assert refused.startswith(refusal) and "added in 1.24.0" in refused
    assert not pgbouncer.plan(RENDERED + line + "\n", "1.24.1", "1.24.1").refused


def test_the_stand_in_covers_only_the_versions_it_knows() -> None:
    with pytest.raises(ValueError, match=r"cover 1\.22\.1 to 1\.24\.1"):
        pgbouncer.plan(RENDERED, "1.18.0", "1.24.1")


@pytest.fixture
def stand_in_dir():
    if unavailable():
        skip_or_fail(unavailable() or "")
    path = make_workdir("pgbouncer")
    (path / "run").mkdir(mode=0o1777)
    (path / "run").chmod(0o1777)  # pgbouncer (as nobody) makes its admin socket there
    yield path
    remove_workdir(path)


def admin_ini(directory: Path, extra: str) -> Path:
    (directory / "users.txt").write_text('"admin" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(f"[databases]\n[pgbouncer]\nlisten_addr =\nlisten_port = {ADMIN_PORT}\n"
                   f"unix_socket_dir = {directory / 'run'}\nauth_type = trust\nauth_file = {directory}/users.txt\n"
                   f"admin_users = admin\n{extra}")
    for path in (ini, directory / "users.txt"):
        path.chmod(0o644)
    return ini


ADMIN_PORT = 16432  # only a unix socket name here: listen_addr is empty


def test_the_build_runs_as_the_1_23_1_image(stand_in_dir: Path) -> None:
    """The real build behind the launcher: 1.23.1's max_prepared_statements (0) when the file does
    not set it, the file's value when it does; a 1.24-only setting the build itself accepts is
    refused as 1.23.1 refuses it."""
    image = stand_in_dir / "image"
    pgbouncer.stand_in("apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1", image, PGBOUNCER.binary)
    launcher = [str(image / pgbouncer.LAUNCHER)]
    ini = admin_ini(stand_in_dir, "")
    code, log, config = pgbouncer.admin_show([*launcher, str(ini)], stand_in_dir / "run", ADMIN_PORT)
    assert code is None and config["max_prepared_statements"] == "0", log
    assert "max_prepared_statements = 0 (pgbouncer 1.23.1's default" in log
    assert "stand-in for pgbouncer 1.23.1" not in ini.read_text()  # the rendered file is left as it is
    explicit = admin_ini(stand_in_dir, "max_prepared_statements = 100\n")
    code, log, config = pgbouncer.admin_show([*launcher, str(explicit)], stand_in_dir / "run", ADMIN_PORT)
    assert code is None and config["max_prepared_statements"] == "100", log
    newer = admin_ini(stand_in_dir, "max_user_client_connections = 10\n")
    code, log, config = pgbouncer.admin_show([str(PGBOUNCER.binary), str(newer)], stand_in_dir / "run", ADMIN_PORT)
    assert code is None and config["max_user_client_connections"] == "10", log
    code, log, _ = pgbouncer.admin_show([*launcher, str(newer)], stand_in_dir / "run", ADMIN_PORT)
    assert code == 1 and "unknown parameter: pgbouncer/max_user_client_connections" in log, log
    assert "FATAL cannot load config file" in log


# ---------------------------------------------------------------- a Job's pod: restartPolicy and backoffLimit
def job(policy: str, limit: int, code: str) -> dict:
    return {"kind": "Job", "metadata": {"name": "create-user"}, "spec": {"backoffLimit": limit, "template": {"spec": {
        "restartPolicy": policy,
        "containers": [{"name": "main", "image": "apache/airflow:3.1.8", "args": ["python", "-c", code]}]}}}}


@pytest.mark.parametrize(("policy", "limit", "runs", "refusal"), [
    ("Never", 6, 1, "exited 3 (failure 1, restartPolicy Never, backoffLimit 6)"),  # the first failure fails it
    ("OnFailure", 1, 2, "exited 3 (failure 2, restartPolicy OnFailure, backoffLimit 1)"),  # restarted once
])
def test_a_failed_job_fails_with_its_log_as_the_job_controller_says(policy, limit, runs, refusal) -> None:
    reason = unavailable()
    if reason:
        skip_or_fail(reason)
    workdir = make_workdir("job")
    try:
        (workdir / "ca.pem").write_text("")
        here = Cluster(Objects(), {}, [], "airflow-dev", workdir / "ca.pem", stand_ins(Path(sys.executable)), workdir)
        obj = job(policy, limit, "import sys; print('users create: no database'); sys.exit(3)")
        pod = build_pod(here, obj, "create-user-7kq2d")
        sandbox = Sandbox(workdir)
        try:
            with pytest.raises(HarnessError, match=re.escape(refusal)) as failed:
                complete_job(sandbox, here, obj, pod, [start(sandbox, here, c) for c in pod.containers], 60, backoff=0)
        finally:
            sandbox.close()
        assert "users create: no database" in str(failed.value)  # the container's log, not a timeout
        assert (workdir / "logs" / "create-user-7kq2d.main.log").read_text().count("no database") == runs
        ok = job("OnFailure", 6, "print('done')")
        sandbox = Sandbox(workdir)
        try:
            pod = build_pod(here, ok, "create-user-7kq2e")
            complete_job(sandbox, here, ok, pod, [start(sandbox, here, c) for c in pod.containers], 60, backoff=0)
        finally:
            sandbox.close()
    finally:
        remove_workdir(workdir)
