"""Story: the generated Jenkinsfile publishes DAGs into the right environment, and it lints."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import ROOT, kustomize_build, merged_values, run_validate, skip_or_fail

GROOVY_LINT = Path(os.environ.get("GROOVY_LINT", ROOT / ".tools/npm/node_modules/.bin/npm-groovy-lint"))
VARIANTS = {
    "in-repo": {},
    "external-https": {"dags_repo_url": "https://github.com/example/dags.git", "dags_repo_branch": "release/v1",
                       "dags_repo_credentials_id": "github-dags"},
    "external-ssh-public": {"dags_repo_url": "git@github.com:example/dags.git"},
    "production": {"environment": "prod", "namespace": "airflow-prod",
                   "irsa_role_arn": "arn:aws:iam::123456789012:role/airflow-prod"},
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def generated(request, tmp_path_factory, copy_project, demo_answers) -> tuple[Path, dict]:
    answers = {**demo_answers, **VARIANTS[request.param]}
    return copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers), answers


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    if not GROOVY_LINT.exists():
        skip_or_fail(f"npm-groovy-lint not installed at {GROOVY_LINT}: run `make setup`")
    return subprocess.run([str(GROOVY_LINT), "--noserver", "--failon", "error", "--output", "txt", str(path)],
                          capture_output=True, text=True, timeout=300)


def agent_pod(jenkinsfile: str, claim: str) -> dict:
    """The agent pod as Jenkins renders it: the GString with this build's values filled in."""
    template = re.search(r'String agentPod\(Map env\) \{\s*return """\\\n(.*?)"""', jenkinsfile, re.S).group(1)
    image = re.search(r"AIRFLOW_IMAGE = '([^']*)'", jenkinsfile).group(1)
    return yaml.safe_load(template.replace("${AIRFLOW_IMAGE}", image).replace("${env.claim}", claim))


def test_jenkinsfile_lints(generated) -> None:
    repo, _ = generated
    result = lint(repo / "Jenkinsfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_is_real(tmp_path: Path, copy_project, demo_answers) -> None:
    """The linter fails on a broken file, so the test above can fail."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    broken = tmp_path / "Jenkinsfile"
    broken.write_text((repo / "Jenkinsfile").read_text().rsplit("}", 1)[0])
    assert lint(broken).returncode != 0


def test_declarative_structure(generated) -> None:
    repo, answers = generated
    text = (repo / "Jenkinsfile").read_text()
    for needle in ["timeout(time:", "disableConcurrentBuilds()", "buildDiscarder(logRotator(",
                   "choice(name: 'ENVIRONMENT'", "kubernetes {", "defaultContainer 'airflow'"]:
        assert needle in text
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Publish DAGs", "Checkout", "Branch guard", "Check DAGs", "Publish", "Verify"]
    check, publish = text.index("sync_dags.py check --source"), text.index("sync_dags.py publish --source")
    assert check < publish, "DAGs are checked before anything is published"
    assert "--revision" in text[publish:publish + 200]
    production = re.search(r"productionLike: (true|false)", text).group(1)
    assert production == ("true" if answers["environment"] == "prod" else "false")
    if answers.get("dags_repo_url"):
        assert f"url: '{answers['dags_repo_url']}'" in text and "DAGS_SOURCE = '.dags-src'" in text
        assert "checkout(scmGit(" in text
        assert ("credentialsId: DAGS_REPO.credentialsId" in text) == bool(answers.get("dags_repo_credentials_id"))
        assert not (repo / "dags").exists()
    else:
        assert "DAGS_SOURCE = 'dags'" in text and (repo / "dags/example_s3_logging.py").exists()


def test_values_match_the_overlay(generated) -> None:
    repo, answers = generated
    env = answers["environment"]
    text = (repo / "Jenkinsfile").read_text()
    entry = re.search(rf"'{env}': \[namespace: '([^']+)', claim: '([^']+)'", text)
    namespace, claim = entry.groups()
    built = kustomize_build(repo / "deploy/overlays" / env)
    assert namespace == next(o["metadata"]["name"] for o in built if o["kind"] == "Namespace")
    assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim for o in built)

    pod = agent_pod(text, claim)
    kubernetes_validate.validate(pod, "1.34.0", strict=True)
    values = merged_values(repo, env)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == f"{values['airflow']['image']['repository']}:{values['airflow']['image']['tag']}"
    assert (pod["spec"]["securityContext"]["runAsUser"], pod["spec"]["securityContext"]["runAsGroup"]) == (50000, 0)
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == values["airflow"]["extraVolumeMounts"][0]["mountPath"] == "/opt/efs"
    dags_root = re.search(r"DAGS_ROOT = '([^']+)'", text).group(1)
    assert f"{dags_root}/current" == values["dags"]["path"]


def test_validate_catches_a_jenkinsfile_drifting_from_the_overlay(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    jenkinsfile = repo / "Jenkinsfile"
    jenkinsfile.write_text(jenkinsfile.read_text().replace("namespace: 'airflow-dev'", "namespace: 'airflow'"))
    result = run_validate(repo)
    assert result.returncode != 0
    assert "dev: namespace 'airflow' != overlay namespace airflow-dev" in result.stdout


def test_example_dag_compiles(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    source = (repo / "dags/example_s3_logging.py").read_text()
    compile(source, "example_s3_logging.py", "exec")


@pytest.mark.parametrize("url", ["https://user:token@github.com/org/dags.git", "file:///etc/passwd",
                                 "https://github.com/org/dags.git'; sh 'rm -rf /", "git@github.com:org/da gs.git"])
def test_unsafe_dag_repo_urls_are_rejected(tmp_path, copy_project, demo_answers, url) -> None:
    with pytest.raises(ValueError, match="dags_repo_url"):
        copy_project(tmp_path / "dst", {**demo_answers, "dags_repo_url": url})
