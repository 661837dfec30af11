"""The runtime harness reads rendered pods the way the kubelet does (fast checks of its own rules)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import shared_path, skip_or_fail
from runtime import pgbouncer
from runtime.deployment import make_workdir, remove_workdir
from runtime.install import PGBOUNCER
from runtime.pods import _strip_entrypoint
from runtime.rendered import Objects, PodError, container_env, kube_expand
from runtime.sandbox import unavailable


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
