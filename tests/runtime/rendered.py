"""What a rendered pod's containers get: `make render` output read the way the kubelet reads it.

Env: envFrom first, then `env` in order (a later entry wins), `$(VAR)` expanded against what is
defined so far (`$$` escapes), secretKeyRef/configMapKeyRef resolved from the rendered objects
and the decrypted SealedSecrets. Volumes: PVCs map to local directories, emptyDirs to fresh
ones, Secrets/ConfigMaps (plain or projected) to files written with their modes. A reference
nothing provides is an error naming the pod, the container and the object, as the kubelet
would fail with CreateContainerConfigError.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUBE_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class PodError(Exception):
    """The pod could not start, for a reason the kubelet would also refuse it."""


def kube_expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' dependent environment variable expansion: `$(NAME)` becomes a value defined
    before it, an unknown name stays as written, `$$` is a literal `$`."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))
    return KUBE_REF.sub(sub, value)


class Rendered:
    """build/render/<env>/ as written by the generated repository's scripts/render.py."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.release = yaml.safe_load((root / "release.yaml").read_text())
        self.values = yaml.safe_load((root / "values.yaml").read_text())
        self.chart = [yaml.safe_load(p.read_text()) for p in sorted((root / "chart").glob("*.yaml"))]
        self.overlay = [yaml.safe_load(p.read_text()) for p in sorted((root / "overlay").glob("*.yaml"))]

    def find(self, kind: str, name: str) -> dict | None:
        return next((o for o in self.chart + self.overlay
                     if o.get("kind") == kind and o["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> dict:
        obj = self.find(kind, name)
        if obj is None:
            raise PodError(f"the render has no {kind} {name!r}")
        return obj

    def kinds(self, kind: str) -> list[dict]:
        return [o for o in self.chart + self.overlay if o.get("kind") == kind]

    def sealed_secrets(self) -> list[dict]:
        return [o for o in self.overlay if o.get("kind") == "SealedSecret"]


@dataclass
class Objects:
    """Secrets and ConfigMaps the namespace holds: rendered ones plus the unsealed SealedSecrets."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_render(cls, rendered: Rendered, unsealed: dict[str, dict[str, str]]) -> Objects:
        objs = cls(secrets=dict(unsealed))
        for secret in rendered.kinds("Secret"):
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            objs.secrets[secret["metadata"]["name"]] = {**data, **(secret.get("stringData") or {})}
        for cm in rendered.kinds("ConfigMap"):
            objs.configmaps[cm["metadata"]["name"]] = dict(cm.get("data") or {})
        return objs

    def lookup(self, kind: str, name: str, key: str | None, where: str, optional: bool = False) -> Any:
        store = self.secrets if kind == "Secret" else self.configmaps
        if name not in store:
            if optional:
                return None
            raise PodError(f"{where}: {kind} {name!r} does not exist in the namespace")
        if key is None:
            return store[name]
        if key not in store[name]:
            if optional:
                return None
            raise PodError(f"{where}: {kind} {name!r} has no key {key!r} (has {sorted(store[name])})")
        return store[name][key]


def container_env(pod: dict, container: dict, objs: Objects, pod_name: str, namespace: str,
                  where: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        kind, ref = ("Secret", src["secretRef"]) if "secretRef" in src else ("ConfigMap", src["configMapRef"])
        data = objs.lookup(kind, ref["name"], None, f"{where} envFrom", bool(ref.get("optional"))) or {}
        env.update({src.get("prefix", "") + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        value = _env_value(item, pod, objs, (pod_name, namespace), env, f"{where} env {item['name']}")
        if value is not None:
            env[item["name"]] = value
    return env


def _env_value(item: dict, pod: dict, objs: Objects, identity: tuple[str, str], defined: dict[str, str],
               where: str) -> str | None:
    if "valueFrom" not in item:
        return kube_expand(str(item.get("value", "")), defined)
    source = item["valueFrom"]
    for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
        if key in source:
            ref = source[key]
            return objs.lookup(kind, ref["name"], ref["key"], where, bool(ref.get("optional")))
    if "fieldRef" in source:
        fields = {"metadata.name": identity[0], "metadata.namespace": identity[1],
                  "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
                  "spec.serviceAccountName": pod.get("serviceAccountName", "default")}
        path = source["fieldRef"]["fieldPath"]
        if path not in fields:
            raise PodError(f"{where}: fieldRef {path} is not emulated")
        return fields[path]
    raise PodError(f"{where}: unsupported valueFrom {sorted(source)}")


@dataclass(frozen=True)
class Mount:
    target: str
    source: Path
    read_only: bool
    # An EFS access point's enforced identity (pods.py): (uid, gid) on disk <-> (uid, gid) of the container
    idmap: tuple[int, int, int, int] | None = None


def write_volume_files(directory: Path, data: dict[str, str], items: list[dict] | None, mode: int) -> None:
    """A Secret/ConfigMap volume: every key (or the listed items) as a file, with its mode."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen = items if items else [{"key": k, "path": k} for k in data]
    for item in chosen:
        path = directory / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[item["key"]])
        path.chmod(item.get("mode", mode))


def volume_sources(pod: dict, objs: Objects, claims: dict[str, Path], workdir: Path,
                   where: str) -> dict[str, tuple[Path, bool]]:
    """Volume name -> (local directory, read-only) for every volume of the pod spec."""
    sources: dict[str, tuple[Path, bool]] = {}
    for vol in pod.get("volumes") or []:
        name, local = vol["name"], workdir / "volumes" / vol["name"]
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            if claim not in claims:
                raise PodError(f"{where}: volume {name}: PersistentVolumeClaim {claim!r} has no local volume")
            sources[name] = (claims[claim], bool(vol["persistentVolumeClaim"].get("readOnly")))
        elif "emptyDir" in vol:
            local.mkdir(parents=True, exist_ok=True)
            local.chmod(0o777)  # the kubelet creates emptyDirs world-writable
            sources[name] = (local, False)
        elif "secret" in vol or "configMap" in vol:
            kind, spec = ("Secret", vol["secret"]) if "secret" in vol else ("ConfigMap", vol["configMap"])
            ref = spec.get("secretName") or spec.get("name")
            data = objs.lookup(kind, ref, None, f"{where} volume {name}")
            write_volume_files(local, data, spec.get("items"), spec.get("defaultMode", 0o644))
            sources[name] = (local, True)
        elif "projected" in vol:
            for src in vol["projected"]["sources"]:
                kind, spec = ("Secret", src["secret"]) if "secret" in src else ("ConfigMap", src["configMap"])
                data = objs.lookup(kind, spec["name"], None, f"{where} volume {name}")
                write_volume_files(local, data, spec.get("items"), vol["projected"].get("defaultMode", 0o644))
            sources[name] = (local, True)
        else:
            raise PodError(f"{where}: volume {name}: type {sorted(vol)} is not emulated")
    return sources


def container_mounts(container: dict, sources: dict[str, tuple[Path, bool]], where: str) -> list[Mount]:
    mounts = []
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in sources:
            raise PodError(f"{where}: volumeMount {vm['name']} names no volume of the pod")
        local, read_only = sources[vm["name"]]
        if vm.get("subPath"):
            local = local / vm["subPath"]
            if not local.exists():  # the kubelet creates a missing subPath as an empty directory
                local.mkdir(parents=True)
        mounts.append(Mount(vm["mountPath"], local, read_only or bool(vm.get("readOnly"))))
    return mounts
