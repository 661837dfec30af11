"""The chart releases this template knows (per flavor: official or community) and their Airflow versions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airflow_gitops.facts.repository import EXECUTORS


# ---------------------------------------------------------------- charts
@dataclass(frozen=True)
class Chart:
    """A chart release whose values layout and rules this template encodes."""

    flavor: str  # the airflow_chart answer: "official" (Apache Airflow) or "community" (airflow-helm)
    name: str
    version: str
    repository: str
    release_name_max: int  # the chart's own limit on .Release.Name
    airflow_versions: tuple[tuple[int, int], tuple[int, int]]  # supported Airflow (major, minor), inclusive
    default_tag: str  # the image tag new copies get (official: the newest release proven on it, below)
    key_paths: str  # scripts/chart_keys/<file>: the chart's values.yaml keys, without values ("": the chart
    # ships values.schema.json, which make validate reads from the cached chart instead)
    executors: tuple[str, ...] = EXECUTORS  # the executor answers this flavor deploys
    # Airflow releases the runtime proof (tests/test_runtime*.py) deploys with this chart, oldest first:
    # the official flavor allows exactly the minors listed here, each proven by its newest patch release.
    proven: tuple[str, ...] = ()
    # The chart's own default image tag (values.yaml defaultAirflowTag), which tests check the tgz against.
    app_version: str = ""

    @property
    def airflow_range(self) -> str:
        (lo_major, lo_minor), (hi_major, hi_minor) = self.airflow_versions
        low, high = f"{lo_major}.{lo_minor}", f"{hi_major}.{hi_minor}"
        return low if low == high else f"{low}-{high}"

    @property
    def label(self) -> str:
        return f"{CHART_FLAVORS[self.flavor]} chart {self.name} {self.version}"

    def supports(self, tag: str) -> bool:
        found = airflow_minor(tag)
        return found is not None and self.airflow_versions[0] <= found <= self.airflow_versions[1]


def airflow_minor(tag: str) -> tuple[int, int] | None:
    """(major, minor) of an apache/airflow image tag (3.3.2, 2.8.4-python3.9), None if it is not one."""
    match = re.match(r"^(\d+)\.(\d+)\.\d+(-python3\.\d{1,2})?$", tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def version_key(version: str) -> tuple[int, ...]:
    """An exact release version (1.21.0, 3.3.2) as a tuple that sorts as releases do."""
    return tuple(int(part) for part in version.split("-")[0].split("."))


def official_chart(version: str, airflow: tuple[str, ...], app_version: str) -> Chart:
    """An official chart release this template knows: its Airflow range is the minors of the releases
    proven on it (`airflow`, oldest first; the newest is what new copies get)."""
    minors = sorted({airflow_minor(release) for release in airflow})  # type: ignore[type-var]
    return Chart("official", "airflow", version, "https://airflow.apache.org", 42, (minors[0], minors[-1]),
                 airflow[-1], "", ("CeleryExecutor", "KubernetesExecutor"), airflow, app_version)


# airflow_chart answer -> what the README and errors call it.
CHART_FLAVORS = {"official": "Apache Airflow (official)", "community": "airflow-helm (community)"}
CHARTS = {
    # Airflow 3 only here, though the chart also deploys 2.x: this template's official flavor is the
    # Airflow 3 product (api-server, dag-processor, JWT); Airflow 3 removed CeleryKubernetesExecutor.
    # 42: its Jobs are <release>-migrate-database-job, and a Job's pods carry it as a 63-character label.
    # A new chart version is one official_chart(...) line here plus its tgz in ../shared/charts:
    # tests/test_chart_versions.py renders and validates a copy on it and requires a runtime proof of
    # each release listed (tests/test_runtime_official.py runs them, tests/runtime/install.py has them).
    ("official", "1.20.0"): official_chart("1.20.0", ("3.1.8",), app_version="3.1.8"),
    ("official", "1.21.0"): official_chart("1.21.0", ("3.2.2", "3.3.2"), app_version="3.2.0"),
    # Next: chart 1.22.0 (June 2026, appVersion 3.2.2, published sha256 1f7d1dfe3d58e2c5...), once its tgz
    # can be had: ("official", "1.22.0"): official_chart("1.22.0", ("3.2.2", "3.3.2"), app_version="3.2.2"),
    ("community", "8.9.0"): Chart("community", "airflow", "8.9.0", "https://airflow-helm.github.io/charts", 40,
                                  ((2, 0), (2, 9)), "2.8.4-python3.9", "airflow-8.9.0.json", proven=("2.8.4",),
                                  app_version="2.8.4-python3.9"),
}
HELM_REPOSITORY_NAMES = {"official": "apache-airflow", "community": "airflow-stable"}  # Flux HelmRepository
# New copies get the official chart; an answers file without airflow_chart predates it (community).
DEFAULT_FLAVOR = "official"
LEGACY_FLAVOR = "community"


def default_version(flavor: str) -> str:
    """The chart version new copies get: the newest this template knows (each is runtime-proven)."""
    return max(chart_versions(flavor), key=version_key)


def chart(flavor: str, version: str | None = None) -> Chart | None:
    """A flavor's chart release (its newest without a version), None if this template does not know it."""
    if flavor not in CHART_FLAVORS:
        return None
    return CHARTS.get((flavor, default_version(flavor) if version is None else version))


def chart_versions(flavor: str) -> tuple[str, ...]:
    """The versions of a flavor's chart this template knows the rules of, oldest first."""
    return tuple(sorted((version for f, version in CHARTS if f == flavor), key=version_key))


def chart_of(name: str, version: str, repository: str = "") -> Chart | None:
    """The chart a HelmRelease/Application pins (name, version and, when given, repository)."""
    return next((c for c in CHARTS.values() if (c.name, c.version) == (name, version)
                 and (not repository or repository.rstrip("/") == c.repository)), None)
