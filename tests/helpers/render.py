"""What a render or a kustomize build produced, read the way the cluster would receive it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from airflow_gitops import podsecurity
from airflow_gitops.values import helm_values  # helm-controller's merge, as make validate does it

from helpers.make import run_make
from helpers.paths import chart_tgz
from helpers.tools import kubectl_path


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run([str(kubectl_path()), "kustomize", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def merged_values(repo: Path, env: str) -> dict[str, Any]:
    """Values the HelmRelease hands to Helm for `env`: its valuesFrom layers merged as helm-controller does."""
    built = kustomize_build(repo / "deploy/overlays" / env)
    release = next(o for o in built if o["kind"] == "HelmRelease")
    values, errors, warnings = helm_values(release, built)
    assert not errors and not warnings, errors + warnings
    return values


def render_official(repo: Path) -> subprocess.CompletedProcess[str]:
    """`make render ENV=dev` with the official chart's newest version from ../shared."""
    return run_make(repo, "render", "ENV=dev", f"CHART={chart_tgz()}")


def rendered_objects(repo: Path) -> list[dict[str, Any]]:
    """The last `make render ENV=dev`: the chart's objects, then the overlay's."""
    out = repo / "build/render/dev"
    return [yaml.safe_load(p.read_text()) for part in ("chart", "overlay") for p in sorted((out / part).glob("*.yaml"))]


def objects(repo: Path, part: str = "*") -> list[dict[str, Any]]:
    """The last `make render ENV=dev`, one part (chart, overlay) or all."""
    return [yaml.safe_load(p.read_text()) for p in sorted((repo / "build/render/dev").glob(f"{part}/*.yaml"))]


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def workloads(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every object with a pod spec, by name."""
    return {o["metadata"]["name"]: o for o in objs if podsecurity.pod_spec(o) is not None}


def objs_with_pods(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The workloads with a pod template (not the chart's bare test Pods)."""
    return {name: o for name, o in workloads(objs).items() if o["kind"] != "Pod"}


def task_pod_templates(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The KubernetesExecutor pod templates the chart ships in ConfigMaps."""
    found = []
    for cm in by_kind(objs, "ConfigMap").values():
        for text in (cm.get("data") or {}).values():
            doc = yaml.safe_load(text) if "kind: Pod" in text else None
            if isinstance(doc, dict) and doc.get("kind") == "Pod":
                found.append(doc)
    return found


def pod_annotations(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj["metadata"] if obj["kind"] == "Pod" else obj["spec"]["template"]["metadata"]
    return meta.get("annotations") or {}
