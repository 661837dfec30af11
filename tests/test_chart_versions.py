"""Story: the template keeps a new repository on current Airflow. Every chart version facts.py lists
has its rules (the real chart's values.schema.json, which a sealed copy must validate against
strictly) and a runtime proof of each Airflow release it allows; new copies get the newest chart and
its newest proven release; the docs say the versions facts.py says.

Adding a chart version is one `official_chart(...)` line in facts.CHARTS plus its tgz in ../shared/charts:
these tests then render and validate a copy on it, and fail until every release it lists has a
runtime (tests/runtime/install.py, `make runtime`) and a place in tests/test_runtime_official.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from airflow_gitops import facts
from helpers.make import install_rds_ca, run_make, run_validate
from helpers.paths import ROOT, chart_tgz
from helpers.secrets import PASSWORDS
from runtime.install import RUNTIMES
from standins.controller import make_cert, make_key

OFFICIAL = [c for c in facts.CHARTS.values() if c.flavor == "official"]


def minors(releases: tuple[str, ...]) -> set[tuple[int, int]]:
    return {facts.airflow_minor(r) for r in releases}  # type: ignore[misc]


@pytest.mark.parametrize("chart", OFFICIAL, ids=lambda c: c.version)
def test_an_official_chart_allows_exactly_the_airflow_minors_proven_on_it(chart: facts.Chart) -> None:
    (lo_major, lo_minor), (hi_major, hi_minor) = chart.airflow_versions
    assert lo_major == hi_major == 3, "the official flavor is the Airflow 3 product"
    assert minors(chart.proven) == {(3, m) for m in range(lo_minor, hi_minor + 1)}, "a minor without a proof"
    assert len(chart.proven) == len(minors(chart.proven)), "one release (the newest patch) per minor"
    assert chart.default_tag == chart.proven[-1] and all(chart.supports(r) for r in chart.proven)
    assert not chart.supports(f"3.{hi_minor + 1}.0") and not chart.supports(f"3.{lo_minor - 1}.0")


def parametrized(test: str) -> list[tuple[str, str]]:
    """The (chart, release) pairs tests/test_runtime_official.py runs `test` on, as pytest collects them
    (ids chart-<version>-airflow-<release>): collected in a subprocess, since no test module imports another."""
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                f"tests/test_runtime_official.py::{test}"], cwd=ROOT, capture_output=True, text=True,
                               timeout=120)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    return re.findall(rf"::{test}\[chart-(.+)-airflow-(.+)\]$", collected.stdout, re.M)


def test_every_proven_release_has_a_runtime_and_a_place_in_the_runtime_proof() -> None:
    """Each (chart, release) facts lists runs in tests/test_runtime_official.py: the full story on each
    chart's newest release, the smoke on the others; `make runtime` installs each release."""
    pairs = {(c.version, r) for c in OFFICIAL for r in c.proven}
    full = parametrized("test_airflow3_release_runs_a_dag_on_the_celery_worker")
    smoke = parametrized("test_airflow3_release_migrates_serves_and_runs_a_task")
    assert set(full) | set(smoke) == pairs and not set(full) & set(smoke)
    assert set(full) == {(c.version, c.proven[-1]) for c in OFFICIAL}
    assert (facts.default_version("official"), facts.chart("official").default_tag) in full
    makefile = (ROOT / "Makefile").read_text()
    installed = re.search(r"^RUNTIME_AIRFLOW \?= (.*)$", makefile, re.M).group(1).split()  # type: ignore[union-attr]
    for chart in facts.CHARTS.values():
        for release in chart.proven:
            assert release in RUNTIMES and RUNTIMES[release].constraints.is_file(), release
            assert release in installed, f"make runtime does not install Airflow {release}"


def test_new_copies_get_the_newest_chart_and_its_newest_proven_release() -> None:
    newest = max(OFFICIAL, key=lambda c: facts.version_key(c.version))
    assert facts.chart("official") is newest
    oldest_first = sorted(OFFICIAL, key=lambda c: facts.version_key(c.version))
    assert facts.chart_versions("official") == tuple(c.version for c in oldest_first)
    demo = yaml.safe_load((ROOT / "examples/demo.yml").read_text())
    assert (demo["chart_version"], str(demo["airflow_image_tag"])) == (newest.version, newest.default_tag)


@pytest.mark.parametrize("chart", OFFICIAL, ids=lambda c: c.version)
def test_each_chart_version_is_the_chart_its_tgz_holds(chart: facts.Chart) -> None:
    with tarfile.open(chart_tgz("official", chart.version)) as tgz:
        meta = yaml.safe_load(tgz.extractfile("airflow/Chart.yaml").read())  # type: ignore[union-attr]
        values = yaml.safe_load(tgz.extractfile("airflow/values.yaml").read())  # type: ignore[union-attr]
        names = set(tgz.getnames())
    assert (meta["name"], meta["version"], str(meta["appVersion"])) == (chart.name, chart.version, chart.app_version)
    assert values["defaultAirflowTag"] == chart.app_version
    assert "airflow/values.schema.json" in names, "make validate checks values against the chart's schema"


# ---------------------------------------------------------------- docs say what facts say
def test_the_docs_name_the_versions_facts_declares() -> None:
    readme = (ROOT / "README.md").read_text()
    flavors = (ROOT / "docs/chart-flavors.md").read_text()
    questions = (ROOT / "docs/questions.md").read_text()
    default = facts.chart("official")
    for chart in OFFICIAL:
        assert f"`{chart.version}`" in flavors and chart.airflow_range in flavors, chart.version
        assert f"`{chart.version}`" in readme and chart.airflow_range in readme, chart.version
    assert f"default `{default.default_tag}`" in readme and f"default `{default.default_tag}`" in flavors
    # The "Moving a community repository to Airflow 3" runbook moves to what new copies get.
    runbook = " ".join(flavors.split())
    assert f"-d chart_version={default.version} -d airflow_image_tag={default.default_tag}`" in runbook
    rule = " ".join(questions.split("- `chart_version` (repo):")[1].split("\n- ")[0].split())
    assert ", ".join(f"`{c.version}`" for c in OFFICIAL) in rule
    # No chart version or Airflow release the template does not know (tests/test_docs.py checks every
    # version-looking string of the docs against facts; this one reads the chart's own phrasing).
    known = {c.version for c in facts.CHARTS.values()} | {r for c in facts.CHARTS.values() for r in c.proven}
    for text in (readme, flavors, questions):
        for match in re.finditer(r"chart (?:`?apache-airflow/airflow`? )?`?(1\.\d+\.\d+)`?", text):
            assert match.group(1) in known, match.group(0)


# ---------------------------------------------------------------- the rules of each chart version
@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


@pytest.mark.slow
@pytest.mark.parametrize("chart", OFFICIAL, ids=lambda c: c.version)
def test_a_sealed_copy_on_each_chart_version_renders_and_validates_strictly(
        chart: facts.Chart, tmp_path: Path, copy_project, official_answers, controller_key,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answers on every chart version: its own render (the real chart, its values.schema.json,
    Pod Security, the kubelet's checks) and `make validate STRICT=1` pass, and the chart makes no Secret."""
    cert = make_cert(controller_key, tmp_path / "cert.pem")
    for name, value in PASSWORDS.items():
        monkeypatch.setenv(name, value)
    repo = copy_project(tmp_path / "repo", {**official_answers, "chart_version": chart.version,
                                            "airflow_image_tag": chart.default_tag, "rds_tls_verify": True,
                                            "keda_autoscaling": True, "metrics": "prometheus-operator",
                                            "production_like": True, "sealed_secrets_cert": str(cert)})
    install_rds_ca(repo, cert.read_bytes())
    rendered = run_make(repo, "render", "ENV=dev", f"CHART={chart_tgz('official', chart.version)}")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    assert f"airflow {chart.version}" in rendered.stdout
    result = run_validate(repo, strict=True)
    assert result.returncode == 0 and " 0 errors" in result.stdout, result.stdout + result.stderr
    chart_objects = [yaml.safe_load(p.read_text()) for p in (repo / "build/render/dev/chart").glob("*.yaml")]
    assert [o["metadata"]["name"] for o in chart_objects if o["kind"] == "Secret"] == []
    images = {c["image"] for o in chart_objects if o["kind"] in ("Deployment", "StatefulSet", "Job")
              for c in o["spec"]["template"]["spec"]["containers"] if c["image"].startswith("apache/airflow:3")}
    assert images == {f"apache/airflow:{chart.default_tag}"}
