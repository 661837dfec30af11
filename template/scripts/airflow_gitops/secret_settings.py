"""The non-secret half of each SealedSecret, built from the answers.

A SealedSecret file (deploy/overlays/<env>/secrets/<name>.yaml) holds ciphertext that `copier
update` can never re-render, so it is kept as sealed (`_skip_if_exists`). What in it is not secret
and follows the answers (pgbouncer.ini with the RDS host and TLS mode, the shapes of the connection
URLs with the ElastiCache host, a user name) lives beside it, in secrets/settings/<name>.yaml: a
partial SealedSecret the kustomization merges over the sealed one, re-rendered by every update.

A shape (annotation COMPOSE_ANNOTATION + key) is in both files: in the settings, the URL the answers
want; in the sealed file, the URL its ciphertext was sealed from (copy-time sealing and `make seal`
write it). They differ once an answer moved after sealing; `make validate` then fails and `make
seal` re-seals that entry.

Standard library only: the hooks render the settings files with it (Jinja global
`secret_settings_manifest`), `make seal` and `make validate` read the files it wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from airflow_gitops import facts

SETTINGS_DIR = "settings"  # deploy/overlays/<env>/secrets/settings/<name>.yaml
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # the apache/airflow image's (Debian's) CA bundle


@dataclass
class Settings:
    """What the settings file of one SealedSecret sets: annotations (shapes) and template.data."""

    annotations: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


def _db_url(a: Mapping[str, Any], scheme: str, host: str, database: str, query: str = "?sslmode=disable") -> str:
    return (f"{scheme}://{quote(str(a['rds_user']), safe='')}:${{AIRFLOW_DB_PASSWORD}}@{host}:{facts.PGBOUNCER_PORT}"
            f"/{database}{query}")


def shapes(a: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """secret -> {key: shape} of the composite entries (facts.COMPOSITES) these answers build."""
    if a.get("airflow_chart") != "official":
        return {}
    release, namespace = a["project_name"], a["namespace"]
    pgbouncer = f"{release}-pgbouncer.{namespace}"  # the chart's Service, in this namespace
    found = {
        # No sslmode: Airflow 3 derives its async engine's URL from this one (postgresql+asyncpg://,
        # query kept), and asyncpg refuses `sslmode` (TypeError). pgbouncer offers no TLS to its
        # clients (the hop stays in the namespace, SCRAM-authenticated), so libpq's default `prefer`
        # and asyncpg's both connect in clear, as `disable` did.
        "airflow-metadata": {"connection": _db_url(a, "postgresql", pgbouncer, f"{release}-metadata", "")},
        "airflow-pgbouncer": {"users.txt": f'"{a["rds_user"]}" "${{AIRFLOW_DB_PASSWORD}}"'},
        # The exporter sidecar reads SHOW STATS from pgbouncer in its own pod.
        "airflow-pgbouncer-stats": {"connection": _db_url(a, "postgresql", "127.0.0.1", "pgbouncer")},
    }
    if a.get("executor") in facts.CELERY_EXECUTORS:
        found["airflow-result-backend"] = {
            "connection": _db_url(a, "db+postgresql", pgbouncer, f"{release}-result-backend")}
        tls = _true(a.get("redis_tls", True))
        auth = ":${AIRFLOW_REDIS_PASSWORD}@" if _true(a.get("redis_auth", tls)) else ""
        # kombu turns the ssl_* parameters into a TLS connection that verifies certificate and host name.
        params = f"?ssl_cert_reqs=required&ssl_ca_certs={CA_BUNDLE}&ssl_check_hostname=true" if tls else ""
        found["airflow-broker-url"] = {
            "connection": f"{'rediss' if tls else 'redis'}://{auth}{a['redis_host']}:{a['redis_port']}/1{params}"}
    return found


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def pgbouncer_ini(a: Mapping[str, Any]) -> str:
    """The official chart's pgbouncer.ini (pgbouncer.configSecretName): no secret in it."""
    release = a["project_name"]
    alias = f"host={a['rds_host']} dbname={a['rds_database']} port={a['rds_port']}"
    if _true(a.get("rds_tls_verify", False)):
        tls = ["; TLS, the certificate verified against the RDS CA bundle and the host name.",
               "server_tls_sslmode = verify-full", f"server_tls_ca_file = {facts.PGBOUNCER_RDS_CA_DIR}/root.crt"]
    else:
        tls = ["; TLS, not verified (rds_tls_verify=true verifies it).", "server_tls_sslmode = require"]
    return "\n".join([
        "[databases]",
        f"{release}-metadata = {alias} pool_size=10",
        f"{release}-result-backend = {alias} pool_size=5",
        "",
        "[pgbouncer]",
        "pool_mode = transaction",
        f"listen_port = {facts.PGBOUNCER_PORT}",
        "listen_addr = *",
        "; RDS for PostgreSQL 14+ stores SCRAM password hashes.",
        "auth_type = scram-sha-256",
        "auth_file = /etc/pgbouncer/users.txt",
        f"stats_users = {a['rds_user']}",
        "ignore_startup_parameters = extra_float_digits",
        "max_client_conn = 100",
        "; KEDA's scaler (pgx) prepares its query; in transaction mode that needs pgbouncer to track",
        "; prepared statements, off in the chart's pgbouncer 1.23.1 unless set (\"prepared statement",
        "; ... does not exist\" once a poll meets another server connection).",
        f"max_prepared_statements = {facts.PGBOUNCER_MAX_PREPARED_STATEMENTS}",
        "verbose = 0",
        "log_disconnections = 0",
        "log_connections = 0",
        "",
        "; pgbouncer -> RDS (rds.force_ssl=1 on PostgreSQL 15+).",
        *tls,
        "server_tls_protocols = secure",
    ]) + "\n"


def settings(a: Mapping[str, Any]) -> dict[str, Settings]:
    """secret -> its settings, for every SealedSecret these answers give non-secret settings."""
    found = {name: Settings({facts.COMPOSE_ANNOTATION + key: shape for key, shape in keys.items()})
             for name, keys in shapes(a).items()}
    if "airflow-pgbouncer" in found:
        found["airflow-pgbouncer"].data["pgbouncer.ini"] = pgbouncer_ini(a)
    if a.get("airflow_chart") != "official":
        found["airflow-db"] = Settings(data={"username": str(a["rds_user"])})
    found["airflow-admin-user"] = Settings(data={"email": f"airflow-admin@{a.get('web_hostname') or 'example.com'}"})
    return found


def manifest(name: str, a: Mapping[str, Any]) -> str:
    """The settings file of SealedSecret `name`: a partial SealedSecret (kustomize patch). Scalars
    are JSON strings (valid YAML whatever they hold), multi-line values literal blocks."""
    s = settings(a)[name]
    lines = [f"# Non-secret settings of SealedSecret {name}, merged over ../{name}.yaml (whose ciphertext",
             "# copier update never re-renders): this file follows the answers, so keep your edits here.",
             "apiVersion: bitnami.com/v1alpha1", "kind: SealedSecret", "metadata:",
             f"  name: {json.dumps(name)}", f"  namespace: {json.dumps(str(a['namespace']))}"]
    if s.annotations:
        lines.append("  annotations:")
        lines += [f"    {key}: {json.dumps(value)}" for key, value in s.annotations.items()]
    if s.data:
        lines += ["spec:", "  template:", "    data:"]
        for key, value in s.data.items():
            if "\n" in value.rstrip("\n"):
                lines.append(f"      {json.dumps(key)}: |")
                lines += [f"        {line}" if line else "" for line in value.rstrip("\n").split("\n")]
            else:
                lines.append(f"      {json.dumps(key)}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"
