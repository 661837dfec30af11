"""The community (airflow-helm) chart's own rules, on the values merged over its defaults (the official
chart's are in official.py; flavors.py picks between them).

They mirror the chart's validate-values.tpl (its messages are kept word for word):
https://github.com/airflow-helm/charts/blob/airflow-8.9.0/charts/airflow/templates/_helpers/validate-values.tpl
Also here: its Helm-hook Jobs under Argo CD, the chart defaults the rules read, and the key paths
of its values.yaml (Helm ignores a misspelled key silently), from AIRFLOW_CHART_VALUES, the chart
`make render` cached, or the key skeleton shipped in scripts/chart_keys/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from airflow_gitops.chart_cache import cached_chart
from airflow_gitops.facts import CELERY_EXECUTORS, EXECUTORS, chart
from airflow_gitops.objects import Loader, dig, load_answers
from airflow_gitops.validate.report import ERROR, INFO, WARN, Issue, errors
from airflow_gitops.values import deep_merge

FLAVOR = "community"
CHART = chart(FLAVOR)  # the chart release these rules are of (airflow-helm airflow 8.9.0, its only one)
LONG_RELEASE_NAME_MAX = 43  # the chart's limit with allowLongReleaseName
CHART_KEYS_DIR = Path(__file__).resolve().parents[2] / "chart_keys"  # scripts/chart_keys: key skeletons
ALLOWED_TOP_LEVEL = {"airflow", "dags", "externalDatabase", "externalRedis", "extraManifests",
                     "flower", "ingress", "logs", "pgbouncer", "postgresql", "prometheusRule",
                     "rbac", "redis", "scheduler", "serviceAccount", "serviceMonitor",
                     "triggerer", "web", "workers", "allowLongReleaseName", "global"}
OPEN_MAPS = {"airflow.defaultSecurityContext", "postgresql.master.podAnnotations",
             "redis.master.podAnnotations", "redis.slave.podAnnotations"}
CHART_OWNED_CONFIG = {
    "AIRFLOW__CORE__EXECUTOR": "from `airflow.executor`",
    "AIRFLOW__CORE__DAGS_FOLDER": "from `dags.path`",
    "AIRFLOW__CELERY__BROKER_URL": "by the chart",
    "AIRFLOW__CELERY__RESULT_BACKEND": "by the chart",
    "AIRFLOW__CORE__SQL_ALCHEMY_CONN": "by the chart",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "by the chart",
}
# The chart's fernetKey/webserverSecretKey defaults are public strings. They are not
# repeated here (this file ships in every generated repo, which must not contain them).
PUBLIC_DEFAULT = "<chart's public default>"
# Subset of the chart defaults the rules read; AIRFLOW_CHART_VALUES replaces it when set.
CHART_DEFAULTS: dict[str, Any] = {
    "airflow": {
        "legacyCommands": False, "executor": "CeleryExecutor", "config": {},
        "image": {"repository": "apache/airflow", "tag": CHART.default_tag},
        "fernetKey": PUBLIC_DEFAULT, "webserverSecretKey": PUBLIC_DEFAULT,
        "users": [{"username": "admin", "password": "admin", "role": "Admin",  # pragma: allowlist secret
                   "email": "admin@example.com", "firstName": "admin", "lastName": "admin"}],
        "usersTemplates": {}, "connectionsTemplates": {}, "variablesTemplates": {},
        "connections": [], "extraEnv": [], "extraVolumes": [], "extraVolumeMounts": [],
    },
    "scheduler": {"replicas": 1, "logCleanup": {"enabled": True}},
    "workers": {"enabled": True, "logCleanup": {"enabled": True}},
    "flower": {"enabled": True},
    "logs": {"path": "/opt/airflow/logs",
             "persistence": {"enabled": False, "accessMode": "ReadWriteMany", "existingClaim": ""}},
    "dags": {"persistence": {"enabled": False, "accessMode": "ReadOnlyMany", "existingClaim": ""},
             "gitSync": {"enabled": False}},
    "ingress": {"apiVersion": "networking.k8s.io/v1", "web": {"path": ""}, "flower": {"path": ""}},
    "pgbouncer": {side: {"caFile": {"existingSecretKey": "root.crt"},  # pragma: allowlist secret
                         "certFile": {"existingSecretKey": f"{role}.crt"},
                         "keyFile": {"existingSecretKey": f"{role}.key"}}
                  for side, role in (("serverSSL", "server"), ("clientSSL", "client"))},
    "postgresql": {"enabled": True},
    "redis": {"enabled": True},
    "externalDatabase": {"type": "postgres", "host": "localhost", "password": "",
                         "userSecret": "", "userSecretKey": "postgresql-user",  # pragma: allowlist secret
                         "passwordSecret": "", "passwordSecretKey": "postgresql-password"},  # pragma: allowlist secret
    "externalRedis": {"host": "localhost", "password": "", "passwordSecret": "",
                      "passwordSecretKey": "redis-password"},  # pragma: allowlist secret
}


def effective_values(values: dict, defaults: dict | None = None) -> dict:
    return deep_merge(defaults or CHART_DEFAULTS, values, drop_nulls=True)


def uses_celery(v: dict) -> bool:
    return dig(v, "airflow.executor") in CELERY_EXECUTORS


# ---------------------------------------------------------------- validate-values.tpl
def chart_rules(v: dict, release: str) -> list[str]:
    """`v`: the effective values (chart defaults included)."""
    return _release_rules(v, release) + _executor_rules(v) + _storage_rules(v) + _ingress_rules(v)


def _release_rules(v: dict, release: str) -> list[str]:
    e: list[str] = []
    limit = LONG_RELEASE_NAME_MAX if v.get("allowLongReleaseName") else CHART.release_name_max
    if len(release) > limit:
        e.append(f"The `.Release.name` must be <= {limit} characters (due to the 63 character "
                 f"limit for names in Kubernetes)! ({release!r} has {len(release)})")
    legacy = bool(dig(v, "airflow.legacyCommands"))
    if legacy and str(dig(v, "scheduler.replicas")) != "1":
        e.append("If `airflow.legacyCommands=true`, then `scheduler.replicas` must be set to `1`!")
    tag = str(dig(v, "airflow.image.tag", ""))
    if dig(v, "airflow.image.repository") == "apache/airflow":
        if tag.startswith("1.") and not legacy:
            e.append("When using airflow 1.10.X, `airflow.legacyCommands` must be `true`!")
        if tag.startswith("2.") and legacy:
            e.append("When using airflow 2.X.X, `airflow.legacyCommands` must be `false`!")
        if not tag.startswith("2."):
            e.append(f"`airflow.image.tag` {tag!r} is not an Airflow 2.X tag "
                     f"(chart {CHART.version} supports {CHART.airflow_range})")
    return e


def _executor_rules(v: dict) -> list[str]:
    e: list[str] = []
    executor = dig(v, "airflow.executor")
    if executor not in EXECUTORS:
        e.append(f"The `airflow.executor` must be one of: [{', '.join(sorted(EXECUTORS))}]!")
    elif uses_celery(v) and not dig(v, "workers.enabled"):
        e.append(f"If `airflow.executor={executor}`, then `workers.enabled` should be `true`!")
    elif not uses_celery(v) and any(dig(v, f"{k}.enabled") for k in ("workers", "flower", "redis")):
        e.append(f"If `airflow.executor={executor}`, then all of [`workers.enabled`, "
                 "`flower.enabled`, `redis.enabled`] should be `false`!")
    config = dig(v, "airflow.config") or {}
    for key, source in CHART_OWNED_CONFIG.items():
        for form in (key, f"{key}_CMD"):
            if config.get(form):
                e.append(f"Don't define `airflow.config.{form}`, it will be automatically set {source}!")
    return e


def _under(path: str, mounts: Any) -> bool:
    for mount in mounts if isinstance(mounts, list) else []:
        mount_path = str((mount or {}).get("mountPath", "")).rstrip("/")
        if mount_path and (path == mount_path or path.startswith(mount_path + "/")):
            return True
    return False


def _storage_rules(v: dict) -> list[str]:
    e: list[str] = []
    logs_path = str(dig(v, "logs.path", ""))
    logs_pvc = bool(dig(v, "logs.persistence.enabled"))
    for comp, extra in (("scheduler", True), ("workers", bool(dig(v, "workers.enabled")))):
        mounted = _under(logs_path, dig(v, "airflow.extraVolumeMounts")) or _under(
            logs_path, dig(v, f"{comp}.extraVolumeMounts"))
        if extra and (logs_pvc or mounted) and dig(v, f"{comp}.logCleanup.enabled"):
            cause = "`logs.persistence.enabled=true`" if logs_pvc else "`logs.path` is under an extraVolumeMount"
            e.append(f"If {cause}, then `{comp}.logCleanup.enabled` must be `false`!")
    if logs_pvc and dig(v, "logs.persistence.accessMode") != "ReadWriteMany":
        e.append("The `logs.persistence.accessMode` must be `ReadWriteMany`!")
    if logs_pvc and _under(logs_path, dig(v, "airflow.extraVolumeMounts")):
        e.append("If `logs.path` is under any `airflow.extraVolumeMounts`, then "
                 "`logs.persistence.enabled` must be `false`!")
    if dig(v, "dags.persistence.enabled") and dig(v, "dags.persistence.accessMode") not in (
            "ReadOnlyMany", "ReadWriteMany"):
        e.append("The `dags.persistence.accessMode` must be one of: [ReadOnlyMany, ReadWriteMany]!")
    db_host = dig(v, "externalDatabase.host")
    if db_host and db_host != "localhost":
        if dig(v, "postgresql.enabled"):
            e.append("If `externalDatabase.host` is set, then `postgresql.enabled` should be `false`!")
        if dig(v, "externalDatabase.type") not in ("mysql", "postgres"):
            e.append("The `externalDatabase.type` must be one of: [mysql, postgres]!")
    redis_host = dig(v, "externalRedis.host")
    if redis_host and redis_host != "localhost" and dig(v, "redis.enabled"):
        e.append("If `externalRedis.host` is set, then `redis.enabled` should be `false`!")
    return e


def _ingress_rules(v: dict) -> list[str]:
    e: list[str] = []
    if dig(v, "ingress.apiVersion") not in ("networking.k8s.io/v1", "networking.k8s.io/v1beta1"):
        e.append("The `ingress.apiVersion` must be one of: [networking.k8s.io/v1, networking.k8s.io/v1beta1]!")
    config = dig(v, "airflow.config") or {}
    for comp, setting in (("web", "AIRFLOW__WEBSERVER__BASE_URL"), ("flower", "AIRFLOW__CELERY__FLOWER_URL_PREFIX")):
        path = str(dig(v, f"ingress.{comp}.path") or "")
        if not path:
            continue
        if not path.startswith("/"):
            e.append(f"The `ingress.{comp}.path` should start with a '/'!")
        if path.endswith("/"):
            e.append(f"The `ingress.{comp}.path` should NOT include a trailing '/'!")
        want = path.removesuffix("/*")
        have = config.get(setting)
        if not have:
            e.append(f"If `ingress.{comp}.path` is set, then `airflow.config.{setting}` must be set! "
                     f"(path {want!r})")
        elif (urlparse(str(have)).path if comp == "web" else str(have)) != want:
            e.append(f"The `ingress.{comp}.path` must be compatible with `airflow.config.{setting}`! "
                     f"(its path must be {want!r}, got {have!r})")
    return e


# ---------------------------------------------------------------- under Argo CD
def argo_chart_rules(values: dict, defaults: dict | None = None) -> list[Issue]:
    """The chart's Helm-hook Jobs under Argo CD, which runs hooks as sync phases
    and never bumps .Release.Revision (https://argo-cd.readthedocs.io/en/stable/user-guide/helm/#helm-hooks;
    https://github.com/airflow-helm/charts/blob/airflow-8.9.0/charts/airflow/docs/faq/dags/airflow-connections.md)."""
    v = effective_values(values, defaults)
    found: list[Issue] = []
    if dig(v, "airflow.connectionsUpdate") is False:
        found.append(Issue(ERROR, "", "`airflow.connectionsUpdate` must be true under Argo CD (chart docs): false "
                      "renders the sync-connections Helm-hook Job"))
    hooks = sorted(k for k, val in (dig(v, "airflow") or {}).items()
                   if k.endswith("Update") and k != "connectionsUpdate" and val is False)
    found += [Issue(WARN, "", f"`airflow.{k}=false` renders a Helm-hook Job: Argo CD runs hooks as sync phases and "
               "never bumps .Release.Revision (keep the default true)") for k in hooks]
    if dig(v, "airflow.dbMigrations.runAsJob"):
        found.append(Issue(WARN, "", "`airflow.dbMigrations.runAsJob=true` renders the migrations as a Helm-hook Job "
                      "(immutability errors under Argo CD; keep the Deployment)"))
    return found


# ---------------------------------------------------------------- key paths
def unknown_key_paths(values: dict, chart_defaults: dict, _prefix: str = "") -> list[str]:
    """Key paths in `values` absent from the chart's values.yaml. `{}` defaults and
    OPEN_MAPS are open maps; lists are leaves."""
    unknown: list[str] = []
    for key, val in values.items():
        path = f"{_prefix}{key}"
        if not _prefix and key in ("allowLongReleaseName", "global"):
            continue
        if key not in chart_defaults:
            unknown.append(path)
            continue
        default = chart_defaults[key]
        if isinstance(default, dict) and default and isinstance(val, dict) and path not in OPEN_MAPS:
            unknown.extend(unknown_key_paths(val, default, f"{path}."))
    return unknown


def unknown_key_messages(values: dict, chart_keys: dict | None) -> list[Issue]:
    """The nested unknown key paths (top-level ones are reported by the stack rules)."""
    if chart_keys is None:
        return []
    return errors(f"unknown key path `{path}` (not in the chart's values.yaml; Helm ignores it)"
                  for path in unknown_key_paths(values, chart_keys) if "." in path)


def key_skeleton(values: Any) -> Any:
    """The chart's key structure without its values: maps keep their keys (an empty map stays an
    open map), every other value becomes null. Public defaults (the fernet key) are not carried."""
    if isinstance(values, dict):
        return {k: key_skeleton(v) for k, v in values.items()}
    return None


def load_chart_values(repo: Path | None = None) -> tuple[dict | None, dict | None, list[Issue]]:
    """(defaults for the rules, key tree for the key-path check, problems): the values.yaml of
    AIRFLOW_CHART_VALUES or of the chart `make render` cached; else the shipped key skeleton."""
    path = os.environ.get("AIRFLOW_CHART_VALUES")
    if path:
        try:
            defaults = yaml.load(Path(path).read_text(), Loader=Loader)
        except (OSError, yaml.YAMLError) as exc:
            return None, None, [Issue(ERROR, "", f"cannot read AIRFLOW_CHART_VALUES={path}: {exc}").at("values")]
        return defaults, defaults, []
    version = str(load_answers(repo).get("chart_version") or "") if repo else ""
    if repo and (cached := cached_chart(repo, CHART.name, version)) is not None and cached.values is not None:
        return cached.values, cached.values, []
    known = chart(FLAVOR, version)
    if known and (CHART_KEYS_DIR / known.key_paths).is_file():
        return None, json.loads((CHART_KEYS_DIR / known.key_paths).read_text()), []
    return None, None, [Issue(INFO, "", f"key-path check skipped: no key data for chart "
                                         f"{version or '?'} (run `make render` to cache the chart, or set "
                                         "AIRFLOW_CHART_VALUES)").at("values")]
