#!/usr/bin/env python3
"""Offline validation of this GitOps repo (`make validate`).

Builds every kustomization the cluster will apply (clusters/<env>, infrastructure,
deploy/overlays/<env>, ...) with kubectl kustomize, then checks each build:
strict JSON Schemas for Flux/SealedSecret/Argo kinds, kubernetes-validate for core
kinds, cross references (valuesFrom, Secrets, PVC->PV, dependsOn; Argo CD Applications
against their AppProject, value files and .copier-answers.yml) and the airflow chart's
own rules on the merged Helm values (HelmRelease or Application), because Flux and Argo
never show Helm NOTES and the chart has no values.schema.json. One line per problem,
exit 1 on errors.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import kubernetes_validate
import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIP_DIRS = {"node_modules", "__pycache__"}  # plus every hidden dir (.git, .cache, .tools)
SCHEMA_GROUPS = {"helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io",
                 "kustomize.toolkit.fluxcd.io", "bitnami.com", "argoproj.io"}
CATALOG_URL = "https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/{group}/{kind}_{version}.json"
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "IngressClass", "CSIDriver", "RuntimeClass", "APIService",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# Old volumeHandle grammar: drivers before v3.0.0 fail on the `efs:` prefix.
EFS_HANDLE = re.compile(r"^fs-[0-9a-f]{8,40}(:(/[^:]*)?(:fsap-[0-9a-f]{8,40})?)?$")
TEMPLATE_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
DEPRECATED_ENV = re.compile(
    r"^AIRFLOW__(CORE__(REMOTE_\w+|ENCRYPT_S3_LOGS|LOGGING_LEVEL)|KUBERNETES_ENVIRONMENT_VARIABLES__\w+)$")
# Spelled as a pattern: generated repos are scanned for the literal key names.
STATIC_AWS_KEYS = re.compile(r"aws_(access_key_id|secret_access_key)", re.I)
PLACEHOLDER_PREFIX = "UNSEALED"
ANSWERS_FILE = ".copier-answers.yml"
ENGINES = {"flux": "Flux", "argocd": "Argo CD"}  # gitops_engine answer -> display name
VALUES_REF = re.compile(r"^\$([^/]+)/(.*)$")  # Argo CD multi-source `$<ref>/<path from repo root>`
SCP_URL = re.compile(r"^([\w.-]+@[\w.-]+):(?!//)(.*)$")  # git@host:org/repo

# airflow-helm chart 8.9.0 (validate-values.tpl / values.yaml) facts.
ALLOWED_TOP_LEVEL = {"airflow", "dags", "externalDatabase", "externalRedis", "extraManifests",
                     "flower", "ingress", "logs", "pgbouncer", "postgresql", "prometheusRule",
                     "rbac", "redis", "scheduler", "serviceAccount", "serviceMonitor",
                     "triggerer", "web", "workers", "allowLongReleaseName", "global"}
OPEN_MAPS = {"airflow.defaultSecurityContext", "postgresql.master.podAnnotations",
             "redis.master.podAnnotations", "redis.slave.podAnnotations"}
EXECUTORS = ("CeleryExecutor", "CeleryKubernetesExecutor", "KubernetesExecutor")
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
        "image": {"repository": "apache/airflow", "tag": "2.8.4-python3.9"},
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


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, like the Kubernetes API does."""


_Loader.yaml_implicit_resolvers = {
    ch: [r for r in rs if r[0] != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: node.value)  # `=` scalars


@dataclass(frozen=True)
class Issue:
    level: str  # ERROR | WARN | INFO
    ref: str  # Kind/namespace/name ("" for build-level problems)
    message: str


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    errors: int = 0
    warnings: int = 0
    builds: int = 0
    objects: int = 0

    def add(self, where: str, issue: Issue) -> None:
        ref = f" {issue.ref}:" if issue.ref else ""
        self.lines.append(f"{issue.level} {where}:{ref} {issue.message}")
        self.errors += issue.level == "ERROR"
        self.warnings += issue.level == "WARN"

    def summary(self) -> str:
        return (f"validate: {self.builds} builds, {self.objects} objects, "
                f"{self.errors} errors, {self.warnings} warnings")


# ---------------------------------------------------------------- small helpers
def dig(data: Any, path: str, default: Any = None) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def ns_of(obj: dict) -> str | None:
    return dig(obj, "metadata.namespace")


def ref(obj: dict) -> str:
    parts = [obj.get("kind", "?"), ns_of(obj), dig(obj, "metadata.name", "?")]
    return "/".join(str(p) for p in parts if p)


def find(objs: list[dict], kind: str, name: str, namespace: str | None) -> dict | None:
    for obj in objs:
        if obj.get("kind") == kind and dig(obj, "metadata.name") == name and ns_of(obj) == namespace:
            return obj
    return None


def deep_merge(base: dict, override: dict, drop_nulls: bool = False) -> dict:
    """Helm semantics: maps merge recursively, lists and scalars replace; with
    drop_nulls (coalescing onto chart defaults) a null removes the key."""
    out = copy.deepcopy(base)
    for key, val in override.items():
        if val is None and drop_nulls:
            out.pop(key, None)
        elif isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val, drop_nulls)
        else:
            out[key] = copy.deepcopy(val)
    return out


def effective_values(values: dict, defaults: dict | None = None) -> dict:
    return deep_merge(defaults or CHART_DEFAULTS, values, drop_nulls=True)


def sealed_name(obj: dict) -> str | None:
    return dig(obj, "spec.template.metadata.name") or dig(obj, "metadata.name")


def produced_secret_keys(objs: list[dict], name: str, namespace: str | None) -> set[str] | None:
    """Keys of Secret `name` that the build creates (directly or via a SealedSecret)."""
    for obj in objs:
        if ns_of(obj) != namespace:
            continue
        if obj.get("kind") == "Secret" and dig(obj, "metadata.name") == name:
            return set(obj.get("data") or {}) | set(obj.get("stringData") or {})
        if obj.get("kind") == "SealedSecret" and sealed_name(obj) == name:
            return set(dig(obj, "spec.encryptedData") or {}) | set(dig(obj, "spec.template.data") or {})
    return None


def env_of(build: str) -> str:
    parts = Path(build).parts
    if "overlays" in parts[:-1]:
        return parts[parts.index("overlays") + 1]
    if len(parts) > 2 and parts[0] == "clusters":  # clusters/<cluster>/<env>
        return parts[2]
    return parts[-1] if parts else "<env>"


def companion_objects(build: str, builds: dict[str, list[dict]]) -> list[dict]:
    """The other half of an environment's namespace: deploy/overlays/<env> <-> deploy/overlays/<env>/secrets,
    when they are separate builds (Flux applies secrets/ first, as its own Kustomization)."""
    path = Path(build)
    other = path.parent if path.name == "secrets" else path / "secrets"
    return builds.get(str(other), []) if "overlays" in path.parts else []


# ---------------------------------------------------------------- schemas
class SchemaStore:
    """Schema files from AIRFLOW_GITOPS_SCHEMA_DIR, else the datree catalog (cached)."""

    def __init__(self, repo: Path, schema_dir: str | None) -> None:
        self.dir = Path(schema_dir) if schema_dir else None
        self.cache = repo / ".cache" / "schemas"
        self.online = schema_dir is None
        self._validators: dict[str, jsonschema.Draft7Validator | None] = {}

    def validator(self, group: str, kind: str, version: str) -> jsonschema.Draft7Validator | None:
        name = f"{kind.lower()}-{group}-{version}.json"
        if name not in self._validators:
            schema = self._load(name, group, kind.lower(), version)
            self._validators[name] = jsonschema.Draft7Validator(schema) if schema else None
        return self._validators[name]

    def _load(self, name: str, group: str, kind: str, version: str) -> dict | None:
        path = (self.dir or self.cache) / name
        if path.is_file():
            return json.loads(path.read_text())
        if not self.online:
            return None
        try:  # best effort: one failure means offline, don't pay the timeout per kind
            url = CATALOG_URL.format(group=group, kind=kind, version=version)
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
            schema = json.loads(text)
        except Exception:  # any network/parse failure means offline
            self.online = False
            return None
        self.cache.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return schema


def check_schemas(objs: list[dict], store: SchemaStore, k8s_version: str) -> tuple[list[Issue], set[str]]:
    """Strict schema errors, plus the kinds that could not be checked."""
    issues: list[Issue] = []
    unchecked: set[str] = set()
    for obj in objs:
        api = str(obj.get("apiVersion", ""))
        group, _, version = api.rpartition("/")
        if group in SCHEMA_GROUPS or group.endswith(".toolkit.fluxcd.io"):
            validator = store.validator(group, str(obj.get("kind", "")), version)
            if validator is None:
                unchecked.add(f"{obj.get('kind')} ({api})")
                continue
            for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
                issues.append(Issue("ERROR", ref(obj), f"schema: {err.json_path}: {err.message}"))
            continue
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path)
            issues.append(Issue("ERROR", ref(obj), f"schema (k8s {err.version}): ${path}: {err.message}"))
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
            unchecked.add(f"{obj.get('kind')} ({api})")
        except kubernetes_validate.VersionNotSupportedError:
            msg = f"kubernetes-validate does not support KUBERNETES_VERSION={k8s_version}"
            return [Issue("ERROR", "", msg)], unchecked
    return issues, unchecked


# ---------------------------------------------------------------- Helm values
def helm_values(hr: dict, objs: list[dict]) -> tuple[dict, list[str], list[str]]:
    """Merge valuesFrom (list order) then spec.values like helm-controller.
    Returns (values, errors, warnings); unresolvable entries are reported."""
    values: dict = {}
    errors: list[str] = []
    warnings: list[str] = []
    namespace = ns_of(hr)
    targeted: list[tuple[str, Any]] = []
    for i, entry in enumerate(dig(hr, "spec.valuesFrom") or []):
        kind, name = entry.get("kind"), entry.get("name")
        key = entry.get("valuesKey") or "values.yaml"
        where = f"valuesFrom[{i}] {kind}/{name}"
        if kind not in ("ConfigMap", "Secret"):
            errors.append(f"{where}: kind must be ConfigMap or Secret (case-sensitive)")
            continue
        text, problem = _values_source(objs, kind, name, namespace, key)
        if problem:
            if not entry.get("optional"):
                errors.append(f"{where}: {problem}")
            continue
        if text is None:
            warnings.append(f"{where}: values come from a SealedSecret and cannot be checked")
            continue
        try:
            parsed = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            errors.append(f"{where}: key {key!r} is not valid YAML: {str(exc).splitlines()[0]}")
            continue
        if entry.get("targetPath"):  # applied after everything else, like helm-controller
            targeted.append((entry["targetPath"], parsed))
        elif isinstance(parsed, dict):
            values = deep_merge(values, parsed)
        elif parsed is not None:
            errors.append(f"{where}: key {key!r} must hold a YAML mapping")
    values = deep_merge(values, dig(hr, "spec.values") or {})
    for path, val in targeted:
        node = values
        *parents, last = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = val
    return values, errors, warnings


def _values_source(objs: list[dict], kind: str, name: str, namespace: str | None,
                   key: str) -> tuple[str | None, str | None]:
    """(text, problem) for one valuesFrom entry; text None without problem = sealed."""
    obj = find(objs, kind, name, namespace)
    if obj is None and kind == "Secret":
        sealed = [o for o in objs if o.get("kind") == "SealedSecret"
                  and sealed_name(o) == name and ns_of(o) == namespace]
        if sealed:
            keys = set(dig(sealed[0], "spec.encryptedData") or {})
            return None, None if key in keys else f"SealedSecret has no key {key!r}"
    if obj is None:
        similar = [dig(o, "metadata.name") for o in objs if o.get("kind") == kind
                   and str(dig(o, "metadata.name", "")).startswith(f"{name}-")]
        hint = (f" (generated {similar[0]} exists: add a kustomize `configurations` nameReference"
                " for spec/valuesFrom/name)") if similar else ""
        return None, f"{kind} {name!r} is not produced in namespace {namespace} by this build{hint}"
    plain, encoded = ("data", "binaryData") if kind == "ConfigMap" else ("stringData", "data")
    if key in (obj.get(plain) or {}):
        return str(obj[plain][key]), None
    if key in (obj.get(encoded) or {}):
        try:
            return base64.b64decode(obj[encoded][key]).decode(), None
        except (ValueError, UnicodeDecodeError):
            return None, f"{kind} {name!r} key {key!r} is not base64-encoded UTF-8"
    return None, f"{kind} {name!r} has no key {key!r}"


# ---------------------------------------------------------------- chart rules
def _under(path: str, mounts: Any) -> bool:
    for mount in mounts if isinstance(mounts, list) else []:
        mount_path = str((mount or {}).get("mountPath", "")).rstrip("/")
        if mount_path and (path == mount_path or path.startswith(mount_path + "/")):
            return True
    return False


def check_airflow_values(values: dict, release_name: str, defaults: dict | None = None) -> list[str]:
    """The chart's validate-values.tpl rules plus what it lets through (REFERENCE §1.4/1.5).
    `values` are the user's merged values (without chart defaults)."""
    v = effective_values(values, defaults)
    errors = _chart_rules(v, release_name) + _ingress_rules(v) + _stack_rules(values, v)
    return errors + _secret_hygiene(values, v)


def _chart_rules(v: dict, release: str) -> list[str]:
    e: list[str] = []
    limit = 43 if v.get("allowLongReleaseName") else 40
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
            e.append(f"`airflow.image.tag` {tag!r} is not an Airflow 2.X tag (chart 8.9.0 supports 2.0-2.9)")
    executor = dig(v, "airflow.executor")
    if executor not in EXECUTORS:
        e.append("The `airflow.executor` must be one of: [CeleryExecutor, CeleryKubernetesExecutor, "
                 "KubernetesExecutor]!")
    if executor in EXECUTORS[:2] and not dig(v, "workers.enabled"):
        e.append(f"If `airflow.executor={executor}`, then `workers.enabled` should be `true`!")
    if executor == "KubernetesExecutor" and any(
            dig(v, f"{k}.enabled") for k in ("workers", "flower", "redis")):
        e.append("If `airflow.executor=KubernetesExecutor`, then all of [`workers.enabled`, "
                 "`flower.enabled`, `redis.enabled`] should be `false`!")
    config = dig(v, "airflow.config") or {}
    for key, source in CHART_OWNED_CONFIG.items():
        for form in (key, f"{key}_CMD"):
            if config.get(form):
                e.append(f"Don't define `airflow.config.{form}`, it will be automatically set {source}!")
    return e + _storage_rules(v)


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
    if (dig(v, "airflow.executor") in EXECUTORS[:2] and not dig(v, "redis.enabled")
            and dig(v, "externalRedis.host") in (None, "", "localhost")):
        e.append("Celery executor with `redis.enabled=false` but `externalRedis.host` is "
                 "localhost/empty (set the ElastiCache primary endpoint)")
    e += _broker_tls_rules(v)
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
    if dig(v, "airflow.executor") not in EXECUTORS[:2] or dig(v, "redis.enabled"):
        return []
    props = str(dig(v, "externalRedis.properties") or "")
    params = dict(p.partition("=")[::2] for p in props.lstrip("?").split("&") if p)
    auth = dig(v, "externalRedis.passwordSecret") or dig(v, "externalRedis.password")
    if auth and "ssl_cert_reqs" not in params:
        return ["the broker authenticates (externalRedis.passwordSecret) but `externalRedis.properties` has no "
                "ssl_cert_reqs: ElastiCache AUTH always means TLS, and a plain connection is reset by the "
                "server (use ?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt)"]
    if params.get("ssl_cert_reqs", "required").lower() in ("none", "cert_none", "optional", "cert_optional"):
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
    for kind in ("users", "connections", "variables"):
        for name, tpl in (dig(v, f"airflow.{kind}Templates") or {}).items():
            if (tpl or {}).get("kind") not in ("secret", "configmap"):
                e.append(f"`airflow.{kind}Templates.{name}.kind` must be secret or configmap")
    for i, env in enumerate(dig(v, "airflow.extraEnv") or []):
        if STATIC_AWS_KEYS.search(json.dumps(env)):
            e.append(f"`airflow.extraEnv[{i}]` sets static AWS keys (they bypass IRSA)")
    return e


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


def value_refs(values: dict) -> tuple[list[tuple[str, str | None, str]], list[tuple[str, str]]]:
    """(Secret name, key, where) and (PVC name, where) the chart values use by name."""
    v = effective_values(values)
    secrets: list[tuple[str, str | None, str]] = []
    claims: list[tuple[str, str]] = []

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
    holders = ["airflow", "scheduler", "web", "workers", "triggerer", "flower", "airflow.kubernetesPodTemplate"]
    for holder in holders:
        for i, vol in enumerate(dig(v, f"{holder}.extraVolumes") or []):
            where = f"{holder}.extraVolumes[{i}]"
            secret = (vol or {}).get("secret") or {}
            keys = [item.get("key") for item in secret.get("items") or []] or [None]
            for key in keys:
                add(secret.get("secretName"), key, where)
            claim = dig(vol, "persistentVolumeClaim.claimName")
            if claim:
                claims.append((claim, where))
    for kind in ("dags", "logs"):
        if dig(v, f"{kind}.persistence.enabled") and dig(v, f"{kind}.persistence.existingClaim"):
            claims.append((dig(v, f"{kind}.persistence.existingClaim"), f"{kind}.persistence.existingClaim"))
    return secrets, claims


def check_value_refs(values: dict, namespace: str | None, objs: list[dict]) -> list[str]:
    """Every Secret/PVC the values name must be produced by this build in `namespace`."""
    errors: list[str] = []
    secrets, claims = value_refs(values)
    for name, key, where in secrets:
        keys = produced_secret_keys(objs, name, namespace)
        if keys is None:
            errors.append(f"{where}: Secret {name!r} is not produced in namespace {namespace} "
                          "by this build (no Secret or SealedSecret)")
        elif key is not None and key not in keys:
            errors.append(f"{where}: Secret {name!r} has no key {key!r} (has: {', '.join(sorted(keys)) or 'none'})")
    for name, where in claims:
        if find(objs, "PersistentVolumeClaim", name, namespace) is None:
            errors.append(f"{where}: PersistentVolumeClaim {name!r} is not produced in namespace {namespace}")
    return errors


# ---------------------------------------------------------------- object checks
def check_helmreleases(objs: list[dict], chart_defaults: dict | None = None,
                       chart_keys: dict | None = None, context: list[dict] | None = None) -> list[Issue]:
    """`context`: every object of the release's namespace (the Secrets its values name may come
    from another Kustomization of the same environment)."""
    chart_keys = chart_keys if chart_keys is not None else chart_defaults
    context = context if context is not None else objs
    issues: list[Issue] = []
    for hr in (o for o in objs if o.get("kind") == "HelmRelease"):
        def err(msg: str, level: str = "ERROR", hr: dict = hr) -> None:
            issues.append(Issue(level, ref(hr), msg))

        spec = hr.get("spec") or {}
        chart = dig(spec, "chart.spec") or {}
        source = chart.get("sourceRef") or {}
        if chart:
            kind = source.get("kind", "HelmRepository")
            src_ns = source.get("namespace") or ns_of(hr)
            external = kind == "GitRepository" and source.get("name") == "flux-system"
            if not external and find(objs, kind, str(source.get("name")), src_ns) is None:
                err(f"chart.spec.sourceRef {kind}/{source.get('name')} not found in namespace {src_ns} in this build")
            version = str(chart.get("version", ""))
            if not EXACT_VERSION.match(version):
                err(f"chart.spec.version must pin an exact version (got {version or 'unset = *'!r})")
        release = spec.get("releaseName")
        if not release:
            err("spec.releaseName must be set explicitly (default is [<targetNamespace>-]<name>)")
            release = "-".join(filter(None, [spec.get("targetNamespace"), dig(hr, "metadata.name")]))
        elif not DNS1123_LABEL.match(release):
            err(f"spec.releaseName {release!r} is not a DNS-1123 label")
        is_airflow = chart.get("chart") == "airflow"
        if not is_airflow and len(release) > 40:
            err(f"spec.releaseName {release!r} is longer than 40 characters")
        values, errors, warnings = helm_values(hr, objs)
        for msg in errors:
            err(msg)
        for msg in warnings:
            err(msg, "WARN")
        if not is_airflow or errors or warnings:
            continue  # partial values would only add noise to the real problem
        for msg in check_airflow_values(values, release, chart_defaults):
            err(f"values: {msg}")
        if chart_keys is not None:
            for path in unknown_key_paths(values, chart_keys):
                if "." in path:  # top-level ones are reported by check_airflow_values
                    err(f"values: unknown key path `{path}` (not in the chart's values.yaml; Helm ignores it)")
        for msg in check_value_refs(values, spec.get("targetNamespace") or ns_of(hr), context):
            err(f"values: {msg}")
    return issues


def check_sealed_secrets(objs: list[dict], env: str, strict: bool = False) -> list[Issue]:
    issues: list[Issue] = []
    for obj in (o for o in objs if o.get("kind") == "SealedSecret"):
        name = dig(obj, "metadata.name")
        issues += _sealed_binding(obj)
        for key, val in sorted((dig(obj, "spec.encryptedData") or {}).items()):
            if str(val).startswith(PLACEHOLDER_PREFIX):
                issues.append(Issue("ERROR" if strict else "WARN", ref(obj),
                                    f"encryptedData.{key} is a placeholder: run `make seal ENV={env} SECRET={name}`"))
    return issues


def _sealed_binding(obj: dict) -> list[Issue]:
    """A build that renames a SealedSecret (namePrefix, nameSuffix, namespace) breaks it.

    The template metadata is not rewritten by kustomize, so a mismatch after the build means
    a transform moved the object. Strict scope binds name and namespace, namespace-wide the
    namespace: the controller then fails with "no key could decrypt secret".
    """
    annotations = dig(obj, "metadata.annotations") or {}
    cluster_wide = annotations.get("sealedsecrets.bitnami.com/cluster-wide") == "true"
    namespace_wide = annotations.get("sealedsecrets.bitnami.com/namespace-wide") == "true"
    name, namespace = dig(obj, "metadata.name"), ns_of(obj)
    tpl_name, tpl_ns = dig(obj, "spec.template.metadata.name"), dig(obj, "spec.template.metadata.namespace")
    issues = []
    if tpl_name and tpl_name != name:
        level = "WARN" if cluster_wide or namespace_wide else "ERROR"
        issues.append(Issue(level, ref(obj), f"built name {name!r} != spec.template.metadata.name {tpl_name!r}: "
                            "a namePrefix/nameSuffix renamed it, and strict scope seals the name"))
    if tpl_ns and tpl_ns != namespace:
        level = "WARN" if cluster_wide else "ERROR"
        issues.append(Issue(level, ref(obj), f"built namespace {namespace!r} != spec.template.metadata.namespace "
                            f"{tpl_ns!r}: the sealed scope binds the namespace"))
    return issues


def check_volumes(objs: list[dict]) -> list[Issue]:
    issues: list[Issue] = []
    pvs = {dig(o, "metadata.name"): o for o in objs if o.get("kind") == "PersistentVolume"}
    for pvc in (o for o in objs if o.get("kind") == "PersistentVolumeClaim"):
        spec = pvc.get("spec") or {}
        if "storageClassName" not in spec:
            issues.append(Issue("ERROR", ref(pvc), "spec.storageClassName must be set explicitly "
                                "(else the default StorageClass is filled in and static binding fails)"))
        volume = spec.get("volumeName")
        if not volume:
            continue
        pv = pvs.get(volume)
        if pv is None:
            issues.append(Issue("ERROR", ref(pvc), f"spec.volumeName {volume!r}: no PersistentVolume in this build"))
            continue
        pv_class = dig(pv, "spec.storageClassName", "")
        if spec.get("storageClassName", "") != pv_class:
            issues.append(Issue("ERROR", ref(pvc), f"storageClassName {spec.get('storageClassName')!r} != "
                                f"PersistentVolume/{volume} storageClassName {pv_class!r}"))
        missing = set(spec.get("accessModes") or []) - set(dig(pv, "spec.accessModes") or [])
        if missing:
            issues.append(Issue("ERROR", ref(pvc), f"accessModes {sorted(missing)} not offered by "
                                f"PersistentVolume/{volume}"))
    for pv in pvs.values():
        if dig(pv, "spec.csi.driver") != "efs.csi.aws.com":
            continue
        handle = str(dig(pv, "spec.csi.volumeHandle", ""))
        if not EFS_HANDLE.match(handle):
            issues.append(Issue("ERROR", ref(pv), f"csi.volumeHandle {handle!r} must be fs-<id>[:/path][:fsap-<id>]"
                                " (old grammar, ids fs-/fsap- + 8-40 hex)"))
        elif ":fsap-" not in handle:
            issues.append(Issue("ERROR", ref(pv), f"csi.volumeHandle {handle!r} has no access point: the EFS root "
                                "is owned by root (0755), so the DAG publisher (uid 50000) gets EACCES; use "
                                "fs-<id>::fsap-<id> with an access point for 50000:0"))
        issues += _claim_binding(pv, objs)
        if dig(pv, "spec.persistentVolumeReclaimPolicy") != "Retain":
            issues.append(Issue("WARN", ref(pv), "persistentVolumeReclaimPolicy should be Retain for EFS"))
    return issues


def _claim_binding(pv: dict, objs: list[dict]) -> list[Issue]:
    """A static PV must name its claim: else any claim of the StorageClass can bind it first."""
    claim = dig(pv, "spec.claimRef") or {}
    if not claim.get("name") or not claim.get("namespace"):
        return [Issue("ERROR", ref(pv), "spec.claimRef (namespace and name) must bind the volume to its claim: "
                      "without it any PersistentVolumeClaim of the StorageClass can take it")]
    pvc = find(objs, "PersistentVolumeClaim", claim["name"], claim["namespace"])
    if pvc is None:
        return [Issue("ERROR", ref(pv), f"spec.claimRef {claim['namespace']}/{claim['name']}: no such "
                      "PersistentVolumeClaim in this build")]
    if dig(pvc, "spec.volumeName") != dig(pv, "metadata.name"):
        return [Issue("ERROR", ref(pv), f"spec.claimRef names {claim['namespace']}/{claim['name']}, whose "
                      f"volumeName is {dig(pvc, 'spec.volumeName')!r}")]
    return []


def check_yaml_files(repo: Path) -> list[tuple[str, Issue]]:
    """Every YAML file parses, reported as file:line:column: kustomize would only name the
    ConfigMap generated from it, or fail without saying which file."""
    found = []
    for directory, _, files in _walk(repo):
        if directory.relative_to(repo).parts[:1] == ("build",):
            continue
        for name in (f for f in files if f.endswith((".yaml", ".yml"))):
            path = directory / name
            try:
                list(yaml.load_all(path.read_text(), Loader=_Loader))
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark
                where = f"{path.relative_to(repo)}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
                found.append((where, Issue("ERROR", "", f"invalid YAML: {exc.problem or exc}")))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                found.append((str(path.relative_to(repo)), Issue("ERROR", "", f"invalid YAML: {exc}")))
    return found


def check_ca_bundles(repo: Path, strict: bool) -> list[tuple[str, Issue]]:
    """deploy/overlays/<env>/rds-ca-bundle.pem must hold AWS's bundle before pgbouncer verifies RDS."""
    found = []
    for path in sorted(repo.glob("deploy/overlays/*/rds-ca-bundle.pem")):
        env = path.parent.name
        if "-----BEGIN CERTIFICATE-----" not in path.read_text(errors="replace"):
            found.append((str(path.relative_to(repo)), Issue("ERROR" if strict else "WARN", "",
                          f"placeholder: pgbouncer cannot verify RDS until you run `make rds-ca ENV={env}`")))
    return found


def check_flux_kustomizations(objs: list[dict], repo: Path, generated_dirs: set[Path] | None = None) -> list[Issue]:
    issues: list[Issue] = []
    for ks in objs:
        if ks.get("kind") != "Kustomization" or not str(ks.get("apiVersion", "")).startswith("kustomize.toolkit"):
            continue
        spec = ks.get("spec") or {}
        path = str(spec.get("path") or ".").removeprefix("./")
        target = (repo / path).resolve()
        if not target.is_dir():
            issues.append(Issue("ERROR", ref(ks), f"spec.path {spec.get('path')!r} does not exist in the repo"))
        elif kustomization_file(target) is None and target not in (generated_dirs or set()):
            issues.append(Issue("ERROR", ref(ks), f"spec.path {spec.get('path')!r} has no kustomization.yaml"))
        for dep in spec.get("dependsOn") or []:
            dep_ns = dep.get("namespace") or ns_of(ks)
            if find(objs, "Kustomization", str(dep.get("name")), dep_ns) is None:
                issues.append(Issue("ERROR", ref(ks), f"dependsOn {dep_ns}/{dep.get('name')}: no such Kustomization "
                                    "in this build"))
        src = spec.get("sourceRef") or {}
        src_ns = src.get("namespace") or ns_of(ks)
        if not (src.get("kind") == "GitRepository" and src.get("name") == "flux-system") and find(
                objs, str(src.get("kind")), str(src.get("name")), src_ns) is None:
            issues.append(Issue("ERROR", ref(ks), f"sourceRef {src.get('kind')}/{src_ns}/{src.get('name')} "
                                "not found in this build"))
    return issues


def release_values(objs: list[dict]) -> dict | None:
    """The merged Helm values of the build's HelmRelease (Flux), or None."""
    releases = [o for o in objs if o.get("kind") == "HelmRelease"]
    if len(releases) != 1:
        return None
    values, errors, warnings = helm_values(releases[0], objs)
    return None if errors or warnings else values


def check_environments(builds: dict[str, list[dict]]) -> list[tuple[str, Issue]]:
    """Environments on one cluster (clusters/<cluster>/<env>/) must not share a namespace: they would
    share the Helm release, the DAG volume and the Secrets. Nor may two share an S3 log folder."""
    cluster_of = {parts[2]: parts[1] for name in builds if len(parts := Path(name).parts) >= 3
                  and parts[0] == "clusters"}
    seen_ns: dict[tuple[str, str], str] = {}
    seen_logs: dict[str, str] = {}
    found = []
    for name, objs in sorted(builds.items()):
        parts = Path(name).parts
        if len(parts) != 3 or parts[:2] != ("deploy", "overlays"):
            continue
        env = parts[2]
        namespaces = {ns_of(o) for o in objs if ns_of(o)}
        for ns in sorted(namespaces):
            key = (cluster_of.get(env, "?"), ns)
            if key in seen_ns:
                found.append((name, Issue("ERROR", "", f"namespace {ns!r} is also environment {seen_ns[key]!r}'s on "
                              f"cluster {key[0]!r}: the two would share the release, the DAG volume and the "
                              "Secrets")))
            seen_ns.setdefault(key, env)
        folder = dig(release_values(objs) or {}, "airflow.config.AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER")
        if folder:
            folder = str(folder).rstrip("/")
            for other_folder, other in seen_logs.items():
                if folder == other_folder or folder.startswith(other_folder + "/") or \
                        other_folder.startswith(folder + "/"):
                    found.append((name, Issue("ERROR", "", f"remote log folder {folder} overlaps environment "
                                  f"{other!r}'s {other_folder}: their task logs would mix")))
            seen_logs[folder] = env
    return found


def check_namespace(objs: list[dict]) -> list[Issue]:
    """An env overlay owns exactly one Namespace, the one all its objects live in."""
    used = sorted({str(ns_of(o)) for o in objs if o.get("kind") not in CLUSTER_SCOPED})
    declared = [dig(o, "metadata.name") for o in objs if o.get("kind") == "Namespace"]
    if len(used) != 1:
        return [Issue("ERROR", "", f"namespaced objects span {len(used)} namespaces ({', '.join(used)}); expected one")]
    if declared != used:
        return [Issue("ERROR", "", f"expected exactly one Namespace {used[0]!r}, found {declared or 'none'}")]
    return []


def check_cluster_scoped(builds: dict[str, list[dict]]) -> list[tuple[str, Issue]]:
    """The same cluster-scoped object from two builds must be identical, or two envs
    sharing a cluster would overwrite (and prune) each other's copy."""
    seen: dict[tuple[str, str], tuple[str, dict]] = {}
    issues: list[tuple[str, Issue]] = []
    for build, objs in builds.items():
        for obj in (o for o in objs if o.get("kind") in CLUSTER_SCOPED):
            key = (str(obj.get("kind")), str(dig(obj, "metadata.name")))
            first = seen.setdefault(key, (build, obj))
            if first[0] != build and first[1] != obj:
                issues.append((build, Issue("ERROR", ref(obj), f"cluster-scoped object differs from the one "
                                            f"built by {first[0]} (two envs would fight over it)")))
    return issues


# ---------------------------------------------------------------- Argo CD
def load_answers(repo: Path) -> dict:
    """The primary Copier answers (repo-wide: gitops_engine, git_repo_url, git_revision)."""
    try:
        data = yaml.load((repo / ANSWERS_FILE).read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _engine_of(obj: dict) -> str | None:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group.endswith(".toolkit.fluxcd.io"):
        return "flux"
    return "argocd" if group == "argoproj.io" else None


def check_engine_purity(builds: dict[str, list[dict]], engine: str | None) -> list[tuple[str, Issue]]:
    """One engine per repo (REFERENCE §3.4): the other engine's objects would never reconcile."""
    if engine is None:
        return []
    if engine not in ENGINES:
        return [(ANSWERS_FILE, Issue("ERROR", "", f"gitops_engine {engine!r} is neither flux nor argocd"))]
    return [(build, Issue("ERROR", ref(obj), f"{ENGINES[other]} object in a gitops_engine: {engine} repo "
                          f"(nothing reconciles it without the {ENGINES[other]} controllers)"))
            for build, objs in builds.items() for obj in objs if (other := _engine_of(obj)) not in (None, engine)]


def _glob(pattern: str, value: str, sep: str = "") -> bool:
    """Argo CD's glob: a lone `*` matches everything; with `sep`, `*` stops at it and `**` does not."""
    if pattern == "*":
        return True
    if not sep:
        return fnmatch.fnmatchcase(value, pattern)
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    rx = "".join({"**": ".*", "*": f"[^{sep}]*", "?": f"[^{sep}]"}.get(p, re.escape(p)) for p in parts)
    return re.fullmatch(rx, value) is not None


def _permitted(value: str, patterns: list, sep: str = "") -> bool:
    """Some pattern matches and no `!pattern` does."""
    allowed = False
    for pattern in (str(p) for p in patterns):
        if pattern.startswith("!"):
            if _glob(pattern[1:], value, sep):
                return False
        elif _glob(pattern, value, sep):
            allowed = True
    return allowed


def _norm_url(url: str) -> str:
    """Like Argo CD's NormalizeGitURL: lower case, scp-like to ssh://, no .git or trailing /."""
    url = SCP_URL.sub(r"ssh://\1/\2", url.strip().lower())
    return url.removesuffix("/").removesuffix(".git").removesuffix("/")


def _destination_permitted(dest: dict, namespace: str, destinations: list) -> bool:
    for item in (d for d in destinations if isinstance(d, dict)):
        server = bool(dest.get("server")) and _glob(str(item.get("server") or ""), str(dest["server"]))
        name = bool(dest.get("name")) and _glob(str(item.get("name") or ""), str(dest["name"]))
        if (server or name) and _glob(str(item.get("namespace") or ""), namespace):
            return True
    return False


def _kind_permitted(group: str, kind: str, spec: dict, cluster_scoped: bool) -> bool:
    """AppProject resource lists: no clusterResourceWhitelist denies every cluster-scoped kind,
    no namespaceResourceWhitelist allows every namespaced one; blacklists always win."""
    def listed(entries: Any) -> bool:
        return any(_glob(str(e.get("group", "")), group) and _glob(str(e.get("kind", "")), kind)
                   for e in entries or [] if isinstance(e, dict))

    scope = "cluster" if cluster_scoped else "namespace"
    allow = spec.get(f"{scope}ResourceWhitelist")
    allowed = listed(allow) if cluster_scoped or allow is not None else True
    return allowed and not listed(spec.get(f"{scope}ResourceBlacklist"))


def _dest_str(dest: dict, namespace: str) -> str:
    target = f"server {dest['server']}" if dest.get("server") else f"cluster {dest.get('name')}"
    return f"{target} namespace {namespace or '(none: cluster-scoped only)'!r}"


def argo_sources(app: dict) -> list[tuple[str, dict]]:
    """(label, source) as Argo CD reads them: spec.sources wins over spec.source."""
    spec = app.get("spec") or {}
    if spec.get("sources"):
        return [(f"sources[{i}]", s if isinstance(s, dict) else {}) for i, s in enumerate(spec["sources"])]
    return [("source", spec["source"])] if isinstance(spec.get("source"), dict) else []


def _source_path(src: dict) -> str | None:
    """The repo-relative directory a git source deploys (None: a chart or a pure `ref`)."""
    if src.get("chart") or src.get("path") is None:
        return None
    return Path(str(src["path"]).strip("/") or ".").as_posix()


def check_app_project(proj: dict) -> list[Issue]:
    """There is no AppProject schema: its load-bearing fields are checked here."""
    spec = proj.get("spec") or {}
    issues = [Issue("ERROR", ref(proj), f"spec.{key} must be a non-empty list (Argo CD denies everything "
                    "without it)") for key in ("sourceRepos", "destinations")
              if not isinstance(spec.get(key), list) or not spec[key]]
    for i, dest in enumerate(spec.get("destinations") or []):
        if not isinstance(dest, dict) or not (dest.get("server") or dest.get("name")):
            issues.append(Issue("ERROR", ref(proj), f"spec.destinations[{i}] needs server or name"))
    return issues


def check_argo_applications(builds: dict[str, list[dict]], repo: Path,
                            chart_defaults: dict | None = None,
                            chart_keys: dict | None = None) -> list[tuple[str, Issue]]:
    """AppProjects and Applications of every build, against the repo files and answers."""
    answers = load_answers(repo)
    issues: list[tuple[str, Issue]] = []
    for build, objs in builds.items():
        found: list[Issue] = []
        for obj in (o for o in objs if _engine_of(o) == "argocd"):
            if obj.get("kind") == "AppProject":
                found += check_app_project(obj)
            elif obj.get("kind") == "Application":
                sources = argo_sources(obj)
                found += _argo_source_rules(obj, sources, repo)
                found += _argo_answer_rules(obj, sources, answers)
                found += _argo_project_rules(obj, sources, objs, builds)
                found += _argo_airflow_values(obj, sources, repo, builds, chart_defaults,
                                              chart_keys if chart_keys is not None else chart_defaults)
        issues += [(build, issue) for issue in found]
    return issues


def _argo_source_rules(app: dict, sources: list[tuple[str, dict]], repo: Path) -> list[Issue]:
    spec = app.get("spec") or {}
    issues: list[Issue] = []

    def err(msg: str, level: str = "ERROR") -> None:
        issues.append(Issue(level, ref(app), msg))

    if spec.get("sources") and spec.get("source"):
        err("spec.source and spec.sources are both set: Argo CD ignores spec.source")
    if not sources:
        err("neither spec.source nor spec.sources is set")
    refs = {str(s["ref"]) for _, s in sources if s.get("ref")}
    for label, src in sources:
        chart = src.get("chart")
        if chart:
            if src.get("ref"):
                err(f"{label}: a `ref` source cannot have `chart` ({chart!r})")
            revision = str(src.get("targetRevision") or "")
            if not EXACT_VERSION.match(revision):
                err(f"{label}: chart {chart} targetRevision must pin an exact version "
                    f"(got {revision or 'unset = latest'!r})")
            issues.extend(_argo_release_rules(app, label, src))
        path = _source_path(src)
        if path is not None:
            target = repo / path
            if not target.is_dir():
                err(f"{label}: path {src['path']!r} does not exist in the repo")
            elif kustomization_file(target) is None and not (target / "Chart.yaml").is_file():
                err(f"{label}: path {src['path']!r} has no kustomization.yaml (Argo CD would apply its "
                    "YAML files as a plain directory)")
        for i, entry in enumerate(dig(src, "helm.valueFiles") or []):
            level, msg = _value_file_problem(str(entry), src, refs, repo)
            if msg:
                err(f"{label}: helm.valueFiles[{i}] {entry!r}: {msg}", level)
    return issues


def _argo_release_rules(app: dict, label: str, src: dict) -> list[Issue]:
    release = dig(src, "helm.releaseName")
    chart = src.get("chart")
    issues = []
    if not release and chart == "airflow":
        issues.append(Issue("ERROR", ref(app), f"{label}: helm.releaseName must be set (default is the Application "
                            f"name {dig(app, 'metadata.name')!r}, which counts against the chart's 40-character "
                            "limit)"))
    release = str(release or dig(app, "metadata.name", ""))
    if not DNS1123_LABEL.match(release):
        issues.append(Issue("ERROR", ref(app), f"{label}: helm.releaseName {release!r} is not a DNS-1123 label"))
    elif chart != "airflow" and len(release) > 53:  # airflow: 40, checked with the values
        issues.append(Issue("ERROR", ref(app), f"{label}: helm.releaseName {release!r} is longer than 53 characters"))
    return issues


def _value_file_problem(entry: str, src: dict, refs: set[str], repo: Path) -> tuple[str, str | None]:
    """(level, problem) of one helm.valueFiles entry; problem None when it resolves."""
    match = VALUES_REF.match(entry)
    if match:
        name, rel = match.groups()
        if name not in refs:
            return "ERROR", f"no source has `ref: {name}`"
        target = (repo / rel).resolve()
        if not target.is_relative_to(repo.resolve()):
            return "ERROR", "escapes the repository"
        if not target.is_file():
            level = "WARN" if dig(src, "helm.ignoreMissingValueFiles") else "ERROR"
            return level, f"{rel!r} does not exist in the repo (`${name}/` paths start at the repo root)"
        return "", None
    if "$" in entry:
        return "ERROR", "`$<ref>/` is only expanded at the start of the path"
    if src.get("chart"):
        return "WARN", "a relative value file resolves inside the chart (use `$values/<path from the repo root>`)"
    path = _source_path(src)
    if path is not None and (repo / path).is_dir() and not (repo / path / entry).is_file():
        return "ERROR", f"not found in {path}"
    return "", None


def _argo_answer_rules(app: dict, sources: list[tuple[str, dict]], answers: dict) -> list[Issue]:
    """Every git source deploys this repository at the revision the answers name."""
    issues = []
    for label, src in sources:
        if src.get("chart"):
            continue
        for key, answer in (("repoURL", "git_repo_url"), ("targetRevision", "git_revision")):
            want, have = answers.get(answer), src.get(key)
            if want and str(have or "") != str(want):
                issues.append(Issue("ERROR", ref(app), f"{label}: {key} {have or 'unset = HEAD'!r} != {answer} "
                                    f"{want!r} in {ANSWERS_FILE}"))
    return issues


def _argo_project_rules(app: dict, sources: list[tuple[str, dict]], objs: list[dict],
                        builds: dict[str, list[dict]]) -> list[Issue]:
    spec = app.get("spec") or {}
    name = spec.get("project")
    if not name:
        return []  # required by the Application schema
    project = find(objs, "AppProject", str(name), ns_of(app))
    if project is None and name == "default":
        return [Issue("WARN", ref(app), "spec.project 'default' allows every source, destination and "
                      "cluster-scoped kind: use a dedicated AppProject")]
    if project is None:
        return [Issue("ERROR", ref(app), f"spec.project {name!r}: no AppProject {name} in namespace "
                      f"{ns_of(app)} in this build")]
    pspec = project.get("spec") or {}
    issues: list[Issue] = []

    def err(msg: str, level: str = "ERROR") -> None:
        issues.append(Issue(level, ref(app), msg))

    repos = [str(p) for p in pspec.get("sourceRepos") or []]
    normalized = [("!" if p.startswith("!") else "") + _norm_url(p.removeprefix("!")) for p in repos]
    for label, src in sources:
        if not _permitted(_norm_url(str(src.get("repoURL", ""))), normalized, "/"):
            err(f"{label}: repoURL {src.get('repoURL')!r} is not in AppProject {name} sourceRepos "
                f"({', '.join(repos) or 'none'})")
    dest = spec.get("destination") or {}
    namespace = str(dest.get("namespace") or "")
    dests = pspec.get("destinations") or []
    if not _destination_permitted(dest, namespace, dests):
        err(f"destination {_dest_str(dest, namespace)} is not allowed by AppProject {name} destinations")
    whitelist = pspec.get("clusterResourceWhitelist") or []
    if any(s.get("chart") == "airflow" for _, s in sources) and any(
            isinstance(e, dict) and e.get("kind") == "*" for e in whitelist):
        err(f"AppProject {name} clusterResourceWhitelist allows every cluster-scoped kind (`*`) for the airflow "
            "chart: list only what it deploys (Namespace, PersistentVolume)", "WARN")
    for path, deployed in _deployed(sources, builds):
        issues += _deployed_rules(app, path, deployed or [], pspec, namespace)
    return issues


def _deployed(sources: list[tuple[str, dict]], builds: dict[str, list[dict]]) -> list[tuple[str, list[dict] | None]]:
    """(path, build objects or None if not built) of every git source with a path."""
    paths = [p for _, s in sources if (p := _source_path(s)) is not None]
    return [(p, builds.get(p)) for p in paths]


def _deployed_rules(app: dict, path: str, objs: list[dict], pspec: dict, namespace: str) -> list[Issue]:
    """What a path source applies must fit the project: namespaces (one line each, the destination's
    own is reported above) and kinds (one line each)."""
    project = dig(app, "spec.project")
    dest = dig(app, "spec.destination") or {}
    kinds: set[tuple[str, str, bool]] = set()
    namespaces: set[str] = set()
    for obj in objs:
        cluster_scoped = obj.get("kind") in CLUSTER_SCOPED
        kinds.add((str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind")), cluster_scoped))
        if not cluster_scoped:
            namespaces.add(str(ns_of(obj) or namespace))
    issues = []
    for group, kind, cluster_scoped in sorted(kinds):
        if not _kind_permitted(group, kind, pspec, cluster_scoped):
            scope = "clusterResource" if cluster_scoped else "namespaceResource"
            issues.append(Issue("ERROR", ref(app), f"{path} deploys {kind} ({group or 'core'}), not permitted by "
                                f"AppProject {project} {scope}Whitelist/Blacklist"))
    for ns in sorted(namespaces - {namespace}):
        if not ns:
            issues.append(Issue("ERROR", ref(app), f"{path} deploys namespaced objects without a namespace and "
                                "the destination has none"))
        elif not _destination_permitted(dest, ns, pspec.get("destinations") or []):
            issues.append(Issue("ERROR", ref(app), f"{path} deploys into namespace {ns!r}, not allowed by "
                                f"AppProject {project} destinations"))
    return issues


def argo_values(src: dict, refs: set[str], repo: Path) -> tuple[dict | None, list[str]]:
    """Helm values of a chart source as Argo CD merges them: valueFiles in order, then
    helm.values (a YAML string), then helm.valuesObject. (None, []) when a file cannot be
    read (the source rules report why); parse problems are returned."""
    helm = src.get("helm") or {}
    values: dict = {}
    errors: list[str] = []
    layers: list[tuple[str, Any]] = []
    for i, entry in enumerate(helm.get("valueFiles") or []):
        match = VALUES_REF.match(str(entry))
        target = (repo / match.group(2)) if match and match.group(1) in refs else None
        if target is None or not target.resolve().is_relative_to(repo.resolve()):
            return None, []
        if not target.is_file():
            if helm.get("ignoreMissingValueFiles"):
                continue
            return None, []
        try:
            layers.append((f"helm.valueFiles[{i}] {entry!r}", yaml.load(target.read_text(), Loader=_Loader)))
        except (OSError, yaml.YAMLError) as exc:
            errors.append(f"helm.valueFiles[{i}] {entry!r} is not valid YAML: {str(exc).splitlines()[0]}")
    if helm.get("values"):
        try:
            layers.append(("helm.values", yaml.load(str(helm["values"]), Loader=_Loader)))
        except yaml.YAMLError as exc:
            errors.append(f"helm.values is not valid YAML: {str(exc).splitlines()[0]}")
    layers.append(("helm.valuesObject", helm.get("valuesObject")))
    for where, layer in layers:
        if isinstance(layer, dict):
            values = deep_merge(values, layer)
        elif layer is not None:
            errors.append(f"{where} must hold a YAML mapping")
    return values, errors


def argo_chart_rules(values: dict, defaults: dict | None = None) -> list[tuple[str, str]]:
    """(level, message): the chart's hook Jobs under Argo CD (REFERENCE §1.6/§3.2)."""
    v = effective_values(values, defaults)
    found = []
    if dig(v, "airflow.connectionsUpdate") is False:
        found.append(("ERROR", "`airflow.connectionsUpdate` must be true under Argo CD (chart docs): false "
                      "renders the sync-connections Helm-hook Job"))
    hooks = sorted(k for k, val in (dig(v, "airflow") or {}).items()
                   if k.endswith("Update") and k != "connectionsUpdate" and val is False)
    found += [("WARN", f"`airflow.{k}=false` renders a Helm-hook Job: Argo CD runs hooks as sync phases and "
               "never bumps .Release.Revision (keep the default true)") for k in hooks]
    if dig(v, "airflow.dbMigrations.runAsJob"):
        found.append(("WARN", "`airflow.dbMigrations.runAsJob=true` renders the migrations as a Helm-hook Job "
                      "(immutability errors under Argo CD; keep the Deployment)"))
    return found


def _argo_airflow_values(app: dict, sources: list[tuple[str, dict]], repo: Path,
                         builds: dict[str, list[dict]], chart_defaults: dict | None,
                         chart_keys: dict | None = None) -> list[Issue]:
    issues: list[Issue] = []

    def err(msg: str, level: str = "ERROR") -> None:
        issues.append(Issue(level, ref(app), msg))

    refs = {str(s["ref"]) for _, s in sources if s.get("ref")}
    namespace = dig(app, "spec.destination.namespace")
    for label, src in (x for x in sources if x[1].get("chart") == "airflow"):
        values, errors = argo_values(src, refs, repo)
        for msg in errors:
            err(f"{label}: {msg}")
        if values is None or errors:
            continue  # partial values would only add noise to the real problem
        release = str(dig(src, "helm.releaseName") or dig(app, "metadata.name", ""))
        for msg in check_airflow_values(values, release, chart_defaults):
            err(f"values: {msg}")
        for level, msg in argo_chart_rules(values, chart_defaults):
            err(f"values: {msg}", level)
        if chart_keys is not None:
            for path in unknown_key_paths(values, chart_keys):
                if "." in path:  # top-level ones are reported by check_airflow_values
                    err(f"values: unknown key path `{path}` (not in the chart's values.yaml; Helm ignores it)")
        deployed = _deployed(sources, builds)
        unbuilt = [p for p, objs in deployed if objs is None]
        if not deployed or unbuilt:
            why = f"{', '.join(unbuilt)} not built" if unbuilt else "no git source with a path deploys them"
            err(f"values: Secret/PVC references not checked ({why})", "INFO")
            continue
        for msg in check_value_refs(values, namespace, [o for _, objs in deployed for o in objs or []]):
            err(f"values: {msg}")
    return issues


# ---------------------------------------------------------------- builds
def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def _walk(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS)
        yield Path(dirpath), dirnames, sorted(filenames)


def discover_builds(repo: Path, engine: str | None = "flux") -> tuple[list[Path], set[Path]]:
    """(build roots, clusters/<cluster> dirs). Roots are kustomizations no other kustomization
    includes, plus, under Flux, each clusters/<cluster> dir (a bootstrap path: Flux applies it,
    generating a kustomization of everything below it). Argo CD's clusters/ dirs are plain
    kustomizations (kubectl apply -k)."""
    clusters_dir = repo / "clusters"
    generated = {p.resolve() for p in clusters_dir.iterdir() if p.is_dir() and not p.name.startswith(".")} \
        if clusters_dir.is_dir() and engine != "argocd" else set()
    kdirs = [d.resolve() for d, _, files in _walk(repo) if any(f in files for f in KUSTOMIZATION_FILES)]
    included: set[Path] = set()
    for d in kdirs:
        try:
            data = yaml.load(kustomization_file(d).read_text(), Loader=_Loader) or {}  # type: ignore[union-attr]
        except (OSError, yaml.YAMLError):
            continue  # the build will report it
        if not isinstance(data, dict):
            continue
        if data.get("kind") == "Component":
            included.add(d)
        for entry in (data.get("resources") or []) + (data.get("bases") or []) + (data.get("components") or []):
            if isinstance(entry, str) and "://" not in entry:
                included.add((d / entry).resolve())
    roots = {d for d in kdirs if d not in included and not any(g in d.parents for g in generated)}
    roots |= generated
    return sorted(roots, key=lambda p: str(p.relative_to(repo.resolve()))), generated


def generated_kustomization(target: Path, tmp: Path) -> str:
    """What kustomize-controller writes when a path has no kustomization.yaml: every
    YAML file recursively, sub-dirs holding a kustomization as one resource."""
    resources: list[str] = []
    for directory, dirnames, files in _walk(target):
        for sub in list(dirnames):
            if kustomization_file(directory / sub):
                resources.append(os.path.relpath(directory / sub, tmp))
                dirnames.remove(sub)
        resources += [os.path.relpath(directory / f, tmp) for f in files if f.endswith((".yaml", ".yml"))]
    return yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": sorted(resources)})


class BuildError(Exception):
    pass


def kustomize_build(kubectl: str, target: Path, root_only: bool = False) -> list[dict]:
    """kustomize-controller builds without load restrictions; Argo CD and `kubectl apply -k`
    keep kustomize's default (root_only: no files outside the kustomization's directory)."""
    with tempfile.TemporaryDirectory(prefix="validate-") as tmp:
        build_dir = target
        restrictor = "LoadRestrictionsRootOnly" if root_only else "LoadRestrictionsNone"
        if kustomization_file(target) is None:
            # Written to a temp dir, never into the repo; its relative paths point back
            # at the originals, so nested kustomizations resolve their own references.
            build_dir = Path(tmp)
            (build_dir / "kustomization.yaml").write_text(generated_kustomization(target, build_dir))
            restrictor = "LoadRestrictionsNone"
        proc = subprocess.run([kubectl, "kustomize", f"--load-restrictor={restrictor}", str(build_dir)],
                              capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        hint = " (Argo CD builds with kustomize's default LoadRestrictionsRootOnly)" \
            if root_only and "security;" in proc.stderr else ""
        raise BuildError((" ".join(proc.stderr.split()) or f"kubectl exited {proc.returncode}") + hint)
    return [d for d in yaml.load_all(proc.stdout, Loader=_Loader) if isinstance(d, dict)]


def find_kubectl(repo: Path) -> str | None:
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    local = repo / ".tools" / "bin" / "kubectl"
    if os.access(local, os.X_OK):
        return str(local)
    try:  # kustomize features used here need kubectl >= 1.27 (kustomize v5)
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"],
                             capture_output=True, text=True, timeout=30).stdout
        minor = int(re.sub(r"\D", "", json.loads(out)["clientVersion"]["minor"]) or 0)
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return None
    return "kubectl" if minor >= 27 else None


def validate_repo(repo: Path, strict: bool = False) -> Report:
    repo = repo.resolve()
    report = Report()
    kubectl = find_kubectl(repo)
    if kubectl is None:
        report.add("validate", Issue("ERROR", "", "no kubectl >= 1.27 found: run `make tools` (or set KUBECTL)"))
        return report
    store = SchemaStore(repo, os.environ.get("AIRFLOW_GITOPS_SCHEMA_DIR") or None)
    k8s_version = os.environ.get("KUBERNETES_VERSION", "1.34.0")
    for where, issue in check_yaml_files(repo):
        report.add(where, issue)
    chart_defaults, chart_keys = _chart_defaults(report, repo)
    engine = load_answers(repo).get("gitops_engine")
    targets, generated = discover_builds(repo, engine)
    if not targets:
        report.add("validate", Issue("ERROR", "", f"no kustomization or clusters/<env> dir found under {repo}"))
    built: dict[str, list[dict]] = {}
    every: dict[str, list[dict]] = {}  # including clusters/<cluster>
    unchecked: set[str] = set()
    for target in targets:
        name = str(target.relative_to(repo)) or "."
        report.builds += 1
        try:
            every[name] = kustomize_build(kubectl, target, root_only=engine == "argocd")
        except (BuildError, OSError, subprocess.SubprocessError) as exc:
            report.add(name, Issue("ERROR", "", f"kustomize build failed: {exc}"))
            continue
        report.objects += len(every[name])
        if target not in generated:  # clusters/<cluster> are separate clusters by design
            built[name] = every[name]
    for name, objs in every.items():
        # What the namespace holds: an overlay and its secrets/ (Flux applies them as two Kustomizations).
        context = objs + companion_objects(name, every)
        issues, missing = check_schemas(objs, store, k8s_version)
        unchecked |= missing
        issues += check_helmreleases(objs, chart_defaults, chart_keys, context)
        issues += check_sealed_secrets(objs, env_of(name), strict)
        issues += check_volumes(context if "overlays" in Path(name).parts[:-1] else objs)
        issues += check_flux_kustomizations(objs, repo, generated)
        if "overlays" in Path(name).parts[:-1]:  # an environment overlay
            issues += check_namespace(context)
        for issue in dict.fromkeys(issues):  # an issue of the shared context once per build
            report.add(name, issue)
    for name, issue in check_environments(every):
        report.add(name, issue)
    for name, issue in check_cluster_scoped(built) + check_engine_purity(every, engine):
        report.add(name, issue)
    for name, issue in check_argo_applications(every, repo, chart_defaults, chart_keys):
        report.add(name, issue)
    for name, issue in check_ca_bundles(repo, strict):
        report.add(name, issue)
    if (repo / "Jenkinsfile").is_file():
        overlays = {Path(n).name: objs + companion_objects(n, every) for n, objs in built.items()
                    if Path(n).parent.name == "overlays"}
        images = deployed_images(every, repo)
        jenkins_sa = load_answers(repo).get("jenkins_service_account")
        for issue in check_jenkinsfile((repo / "Jenkinsfile").read_text(), overlays, images, jenkins_sa):
            report.add("Jenkinsfile", issue)
    if unchecked:
        report.add("schemas", Issue("WARN", "", "not schema-checked (no schema; set AIRFLOW_GITOPS_SCHEMA_DIR "
                                    f"or go online): {', '.join(sorted(unchecked))}"))
    return report


JENKINS_ENV = re.compile(r"^\s*'([^']+)'\s*:\s*\[namespace:\s*'([^']*)',\s*claim:\s*'([^']*)'", re.M)
JENKINS_IMAGE = re.compile(r"AIRFLOW_IMAGE\s*=\s*'([^']*)'")


def check_jenkinsfile(text: str, overlays: dict[str, list[dict]], images: dict[str, str],
                      jenkins_sa: str | None = None) -> list[Issue]:
    """The DAG publisher must target each environment's namespace, DAG claim and Airflow image.

    ``images`` maps an environment to the image its Airflow release deploys (from the merged values).
    """
    entries = {env: (ns, claim) for env, ns, claim in JENKINS_ENV.findall(text)}
    image = JENKINS_IMAGE.search(text)
    issues = [Issue("ERROR", "Jenkinsfile", f"environment {env!r} has no deploy/overlays/{env}")
              for env in sorted(set(entries) - set(overlays))]
    for env, objs in sorted(overlays.items()):
        if env not in entries:
            issues.append(Issue("ERROR", "Jenkinsfile", f"no entry for environment {env!r}: "
                                "the DAG job cannot publish there"))
            continue
        namespace, claim = entries[env]
        built_ns = {o["metadata"]["name"] for o in objs if o.get("kind") == "Namespace"}
        if built_ns and namespace not in built_ns:
            issues.append(Issue("ERROR", "Jenkinsfile", f"{env}: namespace {namespace!r} != overlay namespace "
                                f"{', '.join(sorted(built_ns))}"))
        if not find(objs, "PersistentVolumeClaim", claim, namespace):
            issues.append(Issue("ERROR", "Jenkinsfile", f"{env}: claim {claim!r} is not a PVC of the overlay"))
        issues += _agent_identity(text, env, objs, namespace, jenkins_sa)
        wanted = images.get(env)
        if image and wanted and image.group(1) != wanted:
            issues.append(Issue("ERROR", "Jenkinsfile", f"{env}: AIRFLOW_IMAGE {image.group(1)!r} != the "
                                f"deployed image {wanted!r} (the DAG check must use the same Python)"))
    return issues


JENKINS_AGENT_SA = re.compile(r"AGENT_SERVICE_ACCOUNT\s*=\s*'([^']*)'")


def _agent_identity(text: str, env: str, objs: list[dict], namespace: str, jenkins_sa: str | None) -> list[Issue]:
    """The agent pod's ServiceAccount ships with the overlay (without a token), and the RoleBinding lets
    the Jenkins controller's identity (answer jenkins_service_account) manage the agent pods."""
    issues = []
    sa = JENKINS_AGENT_SA.search(text)
    account = find(objs, "ServiceAccount", sa.group(1), namespace) if sa else None
    if sa and account is None:
        issues.append(Issue("ERROR", "Jenkinsfile", f"{env}: agent ServiceAccount {sa.group(1)!r} is not in the "
                            "overlay (deploy/base/jenkins-agent-serviceaccount.yaml)"))
    elif account is not None and account.get("automountServiceAccountToken") is not False:
        issues.append(Issue("WARN", "Jenkinsfile", f"{env}: ServiceAccount {sa.group(1)} mounts an API token "  # type: ignore[union-attr]
                            "the agent pod does not need (automountServiceAccountToken: false)"))
    binding = find(objs, "RoleBinding", "jenkins-agents", namespace)
    if binding is not None and jenkins_sa and "/" in jenkins_sa:
        sa_ns, sa_name = jenkins_sa.split("/", 1)
        if {"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns} not in (binding.get("subjects") or []):
            issues.append(Issue("ERROR", "Jenkinsfile", f"{env}: RoleBinding/{namespace}/jenkins-agents does not bind "
                                f"{jenkins_sa} (jenkins_service_account): Jenkins could not start agent pods"))
    return issues


def deployed_images(every: dict[str, list[dict]], repo: Path) -> dict[str, str]:
    """Environment -> Airflow image, from a HelmRelease (Flux) or an Application (Argo CD)."""
    images: dict[str, str] = {}
    for name, objs in every.items():
        for obj in objs:
            values = None
            if obj.get("kind") == "HelmRelease" and dig(obj, "spec.chart.spec.chart") == "airflow":
                values = helm_values(obj, objs)[0]
            elif obj.get("kind") == "Application":
                for _, src in argo_sources(obj):
                    if src.get("chart") == "airflow":
                        refs = {s.get("ref") for _, s in argo_sources(obj) if s.get("ref")}
                        values = argo_values(src, refs, repo)[0]
            if values is not None:
                default = CHART_DEFAULTS["airflow"]["image"]
                images[env_of(name)] = (f"{dig(values, 'airflow.image.repository', default['repository'])}:"
                                        f"{dig(values, 'airflow.image.tag', default['tag'])}")
    return images


CHART_KEYS_DIR = Path(__file__).resolve().parent / "chart_keys"  # key-path skeletons shipped per chart version


def key_skeleton(values: Any) -> Any:
    """The chart's key structure without its values: maps keep their keys (an empty map stays an
    open map), every other value becomes null. Public defaults (the fernet key) are not carried."""
    if isinstance(values, dict):
        return {k: key_skeleton(v) for k, v in values.items()}
    return None


def _cached_chart_values(repo: Path, chart: str, version: str) -> dict | None:
    """values.yaml of the chart `make render` cached (.cache/charts/<chart>-<version>.tgz)."""
    import tarfile

    path = repo / ".cache" / "charts" / f"{chart}-{version}.tgz"
    if not path.is_file():
        return None
    with tarfile.open(path) as tar:
        member = tar.extractfile(f"{chart}/values.yaml")
        return yaml.load(member.read(), Loader=_Loader) if member else None  # type: ignore[union-attr]


def _chart_defaults(report: Report, repo: Path | None = None) -> tuple[dict | None, dict | None]:
    """(defaults for the rules, key tree for the key-path check): the values.yaml of
    AIRFLOW_CHART_VALUES or of the chart `make render` cached; else the shipped key skeleton."""
    path = os.environ.get("AIRFLOW_CHART_VALUES")
    if path:
        try:
            defaults = yaml.load(Path(path).read_text(), Loader=_Loader)
        except (OSError, yaml.YAMLError) as exc:
            report.add("values", Issue("ERROR", "", f"cannot read AIRFLOW_CHART_VALUES={path}: {exc}"))
            return None, None
        return defaults, defaults
    version = str(load_answers(repo).get("chart_version") or "") if repo else ""
    if repo and (cached := _cached_chart_values(repo, "airflow", version)) is not None:
        return cached, cached
    shipped = CHART_KEYS_DIR / f"airflow-{version}.json"
    if shipped.is_file():
        return None, json.loads(shipped.read_text())
    report.add("values", Issue("INFO", "", f"key-path check skipped: no key data for chart {version or '?'} "
                               "(run `make render` to cache the chart, or set AIRFLOW_CHART_VALUES)"))
    return None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    parser.add_argument("--strict", action="store_true", help="placeholder secrets are errors (also STRICT=1)")
    args = parser.parse_args(argv)
    strict = args.strict or os.environ.get("STRICT", "").lower() in ("1", "true", "yes")
    report = validate_repo(args.repo, strict)
    for line in report.lines:
        print(line)
    print(report.summary())
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
