"""The official Apache Airflow chart's rules, on the values its engine will hand to Helm.

The chart ships values.schema.json and `helm template` enforces it; so does `make validate`, on the
chart `make render` cached (.cache/charts/airflow-<version>.tgz), before anything reaches a cluster.
Then this stack's rules: every credential from a Secret of the environment (the chart would otherwise
generate fernet, API and JWT keys per install, or take passwords in values, which Helm stores in its
release Secret), RDS and ElastiCache rather than the bundled PostgreSQL and Redis, the Jobs as plain
resources (helm hooks deadlock under --wait and replay under Argo CD), an image the flavor deploys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from airflow_gitops.chart_cache import cached_chart
from airflow_gitops.facts import (
    CELERY_EXECUTORS,
    CHART_CACHE,
    DAG_BUNDLE_ANNOTATION,
    DAG_BUNDLE_CLASSPATH,
    DAG_BUNDLE_CONFIGMAP,
    DAG_BUNDLE_FILE,
    DAG_BUNDLE_MOUNT,
    FERNET_KEY_OF,
    chart,
)
from airflow_gitops.objects import dig, produced_secret_keys
from airflow_gitops.validate.policy import STATIC_AWS_KEYS
from airflow_gitops.validate.report import INFO, Issue, errors
from airflow_gitops.values import deep_merge

FLAVOR = "official"
# values key naming a Secret -> (keys the chart reads from it, when it is needed, why it must be set)
SECRET_NAMES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "data.metadataSecretName": (("connection",), "always", "else the chart writes the DB password into values"),
    "data.resultBackendSecretName": (("connection",), "celery", "else the chart writes the DB password into values"),
    "data.brokerUrlSecretName": (("connection",), "celery", "else the broker URL (AUTH token) is in values"),
    "fernetKeySecretName": (("fernet-key",), "always", "else the chart generates a fernet key per install"),
    "apiSecretKeySecretName": (("api-secret-key",), "always", "else the chart generates one per install/upgrade"),
    "jwtSecretName": (("jwt-secret",), "always", "else the chart generates one per install: running tasks "
                                                 "lose the Execution API"),
    "pgbouncer.configSecretName": (("pgbouncer.ini", "users.txt"), "pgbouncer",
                                   "else the chart writes the DB password into values"),
    "pgbouncer.metricsExporterSidecar.statsSecretName": (("connection",), "pgbouncer",
                                                         "else the chart writes the DB password into values"),
}
PLAINTEXT = ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey", "data.brokerUrl",
             "data.metadataConnection.pass", "data.resultBackendConnection.pass")
HOOK_JOBS = ("migrateDatabaseJob", "createUserJob")


def chart_files(repo: Path, version: str) -> tuple[dict, dict] | None:
    """(values.yaml, values.schema.json) of the official chart `make render` cached, or None."""
    cached = cached_chart(repo, "airflow", version)
    if cached is None or cached.values is None or cached.schema is None:
        return None
    return cached.values, cached.schema


def official_rules(values: dict, version: str, repo: Path | None, namespace: str | None,
                   context: list[dict] | None, release: str = "") -> list[Issue]:
    """The merged values of one release of the official chart."""
    known = chart_files(repo, version) if repo else None
    found: list[Issue] = []
    if known is None:
        found.append(Issue(INFO, "", f"values not checked against the chart's values.schema.json: run "
                                           f"`make render` (it caches airflow {version} in {CHART_CACHE})"))
        merged = values
    else:
        defaults, schema = known
        merged = deep_merge(defaults, values, drop_nulls=True)
        found += errors(schema_errors(merged, schema))
        # The chart's schema allows any top-level key, so a misspelt one (`schedulr:`) is silently ignored.
        found += errors(f"unknown top-level values key {key!r}: the chart {version} has no such key (typo?)"
                        for key in sorted(set(values) - set(defaults)))
    found += errors(stack_rules(values, merged, version) + bundle_rules(merged, repo))
    flavor = chart(FLAVOR, version)
    if flavor and len(release) > flavor.release_name_max:
        found += errors([f"release name {release!r} is longer than {flavor.release_name_max} characters "
                         "(<release>-migrate-database-job names a Job; its pods' job-name label is at most 63)"])
    if context is not None:
        found += errors(secret_refs(merged, namespace, context))
    return found


def schema_errors(merged: dict, schema: dict) -> list[str]:
    """What `helm template` would refuse: the chart's JSON Schema (draft 7) on the coalesced values."""
    from jsonschema import Draft7Validator

    errors = sorted(Draft7Validator(schema).iter_errors(merged), key=lambda e: list(e.absolute_path))
    return [f"values.schema.json: at '/{'/'.join(map(str, e.absolute_path))}': {e.message}" for e in errors]


def _needed(when: str, v: dict) -> bool:
    return when == "always" or (when == "celery" and uses_celery(v)) or (
        when == "pgbouncer" and bool(dig(v, "pgbouncer.enabled")))


def uses_celery(v: dict) -> bool:
    return any(e.strip() in CELERY_EXECUTORS for e in str(v.get("executor", "")).split(","))


def stack_rules(user: dict, v: dict, version: str) -> list[str]:
    e: list[str] = []
    flavor = chart(FLAVOR, version)
    executor = str(v.get("executor", ""))
    if flavor and executor not in flavor.executors:
        e.append(f"`executor` {executor!r}: the official flavor deploys {', '.join(flavor.executors)} "
                 "(Airflow 3 removed CeleryKubernetesExecutor)")
    tag = str(dig(v, "images.airflow.tag") or v.get("defaultAirflowTag") or "")
    if flavor and not flavor.supports(tag):
        e.append(f"image tag {tag!r}: the {flavor.label} deploys Airflow {flavor.airflow_range} here")
    elif tag and str(v.get("airflowVersion", "")) != tag.split("-")[0]:
        e.append(f"`airflowVersion` {v.get('airflowVersion')!r} must be the image's Airflow version "
                 f"{tag.split('-')[0]!r}: the chart picks commands and config by it")
    for sub in ("postgresql", "redis"):
        if dig(v, f"{sub}.enabled"):
            e.append(f"`{sub}.enabled` must be false: RDS and ElastiCache, not the chart's bundled {sub}")
    for key in PLAINTEXT:
        if dig(user, key) not in (None, ""):
            e.append(f"`{key}` holds a secret in values (Helm stores values in its release Secret): "
                     "use the SealedSecret the matching *SecretName names")
    for key, (_, when, why) in SECRET_NAMES.items():
        if _needed(when, v) and not dig(v, key):
            e.append(f"`{key}` must name a Secret of the environment: {why}")
    for job in HOOK_JOBS:
        if dig(v, f"{job}.enabled") is not False and dig(v, f"{job}.useHelmHooks") is not False:
            e.append(f"`{job}.useHelmHooks` must be false: as a Helm hook it runs after the pods it must come "
                     "before (Helm --wait deadlocks) and Argo CD replays it at every sync")
    e += keda_rules(v)
    text = json.dumps({k: user.get(k) for k in ("env", "config", "extraEnv", "secret")})
    if STATIC_AWS_KEYS.search(text):
        e.append("static AWS keys in values: the pods take the IAM role (IRSA or Pod Identity)")
    return e


# The components whose processes load DAG bundles (DagBundlesManager imports each bundle's class):
# the dag-processor parses, the scheduler syncs the bundle list, the api-server renders versions,
# workers (and the chart's KubernetesExecutor pod template, from workers.*) and the triggerer run tasks.
BUNDLE_COMPONENTS = ("dagProcessor", "scheduler", "apiServer", "triggerer", "workers")


def bundle_rules(v: dict, repo: Path | None) -> list[str]:
    """Where dagBundleConfigList names this repository's bundle, every component imports it from its
    ConfigMap, and the pods carry the hash of the file the ConfigMap holds (a subPath mount never
    updates: only a new annotation restarts them onto an edited file)."""
    bundles = dig(v, "dagProcessor.dagBundleConfigList") or []
    if not any(isinstance(b, dict) and b.get("classpath") == DAG_BUNDLE_CLASSPATH for b in bundles):
        return []
    e = []
    for component in BUNDLE_COMPONENTS:
        volumes = {vol.get("name"): dig(vol, "configMap.name") for vol in dig(v, f"{component}.extraVolumes") or []}
        mounts = [m for m in dig(v, f"{component}.extraVolumeMounts") or [] if m.get("mountPath") == DAG_BUNDLE_MOUNT]
        if DAG_BUNDLE_CONFIGMAP not in {volumes.get(m.get("name")) for m in mounts}:
            e.append(f"`{component}.extraVolumeMounts` must mount ConfigMap {DAG_BUNDLE_CONFIGMAP} at "
                     f"{DAG_BUNDLE_MOUNT}: dagProcessor.dagBundleConfigList names {DAG_BUNDLE_CLASSPATH}, "
                     "which every Airflow process that loads DAG bundles imports")
    source = repo / DAG_BUNDLE_FILE if repo else None
    if source is not None and source.is_file():
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        stamped = (dig(v, "airflowPodAnnotations") or {}).get(DAG_BUNDLE_ANNOTATION)
        if stamped != digest:
            e.append(f"`airflowPodAnnotations.{DAG_BUNDLE_ANNOTATION}` is {stamped!r}, not the SHA-256 of "
                     f"{DAG_BUNDLE_FILE} ({digest}): pods mount the file with subPath, which never updates, so "
                     "only a new annotation restarts them onto it (set it in deploy/base/values.yaml)")
    elif source is not None:
        e.append(f"{DAG_BUNDLE_FILE} is missing: dagProcessor.dagBundleConfigList names {DAG_BUNDLE_CLASSPATH}")
    return e


def _keda(v: dict, key: str) -> object:
    """workers.celery.keda.<key>, else the deprecated workers.keda.<key> (the chart's own precedence)."""
    value = dig(v, f"workers.celery.keda.{key}")
    return dig(v, f"workers.keda.{key}") if value is None else value


def keda_rules(v: dict) -> list[str]:
    if _keda(v, "enabled") is not True:
        return []
    e = []
    if not uses_celery(v):
        e.append("`workers.celery.keda.enabled` scales Celery workers: with this executor the chart renders no "
                 "ScaledObject")
    if _keda(v, "usePgbouncer") is False and dig(v, "pgbouncer.enabled"):
        e.append("`workers.celery.keda.usePgbouncer` must stay true: false makes KEDA read key `kedaConnection` of "
                 "the metadata Secret, which nothing seals (and a path from KEDA to RDS)")
    return e


def secret_refs(v: dict, namespace: str | None, objs: list[dict]) -> list[str]:
    """Every Secret the values name exists in the environment with the keys the chart reads."""
    e = []
    for key, (keys, when, _) in SECRET_NAMES.items():
        name = dig(v, key)
        if not name or not _needed(when, v):
            continue
        have = produced_secret_keys(objs, str(name), namespace)
        if have is None:
            e.append(f"`{key}` names Secret {name!r}, which nothing in namespace {namespace} creates")
        elif missing := [k for k in keys if k not in have]:
            e.append(f"`{key}`: Secret {name!r} has no key {', '.join(map(repr, missing))} (the chart reads it"
                     f"{_moved_fernet_key(have, missing)})")
    return e


def _moved_fernet_key(have: set[str], missing: list[str]) -> str:
    """A repo switched from the community chart keeps its sealed fernet key under that chart's key."""
    old, new = FERNET_KEY_OF["community"], FERNET_KEY_OF["official"]
    if new in missing and old in have:
        return f"; it has `{old}`, the community chart's: `make seal` moves the sealed key to `{new}`"
    return ""


def image_of(values: dict) -> str:
    repo = dig(values, "images.airflow.repository") or values.get("defaultAirflowRepository") or "apache/airflow"
    tag = dig(values, "images.airflow.tag") or values.get("defaultAirflowTag") or ""
    return f"{repo}:{tag}"
