"""Story: DAG versions on EFS (official chart). A run finishes on the code it started with, although
the Jenkins job publishes new code in the middle of it; a new run takes the new code; a cleared task
of the old run reruns on the old run's code. Real Airflow (the release new copies get) through the
rendered pods (tests/runtime), the repository's own bundle class (deploy/base/efs_release_bundle.py)
imported from the ConfigMap every pod mounts, DAGs published by the Jenkinsfile's own steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow_gitops import facts
from helpers.make import validate_env
from helpers.official_release import api, bring_up, live_release, name, runtime, sealed_copy
from runtime.deployment import RELEASE_TIMEOUT, Deployment, make_workdir, remove_workdir
from runtime.sandbox import HarnessError
from standins.controller import make_key

pytestmark = [pytest.mark.slow, pytest.mark.runtime]

DAG_ID = "versioned_story"
# Two tasks; the second waits in a pool with no slot until the test opens it, so that a publish
# lands after the first task succeeded and before the second starts. Each returns the code's version
# and the file it ran from (the release's tree).
DAG_CODE = '''from airflow.sdk import dag, task

VERSION = "{version}"


@dag(dag_id="{dag_id}", schedule=None, catchup=False)
def story():
    @task
    def first():
        return f"{{VERSION}} {{__file__}}"

    @task(pool="gate")
    def second():
        return f"{{VERSION}} {{__file__}}"

    first() >> second()


story()
'''


def write_dag(repo: Path, version: str) -> None:
    (repo / "dags" / f"{DAG_ID}.py").write_text(DAG_CODE.format(version=version, dag_id=DAG_ID))


def returned(dep: Deployment, run_id: str, task_id: str) -> tuple[str, str]:
    """What the task returned in `run_id`: (its code's version, the release its file was in)."""
    value = dep.sql(f"SELECT value FROM xcom WHERE dag_id = '{DAG_ID}' AND run_id = '{run_id}' "
                    f"AND task_id = '{task_id}' AND key = 'return_value'")
    version, path = json.loads(value).split(" ", 1)
    release = Path(path).relative_to(facts.DAGS_ROOT).parts
    assert release[0] == "releases", f"{task_id} ran from {path}, not from a release"
    return version, release[1]


def set_gate(dep: Deployment, slots: int) -> None:
    proc = dep.exec(name(dep, "scheduler"), ["airflow", "pools", "set", "gate", str(slots), "the story's gate"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def repo(tmp_path: Path, copy_project, official_answers) -> tuple[Path, object]:
    key = make_key(2048)
    path = sealed_copy(copy_project, official_answers, key, tmp_path)
    write_dag(path, "v1")
    return path, key


@pytest.fixture
def workdir():
    path = make_workdir("versions")
    yield path
    remove_workdir(path)


def test_a_run_finishes_on_the_code_it_started_with(repo, workdir) -> None:
    python, chart = runtime(facts.chart("official").version, facts.chart("official").default_tag)
    path, key = repo
    with Deployment(path, "dev", workdir, python, key, tool_env=validate_env()) as dep:
        bring_up(dep, chart, ("api-server", "scheduler", "dag-processor", "worker"))
        dep.start(name(dep, "create-user"))
        v1 = live_release(dep)
        dep.wait_dag(DAG_ID, 180)
        set_gate(dep, 0)
        run = dep.trigger(DAG_ID, "started-on-v1")
        try:
            dep.wait_for_sql(f"SELECT state FROM task_instance WHERE run_id = '{run}' AND task_id = 'first'",
                             "success", 300)
        except HarnessError as failed:
            raise HarnessError(f"{failed}\n--- worker\n{dep.process(name(dep, 'worker')).tail(80)}") from None

        # The Jenkins job publishes v2 between the two tasks; the dag-processor sees the new release.
        write_dag(path, "v2")
        dep.publish_dags(revision="2" * 40)
        v2 = live_release(dep)
        assert v2 != v1
        dep.wait_for_sql(f"SELECT count(*) FROM dag_version WHERE dag_id = '{DAG_ID}' AND bundle_version = '{v2}'",
                         "1", 180)

        set_gate(dep, 1)
        dep.wait_run(DAG_ID, run, 300, evidence_from=(name(dep, "scheduler"), name(dep, "worker")))
        assert returned(dep, run, "first") == ("v1", v1)
        assert returned(dep, run, "second") == ("v1", v1), "the run's second task ran on the new code"

        assert (dep.efs / "dags" / "releases" / v1).is_dir(), "the publish pruned a release a run still needs"
        new_run = dep.trigger(DAG_ID, "started-on-v2")
        dep.wait_run(DAG_ID, new_run, 300, evidence_from=(name(dep, "scheduler"), name(dep, "worker")))
        assert returned(dep, new_run, "second") == ("v2", v2)

        # The REST API shows each run's bundle version.
        dep.wait_job(name(dep, "create-user"), RELEASE_TIMEOUT)
        for run_id, release in ((run, v1), (new_run, v2)):
            assert api(dep, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["bundle_version"] == release

        # Clearing the old run's second task reruns it on the old run's code.
        api(dep, "POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
            {"dry_run": False, "task_ids": ["second"], "dag_run_id": run, "only_failed": False})
        dep.wait_for_sql(f"SELECT state || ' ' || try_number FROM task_instance WHERE run_id = '{run}' "
                         "AND task_id = 'second'", "success 2", 300)
        assert returned(dep, run, "second") == ("v1", v1)
