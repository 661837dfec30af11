"""This stack's rules on the merged values: what the chart renders happily but RDS, ElastiCache and
IRSA forbid (no sub-charts, no localhost, a verified TLS broker, no plaintext secret, no AWS keys,
no deprecated logging keys), and every Secret and claim the values name must exist."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from airflow_gitops.facts import TEMPLATE_REF
from airflow_gitops.objects import dig, find, produced_secret_keys
from airflow_gitops.validate.community import ALLOWED_TOP_LEVEL, chart_rules, effective_values, uses_celery
from airflow_gitops.validate.report import Issue, errors

DEPRECATED_ENV = re.compile(
    r"^AIRFLOW__(CORE__(REMOTE_\w+|ENCRYPT_S3_LOGS|LOGGING_LEVEL)|KUBERNETES_ENVIRONMENT_VARIABLES__\w+)$")
# Spelled as a pattern: generated repos are scanned for the literal key names.
STATIC_AWS_KEYS = re.compile(r"aws_(access_key_id|secret_access_key)", re.I)
UNVERIFIED = ("none", "cert_none", "optional", "cert_optional")  # ssl_cert_reqs values that skip verification


def check_airflow_values(values: dict, release_name: str, defaults: dict | None = None) -> list[Issue]:
    """The chart's validate-values.tpl rules plus what it lets through: `values` are the user's
    merged values (without chart defaults)."""
    v = effective_values(values, defaults)
    return errors(chart_rules(v, release_name) + _stack_rules(values, v) + _secret_hygiene(values, v))


def _stack_rules(user: dict, v: dict) -> list[str]:
    """What the chart renders happily but this stack (RDS, ElastiCache, no sub-charts) forbids."""
    e = [f"unknown top-level values key `{k}` (the chart silently ignores it)"
         for k in user if k not in ALLOWED_TOP_LEVEL]
    for sub in ("postgresql", "redis"):
        if user.get(sub) != {"enabled": False}:
            e.append(f"`{sub}` must be exactly `{{enabled: false}}` (external services; the "
                     f"deprecated sub-chart must stay off), got {user.get(sub)!r}")
    if not dig(v, "postgresql.enabled") and dig(v, "externalDatabase.host") in (None, "", "localhost"):
        e.append("`postgresql.enabled=false` but `externalDatabase.host` is localhost/empty: "
                 "Airflow would connect to localhost (set the RDS hostname)")
    if uses_celery(v) and not dig(v, "redis.enabled") and dig(v, "externalRedis.host") in (None, "", "localhost"):
        e.append("Celery executor with `redis.enabled=false` but `externalRedis.host` is "
                 "localhost/empty (set the ElastiCache primary endpoint)")
    return e + _broker_tls_rules(v) + _deprecated_keys(v)


def _deprecated_keys(v: dict) -> list[str]:
    e: list[str] = []
    config = dig(v, "airflow.config") or {}
    env_list = [x for x in dig(v, "airflow.extraEnv") or [] if isinstance(x, dict)]
    for where, key in [("airflow.config", k) for k in config] + [("airflow.extraEnv", x.get("name")) for x in env_list]:
        if isinstance(key, str) and DEPRECATED_ENV.match(key):
            fix = "the pod template" if "KUBERNETES_ENVIRONMENT" in key else key.replace("__CORE__", "__LOGGING__")
            e.append(f"`{key}` in {where} is deprecated since Airflow 2.0 (ignored in 3.x): use {fix}")
    return e


def _broker_tls_rules(v: dict) -> list[str]:
    """ElastiCache accepts AUTH only with in-transit encryption, and the chart builds a plain
    redis:// URL: TLS comes from kombu's ssl_* URL parameters (externalRedis.properties)."""
    if not uses_celery(v) or dig(v, "redis.enabled"):
        return []
    props = str(dig(v, "externalRedis.properties") or "")
    params = dict(p.partition("=")[::2] for p in props.lstrip("?").split("&") if p)
    auth = dig(v, "externalRedis.passwordSecret") or dig(v, "externalRedis.password")
    if auth and "ssl_cert_reqs" not in params:
        return ["the broker authenticates (externalRedis.passwordSecret) but `externalRedis.properties` has no "
                "ssl_cert_reqs: ElastiCache AUTH always means TLS, and a plain connection is reset by the "
                "server (use ?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt)"]
    if params.get("ssl_cert_reqs", "required").lower() in UNVERIFIED:
        return [f"`externalRedis.properties` sets ssl_cert_reqs={params['ssl_cert_reqs']}: the broker would not "
                "verify the ElastiCache certificate (use required)"]
    return []


def _secret_hygiene(user: dict, v: dict) -> list[str]:
    e: list[str] = []
    for key in ("fernetKey", "webserverSecretKey"):
        if dig(v, f"airflow.{key}"):
            note = " (unset, so the chart's public default applies)" if dig(user, f"airflow.{key}") is None else ""
            e.append(f"`airflow.{key}` must be \"\"{note}: inject it via airflow.extraEnv from a SealedSecret")
    for key in ("externalDatabase.password", "externalRedis.password"):
        if dig(v, key):
            e.append(f"`{key}` is plain text in the release: use `{key}Secret` instead")
    e += _user_rules(v) + _connection_rules(v)
    for kind in ("users", "connections", "variables"):
        for name, tpl in (dig(v, f"airflow.{kind}Templates") or {}).items():
            if (tpl or {}).get("kind") not in ("secret", "configmap"):
                e.append(f"`airflow.{kind}Templates.{name}.kind` must be secret or configmap")
    for i, env in enumerate(dig(v, "airflow.extraEnv") or []):
        if STATIC_AWS_KEYS.search(json.dumps(env)):
            e.append(f"`airflow.extraEnv[{i}]` sets static AWS keys (they bypass IRSA)")
    return e


def _user_rules(v: dict) -> list[str]:
    e: list[str] = []
    templates = dig(v, "airflow.usersTemplates") or {}
    for i, user in enumerate(dig(v, "airflow.users") or []):
        for key in ("username", "role"):  # the chart's sync-users script substitutes only the others
            if "${" in str((user or {}).get(key, "")):
                e.append(f"`airflow.users[{i}].{key}` is a template: the chart substitutes ${{NAME}} only in "
                         "password, email, firstName and lastName (the user would be named literally)")
        match = TEMPLATE_REF.match(str((user or {}).get("password", "")))
        if not match:
            e.append(f"`airflow.users[{i}].password` must be a `${{NAME}}` reference to airflow.usersTemplates")
        elif match.group(1) not in templates:
            e.append(f"`airflow.users[{i}].password` uses ${{{match.group(1)}}} missing from airflow.usersTemplates")
    return e


def _connection_rules(v: dict) -> list[str]:
    e: list[str] = []
    for i, conn in enumerate(dig(v, "airflow.connections") or []):
        conn = conn or {}
        creds = [conn.get(k) for k in ("login", "password") if conn.get(k)]
        # Plain-text credentials never; for AWS even templated ones bypass IRSA.
        if creds and (conn.get("type") == "aws" or not all(TEMPLATE_REF.match(str(c)) for c in creds)):
            e.append(f"`airflow.connections[{i}]` ({conn.get('id')}) sets login/password: use IRSA "
                     "or ${NAME} references to a connectionsTemplates Secret")
        if STATIC_AWS_KEYS.search(str(conn.get("extra", ""))):
            e.append(f"`airflow.connections[{i}]` ({conn.get('id')}) has static AWS keys in extra "
                     "(they bypass IRSA)")
    return e


# ---------------------------------------------------------------- what the values name
def value_refs(values: dict) -> tuple[list[tuple[str, str | None, str]], list[tuple[str, str]]]:
    """(Secret name, key, where) and (PVC name, where) the chart values use by name."""
    v = effective_values(values)
    secrets: list[tuple[str, str | None, str]] = []

    def add(name: Any, key: Any, where: str) -> None:
        if isinstance(name, str) and name:
            secrets.append((name, key if isinstance(key, str) and key else None, where))

    for svc, fields in (("externalDatabase", ("user", "password")), ("externalRedis", ("password",))):
        for f in fields:
            add(dig(v, f"{svc}.{f}Secret"), dig(v, f"{svc}.{f}SecretKey"), f"{svc}.{f}Secret")
    for i, env in enumerate(dig(v, "airflow.extraEnv") or []):
        sref = dig(env, "valueFrom.secretKeyRef") or {}
        if not sref.get("optional"):
            add(sref.get("name"), sref.get("key"), f"airflow.extraEnv[{i}] ({env.get('name')})")
    for kind in ("users", "connections", "variables"):
        for name, tpl in (dig(v, f"airflow.{kind}Templates") or {}).items():
            if (tpl or {}).get("kind") == "secret":
                add(tpl.get("name"), tpl.get("key"), f"airflow.{kind}Templates.{name}")
    for side in ("serverSSL", "clientSSL"):
        for f in ("caFile", "certFile", "keyFile"):
            p = f"pgbouncer.{side}.{f}"
            add(dig(v, f"{p}.existingSecret"), dig(v, f"{p}.existingSecretKey"), f"{p}.existingSecret")
    claims = _volume_refs(v, add)
    for kind in ("dags", "logs"):
        if dig(v, f"{kind}.persistence.enabled") and dig(v, f"{kind}.persistence.existingClaim"):
            claims.append((dig(v, f"{kind}.persistence.existingClaim"), f"{kind}.persistence.existingClaim"))
    return secrets, claims


def _volume_refs(v: dict, add_secret: Callable[[Any, Any, str], None]) -> list[tuple[str, str]]:
    """The claims the extraVolumes name; their Secret volumes go to `add_secret(name, key, where)`."""
    claims: list[tuple[str, str]] = []
    holders = ["airflow", "scheduler", "web", "workers", "triggerer", "flower", "airflow.kubernetesPodTemplate"]
    for holder in holders:
        for i, vol in enumerate(dig(v, f"{holder}.extraVolumes") or []):
            where = f"{holder}.extraVolumes[{i}]"
            secret = (vol or {}).get("secret") or {}
            for key in [item.get("key") for item in secret.get("items") or []] or [None]:
                add_secret(secret.get("secretName"), key, where)
            claim = dig(vol, "persistentVolumeClaim.claimName")
            if claim:
                claims.append((claim, where))
    return claims


def check_value_refs(values: dict, namespace: str | None, objs: list[dict]) -> list[Issue]:
    """Every Secret/PVC the values name must be produced by this build in `namespace`."""
    found: list[str] = []
    secrets, claims = value_refs(values)
    for name, key, where in secrets:
        keys = produced_secret_keys(objs, name, namespace)
        if keys is None:
            found.append(f"{where}: Secret {name!r} is not produced in namespace {namespace} "
                          "by this build (no Secret or SealedSecret)")
        elif key is not None and key not in keys:
            found.append(f"{where}: Secret {name!r} has no key {key!r} (has: {', '.join(sorted(keys)) or 'none'})")
    for name, where in claims:
        if find(objs, "PersistentVolumeClaim", name, namespace) is None:
            found.append(f"{where}: PersistentVolumeClaim {name!r} is not produced in namespace {namespace}")
    return errors(found)
