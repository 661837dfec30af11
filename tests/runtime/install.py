#!/usr/bin/env python3
"""Install what the runtime harness runs: Debian servers and real Airflow from PyPI.

    python tests/runtime/install.py [--debian] [--airflow 2.8.4 ...]

Airflow gets its own virtualenv per version under .runtime/ (never the test venv: Airflow
pins half of PyPI), created with the interpreter the apache/airflow image of that version
uses when this machine has it, else the newest supported one found. Its dependencies are
pinned by constraints/airflow-<version>.txt: the same method as Airflow's official
constraints (the PyPI state when that version was released), compiled with `--compile`.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUNTIME_DIR = Path(os.environ.get("AIRFLOW_RUNTIME_DIR", ROOT / ".runtime"))
# Debian packages the harness starts (bound to 127.0.0.1 by the tests) and the DAG bench uses.
DEBIAN_PACKAGES = {"postgres": "postgresql", "pgbouncer": "pgbouncer", "redis-server": "redis-server",
                   "rsync": "rsync", "fusermount3": "fuse3", "openssl": "openssl",
                   "promtool": "prometheus"}  # promtool: the PrometheusRule alerts are unit-tested with it
POSTGRES_BIN = "/usr/lib/postgresql/15/bin"  # bookworm's PostgreSQL 15: initdb/postgres are not on PATH


@dataclass(frozen=True)
class AirflowRuntime:
    version: str
    pythons: tuple[str, ...]  # the image's Python first, then other supported ones
    extras: str  # what the official image ships that this stack uses
    released: str  # PyPI upload date of the release: constraints resolve as of this instant

    @property
    def oldest_python(self) -> str:
        return min(self.pythons, key=lambda v: tuple(map(int, v.split("."))))

    @property
    def requirement(self) -> str:
        return f"apache-airflow[{self.extras}]=={self.version}"

    @property
    def constraints(self) -> Path:
        return HERE / "constraints" / f"airflow-{self.version}.txt"

    @property
    def venv(self) -> Path:
        return RUNTIME_DIR / f"airflow-{self.version}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


RUNTIMES = {
    # apache/airflow:2.8.4-python3.9 is what the community chart 8.9.0 deploys by default.
    "2.8.4": AirflowRuntime("2.8.4", ("3.9", "3.11", "3.10"),
                            "amazon,celery,cncf.kubernetes,postgres,redis,statsd", "2024-03-26T00:00:00Z"),
    # apache/airflow:3.1.8 (python3.12) is what the official chart 1.20.0 deploys by default; the chart
    # sets core.auth_manager to the FAB auth manager, a separate provider (`fab`) in Airflow 3.
    # PyPI upload of apache-airflow 3.1.8: 2026-03-11T19:28Z.
    "3.1.8": AirflowRuntime("3.1.8", ("3.12", "3.11", "3.10"),
                            "amazon,celery,cncf.kubernetes,fab,postgres,redis,statsd", "2026-03-12T20:00:00Z"),
}


def find_python(minor: str) -> str | None:
    """An interpreter of this minor version that really runs (pyenv shims exist for inactive ones)."""
    candidates = [shutil.which(f"python{minor}") or ""]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{minor}.*/bin/python{minor}"), reverse=True)
    for path in filter(None, candidates):
        probe = subprocess.run([path, "-c", "import sys, venv; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(int(p) for p in minor.split("."))):
            return path
    return None


def uv() -> str:
    found = shutil.which("uv", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not found:
        raise SystemExit("install: uv not found: it comes with requirements-test.txt (make setup)")
    return found


def stamp(runtime: AirflowRuntime, python: str) -> str:
    digest = hashlib.sha256(runtime.constraints.read_bytes()).hexdigest()[:16]
    return f"{runtime.requirement} python={python} constraints={digest}\n"


def install_airflow(version: str) -> Path:
    runtime = RUNTIMES[version]
    python = next(filter(None, (find_python(v) for v in runtime.pythons)), None)
    if python is None:
        raise SystemExit(f"install: Airflow {version} needs Python {' or '.join(runtime.pythons)}; none found")
    marker = runtime.venv / ".installed"
    if marker.is_file() and marker.read_text() == stamp(runtime, python):
        print(f"install: Airflow {version} already in {runtime.venv}")
        return runtime.python
    shutil.rmtree(runtime.venv, ignore_errors=True)
    subprocess.run([uv(), "venv", "--quiet", "--python", python, str(runtime.venv)], check=True)
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(runtime.python),
                    "--index-url", "https://pypi.org/simple", runtime.requirement,
                    "-c", str(runtime.constraints)], check=True)
    marker.write_text(stamp(runtime, python))
    print(f"install: Airflow {version} ({python}) in {runtime.venv}")
    return runtime.python


def compile_constraints(version: str) -> None:
    """Re-pin from PyPI as it was at the release (what Airflow's constraints record)."""
    runtime = RUNTIMES[version]
    with_header = ["# Generated by tests/runtime/install.py --compile "
                   f"{version}: {runtime.requirement}", f"# resolved as of {runtime.released} "
                   f"(PyPI at the release), for Python >= {runtime.oldest_python}; do not edit."]
    out = subprocess.run([uv(), "pip", "compile", "-", "--universal", "--python-version", runtime.oldest_python,
                          "--exclude-newer", runtime.released, "--index-url", "https://pypi.org/simple",
                          "--no-annotate", "--no-header", "--quiet"],
                         input=runtime.requirement, capture_output=True, text=True, check=True).stdout
    runtime.constraints.write_text("\n".join(with_header) + "\n" + out)
    print(f"install: wrote {runtime.constraints}")


def install_debian() -> None:
    missing = sorted({pkg for cmd, pkg in DEBIAN_PACKAGES.items()
                      if not shutil.which(cmd) and not Path(POSTGRES_BIN, cmd).exists()})
    if not missing:
        print("install: Debian packages present")
        return
    if os.geteuid() != 0:
        raise SystemExit(f"install: missing Debian packages {' '.join(missing)}: run as root or apt-get install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    with no_service_starts():
        if subprocess.run(cmd, env=env).returncode != 0:  # stale package lists on a fresh machine
            subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
            subprocess.run(cmd, check=True, env=env)
    print(f"install: installed {' '.join(missing)} (no service is started: the tests start their own)")


@contextlib.contextmanager
def no_service_starts(policy: Path = Path("/usr/sbin/policy-rc.d")) -> Iterator[None]:
    """Debian's own switch: a policy-rc.d that exits 101 stops package scripts from starting
    services (postgresql, redis-server, prometheus would otherwise listen on every address)."""
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debian", action="store_true", help="apt-get install the servers (root)")
    parser.add_argument("--airflow", action="append", default=[], choices=sorted(RUNTIMES))
    parser.add_argument("--compile", action="append", default=[], choices=sorted(RUNTIMES),
                        help="re-pin constraints/airflow-<version>.txt from PyPI")
    args = parser.parse_args(argv)
    if args.debian:
        install_debian()
    for version in args.compile:
        compile_constraints(version)
    for version in args.airflow:
        install_airflow(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
