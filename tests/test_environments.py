"""Story: a second environment is started in an existing repository with `copier copy -a`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow_gitops.facts import DAG_CLAIM, jenkins_entries
from helpers.copying import commit_all, staging_answers
from helpers.make import run_validate
from helpers.paths import ROOT
from helpers.secrets import PASSWORDS
from standins.controller import make_cert, make_key

PER_ENV = {"environment": "staging", "aws_region": "eu-central-1", "aws_account_id": "210987654321",
           "eks_cluster_name": "staging-cluster", "efs_file_system_id": "fs-00aa11bb22cc33dd4",
           "efs_access_point_id": "fsap-00aa11bb22cc33dd4",
           "rds_host": "staging.abcdefghijkl.eu-central-1.rds.amazonaws.com",
           "redis_host": "staging.abcdef.ng.0001.euc1.cache.amazonaws.com", "s3_log_bucket": "staging-airflow-logs"}


def changed_paths(repo: Path) -> set[str]:
    out = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                         capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines()}


def test_second_environment_owns_only_its_directories(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "project_name": "pipelines",
                                             "executor": "CeleryKubernetesExecutor"})
    commit_all(repo, "dev")
    # Only per-environment answers are given: the repo-wide ones come from .copier-answers.yml.
    copy_project(repo, PER_ENV, answers_file=".copier-answers.staging.yml")
    changed = changed_paths(repo)
    # staging-cluster has no other environment: staging brings its add-on Kustomization too.
    assert changed - {"Jenkinsfile"} == {p for p in changed if p.startswith(
        ("clusters/staging-cluster/", "deploy/overlays/staging/", ".copier-answers.staging.yml"))}
    assert "clusters/staging-cluster/infrastructure.yaml" in changed
    assert "Jenkinsfile" in changed  # registered by the copy-time task, see below

    main = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    env = yaml.safe_load((repo / ".copier-answers.staging.yml").read_text())
    assert (main["repo_role"], env["repo_role"]) == ("primary", "environment")
    for key in ("project_name", "executor", "chart_version", "airflow_image_tag", "extra_pip_packages"):
        assert env[key] == main[key], key
    assert env["namespace"] == "pipelines-staging"
    staging = jenkins_entries((repo / "Jenkinsfile").read_text())["staging"]
    assert (staging.cloud, staging.namespace, staging.claim) == ("staging-cluster", "pipelines-staging", DAG_CLAIM)
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout


def test_environment_registration_is_idempotent(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    before = (repo / "Jenkinsfile").read_text()
    dev = {"environment": "dev", "namespace": "airflow-dev", "production_like": False,
           "eks_cluster_name": demo_answers["eks_cluster_name"]}
    task = [sys.executable, str(ROOT / "hooks/register_environment.py"), json.dumps(dev)]
    out = subprocess.run(task, cwd=repo, capture_output=True, text=True, check=True).stdout
    assert out == "" and (repo / "Jenkinsfile").read_text() == before  # already there: nothing to say
    task[-1] = json.dumps({**dev, "production_like": True})
    subprocess.run(task, cwd=repo, check=True, capture_output=True)
    after = (repo / "Jenkinsfile").read_text()
    assert after.count("'dev':") == 1 and jenkins_entries(after)["dev"].production_like
    # a line from before the cloud existed is brought up to date, not doubled
    (repo / "Jenkinsfile").write_text(after.replace("[cloud: 'demo-cluster', ", "["))
    assert jenkins_entries((repo / "Jenkinsfile").read_text())["dev"].cloud is None
    subprocess.run(task, cwd=repo, check=True, capture_output=True)
    assert (repo / "Jenkinsfile").read_text() == after


def test_every_repo_wide_path_is_excluded_for_environments(tmp_path, copy_project, demo_answers) -> None:
    """The _exclude list in copier.yml names every repo-wide path of the template."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    top = {p.name for p in repo.iterdir()} - {".copier-answers.yml", "clusters", "deploy"}
    config = (ROOT / "copier.yml").read_text()
    missing = [name for name in sorted(top) if f"    /{name}\n" not in config]
    assert missing == [], f"add to _exclude in copier.yml: {missing}"
    assert "    /deploy/base\n" in config


@pytest.mark.parametrize(("field", "value", "message"), [
    ("namespace", "airflow-dev", "namespace 'airflow-dev' is already environment 'dev''s on cluster 'demo-cluster'"),
    ("s3_log_prefix", "airflow/dev", "s3_log_prefix 'airflow/dev' overlaps environment 'dev''s 'airflow/dev'"),
    ("s3_log_prefix", "airflow", "overlaps environment 'dev''s 'airflow/dev'"),
    ("irsa_role_arn", "arn:aws:iam::123456789012:role/airflow-dev", "is also environment 'dev''s"),
])
def test_a_second_environment_cannot_take_the_firsts_place(tmp_path, copy_project, demo_answers, field, value,
                                                            message) -> None:
    """Same cluster and namespace would share the release, PV and Secrets; same log prefix, the logs."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    commit_all(repo, "dev")
    before = sorted(p.relative_to(repo) for p in repo.rglob("*") if ".git" not in p.parts)
    with pytest.raises(ValueError, match=f"question '{field}'") as excinfo:
        copy_project(repo, {**staging_answers(demo_answers), field: value},
                     answers_file=".copier-answers.staging.yml")
    assert message in str(excinfo.value)
    assert sorted(p.relative_to(repo) for p in repo.rglob("*") if ".git" not in p.parts) == before


def test_the_same_namespace_on_another_cluster_is_fine(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    copy_project(repo, {**staging_answers(demo_answers), "namespace": "airflow-dev", "eks_cluster_name": "other"},
                 answers_file=".copier-answers.staging.yml")
    assert (repo / "deploy/overlays/staging").is_dir()


def test_copying_an_existing_environment_again_is_refused(tmp_path, copy_project, demo_answers) -> None:
    """`copier copy` (even --overwrite) over the primary environment would replace the user's edits."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    values = repo / "deploy/overlays/dev/values.yaml"
    values.write_text(values.read_text() + "\n# my edit\n")
    with pytest.raises(ValueError, match=r"environment 'dev' already exists .* copier copy would overwrite"):
        copy_project(repo, demo_answers, overwrite=True)
    assert values.read_text().endswith("# my edit\n")


def test_sealing_a_new_environment_without_passwords_leaves_nothing(tmp_path, copy_project, demo_answers,
                                                                     monkeypatch) -> None:
    """Adding an environment with a certificate but no passwords: one clear error, no half repo, and
    the retry is not refused as "environment already exists"."""

    for name in ("AIRFLOW_DB_PASSWORD", "AIRFLOW_REDIS_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    repo = copy_project(tmp_path / "repo", demo_answers)
    commit_all(repo, "dev")
    cert = make_cert(make_key(2048), tmp_path / "cert.pem")
    staging = {**staging_answers(demo_answers), "sealed_secrets_cert": str(cert)}
    data = tmp_path / "staging.yml"
    data.write_text(yaml.safe_dump(staging))
    cli = subprocess.run([sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet", "--data-file",
                          str(data), "-a", ".copier-answers.staging.yml", str(ROOT), str(repo)],
                         capture_output=True, text=True)
    assert cli.returncode != 0
    assert "needs db_password, redis_password, admin_password" in cli.stderr and "Traceback" not in cli.stderr
    assert changed_paths(repo) == set()
    for name, value in PASSWORDS.items():
        monkeypatch.setenv(name, value)
    copy_project(repo, staging, answers_file=".copier-answers.staging.yml")  # the retry works
    assert (repo / "deploy/overlays/staging/secrets/airflow-db.yaml").is_file()


def test_validate_refuses_two_environments_on_one_role(tmp_path, copy_project, demo_answers) -> None:
    """One role has one trust policy: creating the second environment's would replace the first's."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    copy_project(repo, staging_answers(demo_answers), answers_file=".copier-answers.staging.yml")
    values = repo / "deploy/overlays/staging/values.yaml"
    values.write_text(values.read_text().replace("role/airflow-staging", "role/airflow-dev"))
    result = run_validate(repo)
    assert result.returncode != 0
    assert "ERROR deploy/overlays/staging: IRSA role arn:aws:iam::123456789012:role/airflow-dev is also " \
        "environment 'dev''s" in result.stdout, result.stdout


def test_the_same_namespace_on_two_clusters_is_fine_for_copy_and_validate(tmp_path, copy_project,
                                                                         demo_answers) -> None:
    """Two clusters, one namespace name each: copy accepts it and validate agrees (under Flux an
    environment's directory is no build of its own: its cluster comes from the layout)."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    copy_project(repo, {**PER_ENV, "namespace": demo_answers["namespace"]}, answers_file=".copier-answers.staging.yml")
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout
    # On one cluster it is refused by both (copy: the namespace question; validate: a hand-made copy).
    same = repo / "clusters/demo-cluster/staging"
    (repo / "clusters/staging-cluster/staging").rename(same)
    result = run_validate(repo)
    assert result.returncode != 0 and f"namespace {demo_answers['namespace']!r} is also environment 'dev'" \
        in result.stdout and "cluster 'demo-cluster'" in result.stdout, result.stdout


@pytest.mark.parametrize(("old", "new", "message"), [
    ("[cloud: 'staging-cluster', ", "[cloud: 'demo-cluster', ",
     "staging: cloud 'demo-cluster' != 'staging-cluster', the Jenkins cloud of its cluster staging-cluster "
     "(eks_cluster_name in .copier-answers.staging.yml)"),
    ("[cloud: 'staging-cluster', ", "[",
     "staging: its ENVIRONMENTS entry names no cloud, so the agent pod would start on Jenkins' first Kubernetes "
     "cloud: add cloud: 'staging-cluster', before namespace: (eks_cluster_name staging-cluster in "
     ".copier-answers.staging.yml; or run make update)"),
])
def test_validate_checks_each_entrys_cloud_against_its_answers(tmp_path, copy_project, demo_answers, old, new,
                                                                message) -> None:
    """An environment on a second cluster publishes through that cluster's Jenkins cloud, or not at all."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    copy_project(repo, PER_ENV, answers_file=".copier-answers.staging.yml")
    jenkinsfile = repo / "Jenkinsfile"
    text = jenkinsfile.read_text()
    assert old in text
    jenkinsfile.write_text(text.replace(old, new))
    result = run_validate(repo)
    assert result.returncode != 0
    assert f"ERROR Jenkinsfile: Jenkinsfile: {message}" in result.stdout, result.stdout
