"""The Airflow release the answers name against the one the rendered files deploy: a Renovate branch
bumps `airflow_image_tag` or `chart_version` in the answers files alone, and only `make upgrade`
renders the rest (values, chart pin, Jenkinsfile image)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from airflow_gitops.validate.report import Issue

PIN = re.compile(r'^\s*(?:version|targetRevision): "?(\d+\.\d+\.\d+)"?\s*$', re.M)


def deployed_versions(repo: Path, flavor: str) -> tuple[str | None, str | None]:
    """(chart version, Airflow image tag) the repository's files deploy (None: not found)."""
    values_file = repo / "deploy/base/values.yaml"
    values = (yaml.safe_load(values_file.read_text()) or {}) if values_file.is_file() else {}
    tag = values.get("defaultAirflowTag") if flavor == "official" else \
        ((values.get("airflow") or {}).get("image") or {}).get("tag")
    pinned = [repo / "deploy/base/helmrelease.yaml", *sorted(repo.glob("clusters/*/*/airflow.yaml"))]
    pins = [m.group(1) for path in pinned if path.is_file() for m in PIN.finditer(path.read_text())]
    return (pins[0] if pins else None), (str(tag) if tag else None)


def check_pins(repo: Path, answers: dict, flavor: str) -> list[tuple[str, Issue]]:
    chart, tag = deployed_versions(repo, flavor)
    found = []
    for key, have in (("chart_version", chart), ("airflow_image_tag", tag)):
        want = answers.get(key)
        if want is not None and have is not None and str(want) != have:
            found.append((".copier-answers.yml", Issue("ERROR", "", f"{key} is {want} but the files deploy {have}: "
                          "run `make upgrade FROM_ANSWERS=1` (an answer bumped alone, as a Renovate branch does, "
                          "changes nothing until the files are rendered from it)")))
    return found
