#!/usr/bin/env python3
"""Render what the cluster will run (`make render`) and what a change does to it (`make diff`).

    make render [ENV=dev] [CHART=path/to/chart.tgz|dir]
    make diff ENV=dev BASE=main [CHART=...]

For each environment: `kustomize build` of deploy/overlays/<env> (what {Flux|Argo CD} applies),
then the Helm values merged as the engine merges them (helm-controller: `valuesFrom` in order,
then `spec.values`; Argo CD: `valueFiles` in order, then `values`, then `valuesObject`), then
`helm template` of the pinned chart with the release name and namespace the HelmRelease or
Application uses. Output, one file per object, so `diff -r` between revisions shows what a
change does:

    build/render/<env>/release.yaml   chart, version, release name, namespace, value layers
    build/render/<env>/values.yaml    the merged values handed to Helm (they hold no secret)
    build/render/<env>/overlay/       the GitOps objects (Namespace, PV/PVC, SealedSecrets, ...)
    build/render/<env>/chart/         what the chart renders: <kind>-<name>.yaml

The chart comes from CHART (a packaged .tgz or a chart directory), else from .cache/charts,
else `helm pull` from the repository the HelmRelease/Application names (online). It must be the
chart name and version the repository pins; CHART is cached under .cache/charts.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from airflow_gitops import kubelet, podsecurity
from airflow_gitops.build import find_kubectl
from airflow_gitops.errors import UserError, report
from airflow_gitops.facts import KUBERNETES_VERSION as DEFAULT_KUBE_VERSION  # `helm template` capabilities
from airflow_gitops.facts import POD_SECURITY_LEVEL
from airflow_gitops.helmchart import find_helm, helm_template, resolve_chart
from airflow_gitops.objects import UniqueKeyLoader, dig, ns_of
from airflow_gitops.releases import environments, raw_documents, release_of

GENERATED_SUFFIX = re.compile(r"^(?P<base>.+)-[a-z0-9]{10}$")  # kustomize generator hash


# ---------------------------------------------------------------- output
def file_name(doc: dict, taken: set[str], generated: set[str]) -> str:
    kind = str(doc.get("kind", "object")).lower()
    name = str(dig(doc, "metadata.name", "unnamed"))
    match = GENERATED_SUFFIX.match(name)
    if doc.get("kind") in ("ConfigMap", "Secret") and match and match.group("base") in generated:
        name = match.group("base")  # hash-suffixed generator output: keep one file across revisions
    stem = f"{kind}-{name}"
    if stem in taken:
        stem = f"{stem}.{ns_of(doc) or 'cluster'}"
    taken.add(stem)
    return f"{stem}.yaml"


def generator_names(repo: Path) -> set[str]:
    names: set[str] = set()
    for path in list(repo.glob("deploy/**/kustomization.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for key in ("configMapGenerator", "secretGenerator"):
            names |= {str(g.get("name")) for g in data.get(key) or [] if isinstance(g, dict)}
    return names


def write_objects(folder: Path, docs: list[str], generated: set[str]) -> int:
    folder.mkdir(parents=True)
    taken: set[str] = set()
    for text in docs:
        (folder / file_name(yaml.safe_load(text), taken, generated)).write_text(text)
    return len(docs)


@dataclass(frozen=True)
class Options:
    kubectl: str
    helm: str
    charts: tuple[Path, ...]  # CHART= (one or more: a diff across a chart upgrade renders both versions)
    cache: Path  # the repo's .cache: charts and Helm's homes
    kube_version: str


# ---------------------------------------------------------------- pod security, the kubelet
# The KubernetesExecutor pod template's ConfigMap key: the community chart's, the official chart's.
POD_TEMPLATE_KEYS = ("pod_template.yaml", "pod_template_file.yaml")


def namespace_level(repo: Path, env: str) -> str:
    """The Pod Security level the environment's Namespace enforces (ours unless the user changed it)."""
    path = repo / "deploy/overlays" / env / "secrets/namespace.yaml"
    labels = dig(yaml.safe_load(path.read_text()) or {}, "metadata.labels", {}) if path.is_file() else {}
    return str((labels or {}).get("pod-security.kubernetes.io/enforce", POD_SECURITY_LEVEL))


def pod_specs(docs: list[dict]) -> Iterator[tuple[str, dict]]:
    """(where, PodSpec) of every rendered pod and of the executor's task-pod template."""
    for doc in docs:
        spec = podsecurity.pod_spec(doc)
        if spec:
            yield f"{doc.get('kind')}/{dig(doc, 'metadata.name', '')}", spec
        for key in POD_TEMPLATE_KEYS if doc.get("kind") == "ConfigMap" else ():
            if key in (doc.get("data") or {}):
                template = podsecurity.pod_spec(yaml.safe_load(doc["data"][key]) or {})
                if template:
                    yield f"ConfigMap/{dig(doc, 'metadata.name', '')} {key}", template


def pod_security_problems(docs: list[dict], level: str) -> list[str]:
    """Every rendered pod (and the executor's task-pod template) that the namespace would refuse."""
    if level not in ("baseline", "restricted"):
        return []
    return [f"{where}: {v}" for where, spec in pod_specs(docs) for v in podsecurity.violations(spec, level)]


def duplicate_keys(docs: list[str]) -> None:
    """A chart object with a key twice: Helm keeps the last, but helm-controller's post-renderer parses
    the manifests with kustomize's strict YAML reader and fails the install (and Argo CD keeps either)."""
    found = []
    for text in docs:
        try:
            yaml.load(text, Loader=UniqueKeyLoader)
        except yaml.YAMLError as exc:
            head = next((line for line in text.splitlines() if line.startswith("# Source:")), "a chart object")
            where = f" (line {exc.problem_mark.line + 1})" if getattr(exc, "problem_mark", None) else ""
            found.append(f"{head.removeprefix('# Source: ')}: {getattr(exc, 'problem', None) or exc}{where}")
    if found:
        raise UserError("the chart renders objects that Flux's post-renderer (kustomize) refuses:\n  "
                          + "\n  ".join(found))


def kubelet_problems(docs: list[dict]) -> list[str]:
    """Every container of those pods that the kubelet would refuse to start (its runAsNonRoot check)."""
    return [f"{where}: {r}" for where, spec in pod_specs(docs) for r in kubelet.refusals(spec, where)]


def render_env(repo: Path, env: str, out: Path, opts: Options) -> str:
    release = release_of(repo, env, opts.kubectl)
    chart_file = resolve_chart(release, opts.charts, opts.cache, opts.helm)
    rendered = raw_documents(helm_template(release, chart_file, opts.helm, opts.cache, opts.kube_version))
    duplicate_keys(rendered)
    target = out / env
    shutil.rmtree(target, ignore_errors=True)
    generated = generator_names(repo)
    counts = (write_objects(target / "overlay", release.objects, generated),
              write_objects(target / "chart", rendered, generated))
    (target / "values.yaml").write_text(yaml.safe_dump(release.values, sort_keys=True))
    meta = {"environment": env, "chart": release.chart, "version": release.version,
            "repository": release.repo_url, "release": release.name, "namespace": release.namespace,
            "kubeVersion": opts.kube_version, "valueLayers": release.layers}
    (target / "release.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    level = namespace_level(repo, env)
    docs = [yaml.safe_load(d) for d in rendered + release.objects]
    reports = [(pod_security_problems(docs, level), f"pods break Pod Security {level!r}, which namespace "
                                                     f"{release.namespace} enforces"),
               (kubelet_problems(docs), "the kubelet would refuse to start these containers "
                                        "(CreateContainerConfigError)")]
    if any(problems for problems, _ in reports):
        raise UserError("\n".join(f"{env}: {len(problems)} problem(s): {what} (written to {target} for review):"
                                     "\n  " + "\n  ".join(problems) for problems, what in reports if problems))
    return (f"render: {env}: {release.chart} {release.version} as {release.name} in {release.namespace}: "
            f"{counts[1]} chart objects, {counts[0]} overlay objects -> {target}")


def render(repo: Path, envs: list[str], out: Path, opts: Options) -> None:
    for env in envs or environments(repo):
        print(render_env(repo, env, out, opts), flush=True)


# ---------------------------------------------------------------- diff
def export_revision(repo: Path, rev: str, dest: Path) -> None:
    """The tree of `rev` as plain files (git archive: no worktree bookkeeping left behind)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev], capture_output=True)
    if archive.returncode != 0:
        raise UserError(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.9.17/3.10.12/3.11.4
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)


def diff(repo: Path, envs: list[str], base: str, out: Path, opts: Options) -> int:
    """Render `base` (with this script, so old revisions need none) and the working tree, then diff."""
    base_tree = opts.cache / "diff" / "tree"
    export_revision(repo, base, base_tree)
    left_root, right_root = out.parent / f"{out.name}-base", out
    envs = envs or environments(repo)
    changed = 0
    for env in envs:
        if (base_tree / "deploy" / "overlays" / env).is_dir():
            print(render_env(base_tree, env, left_root, opts), flush=True)
        else:  # a new environment: everything is added
            shutil.rmtree(left_root / env, ignore_errors=True)
            (left_root / env).mkdir(parents=True)
        print(render_env(repo, env, right_root, opts), flush=True)
        proc = subprocess.run(["diff", "-ruN", os.path.relpath(left_root / env, out.parent),
                               os.path.relpath(right_root / env, out.parent)],
                              capture_output=True, text=True, cwd=out.parent)
        if proc.returncode > 1:
            raise UserError(f"diff failed: {proc.stderr.strip()}")
        sys.stdout.write(proc.stdout)
        changed += sum(1 for line in proc.stdout.splitlines() if line.startswith("diff -ruN "))
    print(f"diff: {base} -> working tree: {changed} rendered file(s) differ ({', '.join(envs)})")
    return 0


# ---------------------------------------------------------------- cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("render", "diff"), default="render")
    parser.add_argument("--env", action="append", default=[], help="environment (default: every overlay)")
    parser.add_argument("--chart", type=Path, action="append", default=[],
                        help="chart .tgz or directory (default: cache, then helm pull); repeat for several versions")
    parser.add_argument("--base", help="diff: git revision to compare the working tree with")
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--out", type=Path, help="output root (default: <repo>/build/render)")
    parser.add_argument("--kube-version", default=os.environ.get("KUBE_VERSION", DEFAULT_KUBE_VERSION))
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    out = (args.out or repo / "build" / "render").resolve()
    try:
        kubectl = find_kubectl(repo)
        if kubectl is None:
            raise UserError("no kubectl >= 1.27 found: run `make tools` (or set KUBECTL)")
        opts = Options(kubectl=kubectl, helm=find_helm(repo), charts=tuple(c.resolve() for c in args.chart),
                       cache=repo / ".cache", kube_version=args.kube_version)
        if args.command == "diff":
            if not args.base:
                raise UserError("diff needs BASE=<git revision>, e.g. make diff ENV=dev BASE=main")
            return diff(repo, args.env, args.base, out, opts)
        render(repo, args.env, out, opts)
    except UserError as exc:
        return report("render: error", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
