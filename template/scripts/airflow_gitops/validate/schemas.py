"""Every object against its schema: core kinds with kubernetes-validate --strict, the Flux, Argo CD
and SealedSecret kinds with strict JSON Schemas (AIRFLOW_GITOPS_SCHEMA_DIR, else the datree
CRDs-catalog, cached in .cache/schemas)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate

from airflow_gitops.objects import ref
from airflow_gitops.validate.report import ERROR, Issue

SCHEMA_GROUPS = {"helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io",
                 "kustomize.toolkit.fluxcd.io", "bitnami.com", "argoproj.io"}
CATALOG_URL = "https://raw.githubusercontent.com/datreeio/CRDs-catalog/main/{group}/{kind}_{version}.json"


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
                issues.append(Issue(ERROR, ref(obj), f"schema: {err.json_path}: {err.message}"))
            continue
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path)
            issues.append(Issue(ERROR, ref(obj), f"schema (k8s {err.version}): ${path}: {err.message}"))
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
            unchecked.add(f"{obj.get('kind')} ({api})")
        except kubernetes_validate.VersionNotSupportedError:
            msg = f"kubernetes-validate does not support KUBERNETES_VERSION={k8s_version}"
            return [Issue(ERROR, "", msg)], unchecked
    return issues, unchecked
