"""Story: the generated Jenkinsfile publishes DAGs into the right environment, and it lints."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from airflow_gitops import podsecurity
from airflow_gitops.facts import DAG_CLAIM, POD_SECURITY_LEVEL, jenkins_cloud, jenkins_entries
from helpers.copying import commit_all, staging_answers
from helpers.make import run_validate
from helpers.paths import ROOT
from helpers.render import kustomize_build, merged_values
from helpers.tools import groovy_lint
from standins.declarative import (
    BRANCH_EVENT_CAUSE,
    USER_CAUSE,
    Start,
    agent_pod,
    fields,
    run_builds,
    run_jenkinsfile,
    sh_commands,
    steps_in_blocks,
)

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


def test_jenkinsfile_lints(generated) -> None:
    repo, _ = generated
    result = groovy_lint(repo / "Jenkinsfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_is_real(tmp_path: Path, copy_project, demo_answers) -> None:
    """The linter fails on a broken file, so the test above can fail."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    broken = tmp_path / "Jenkinsfile"
    broken.write_text((repo / "Jenkinsfile").read_text().rsplit("}", 1)[0])
    assert groovy_lint(broken).returncode != 0


def test_declarative_structure(generated) -> None:
    repo, answers = generated
    text = (repo / "Jenkinsfile").read_text()
    for needle in ["timeout(time:", "disableConcurrentBuilds()", "buildDiscarder(logRotator(",
                   "choice(name: 'ENVIRONMENT'", "kubernetes {"]:
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
    entry = jenkins_entries(text)[env]
    namespace, claim = entry.namespace, entry.claim
    assert entry.cloud == jenkins_cloud(answers["eks_cluster_name"])
    built = kustomize_build(repo / "deploy/overlays" / env)
    assert namespace == answers["namespace"]
    assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim
               and o["metadata"]["namespace"] == namespace for o in built)

    pod = agent_pod(text, claim)
    kubernetes_validate.validate(pod, "1.34.0", strict=True)
    values = merged_values(repo, env)
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert set(containers) == {"jnlp", "airflow"}
    airflow = containers["airflow"]
    assert airflow["image"] == f"{values['airflow']['image']['repository']}:{values['airflow']['image']['tag']}"
    (mount,) = airflow["volumeMounts"]
    assert mount["mountPath"] == values["airflow"]["extraVolumeMounts"][0]["mountPath"] == "/opt/efs"
    assert "volumeMounts" not in containers["jnlp"], "only the DAG steps need the claim"
    dags_root = re.search(r"DAGS_ROOT = '([^']+)'", text).group(1)
    assert f"{dags_root}/current" == values["dags"]["path"]


def effective(pod: dict, container: dict, key: str):
    return {**pod["spec"].get("securityContext", {}), **container.get("securityContext", {})}.get(key)


def test_agent_pod_containers_can_share_the_workspace(generated) -> None:
    """jnlp checks out, `sh` in airflow writes its control files next to the checkout: one uid for
    both (else `sh` hangs: permission denied), the jnlp image's own user (ssh refuses a uid without a
    passwd entry), gid 0 and HOME=/home/airflow for the Airflow image (its arbitrary-uid rule)."""
    repo, _ = generated
    text = (repo / "Jenkinsfile").read_text()
    pod = agent_pod(text, DAG_CLAIM)
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    uids = {name: effective(pod, c, "runAsUser") for name, c in containers.items()}
    assert uids == {"jnlp": 1000, "airflow": 1000}, uids
    assert effective(pod, containers["airflow"], "runAsGroup") == 0
    assert {"name": "HOME", "value": "/home/airflow"} in containers["airflow"]["env"]
    for name, container in containers.items():
        assert effective(pod, container, "runAsNonRoot") is True, name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
    # The plugin fills in its own agent image (and the cloud may override it): no invented tag here.
    assert "image" not in containers["jnlp"]
    # It runs in the Airflow namespace, which enforces Pod Security restricted.
    assert podsecurity.violations(pod["spec"], POD_SECURITY_LEVEL) == []


def test_git_runs_in_jnlp_and_the_dag_steps_in_airflow(generated) -> None:
    """The Airflow image has no git: every checkout in the jnlp container, every sh in the airflow one."""
    repo, answers = generated
    text = (repo / "Jenkinsfile").read_text()
    default = re.search(r"defaultContainer\s+'([^']+)'", text)
    assert default is None or default.group(1) == "jnlp"
    checkouts = steps_in_blocks(text, "checkout")
    assert len(checkouts) == (2 if answers.get("dags_repo_url") else 1)
    for _, heads in checkouts:
        method = re.fullmatch(r"\w+ (\w+)\(\)", heads[0]) if heads else None
        if method:  # a checkout inside a script method: where that method is called
            calls = [h for _, h in steps_in_blocks(text, method.group(1)) if h]
            assert calls, f"{method.group(1)}() is never called"
        for outer in calls if method else [heads]:
            assert "stage('Checkout')" in outer and "container('jnlp')" in outer, outer
            assert "container('airflow')" not in outer, outer
    commands = sh_commands(text)
    assert [cmd.split()[:3] for _, cmd in commands] == [["python", "scripts/sync_dags.py", verb]
                                                       for verb in ("check", "publish", "status")]
    for heads, cmd in commands:
        assert "container('airflow')" in heads and "container('jnlp')" not in heads, heads
        assert not re.search(r"\bgit\b", cmd), f"no git in the airflow container: {cmd}"


def test_the_structure_check_fails_on_the_old_pipeline() -> None:
    """The checks above reject the shape that failed every build: checkout under defaultContainer 'airflow'."""
    old = """pipeline { stages { stage('Publish DAGs') {
        agent { kubernetes { yaml 'x'; defaultContainer 'airflow' } }
        stages {
            stage('Checkout') { steps { script { Map scmVars = checkout(scm) } } }
            stage('Check DAGs') { steps { sh "python scripts/sync_dags.py check --source 'dags'" } }
        } } } }"""
    ((_, heads),) = steps_in_blocks(old, "checkout")
    assert "container('jnlp')" not in heads
    ((heads, cmd),) = sh_commands(old)
    assert "container('airflow')" not in heads and cmd == "python scripts/sync_dags.py check --source 'dags'"


def test_the_checkout_revision_reaches_publish(generated, tmp_path) -> None:
    """Run the three `sh` commands as the airflow container would (no git; the build's environment
    carries DAGS_REVISION from the checkout): status must report the checked-out commit."""
    generated_repo, answers = generated
    repo = Path(shutil.copytree(generated_repo, tmp_path / "workspace"))
    text = (repo / "Jenkinsfile").read_text()
    jnlp_block = text[text.index("container('jnlp') {"):text.index("stage('Branch guard')")]
    assignment = re.findall(r"env\.DAGS_REVISION = (\w+)\.GIT_COMMIT", jnlp_block)
    last_checkout = re.findall(r"(\w+) = checkout\(", jnlp_block)[-1]
    assert assignment == [last_checkout], "the revision is the commit of the last checkout: the DAG source"
    source = fields(text)["DAGS_SOURCE"]
    if answers.get("dags_repo_url"):  # what `dir(DAGS_SOURCE) { checkout(...) }` leaves in the workspace
        (repo / source).mkdir()
        (repo / source / "example.py").write_text((ROOT / "template/{% if not dags_repo_url %}dags{% endif %}"
                                                   / "example_s3_logging.py").read_text())
    root = tmp_path / "efs/dags"
    root.mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DAGS_REVISION": "0123456789abcdef0123456789abcdef01234567",
           "HOME": str(tmp_path)}
    for _, cmd in sh_commands(text):
        cmd = cmd.replace(fields(text)["DAGS_ROOT"], str(root))
        result = subprocess.run(["sh", "-xe", "-c", cmd], cwd=repo, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    status = subprocess.run([sys.executable, "scripts/sync_dags.py", "status", "--root", str(root), "--json"],
                            cwd=repo, capture_output=True, text=True, check=True)
    report = json.loads(status.stdout)
    (live,) = [release for release in report["releases"] if release["live"]]
    assert report["live"] == f"releases/{report['live_id']}" and live["id"] == report["live_id"], status.stdout
    assert live["revision"] == env["DAGS_REVISION"] and live["kept"] == "live", status.stdout


# ------------------------------------------------------------------ where a build runs, and what it may publish
@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory, copy_project, demo_answers) -> tuple[Path, dict[str, dict]]:
    """dev on demo-cluster (the primary), prod (production-like) added on a second EKS cluster."""
    repo = copy_project(tmp_path_factory.mktemp("two-clusters") / "repo", demo_answers)
    prod = {**staging_answers(demo_answers), "environment": "prod", "namespace": "airflow-prod",
            "s3_log_prefix": "airflow/prod", "irsa_role_arn": "arn:aws:iam::123456789012:role/airflow-prod",
            "web_hostname": "airflow-prod.example.com", "eks_cluster_name": "Prod_Cluster"}
    copy_project(repo, prod, answers_file=".copier-answers.prod.yml")
    return repo, {"dev": demo_answers, "prod": prod}


def test_each_environment_publishes_through_its_clusters_cloud(two_clusters, tmp_path) -> None:
    """Without `cloud` the Kubernetes plugin starts the agent pod on Jenkins' first Kubernetes cloud,
    in a namespace that does not exist on that cluster. The agent directive, evaluated as Declarative
    does when the build starts, names the chosen environment's cloud: its EKS cluster's."""
    repo, answers = two_clusters
    jenkinsfile = repo / "Jenkinsfile"
    first, *chosen, unknown = run_builds(jenkinsfile, tmp_path, [
        Start(),  # a new job: no parameters yet
        *(Start(params={"ENVIRONMENT": env}) for env in answers),
        Start(params={"ENVIRONMENT": "gone"})])
    assert first.parameters == [{"type": "choice", "name": "ENVIRONMENT", "choices": ["dev", "prod"]}]
    assert first.agent("Publish DAGs")["cloud"] == "demo-cluster", "the default is the first environment"
    for (env, given), build in zip(answers.items(), chosen, strict=True):
        agent = build.agent("Publish DAGs")
        assert agent["cloud"] == jenkins_cloud(given["eks_cluster_name"]), env
        assert agent["namespace"] == given["namespace"], env
        # Groovy's rendering of the pod is what the tests above read with agent_pod()
        assert yaml.safe_load(agent["yaml"]) == agent_pod(jenkinsfile.read_text(), DAG_CLAIM)
    assert jenkins_cloud("Prod_Cluster") == "prod-cluster" and (repo / "clusters/prod-cluster").is_dir()
    assert unknown.error == "ENVIRONMENT 'gone' is not in this Jenkinsfile's ENVIRONMENTS: [dev, prod]"
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout
    # The README cannot list the clouds (only the primary renders it): the repository's tool does.
    listed = subprocess.run([sys.executable, "scripts/validate.py", "--jenkins-clouds"], cwd=repo,
                            capture_output=True, text=True, check=True).stdout
    assert listed == ("Jenkins cloud 'demo-cluster': EKS cluster demo-cluster, namespaces airflow-dev (dev)\n"
                      "Jenkins cloud 'prod-cluster': EKS cluster Prod_Cluster, namespaces airflow-prod (prod)\n")


PUBLISHES = {  # (BRANCH_NAME, how the build started, its parameters) -> what the branch guard decides
    ("main", BRANCH_EVENT_CAUSE, "dev"): "publish",  # a push to main: the default environment
    ("main", USER_CAUSE, "prod"): "publish",
    ("feature/x", BRANCH_EVENT_CAUSE, None): "check only",  # a new branch's first build
    ("feature/x", BRANCH_EVENT_CAUSE, "dev"): "check only",  # its later pushes
    ("feature/x", BRANCH_EVENT_CAUSE, "prod"): "check only",
    ("feature/x", USER_CAUSE, "dev"): "publish",  # chosen by hand
    ("feature/x", USER_CAUSE, "prod"): "refused",
}


def test_which_branch_publishes_where(two_clusters, tmp_path) -> None:
    """main publishes to the environment chosen (a push: the first). A multibranch job also builds every
    other branch, each with the default ENVIRONMENT: those builds check their DAGs and publish nothing,
    unless someone starts one by hand and picks an environment that is not production-like."""
    repo, _ = two_clusters
    builds = run_builds(repo / "Jenkinsfile", tmp_path, [
        Start(params={"ENVIRONMENT": env} if env else {}, env={"BRANCH_NAME": branch}, causes=(cause,),
              probes=("publishRefusal()",)) for branch, cause, env in PUBLISHES])
    for (branch, cause, env), build in zip(PUBLISHES, builds, strict=True):
        (probe,) = build.probes
        expected = {"publish": {"value": None},
                    "check only": {"value": f"branch '{branch}' publishes only when started by hand with an "
                                            "ENVIRONMENT chosen: DAGs checked, nothing published"},
                    "refused": {"error": f"prod is production-like: publish from main only (this build: "
                                         f"'{branch}')"}}[PUBLISHES[branch, cause, env]]
        assert probe == expected, (branch, cause, env)
    text = (repo / "Jenkinsfile").read_text()
    for stage in ("Publish", "Verify"):  # what the guard's env.PUBLISH decides
        body = text[text.index(f"stage('{stage}')"):]
        assert body.split("\n")[1].strip() == "when { environment name: 'PUBLISH', value: 'yes' }", stage


HOST_KEY_FAILURE = ("Command \"git fetch --tags --force --progress -- git@github.com:example/dags.git "
                    "+refs/heads/*:refs/remotes/origin/*\" returned status code 128:\nstderr: Host key verification "
                    "failed.\nfatal: Could not read from remote repository.")


def test_a_git_at_dag_repository_needs_jenkins_to_know_its_host_key(tmp_path, copy_project, demo_answers) -> None:
    """git-client's default host key strategy reads ~/.ssh/known_hosts, which a fresh agent pod lacks:
    a git@ checkout fails with "Host key verification failed". The README and the answer's help say
    which setting fixes it, and the Jenkinsfile's failed checkout names it."""
    ssh = copy_project(tmp_path / "ssh", {**demo_answers, "dags_repo_url": "git@github.com:example/dags.git",
                                          "dags_repo_credentials_id": "github-dags"})
    https = copy_project(tmp_path / "https", {**demo_answers, "dags_repo_url": "https://github.com/example/dags.git"})
    setting = "Manage Jenkins > Security > Git Host Key Verification"
    readme = " ".join((ssh / "README.md").read_text().split())
    assert f"{setting} Configuration" in readme and '"Manually provided keys"' in readme
    assert "`git@github.com:example/dags.git` is one" in readme
    help_text = " ".join(yaml.safe_load((ROOT / "copier.yml").read_text())["dags_repo_url"]["help"].split())
    assert f"{setting} Configuration" in help_text and "Manually provided keys" in help_text

    (failed,) = run_jenkinsfile(ssh / "Jenkinsfile", tmp_path, checkout_error=HOST_KEY_FAILURE,
                                probes=("checkoutDags()",)).probes
    assert failed["error"].startswith("checkout of git@github.com:example/dags.git failed (java.io.IOException: "
                                      "Command \"git fetch"), failed
    assert failed["error"].endswith("give Jenkins the server's host keys in Manage Jenkins > Security > Git Host "
                                    "Key Verification Configuration ('Manually provided keys'); README.md, "
                                    "'Publishing DAGs'"), failed
    (ok,) = run_jenkinsfile(ssh / "Jenkinsfile", tmp_path, probes=("checkoutDags().GIT_COMMIT",)).probes
    assert ok == {"value": "0123456789abcdef0123456789abcdef01234567"}
    # Over https there is no host key: git's own error is the build's.
    (plain,) = run_jenkinsfile(https / "Jenkinsfile", tmp_path, checkout_error="Authentication failed",
                               probes=("checkoutDags()",)).probes
    assert plain == {"exception": "java.io.IOException: Authentication failed"}


def test_the_declarative_stand_in_refuses_what_jenkins_refuses(tmp_path, copy_project, demo_answers) -> None:
    """An option KubernetesDeclarativeAgent does not have fails the build, as in Jenkins."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    broken = tmp_path / "Jenkinsfile"
    broken.write_text((repo / "Jenkinsfile").read_text().replace("cloud target().cloud", "clod target().cloud"))
    with pytest.raises(AssertionError, match=r"No signature of method.*clod"):
        run_jenkinsfile(broken, tmp_path)


def test_an_added_environment_keeps_the_template_line_mergeable(tmp_path, copy_project, demo_answers) -> None:
    """`copier copy` adds a further environment's line below the comment that follows the primary's
    own, so a template change to the primary's line and that addition never touch neighbouring lines
    (git's merge would call that a conflict at the next `make update`)."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    commit_all(repo, "dev")
    copy_project(repo, staging_answers(demo_answers), answers_file=".copier-answers.staging.yml")
    block = re.search(r"ENVIRONMENTS = \[\n(.*?)^\]", (repo / "Jenkinsfile").read_text(), re.S | re.M).group(1)
    lines = block.splitlines()
    assert list(jenkins_entries(lines[0])) == ["dev"] and lines[1].lstrip().startswith("//")
    assert list(jenkins_entries(lines[2])) == ["staging"] and len(lines) == 3


# ------------------------------------------------------------------ the agents' RBAC, shipped by GitOps
# What the Kubernetes plugin does with agent pods (deploy/base/jenkins-agent-role.yaml says why).
AGENT_ROLE = {"pods": {"create", "delete", "get", "list", "patch", "watch"}, "pods/exec": {"create", "get"},
              "pods/log": {"get"}, "events": {"list", "watch"}}
ARGO = {"gitops_engine": "argocd", "git_repo_url": "https://github.com/example/airflow-gitops.git",
        "git_revision": "main"}
RBAC_VARIANTS = {
    "flux-default": {},
    "flux-ci-controller": {"jenkins_service_account": "ci-system/jenkins-controller"},
    "argocd-ci-controller": {**ARGO, "jenkins_service_account": "ci-system/jenkins.controller"},
}


@pytest.fixture(scope="module", params=sorted(RBAC_VARIANTS))
def rbac_repo(request, tmp_path_factory, copy_project, demo_answers) -> tuple[Path, dict]:
    answers = {**demo_answers, **RBAC_VARIANTS[request.param]}
    return copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers), answers


def agent_objects(built: list[dict]) -> dict[str, dict]:
    kinds = ("ServiceAccount", "Role", "RoleBinding")
    found = [o for o in built if o["kind"] in kinds and o["metadata"]["name"] in ("jenkins-agent", "jenkins-agents")]
    assert sorted(o["kind"] for o in found) == sorted(kinds), [f"{o['kind']}/{o['metadata']['name']}" for o in found]
    return {o["kind"]: o for o in found}


def check_agent_rbac(built: list[dict], namespace: str, jenkins_service_account: str) -> None:
    objs = agent_objects(built)
    assert {o["metadata"]["namespace"] for o in objs.values()} == {namespace}
    assert objs["ServiceAccount"]["automountServiceAccountToken"] is False

    granted: dict[str, set[str]] = {}
    for rule in objs["Role"]["rules"]:
        assert rule["apiGroups"] == [""], rule
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"no resourceNames/nonResourceURLs: {rule}"
        for resource in rule["resources"]:
            granted.setdefault(resource, set()).update(rule["verbs"])
    assert all("*" not in r and "*" not in v for r, v in granted.items()), granted
    assert granted == AGENT_ROLE, "exactly what the plugin needs: nothing on secrets, configmaps, pvcs..."

    binding = objs["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jenkins-agents"}
    sa_namespace, sa_name = jenkins_service_account.split("/")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}], \
        "the Jenkins controller keeps its own namespace (kustomize's namespace: moves only the binding)"


def test_agent_rbac_is_in_the_overlay(rbac_repo) -> None:
    repo, answers = rbac_repo
    built = kustomize_build(repo / "deploy/overlays" / answers["environment"])
    check_agent_rbac(built, answers["namespace"], answers.get("jenkins_service_account", "jenkins/jenkins"))
    pod = agent_pod((repo / "Jenkinsfile").read_text(), DAG_CLAIM)
    assert pod["spec"]["serviceAccountName"] == agent_objects(built)["ServiceAccount"]["metadata"]["name"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    if answers.get("gitops_engine") == "argocd":  # applied with the overlay, before the chart
        assert {o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
                for o in agent_objects(built).values()} == {"-1"}
        check_project_admits_agent_rbac(repo, answers)


def check_project_admits_agent_rbac(repo: Path, answers: dict) -> None:
    """Argo CD applies the overlay under the environment's AppProject: its namespaced-resource lists
    must let the ServiceAccount, Role and RoleBinding through (Flux applies with its own identity)."""
    projects = [o for path in sorted((repo / "clusters").rglob("*.yaml")) for o in yaml.safe_load_all(path.read_text())
                if isinstance(o, dict) and o.get("kind") == "AppProject"]
    (project,) = [o for o in projects
                  if answers["namespace"] in [d.get("namespace") for d in o["spec"].get("destinations", [])]]
    spec = project["spec"]
    for group, kind in (("", "ServiceAccount"), ("rbac.authorization.k8s.io", "Role"),
                        ("rbac.authorization.k8s.io", "RoleBinding")):
        def listed(entries, group=group, kind=kind) -> bool:
            return any(e.get("kind") in (kind, "*") and e.get("group") in (group, "*") for e in entries or [])
        assert not listed(spec.get("namespaceResourceBlacklist")), f"{project['metadata']['name']} blacklists {kind}"
        whitelist = spec.get("namespaceResourceWhitelist")
        assert whitelist is None or listed(whitelist), f"{project['metadata']['name']} does not whitelist {kind}"


def test_generated_repo_with_agent_rbac_validates(rbac_repo) -> None:
    repo, _ = rbac_repo
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_environment_gets_the_agent_rbac(tmp_path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "jenkins_service_account": "ci/jenkins"})
    staging = staging_answers(demo_answers)
    copy_project(repo, staging, answers_file=".copier-answers.staging.yml")
    for env, namespace in (("dev", demo_answers["namespace"]), ("staging", staging["namespace"])):
        check_agent_rbac(kustomize_build(repo / "deploy/overlays" / env), namespace, "ci/jenkins")


def test_a_default_service_account_is_refused(tmp_path, copy_project, demo_answers) -> None:
    """kustomize's namespace transformer rewrites the namespace of a subject named `default` to the
    overlay's (kustomize v5.7.1), and a default ServiceAccount is every pod's: refused at copy time."""
    with pytest.raises(ValueError, match=r"'jenkins_service_account'.*default ServiceAccount"):
        copy_project(tmp_path / "repo", {**demo_answers, "jenkins_service_account": "jenkins/default"})


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


@pytest.mark.parametrize(("old", "new", "message"), [
    ("  - jenkins-agent-serviceaccount.yaml\n", "", "agent ServiceAccount 'jenkins-agent' is not in the overlay"),
    ("    name: jenkins\n    namespace: jenkins\n", "    name: someone-else\n    namespace: jenkins\n",
     "does not bind jenkins/jenkins (jenkins_service_account)"),
])
def test_validate_catches_agent_rbac_drift(tmp_path, copy_project, demo_answers, old, new, message) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    target = repo / ("deploy/base/kustomization.yaml" if "serviceaccount" in old else
                     "deploy/base/jenkins-agent-rolebinding.yaml")
    text = target.read_text()
    assert old in text, text
    target.write_text(text.replace(old, new))
    result = run_validate(repo)
    assert result.returncode != 0 and message in result.stdout, result.stdout
