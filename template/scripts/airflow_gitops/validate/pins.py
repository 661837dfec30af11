"""The Airflow release the answers name against the one the rendered files deploy: a Renovate branch
bumps `airflow_image_tag` or `chart_version` in the answers files alone, and only `make upgrade`
renders the rest (values, chart pin, Jenkinsfile image)."""

from __future__ import annotations

from pathlib import Path

from airflow_gitops.validate.report import ERROR, Issue
from airflow_gitops.values import deployed_versions


def check_pins(repo: Path, answers: dict, flavor: str) -> list[Issue]:
    chart, tag = deployed_versions(repo, flavor)
    found = []
    for key, have in (("chart_version", chart), ("airflow_image_tag", tag)):
        want = answers.get(key)
        if want is not None and have is not None and str(want) != have:
            found.append(Issue(ERROR, "", f"{key} is {want} but the files deploy {have}: "
                          "run `make upgrade FROM_ANSWERS=1` (an answer bumped alone, as a Renovate branch does, "
                          "changes nothing until the files are rendered from it)").at(".copier-answers.yml"))
    return found
