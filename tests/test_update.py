"""Story: users edit their generated repo; `make update` pulls template fixes and keeps the edits.

Template versions are built here with gitpython (v0.1.0 = this tree, v0.2.0 = fixes + a renamed
answer with its migration): tests never rely on tags existing in the checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import git
import pytest
import yaml
from helpers.copying import COPIER, GIT_ENV, SNAPSHOT_IGNORE, commit_all, repo_wide_questions, staging_answers
from helpers.make import make_update
from helpers.paths import ROOT, load_module, skip_or_fail
from helpers.tools import kubectl_path

pytestmark = pytest.mark.slow  # the update matrix: tagged template repos, copier update, make update

REPO_WIDE = repo_wide_questions()
HELMRELEASE = "template/deploy/base/{% if is_flux %}helmrelease.yaml{% endif %}.jinja"
# demo_answers' flavor (the community chart): its base values file
VALUES = "template/deploy/base/{% if airflow_chart == 'community' %}values.yaml{% endif %}.jinja"
SEALED = "AgBy3i4OJSWK+PiTySYZZA1rO43cGDEq" * 8  # stands for real ciphertext: it must survive updates
MIGRATION = """\
  - version: v0.2.0
    when: "{{ _stage == 'before' }}"
    command:
      - "{{ _copier_python }}"
      - "{{ _copier_conf.src_path }}/hooks/migrations.py"
      - rename-answer
      - "{{ _copier_conf.answers_file }}"
      - web_hostname
      - ingress_host
"""


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def release(template: Path, tag: str, change: Callable[[Path], None]) -> None:
    change(template)
    commit_all(template, f"release {tag}", tag=tag)


def v2_fixes(template: Path) -> None:
    """Fixes touching shared and per-environment files, and a renamed answer with its migration."""
    edit(template / HELMRELEASE, "      interval: 24h\n", "      interval: 12h\n")
    edit(template / VALUES, '    AIRFLOW__CORE__LOAD_EXAMPLES: "False"\n',
         '    AIRFLOW__CORE__LOAD_EXAMPLES: "False"\n    AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL: "60"\n')
    edit(template / "template/deploy/overlays/{{ environment }}/pv-patch.yaml.jinja", "    driver: efs.csi.aws.com\n",
         '    driver: efs.csi.aws.com\n    volumeAttributes:\n      encryptInTransit: "true"\n')
    for path in [template / "copier.yml", *(p for p in (template / "template").rglob("*.jinja") if p.is_file())]:
        if "web_hostname" in path.read_text():
            edit(path, "web_hostname", "ingress_host")
    edit(template / "hooks/answer_rules/__init__.py", '"web_hostname": web_hostname,',
         '"ingress_host": web_hostname,')
    edit(template / "copier.yml", "_migrations:\n", "_migrations:\n" + MIGRATION)
    edit(template / "pyproject.toml", 'version = "0.2.0"', 'version = "0.2.1"')


@pytest.fixture
def template(tmp_path: Path, template_src: Path) -> Path:
    """A private clone of the v0.1.0 template that a test may release new versions of."""
    clone = tmp_path / "template"
    git.Repo.clone_from(template_src, clone)
    return clone


@pytest.fixture
def project(tmp_path: Path, template: Path, demo_answers) -> Path:
    """Generated at v0.1.0 with two environments (the second added the documented way), committed."""
    import copier

    repo = tmp_path / "project"
    # A non-default project name: an answer silently falling back to its default would show.
    copier.run_copy(str(template), repo, data={**demo_answers, "project_name": "pipelines"}, defaults=True,
                    unsafe=True, quiet=True, vcs_ref="v0.1.0")
    copier.run_copy(str(template), repo, data=staging_answers(demo_answers), defaults=True, unsafe=True, quiet=True,
                    vcs_ref="v0.1.0", answers_file=".copier-answers.staging.yml")
    commit_all(repo, "generated at v0.1.0")
    return repo


def user_edits(repo: Path) -> None:
    edit(repo / "deploy/overlays/dev/values.yaml", "  port: 5432\n", "  port: 6543 # our RDS proxy\n")
    (repo / "deploy/overlays/dev/team-config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: team-config\ndata:\n  owner: data-platform\n")
    edit(repo / "deploy/overlays/dev/kustomization.yaml", "  - ../../base\n", "  - ../../base\n  - team-config.yaml\n")
    (repo / "dags/example_s3_logging.py").unlink()
    edit(repo / "deploy/base/helmrelease.yaml", "  timeout: 15m\n", "  timeout: 25m\n")
    edit(repo / "deploy/overlays/dev/secrets/airflow-db.yaml", '"UNSEALED: run make seal ENV=dev SECRET=airflow-db"',
         SEALED)
    commit_all(repo, "user edits")


def leftovers(repo: Path) -> list[str]:
    found = [str(p.relative_to(repo)) for p in repo.rglob("*.rej")]
    for path in repo.rglob("*"):
        text = path.read_text(errors="replace") if path.is_file() and ".git" not in path.parts else ""
        if re.search(r"^(<{7}|>{7}) ", text, re.M):
            found.append(str(path.relative_to(repo)))
    return found


def test_update_keeps_edits_and_brings_fixes(template: Path, project: Path) -> None:
    user_edits(project)
    release(template, "v0.2.0", v2_fixes)

    result = make_update(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert leftovers(project) == []
    # every user edit survived
    assert "  port: 6543 # our RDS proxy\n" in (project / "deploy/overlays/dev/values.yaml").read_text()
    assert (project / "deploy/overlays/dev/team-config.yaml").exists()
    assert "  - team-config.yaml\n" in (project / "deploy/overlays/dev/kustomization.yaml").read_text()
    assert not (project / "dags/example_s3_logging.py").exists(), "a deleted file stays deleted"
    release_text = (project / "deploy/base/helmrelease.yaml").read_text()
    assert "  timeout: 25m\n" in release_text
    assert f"password: {SEALED}" in (project / "deploy/overlays/dev/secrets/airflow-db.yaml").read_text()
    # the fixes are in, in shared and in per-environment files
    assert "      interval: 12h\n" in release_text
    assert 'AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL: "60"' in (project / "deploy/base/values.yaml").read_text()
    for env in ("dev", "staging"):
        assert 'encryptInTransit: "true"' in (project / f"deploy/overlays/{env}/pv-patch.yaml").read_text()
    # the migration renamed the answer in both answers files, once each
    for name in (".copier-answers.yml", ".copier-answers.staging.yml"):
        answers = yaml.safe_load((project / name).read_text())
        assert answers["_commit"] == "v0.2.0"
        assert "web_hostname" not in answers and answers["ingress_host"]
        assert (project / name).read_text().startswith("# Changes here will be overwritten by Copier")
        assert answers["project_name"] == "pipelines", "repo-wide answers survive updates in every file"
    assert "releaseName: pipelines" in release_text
    assert result.stdout.count("answer web_hostname -> ingress_host") == 2
    assert "validate:" in result.stdout and " 0 errors" in result.stdout  # make update ends with make validate
    # the update is left staged for review; once committed the worktree is clean
    repo = git.Repo(project)
    assert repo.head.commit.message.strip() == "user edits"
    commit_all(project, "update to v0.2.0")
    assert repo.git.status("--porcelain", "--untracked-files=all") == ""


def test_a_repo_from_before_the_chart_answer_stays_on_its_chart(template: Path, project: Path) -> None:
    """Answers files written before `airflow_chart` existed: update keeps the community chart, never switches."""
    for name in (".copier-answers.yml", ".copier-answers.staging.yml"):
        edit(project / name, "airflow_chart: community\n", "")
    commit_all(project, "answers from before airflow_chart")
    release(template, "v0.2.0", v2_fixes)
    result = make_update(project)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (".copier-answers.yml", ".copier-answers.staging.yml"):
        assert yaml.safe_load((project / name).read_text())["airflow_chart"] == "community"
    values = yaml.safe_load((project / "deploy/base/values.yaml").read_text())
    assert "airflow" in values and "apiServer" not in values, "still the community chart's value layout"
    assert "chart: airflow\n" in (project / "deploy/base/helmrelease.yaml").read_text()


def test_an_official_repo_keeps_its_chart_and_airflow_release_until_its_owner_upgrades(
        tmp_path: Path, template: Path, official_answers) -> None:
    """A repo answered with an older chart and Airflow (1.20.0, 3.1.8) than new copies get: `make update`
    to a later template release keeps both (stored answers win over facts' defaults), in every answers
    file, in the HelmRelease's pin and in the values' image tag."""
    import copier
    from airflow_gitops import facts

    old = {"chart_version": "1.20.0", "airflow_image_tag": "3.1.8"}
    assert (facts.default_version("official"), facts.chart("official").default_tag) != tuple(old.values())
    repo = tmp_path / "official"
    copier.run_copy(str(template), repo, data={**official_answers, **old}, defaults=True, unsafe=True, quiet=True,
                    vcs_ref="v0.1.0")
    copier.run_copy(str(template), repo, data=staging_answers(official_answers), defaults=True, unsafe=True,
                    quiet=True, vcs_ref="v0.1.0", answers_file=".copier-answers.staging.yml")
    commit_all(repo, "generated at v0.1.0")
    release(template, "v0.2.0", lambda t: edit(t / HELMRELEASE, "      interval: 24h\n", "      interval: 12h\n"))
    result = make_update(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (".copier-answers.yml", ".copier-answers.staging.yml"):
        answers = yaml.safe_load((repo / name).read_text())
        assert answers["_commit"] == "v0.2.0"
        assert {k: answers[k] for k in old} == old, name
    release_text = (repo / "deploy/base/helmrelease.yaml").read_text()
    assert "      interval: 12h\n" in release_text, "the update did apply the new release"
    assert '      version: "1.20.0"\n' in release_text
    values = yaml.safe_load((repo / "deploy/base/values.yaml").read_text())
    assert (values["defaultAirflowTag"], values["airflowVersion"]) == ("3.1.8", "3.1.8")
    assert "AIRFLOW_IMAGE = 'apache/airflow:3.1.8'" in (repo / "Jenkinsfile").read_text()


def test_conflict_fails_and_names_the_file(template: Path, project: Path) -> None:
    edit(project / "deploy/base/helmrelease.yaml", "  timeout: 15m\n", "  timeout: 25m\n")
    commit_all(project, "user edit")
    release(template, "v0.2.0", lambda t: edit(t / HELMRELEASE,
                                                 "  timeout: 15m\n", "  timeout: 20m\n"))
    result = make_update(project)
    assert result.returncode != 0
    assert "conflicts to resolve" in result.stderr
    assert "  deploy/base/helmrelease.yaml" in result.stderr
    assert git.Repo(project).head.commit.message.strip() == "user edit", "nothing committed by make update"


def test_dirty_worktree_is_refused(project: Path, template: Path) -> None:
    release(template, "v0.2.0", v2_fixes)
    (project / "scratch.txt").write_text("wip")
    result = make_update(project)
    assert result.returncode != 0 and "worktree is not clean" in result.stderr


def test_change_one_answer_then_keep_files_in_step(project: Path) -> None:
    env = dict(os.environ, **GIT_ENV)
    subprocess.run([COPIER, "update", "--trust", "--defaults", "--vcs-ref", ":current:", "--data",
                    "airflow_image_tag=2.9.3-python3.11"], cwd=project, check=True, capture_output=True, env=env)
    assert "tag: 2.9.3-python3.11" in (project / "deploy/base/values.yaml").read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["aws_region"] == "eu-west-1"
    commit_all(project, "bump Airflow")
    # The staging answers file still says 2.8.4: make update brings it in step with the primary.
    result = make_update(project, "VERSION=v0.1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    staging = yaml.safe_load((project / ".copier-answers.staging.yml").read_text())
    assert staging["airflow_image_tag"] == "2.9.3-python3.11"
    assert "AIRFLOW_IMAGE = 'apache/airflow:2.9.3-python3.11'" in (project / "Jenkinsfile").read_text()


def test_copy_refuses_an_existing_environment(project: Path, template: Path, demo_answers) -> None:
    import copier

    before = git.Repo(project).git.status("--porcelain")
    with pytest.raises(ValueError, match="environment 'staging' already exists"):
        copier.run_copy(str(template), project, data=staging_answers(demo_answers), defaults=True, unsafe=True,
                        quiet=True, answers_file=".copier-answers.staging2.yml")
    assert git.Repo(project).git.status("--porcelain") == before


def test_make_update_knows_every_repo_wide_answer() -> None:
    """scripts/update.py keeps these in step across answers files: it must list all of them."""
    update = load_module("template/scripts/update.py", "generated_update")
    assert set(update.REPO_WIDE) == REPO_WIDE


def test_a_relative_template_path_is_stored_absolute(tmp_path: Path, template: Path, demo_answers) -> None:
    """`copier copy . repo` from the template's directory: the answers must still find it later."""
    data = tmp_path / "answers.yml"
    data.write_text(yaml.safe_dump(demo_answers))
    subprocess.run([COPIER, "copy", "--trust", "--defaults", "--quiet", "--data-file", str(data), ".",
                    str(tmp_path / "repo")], cwd=template, check=True, capture_output=True)
    assert yaml.safe_load((tmp_path / "repo/.copier-answers.yml").read_text())["_src_path"] == str(template)


def test_make_update_explains_a_relative_template_path(project: Path) -> None:
    """Repositories made before the fix store `_src_path: .`: say what is wrong and the fix."""
    answers = project / ".copier-answers.yml"
    edit(answers, f"_src_path: {yaml.safe_load(answers.read_text())['_src_path']}\n", "_src_path: .\n")
    commit_all(project, "an old answers file")
    result = make_update(project)
    assert result.returncode != 0
    assert "_src_path '.' is relative" in result.stderr and "set `_src_path`" in result.stderr


PREVIOUS_RELEASE = "f686664"  # main before v0.2.0: the layout clusters/<env>/ that repositories have today


@pytest.fixture
def released(tmp_path: Path, template_src: Path) -> Path:
    """The template as released: v0.1.0 from the git history, v0.2.0 this tree."""
    import io
    import shutil
    import tarfile

    probe = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"])
    if probe.returncode != 0:
        skip_or_fail(f"commit {PREVIOUS_RELEASE} (v0.1.0) is not in this clone's history (shallow clone?)")
    repo = tmp_path / "released"
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(repo)
    commit_all(repo, "v0.1.0", tag="v0.1.0")
    for path in repo.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copytree(template_src, repo, ignore=SNAPSHOT_IGNORE, dirs_exist_ok=True)
    commit_all(repo, "v0.2.0", tag="v0.2.0")
    return repo


def test_update_from_the_previous_release_moves_the_flux_bootstrap(tmp_path: Path, released: Path,
                                                                    demo_answers) -> None:
    """v0.1.0 repos keep clusters/<env>/ with the Flux bootstrap in it: the update moves it to
    clusters/<cluster>/ and leaves a forwarder, so the running Flux applies the same object names."""
    import copier

    repo = tmp_path / "project"
    copier.run_copy(str(released), repo, data={**demo_answers, "web_hostname": ""}, defaults=True, unsafe=True,
                    quiet=True, vcs_ref="v0.1.0")
    bootstrap = repo / "clusters/dev/flux-system"
    bootstrap.mkdir()
    (bootstrap / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                                  "resources:\n  - gotk-sync.yaml\n")
    (bootstrap / "gotk-sync.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: flux-system\n"
        "  namespace: flux-system\nspec:\n  interval: 10m0s\n  path: ./clusters/dev\n  prune: true\n"
        "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n")
    commit_all(repo, "generated at v0.1.0, bootstrapped")
    result = make_update(repo, "VERSION=v0.2.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert leftovers(repo) == []
    moved = repo / "clusters/demo-cluster/flux-system/gotk-sync.yaml"
    assert "path: ./clusters/demo-cluster\n" in moved.read_text()
    assert "moved clusters/dev/flux-system" in result.stdout
    # The old path (what the running Flux still syncs) builds the same Kustomizations as the new one.

    def names(path: Path) -> set[str]:
        out = subprocess.run([str(kubectl_path()), "kustomize", "--load-restrictor=LoadRestrictionsNone", str(path)],
                             capture_output=True, text=True, check=True).stdout
        return {d["metadata"]["name"] for d in yaml.safe_load_all(out) if d and d["kind"] == "Kustomization"}

    assert names(repo / "clusters/dev") == {"flux-system", "infrastructure", "airflow-dev-secrets", "airflow-dev"}
    assert sorted(p.name for p in (repo / "clusters/dev").iterdir()) == ["kustomization.yaml"]


def test_update_from_the_previous_release_gives_each_jenkins_entry_its_cloud(tmp_path: Path, released: Path,
                                                                            demo_answers) -> None:
    """A v0.1.0 Jenkinsfile names no cloud, so the agent pod of an environment on a second cluster
    started on Jenkins' first Kubernetes cloud, in a namespace that does not exist there. The update
    gives every entry its own cluster's cloud (from each answers file), the line `copier copy` added
    for the second environment survives without a conflict, and the default environment stays first."""
    import copier
    from airflow_gitops.facts import jenkins_entries

    repo = tmp_path / "project"
    copier.run_copy(str(released), repo, data={**demo_answers, "web_hostname": ""}, defaults=True, unsafe=True,
                    quiet=True, vcs_ref="v0.1.0")
    staging = {**staging_answers(demo_answers), "web_hostname": "", "eks_cluster_name": "Staging_Cluster"}
    copier.run_copy(str(released), repo, data=staging, defaults=True, unsafe=True, quiet=True, vcs_ref="v0.1.0",
                    answers_file=".copier-answers.staging.yml")
    commit_all(repo, "two environments on two clusters at v0.1.0")
    old = jenkins_entries((repo / "Jenkinsfile").read_text())
    assert list(old) == ["dev", "staging"] and {e.cloud for e in old.values()} == {None}

    result = make_update(repo, "VERSION=v0.2.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert leftovers(repo) == []
    entries = jenkins_entries((repo / "Jenkinsfile").read_text())
    assert list(entries) == ["dev", "staging"], "the default environment stays first"
    assert {env: e.cloud for env, e in entries.items()} == {"dev": "demo-cluster", "staging": "staging-cluster"}
    assert {env: e.namespace for env, e in entries.items()} == {"dev": "airflow-dev", "staging": "airflow-staging"}
    assert "validate:" in result.stdout and " 0 errors" in result.stdout, result.stdout


def test_a_volume_published_by_the_previous_release_moves_to_releases_with_one_publish(tmp_path: Path, released: Path,
                                                                                      demo_answers) -> None:
    """DAGs published by a v0.1.0 repository (two slots), then `make update` and one publish by the updated
    scripts/sync_dags.py: `current` moves from the slot to a release, and a reader polling `current` the
    whole time (as the dag-processor lists it) always finds a complete tree, the old one or the new one."""
    import sys
    import threading

    import copier
    from helpers.sync_dags import published, snapshot

    repo = tmp_path / "project"
    copier.run_copy(str(released), repo, data={**demo_answers, "web_hostname": ""}, defaults=True, unsafe=True,
                    quiet=True, vcs_ref="v0.1.0")
    commit_all(repo, "generated at v0.1.0")
    root = tmp_path / "efs" / "dags"

    def publish() -> None:
        done = subprocess.run([sys.executable, str(repo / "scripts/sync_dags.py"), "publish", "--source",
                               str(repo / "dags"), "--root", str(root), "--grace", "0"], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    publish()
    assert os.readlink(root / "current") in (".slot-a", ".slot-b")
    before = published(repo / "dags")

    result = make_update(repo, "VERSION=v0.2.0")
    assert result.returncode == 0, result.stdout + result.stderr
    (repo / "dags" / "added_after_the_update.py").write_text("VERSION = 2\n")
    after = published(repo / "dags")

    seen: list[str] = []
    stop = threading.Event()

    def read_current() -> None:
        while not stop.is_set():
            try:
                tree = snapshot(Path(os.path.realpath(root / "current")))
            except OSError as exc:  # `current` missing or dangling: downtime
                seen.append(f"unreadable: {exc}")
                continue
            seen.append("old" if tree == before else "new" if tree == after else "incomplete")

    reader = threading.Thread(target=read_current)
    reader.start()
    try:
        publish()
    finally:
        stop.set()
        reader.join()
    assert seen and set(seen) <= {"old", "new"}, sorted(set(seen))
    assert seen[-1] == "new" and os.readlink(root / "current").startswith("releases/")
    assert (root / ".slot-a").is_dir(), "the old slots stay until --keep-for has passed (running tasks read them)"
