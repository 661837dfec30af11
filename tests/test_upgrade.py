"""Story: a platform team moves an existing repository to a newer Airflow release with one command,
`make upgrade AIRFLOW=<version> [CHART=<version>]`: the answer changes through Copier in every answers
file, the repo re-renders and validates, `make diff` shows what changes for the cluster, and the
runbook says what to do around it. A downgrade is refused (migrations only go forward), and a
Renovate branch that bumped the answer alone is completed the same way."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from airflow_gitops import facts
from helpers.copying import commit_all, staging_answers
from helpers.make import make_upgrade, run_validate

pytestmark = pytest.mark.slow  # copier copy + update, render with the real chart


def staged(repo: Path) -> set[str]:
    out = subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--name-only"], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def answer(repo: Path, name: str, key: str) -> str:
    return str(yaml.safe_load((repo / name).read_text())[key])


def deployed_tag(repo: Path) -> str:
    return str(yaml.safe_load((repo / "deploy/base/values.yaml").read_text())["defaultAirflowTag"])


OLD_CHART, OLD = "1.20.0", "3.1.8"  # the previous default: the upgrade lane's starting point
NEW_CHART, NEW = facts.default_version("official"), facts.chart("official").default_tag


def older_repo(tmp_path: Path, copy_project, official_answers, tag: str = OLD) -> Path:
    """An official-chart repo on chart 1.20.0 with two environments, committed."""
    older = {**official_answers, "chart_version": OLD_CHART, "airflow_image_tag": tag}
    repo = copy_project(tmp_path / "repo", older)
    per_env = {k: v for k, v in staging_answers(older).items() if k != "web_hostname"}
    copy_project(repo, {**per_env, "namespace": "airflow-staging"}, answers_file=".copier-answers.staging.yml")
    commit_all(repo, f"on {tag}")
    return repo


@pytest.fixture
def repo(tmp_path, copy_project, official_answers) -> Path:
    return older_repo(tmp_path, copy_project, official_answers)


def test_make_upgrade_moves_every_environment_through_copier(repo) -> None:
    done = make_upgrade(repo, f"AIRFLOW={NEW}", f"CHART={NEW_CHART}")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in (".copier-answers.yml", ".copier-answers.staging.yml"):
        assert (answer(repo, name, "airflow_image_tag"), answer(repo, name, "chart_version")) == (NEW, NEW_CHART)
    assert deployed_tag(repo) == NEW
    assert {".copier-answers.yml", ".copier-answers.staging.yml", "deploy/base/values.yaml",
            "deploy/base/helmrelease.yaml"} <= staged(repo)
    # What changes for the cluster (make diff against HEAD), then the runbook.
    assert f"apache/airflow:{OLD}" in done.stdout and f"apache/airflow:{NEW}" in done.stdout, done.stdout
    assert "validate:" in done.stdout and ", 0 errors," in done.stdout, done.stdout
    runbook = done.stdout[done.stdout.rindex(f"upgrade: Airflow {OLD} -> {NEW}"):]
    assert "create-db-snapshot" in runbook and "airflow db migrate" in runbook and "not rolled back" in runbook
    assert "dev, staging" in runbook


def test_a_downgrade_and_an_unknown_version_are_refused_and_change_nothing(repo) -> None:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    for args, message in ((("AIRFLOW=3.1.7",), "Airflow 3.1.7 is older than the deployed 3.1.8: refused"),
                          ((f"AIRFLOW={NEW}",), f"AIRFLOW={NEW}: the Apache Airflow (official) chart airflow 1.20.0"),
                          (("AIRFLOW=2.10.5",), "AIRFLOW=2.10.5: the Apache Airflow (official) chart"),
                          (("AIRFLOW=3.1.8", "CHART=9.9.9"), "CHART=9.9.9: this template knows")):
        done = make_upgrade(repo, *args) if "CHART=9.9.9" not in args else subprocess.run(
            ["make", "-s", "-C", str(repo), "upgrade", *args], capture_output=True, text=True)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
        assert staged(repo) == set() and deployed_tag(repo) == OLD
    assert "only go forward" in make_upgrade(repo, "AIRFLOW=3.1.7").stderr
    assert subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout == head


def test_a_renovate_branch_that_bumped_the_answer_alone_is_completed(tmp_path, copy_project, official_answers) -> None:
    """Renovate's custom manager edits the answers files' `airflow_image_tag` line only (a patch release
    the repo's chart deploys: its allowedVersions); make upgrade (its post-upgrade task) renders the rest."""
    repo = older_repo(tmp_path, copy_project, official_answers, "3.1.7")
    for name in (".copier-answers.yml", ".copier-answers.staging.yml"):
        path = repo / name
        path.write_text(path.read_text().replace("airflow_image_tag: 3.1.7", "airflow_image_tag: 3.1.8"))
    assert deployed_tag(repo) == "3.1.7"
    # Renovate writes the bump uncommitted, then runs its post-upgrade task: the task accepts that
    # (and nothing else uncommitted). Without the task (the hosted app), the PR's CI says what to run.
    result = run_validate(repo)
    assert result.returncode != 0 and "airflow_image_tag is 3.1.8 but the files deploy 3.1.7: run `make upgrade " \
        "FROM_ANSWERS=1`" in result.stdout, result.stdout
    (repo / "deploy/base/values.yaml").write_text((repo / "deploy/base/values.yaml").read_text() + "# mine\n")
    refused = make_upgrade(repo, "FROM_ANSWERS=1")
    assert refused.returncode != 0 and "the worktree is not clean" in refused.stderr
    subprocess.run(["git", "-C", str(repo), "checkout", "deploy/base/values.yaml"], check=True)
    done = make_upgrade(repo, "FROM_ANSWERS=1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert deployed_tag(repo) == "3.1.8" and answer(repo, ".copier-answers.yml", "airflow_image_tag") == "3.1.8"
    assert "deploy/base/values.yaml" in staged(repo)
    assert run_validate(repo).returncode == 0
    # And once Renovate committed its branch (the task run again, or by hand): the same.
    commit_all(repo, "Update apache-airflow to 3.1.8 (Renovate)")
    again = make_upgrade(repo, "FROM_ANSWERS=1")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
