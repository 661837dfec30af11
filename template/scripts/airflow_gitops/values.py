"""The Helm values a release gets, merged the way its engine merges them.

helm-controller: `valuesFrom` in list order, then `spec.values`, then the `targetPath` entries
(https://fluxcd.io/flux/components/helm/helmreleases/#values-references).
Argo CD: `helm.valueFiles` in order, then `helm.values`, then `helm.valuesObject`
(https://argo-cd.readthedocs.io/en/stable/user-guide/helm/#values-files); `$<ref>/` paths are
files of the source with that `ref` (https://argo-cd.readthedocs.io/en/stable/user-guide/multiple_sources/).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.facts import IRSA_ROLE_ANNOTATION, OFFICIAL_SERVICE_ACCOUNTS, S3_LOG_COMPONENTS, chart_of
from airflow_gitops.objects import Loader, dig, env_of, find, ns_of, sealed_name

VALUES_REF = re.compile(r"^\$([^/]+)/(.*)$")  # Argo CD multi-source `$<ref>/<path from repo root>`
PIN = re.compile(r'^\s*(?:version|targetRevision): "?(\d+\.\d+\.\d+)"?\s*$', re.M)


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


# ---------------------------------------------------------------- Flux
def helm_values(hr: dict, objs: list[dict]) -> tuple[dict, list[str], list[str]]:
    """Merge valuesFrom (list order) then spec.values like helm-controller.
    Returns (values, errors, warnings); unresolvable entries are reported."""
    values: dict = {}
    errors: list[str] = []
    warnings: list[str] = []
    targeted: list[tuple[str, Any]] = []
    for i, entry in enumerate(dig(hr, "spec.valuesFrom") or []):
        kind, name = entry.get("kind"), entry.get("name")
        key = entry.get("valuesKey") or "values.yaml"
        where = f"valuesFrom[{i}] {kind}/{name}"
        if kind not in ("ConfigMap", "Secret"):
            errors.append(f"{where}: kind must be ConfigMap or Secret (case-sensitive)")
            continue
        text, problem = _values_source(objs, kind, name, ns_of(hr), key)
        if problem:
            if not entry.get("optional"):
                errors.append(f"{where}: {problem}")
            continue
        if text is None:
            warnings.append(f"{where}: values come from a SealedSecret and cannot be checked")
            continue
        try:
            parsed = yaml.load(text, Loader=Loader)
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
        _set_path(values, path, val)
    return values, errors, warnings


def _set_path(values: dict, path: str, val: Any) -> None:
    node = values
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = val


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


def release_values(objs: list[dict]) -> dict | None:
    """The merged Helm values of the build's HelmRelease (Flux), or None."""
    releases = [o for o in objs if o.get("kind") == "HelmRelease"]
    if len(releases) != 1:
        return None
    values, errors, warnings = helm_values(releases[0], objs)
    return None if errors or warnings else values


# ---------------------------------------------------------------- Argo CD
def argo_sources(app: dict) -> list[tuple[str, dict]]:
    """(label, source) as Argo CD reads them: spec.sources wins over spec.source."""
    spec = app.get("spec") or {}
    if spec.get("sources"):
        return [(f"sources[{i}]", s if isinstance(s, dict) else {}) for i, s in enumerate(spec["sources"])]
    return [("source", spec["source"])] if isinstance(spec.get("source"), dict) else []


def source_refs(sources: list[tuple[str, dict]]) -> set[str]:
    """The `ref` names value files may start with (`$<ref>/`)."""
    return {str(s["ref"]) for _, s in sources if s.get("ref")}


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
            layers.append((f"helm.valueFiles[{i}] {entry!r}", yaml.load(target.read_text(), Loader=Loader)))
        except (OSError, yaml.YAMLError) as exc:
            errors.append(f"helm.valueFiles[{i}] {entry!r} is not valid YAML: {str(exc).splitlines()[0]}")
    if helm.get("values"):
        try:
            layers.append(("helm.values", yaml.load(str(helm["values"]), Loader=Loader)))
        except yaml.YAMLError as exc:
            errors.append(f"helm.values is not valid YAML: {str(exc).splitlines()[0]}")
    layers.append(("helm.valuesObject", helm.get("valuesObject")))
    for where, layer in layers:
        if isinstance(layer, dict):
            values = deep_merge(values, layer)
        elif layer is not None:
            errors.append(f"{where} must hold a YAML mapping")
    return values, errors


# ---------------------------------------------------------------- what each environment deploys
REMOTE_LOG_FOLDER = "airflow.config.AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"  # values key path (community)
OFFICIAL_LOG_FOLDER = "config.logging.remote_base_log_folder"  # the same in the official chart's layout


def remote_log_folder(values: dict) -> str:
    """The S3 task-log folder the values configure, in either chart's layout ('' for none)."""
    return str(dig(values, REMOTE_LOG_FOLDER) or dig(values, OFFICIAL_LOG_FOLDER) or "")


def chart_flavor(name: Any, version: Any, repository: Any = "") -> str | None:
    """"official"/"community" for an airflow chart this template knows, else None."""
    known = chart_of(str(name or ""), str(version or ""), str(repository or ""))
    return known.flavor if known else None


@dataclass(frozen=True)
class Deployed:
    """The Airflow release of one environment, as its engine will install it."""

    values: dict
    release: str  # Helm release name (the charts name ServiceAccounts after it)
    namespace: str
    flavor: str = "community"

    @property
    def _sa_sections(self) -> list[tuple[str, str]]:
        """(values section holding serviceAccount, default name) of the pods that take the IAM role."""
        if self.flavor != "official":
            return [("", self.release)]
        override = str(self.values.get("fullnameOverride") or "")
        prefix = override or (self.release if "airflow" in self.release else f"{self.release}-airflow")
        return [(f"{c}.", f"{prefix}-{OFFICIAL_SERVICE_ACCOUNTS[c]}") for c in S3_LOG_COMPONENTS]

    @property
    def service_accounts(self) -> list[str]:
        return [str(dig(self.values, f"{section}serviceAccount.name") or default)
                for section, default in self._sa_sections]

    @property
    def irsa_roles(self) -> list[str]:
        """The IRSA role ARN of each of those ServiceAccounts ('' where none)."""
        return [str((dig(self.values, f"{section}serviceAccount.annotations", {}) or {}).get(IRSA_ROLE_ANNOTATION, ""))
                for section, _ in self._sa_sections]

    @property
    def irsa_role(self) -> str:
        """The IRSA role the ServiceAccounts are annotated with ('' for none)."""
        return next((role for role in self.irsa_roles if role), "")

    @property
    def log_folder(self) -> str:
        return remote_log_folder(self.values)

    @property
    def region(self) -> str:
        """The region of the keyless aws_default connection, else ''."""
        if self.flavor == "official":
            conn = next((e.get("value") for e in self.values.get("env") or []
                         if isinstance(e, dict) and e.get("name") == "AIRFLOW_CONN_AWS_DEFAULT"), None)
            extra = _json(conn).get("extra") if conn else None
            return str((extra if isinstance(extra, dict) else _json(extra)).get("region_name", ""))
        for conn in dig(self.values, "airflow.connections", []) or []:
            if isinstance(conn, dict) and conn.get("id") == "aws_default":
                return str(_json(conn.get("extra")).get("region_name", ""))
        return ""


def _json(text: Any) -> dict:
    try:
        found = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def airflow_values(obj: dict, objs: list[dict], repo: Path) -> dict | None:
    """The values of an airflow-chart HelmRelease or Application (its last airflow source), else None."""
    return airflow_release(obj, objs, repo)[0]


def airflow_release(obj: dict, objs: list[dict], repo: Path) -> tuple[dict | None, str]:
    """(values, chart flavor) of an airflow-chart HelmRelease or Application, else (None, "")."""
    if obj.get("kind") == "HelmRelease" and dig(obj, "spec.chart.spec.chart") == "airflow":
        spec = dig(obj, "spec.chart.spec")
        return helm_values(obj, objs)[0], chart_flavor(spec.get("chart"), spec.get("version")) or "community"
    values, flavor = None, ""
    if obj.get("kind") == "Application":
        sources = argo_sources(obj)
        for _, src in sources:
            if src.get("chart") == "airflow":
                values = argo_values(src, source_refs(sources), repo)[0]
                flavor = chart_flavor(src.get("chart"), src.get("targetRevision"), src.get("repoURL")) or "community"
    return values, flavor


def deployed_releases(every: dict[str, list[dict]], repo: Path) -> dict[str, Deployed]:
    """Environment -> its Airflow release, from a HelmRelease (Flux) or an Application (Argo CD)."""
    found: dict[str, Deployed] = {}
    for name, objs in every.items():
        for obj in objs:
            values, flavor = airflow_release(obj, objs, repo)
            if values is None:
                continue
            if obj["kind"] == "HelmRelease":
                release = dig(obj, "spec.releaseName") or dig(obj, "metadata.name", "")
                namespace = dig(obj, "spec.targetNamespace") or ns_of(obj) or ""
            else:
                helm = next((s.get("helm") or {} for _, s in argo_sources(obj) if s.get("chart") == "airflow"), {})
                release = helm.get("releaseName") or dig(obj, "metadata.name", "")
                namespace = dig(obj, "spec.destination.namespace", "")
            found[env_of(name)] = Deployed(values, str(release), str(namespace), flavor)
    return found


def deployed_versions(repo: Path, flavor: str) -> tuple[str | None, str | None]:
    """(chart version, Airflow image tag) the repository's files deploy (None: not found)."""
    values_file = repo / "deploy/base/values.yaml"
    values = (yaml.safe_load(values_file.read_text()) or {}) if values_file.is_file() else {}
    tag = values.get("defaultAirflowTag") if flavor == "official" else \
        ((values.get("airflow") or {}).get("image") or {}).get("tag")
    pinned = [repo / "deploy/base/helmrelease.yaml", *sorted(repo.glob("clusters/*/*/airflow.yaml"))]
    pins = [m.group(1) for path in pinned if path.is_file() for m in PIN.finditer(path.read_text())]
    return (pins[0] if pins else None), (str(tag) if tag else None)
