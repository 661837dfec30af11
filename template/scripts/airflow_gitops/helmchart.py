"""The Helm side of `make render`: the release a GitOps engine installs, its pinned chart (CHART=,
the cache, or `helm pull`), and `helm template` of it, with Helm's homes in the repo's .cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import yaml

from airflow_gitops.binaries import foreign
from airflow_gitops.errors import UserError
from airflow_gitops.releases import Release


def find_helm(repo: Path) -> str:
    for candidate in (os.environ.get("HELM"), str(repo / ".tools/bin/helm"), shutil.which("helm")):
        if candidate and os.access(candidate, os.X_OK) and not foreign(Path(candidate)):
            return candidate
    raise UserError("no helm found: run `make tools` (installs helm v4 into .tools/bin) or set HELM")


def helm_env(cache: Path) -> dict[str, str]:
    """Helm keeps its repositories and caches in the repo's .cache, never in $HOME."""
    homes = {f"HELM_{kind}_HOME": str(cache / "helm" / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}
    return {**os.environ, **homes}


def chart_identity(path: Path) -> tuple[str, str]:
    """(name, version) from Chart.yaml of a packaged chart or a chart directory."""
    if path.is_dir():
        meta = yaml.safe_load((path / "Chart.yaml").read_text())
    else:
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.name.count("/") == 1
                           and m.name.endswith("/Chart.yaml")), None)
            if member is None:
                raise UserError(f"{path} is not a packaged Helm chart (no <chart>/Chart.yaml)")
            meta = yaml.safe_load(tar.extractfile(member).read())  # type: ignore[union-attr]
    return str(meta.get("name")), str(meta.get("version"))


def chosen_chart(release: Release, charts: tuple[Path, ...]) -> Path | None:
    """Of the CHART= paths, the one that is the chart the release pins (the only one if just one)."""
    if len(charts) <= 1:
        return charts[0] if charts else None
    for path in charts:
        if path.exists() and chart_identity(path) == (release.chart, release.version):
            return path
    raise UserError(f"none of CHART={' '.join(map(str, charts))} is {release.chart} {release.version}, "
                    f"which {release.env} pins")


def resolve_chart(release: Release, charts: tuple[Path, ...], cache: Path, helm: str) -> Path:
    cached = cache / "charts" / f"{release.chart}-{release.version}.tgz"
    given = chosen_chart(release, charts)
    if given is not None:
        if not given.exists():
            raise UserError(f"CHART={given} does not exist")
        name, version = chart_identity(given)
        if (name, version) != (release.chart, release.version):
            raise UserError(f"CHART={given} is {name} {version}, but {release.env} pins "
                            f"{release.chart} {release.version}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        if given.is_dir():
            run_helm(helm, cache, "package", str(given), "--destination", str(cached.parent))
        elif given.resolve() != cached.resolve():
            shutil.copyfile(given, cached)
        return cached
    if cached.is_file():
        return cached
    if not release.repo_url:
        raise UserError(f"no chart repository for {release.env} and no CHART given")
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_helm(helm, cache, "pull", release.chart, "--repo", release.repo_url, "--version", release.version,
              "--destination", str(cached.parent))
    except UserError as exc:
        raise UserError(f"{exc}\n(offline? pass CHART=path to a copy of {release.chart} {release.version})") \
            from None
    return cached


def run_helm(helm: str, cache: Path, *args: str) -> str:
    proc = subprocess.run([helm, *args], capture_output=True, text=True, env=helm_env(cache), timeout=600)
    if proc.returncode != 0:
        raise UserError(f"helm {args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def helm_template(release: Release, chart: Path, helm: str, cache: Path, kube_version: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as values:
        yaml.safe_dump(release.values, values, sort_keys=False)
        values.flush()
        return run_helm(helm, cache, "template", release.name, str(chart), "--namespace", release.namespace,
                     "--kube-version", kube_version, "--skip-tests", "--values", values.name)
