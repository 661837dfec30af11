"""The built objects as plain dicts: YAML read the way the Kubernetes API reads it, field access,
lookups by kind and name, and the repository facts every check may need (answers, environments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from airflow_gitops.facts import ANSWERS_FILE

CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "IngressClass", "CSIDriver", "RuntimeClass", "APIService",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}


class Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, like the Kubernetes API does."""


Loader.yaml_implicit_resolvers = {
    ch: [r for r in rs if r[0] != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: node.value)  # `=` scalars


class UniqueKeyLoader(Loader):
    """Refuses a mapping with a key twice: YAML forbids it, yet most parsers (Helm's too) keep the
    last one silently, so a second `airflow:` block drops every setting of the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            if key != "<<" and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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


def engine_of(obj: dict) -> str | None:
    """The gitops_engine whose controllers reconcile this object (None: plain Kubernetes)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    if group.endswith(".toolkit.fluxcd.io"):
        return "flux"
    return "argocd" if group == "argoproj.io" else None


def env_of(build: str) -> str:
    parts = Path(build).parts
    if "overlays" in parts[:-1]:
        return parts[parts.index("overlays") + 1]
    if len(parts) > 2 and parts[0] == "clusters":  # clusters/<cluster>/<env>
        return parts[2]
    return parts[-1] if parts else "<env>"


def is_overlay(build: str) -> bool:
    """deploy/overlays/<env> or a directory below it (its secrets/)."""
    return "overlays" in Path(build).parts[:-1]


def companion_objects(build: str, builds: dict[str, list[dict]]) -> list[dict]:
    """The other half of an environment's namespace: deploy/overlays/<env> <-> deploy/overlays/<env>/secrets,
    when they are separate builds (Flux applies secrets/ first, as its own Kustomization)."""
    path = Path(build)
    other = path.parent if path.name == "secrets" else path / "secrets"
    return builds.get(str(other), []) if "overlays" in path.parts else []


def load_answers(repo: Path, name: str = ANSWERS_FILE) -> dict:
    """Copier answers: by default the primary's (repo-wide: gitops_engine, git_repo_url, git_revision)."""
    try:
        data = yaml.load((repo / name).read_text(), Loader=Loader)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def environment_answers(repo: Path) -> dict[str, dict]:
    """environment -> its answers (eks_cluster_name, namespace, ...), from every .copier-answers*.yml;
    `_answers_file` names the file, for messages."""
    found = ({**load_answers(repo, path.name), "_answers_file": path.name}
             for path in sorted(repo.glob(".copier-answers*.yml")))
    return {str(a["environment"]): a for a in found if a.get("environment")}
