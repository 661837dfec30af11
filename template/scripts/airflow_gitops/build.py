"""What the cluster is given: the kustomizations to build, `kubectl kustomize` of each, and the
kustomization kustomize-controller generates for a path without one (shared by validate and render)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from airflow_gitops.binaries import foreign
from airflow_gitops.errors import UserError
from airflow_gitops.facts import KUBECTL_MIN_MINOR
from airflow_gitops.objects import Loader

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SKIP_DIRS = {"node_modules", "__pycache__"}  # plus every hidden dir (.git, .cache, .tools)


class BuildError(UserError):
    """kustomize refused to build: what it said."""


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    """os.walk in sorted order, without hidden and SKIP_DIRS directories."""
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
    kdirs = [d.resolve() for d, _, files in walk(repo) if any(f in files for f in KUSTOMIZATION_FILES)]
    included: set[Path] = set()
    for d in kdirs:
        included |= _included_by(d)
    roots = {d for d in kdirs if d not in included and not any(g in d.parents for g in generated)}
    roots |= generated
    return sorted(roots, key=lambda p: str(p.relative_to(repo.resolve()))), generated


def _included_by(directory: Path) -> set[Path]:
    """The directories a kustomization pulls in (resources, bases, components), and itself if a Component."""
    try:
        data = yaml.load(kustomization_file(directory).read_text(), Loader=Loader) or {}  # type: ignore[union-attr]
    except (OSError, yaml.YAMLError):
        return set()  # the build will report it
    if not isinstance(data, dict):
        return set()
    included = {directory} if data.get("kind") == "Component" else set()
    for entry in (data.get("resources") or []) + (data.get("bases") or []) + (data.get("components") or []):
        if isinstance(entry, str) and "://" not in entry:
            included.add((directory / entry).resolve())
    return included


def generated_kustomization(target: Path, tmp: Path) -> str:
    """What kustomize-controller writes when a path has no kustomization.yaml: every
    YAML file recursively, sub-dirs holding a kustomization as one resource
    (https://fluxcd.io/flux/components/kustomize/kustomizations/#generating-a-kustomizationyaml-file)."""
    resources: list[str] = []
    for directory, dirnames, files in walk(target):
        for sub in list(dirnames):
            if kustomization_file(directory / sub):
                resources.append(os.path.relpath(directory / sub, tmp))
                dirnames.remove(sub)
        resources += [os.path.relpath(directory / f, tmp) for f in files if f.endswith((".yaml", ".yml"))]
    return yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                           "resources": sorted(resources)})


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
    return [d for d in yaml.load_all(proc.stdout, Loader=Loader) if isinstance(d, dict)]


def find_kubectl(repo: Path) -> str | None:
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    local = repo / ".tools" / "bin" / "kubectl"
    if os.access(local, os.X_OK) and not foreign(local):  # another machine's: install_tools.py replaces it
        return str(local)
    try:  # kustomize features used here need kubectl >= 1.27 (kustomize v5)
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"],
                             capture_output=True, text=True, timeout=30).stdout
        minor = int(re.sub(r"\D", "", json.loads(out)["clientVersion"]["minor"]) or 0)
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return None
    return "kubectl" if minor >= KUBECTL_MIN_MINOR else None
