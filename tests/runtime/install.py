#!/usr/bin/env python3
"""Install what the runtime harness runs: Debian servers and real Airflow from PyPI.

    python tests/runtime/install.py [--debian] [--airflow 2.8.4 ...]

pgbouncer is built from Debian's source package of a newer suite (PGBOUNCER): the chart images'
pgbouncer (1.22.1, 1.23.1) has settings bookworm's 1.18.0 lacks (max_prepared_statements);
tests/runtime/pgbouncer.py makes that build behave as each image's version.
Airflow gets its own virtualenv per version under .runtime/ (never the test venv: Airflow
pins half of PyPI), created with the interpreter the apache/airflow image of that version
uses when this machine has it, else the newest supported one found. Its dependencies are
pinned by constraints/airflow-<version>.txt: the same method as Airflow's official
constraints (the PyPI state when that version was released), compiled with `--compile`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUNTIME_DIR = Path(os.environ.get("AIRFLOW_RUNTIME_DIR", ROOT / ".runtime"))
# Debian packages the harness starts (bound to 127.0.0.1 by the tests) and the DAG bench uses.
DEBIAN_PACKAGES = {"postgres": "postgresql", "redis-server": "redis-server",
                   "rsync": "rsync", "fusermount3": "fuse3", "openssl": "openssl",
                   "promtool": "prometheus"}  # promtool: the PrometheusRule alerts are unit-tested with it
POSTGRES_BIN = "/usr/lib/postgresql/15/bin"  # bookworm's PostgreSQL 15: initdb/postgres are not on PATH


@dataclass(frozen=True)
class SourceBuild:
    """An upstream release built from a Debian suite's source package (apt-get source, ./configure)."""

    package: str
    version: str  # upstream: any Debian revision of it (security patches) is taken, the newest
    suite: str  # its deb-src suite, read through a private apt configuration (never the system's)
    build_depends: tuple[str, ...]  # from this machine's own suite
    configure: tuple[str, ...]

    @property
    def prefix(self) -> Path:
        return RUNTIME_DIR / f"{self.package}-{self.version}"

    @property
    def binary(self) -> Path:
        return self.prefix / "bin" / self.package

    def installed(self) -> bool:
        if not (self.prefix / ".installed").is_file() or not os.access(self.binary, os.X_OK):
            return False
        probe = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True)
        return probe.returncode == 0 and probe.stdout.split("\n", 1)[0].split()[1:2] == [self.version]


# Debian trixie's pgbouncer 1.24.1 (bookworm has 1.18.0); it builds against bookworm's libraries.
PGBOUNCER = SourceBuild("pgbouncer", "1.24.1", "trixie",
                        ("build-essential", "pkg-config", "libevent-dev", "libc-ares-dev", "libssl-dev"),
                        ("--with-cares", "--without-systemd"))
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


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
    # The newest release of each later minor, each the image's default Python 3.12 (as 3.1's).
    # PyPI uploads: apache-airflow 3.2.2 2026-05-29T05:19Z, 3.3.2 2026-09-17T08:38Z.
    "3.2.2": AirflowRuntime("3.2.2", ("3.12", "3.11", "3.10"),
                            "amazon,celery,cncf.kubernetes,fab,postgres,redis,statsd", "2026-05-30T06:00:00Z"),
    "3.3.2": AirflowRuntime("3.3.2", ("3.12", "3.11", "3.10"),
                            "amazon,celery,cncf.kubernetes,fab,postgres,redis,statsd", "2026-09-18T09:00:00Z"),
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
    apt_install(missing)
    print(f"install: installed {' '.join(missing)} (no service is started: the tests start their own)")


def apt_install(packages: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    with no_service_starts():
        if subprocess.run(cmd, env=env).returncode != 0:  # stale package lists on a fresh machine
            subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
            subprocess.run(cmd, check=True, env=env)


def dpkg_missing(packages: tuple[str, ...]) -> list[str]:
    def installed(pkg: str) -> bool:
        probe = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        return probe.stdout.strip() == "install ok installed"
    return [pkg for pkg in packages if not installed(pkg)]


def install_source_build(build: SourceBuild) -> None:
    """Build `build` into .runtime/<package>-<version>/ unless that version is there. The suite's
    deb-src index lives in a temporary apt directory: the system's sources and lists are untouched."""
    if build.installed():
        print(f"install: {build.package} {build.version} already in {build.prefix}")
        return
    if os.geteuid() != 0:
        raise SystemExit(f"install: {build.package} {build.version} is not built in {build.prefix}: "
                         "run as root (its build dependencies are apt-get installed)")
    missing = dpkg_missing(build.build_depends)
    if missing:
        apt_install(missing)
    with tempfile.TemporaryDirectory(prefix=f"{build.package}-build-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # apt's download sandbox user (_apt) must reach the lists and the sources
        sources, lists, cache, src = work / "sources", work / "lists", work / "cache", work / "src"
        for path in (sources, lists / "partial", cache / "archives" / "partial", src):
            path.mkdir(parents=True)
        for path in (lists / "partial", cache / "archives" / "partial", src):
            with contextlib.suppress(LookupError, PermissionError):
                shutil.chown(path, "_apt")
        (sources / f"{build.suite}-src.sources").write_text(
            f"Types: deb-src\nURIs: {DEBIAN_MIRROR}\nSuites: {build.suite}\nComponents: main\n"
            f"Signed-By: {DEBIAN_KEYRING}\n")
        apt = ["-o", "Dir::Etc::sourcelist=/dev/null", "-o", f"Dir::Etc::sourceparts={sources}",
               "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}"]
        subprocess.run(["apt-get", *apt, "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        shown = subprocess.run(["apt-cache", *apt, "showsrc", build.package], capture_output=True, text=True,
                               check=True).stdout
        offered = {line.split()[1] for line in shown.splitlines() if line.startswith("Version: ")}
        versions = [v for v in offered if v.startswith(build.version + "-")]
        if not versions:
            raise SystemExit(f"install: Debian {build.suite} has no {build.package} {build.version} source "
                             f"(it has {', '.join(sorted(offered)) or 'none'})")
        debian_version = max(versions, key=functools.cmp_to_key(dpkg_compare))
        subprocess.run(["apt-get", *apt, "source", "-q", f"{build.package}={debian_version}"], cwd=src, check=True,
                       stdout=subprocess.DEVNULL)
        (tree,) = (p for p in src.iterdir() if p.is_dir())
        shutil.rmtree(build.prefix, ignore_errors=True)
        jobs = str(max(1, min(2, os.cpu_count() or 1)))
        for step in (["./configure", f"--prefix={build.prefix}", *build.configure], ["make", f"-j{jobs}"],
                     ["make", "install"]):
            proc = subprocess.run(step, cwd=tree, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"install: {' '.join(step)} failed for {build.package} {debian_version}:\n"
                                 f"{(proc.stdout + proc.stderr)[-3000:]}")
    (build.prefix / ".installed").write_text(f"{build.package} {debian_version} from Debian {build.suite} "
                                             f"({' '.join(build.configure)})\n")
    if not build.installed():
        raise SystemExit(f"install: {build.binary} does not report version {build.version}")
    print(f"install: built {build.package} {debian_version} (Debian {build.suite}) in {build.prefix}")


def dpkg_compare(a: str, b: str) -> int:
    """Debian's version ordering (1.24.1-1 < 1.24.1-1+deb13u2), by dpkg itself."""
    if a == b:
        return 0
    return -1 if subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0 else 1


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
    parser.add_argument("--debian", action="store_true", help="apt-get install the servers, build pgbouncer (root)")
    parser.add_argument("--airflow", action="append", default=[], choices=sorted(RUNTIMES))
    parser.add_argument("--compile", action="append", default=[], choices=sorted(RUNTIMES),
                        help="re-pin constraints/airflow-<version>.txt from PyPI")
    args = parser.parse_args(argv)
    if args.debian:
        install_debian()
        install_source_build(PGBOUNCER)
    for version in args.compile:
        compile_constraints(version)
    for version in args.airflow:
        install_airflow(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
