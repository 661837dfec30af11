"""The sealed secrets: each entry, where its plaintext comes from, and the composites built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass


# ---------------------------------------------------------------- secrets
@dataclass(frozen=True)
class SecretEntry:
    """One encryptedData entry of one SealedSecret and where its plaintext comes from."""

    secret: str  # SealedSecret (= Secret) name
    key: str
    env: str  # environment variable holding the value for `make seal` and copy-time sealing
    question: str | None = None  # copier.yml secret question asked at copy time
    generate: str | None = None  # "fernet" or "token": made by make seal when nothing is given
    prompt: str = ""
    keep: str = ""  # generated only: why make seal keeps a sealed value rather than making a new one


SECRETS = (
    SecretEntry("airflow-db", "password", "AIRFLOW_DB_PASSWORD", "db_password", prompt="RDS password for Airflow"),
    SecretEntry("airflow-redis", "password", "AIRFLOW_REDIS_PASSWORD", "redis_password",
                prompt="ElastiCache AUTH token"),
    SecretEntry("airflow-admin-user", "password", "AIRFLOW_ADMIN_PASSWORD", "admin_password",
                prompt="Airflow admin password"),
    SecretEntry("airflow-fernet-key", "value", "AIRFLOW_FERNET_KEY", generate="fernet",
                keep="a new one makes every stored connection and variable unreadable (rotate: make rotate-fernet)"),
    SecretEntry("airflow-webserver-secret-key", "value", "AIRFLOW_WEBSERVER_SECRET_KEY", generate="token",
                keep="a new one signs everyone out"),
    # The official chart's names for the same keys (fernetKeySecretName, apiSecretKeySecretName,
    # jwtSecretName). Sealed once and kept: the chart would otherwise make new ones per install.
    SecretEntry("airflow-fernet-key", "fernet-key", "AIRFLOW_FERNET_KEY", generate="fernet",
                keep="a new one makes every stored connection and variable unreadable (rotate: make rotate-fernet)"),
    SecretEntry("airflow-api-secret-key", "api-secret-key", "AIRFLOW_API_SECRET_KEY", generate="token",
                keep="a new one signs everyone out"),
    SecretEntry("airflow-jwt-secret", "jwt-secret", "AIRFLOW_JWT_SECRET", generate="token",
                keep="a new one invalidates every token in flight: running tasks lose the Execution API"),
)
FERNET_KEY_OF = {"community": "value", "official": "fernet-key"}  # airflow-fernet-key's key, per chart flavor
FERNET_KEYS = tuple(FERNET_KEY_OF.values())


@dataclass(frozen=True)
class Composite:
    """A sealed value built from other secrets: a connection URL or pgbouncer's auth file. Its shape,
    with ${AIRFLOW_DB_PASSWORD}-style references to SECRETS entries, is the SealedSecret's annotation
    COMPOSE_ANNOTATION + key (not secret, reviewable); make seal fills the references in."""

    secret: str
    key: str
    quoting: str  # how a reference is inserted: "url" (percent-encoded) or "pgbouncer" (auth_file "..." string)


COMPOSE_ANNOTATION = "airflow-gitops.io/compose-"
COMPOSITES = (
    Composite("airflow-metadata", "connection", "url"),  # data.metadataSecretName
    Composite("airflow-result-backend", "connection", "url"),  # data.resultBackendSecretName
    Composite("airflow-broker-url", "connection", "url"),  # data.brokerUrlSecretName
    Composite("airflow-pgbouncer", "users.txt", "pgbouncer"),  # pgbouncer.configSecretName
    Composite("airflow-pgbouncer-stats", "connection", "url"),  # pgbouncer.metricsExporterSidecar.statsSecretName
)
COMPOSE_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def composite(secret: str, key: str) -> Composite | None:
    return next((c for c in COMPOSITES if (c.secret, c.key) == (secret, key)), None)


def compose_refs(shape: str) -> list[str]:
    """The SECRETS entries (by env name) a shape refers to, in order, once each."""
    return list(dict.fromkeys(COMPOSE_REF.findall(shape)))


def compose(shape: str, quoting: str, values: dict[str, str]) -> str:
    """The shape with each reference replaced by its value, quoted for where it stands."""
    from urllib.parse import quote

    def sub(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return quote(value, safe="") if quoting == "url" else value.replace('"', '""')
    return COMPOSE_REF.sub(sub, shape)


def entry_for_env(env: str) -> SecretEntry | None:
    return next((e for e in SECRETS if e.env == env), None)


def secret_entry(secret: str, key: str) -> SecretEntry | None:
    return next((e for e in SECRETS if (e.secret, e.key) == (secret, key)), None)


def secret_question(question: str) -> SecretEntry:
    return next(e for e in SECRETS if e.question == question)
