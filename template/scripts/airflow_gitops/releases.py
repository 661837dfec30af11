"""What the GitOps engine installs for one environment: its Helm release (chart, version, name,
namespace, the values merged as the engine merges them) and the overlay's objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from airflow_gitops.build import BuildError, kustomization_file, kustomize_build
from airflow_gitops.errors import UserError
from airflow_gitops.objects import dig, find, load_answers, ns_of
from airflow_gitops.values import argo_sources, argo_values, helm_values


@dataclass
class Release:
    """One Helm release as the GitOps engine will install it."""

    env: str
    name: str
    namespace: str
    chart: str
    version: str
    repo_url: str
    values: dict
    layers: list[str] = field(default_factory=list)  # where each values layer came from, in merge order
    objects: list[str] = field(default_factory=list)  # raw overlay documents


# ---------------------------------------------------------------- what the engine installs
def environments(repo: Path) -> list[str]:
    overlays = repo / "deploy" / "overlays"
    return sorted(p.name for p in overlays.iterdir() if p.is_dir()) if overlays.is_dir() else []


def raw_documents(text: str) -> list[str]:
    """A YAML stream split into its documents, text kept exactly as printed."""
    docs = re.split(r"^---[ \t]*$\n?", text, flags=re.M)
    return [d.strip("\n") + "\n" for d in docs if d.strip() and yaml.safe_load(d) is not None]


def build(kubectl: str, target: Path, engine: str) -> tuple[list[dict], list[str]]:
    try:
        objs = kustomize_build(kubectl, target, root_only=engine == "argocd")
    except (BuildError, OSError) as exc:
        raise UserError(f"kustomize build {target} failed: {exc}") from None
    return objs, [yaml.safe_dump(o, sort_keys=False) for o in objs]


def flux_release(repo: Path, env: str, objs: list[dict]) -> Release:
    releases = [o for o in objs if o.get("kind") == "HelmRelease"]
    if len(releases) != 1:
        raise UserError(f"deploy/overlays/{env} builds {len(releases)} HelmReleases; expected one")
    hr = releases[0]
    values, errors, warnings = helm_values(hr, objs)
    if errors or warnings:
        raise UserError(f"HelmRelease values of {env}: " + "; ".join(errors + warnings))
    spec = dig(hr, "spec.chart.spec") or {}
    source = spec.get("sourceRef") or {}
    source_ns = source.get("namespace") or ns_of(hr)
    repository = find(objs, str(source.get("kind")), str(source.get("name")), source_ns)
    layers = [f"valuesFrom {e.get('kind')}/{e.get('name')} key {e.get('valuesKey') or 'values.yaml'}"
              for e in dig(hr, "spec.valuesFrom") or []] + (["spec.values"] if dig(hr, "spec.values") else [])
    return Release(env=env, name=str(dig(hr, "spec.releaseName") or _flux_default_name(hr)),
                   namespace=str(dig(hr, "spec.targetNamespace") or ns_of(hr)), chart=str(spec.get("chart")),
                   version=str(spec.get("version", "")), repo_url=str(dig(repository or {}, "spec.url") or ""),
                   values=values, layers=layers)


def _flux_default_name(hr: dict) -> str:
    target = dig(hr, "spec.targetNamespace")
    return f"{target}-{dig(hr, 'metadata.name')}" if target else str(dig(hr, "metadata.name"))


def argo_release(repo: Path, env: str, kubectl: str) -> Release:
    dirs = sorted(p for p in (repo / "clusters").glob(f"*/{env}") if p.is_dir())
    if len(dirs) != 1:
        raise UserError(f"expected one clusters/<cluster>/{env} directory, found {len(dirs)}")
    objs, _ = build(kubectl, dirs[0], "argocd")
    for app in (o for o in objs if o.get("kind") == "Application"):
        sources = argo_sources(app)
        charts = [s for _, s in sources if s.get("chart")]
        paths = {str(s.get("path", "")).strip("/") for _, s in sources}
        if not charts or f"deploy/overlays/{env}" not in paths:
            continue
        src = charts[0]
        refs = {str(s["ref"]) for _, s in sources if s.get("ref")}
        values, errors = argo_values(src, refs, repo)
        if values is None or errors:
            raise UserError(f"Application {dig(app, 'metadata.name')}: value files unreadable: {errors}")
        helm = src.get("helm") or {}
        layers = [f"valueFiles {f}" for f in helm.get("valueFiles") or []]
        layers += [k for k in ("values", "valuesObject") if helm.get(k)]
        return Release(env=env, name=str(helm.get("releaseName") or dig(app, "metadata.name")),
                       namespace=str(dig(app, "spec.destination.namespace")), chart=str(src["chart"]),
                       version=str(src.get("targetRevision", "")), repo_url=str(src.get("repoURL", "")),
                       values=values, layers=layers)
    raise UserError(f"clusters/{env} has no Application deploying a chart with deploy/overlays/{env}")


def release_of(repo: Path, env: str, kubectl: str) -> Release:
    engine = str(load_answers(repo).get("gitops_engine") or "flux")
    overlay = repo / "deploy" / "overlays" / env
    if not overlay.is_dir():
        raise UserError(f"no environment {env!r}: {overlay} does not exist (have: {', '.join(environments(repo))})")
    objs, raw = build(kubectl, overlay, engine)
    release = flux_release(repo, env, objs) if engine == "flux" else argo_release(repo, env, kubectl)
    secrets = overlay / "secrets"
    if engine == "flux" and kustomization_file(secrets):  # its own Kustomization, applied first
        raw += build(kubectl, secrets, engine)[1]
    release.objects = raw
    return release
