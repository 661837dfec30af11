"""Story: a repository on the community chart (Airflow 2) moves to the official chart (Airflow 3)
in place, as the README's runbook says: `copier update -d airflow_chart=official ...`, `make seal`,
`make validate STRICT=1`. Nothing switches by itself (tests/test_update.py), the fernet key in use
survives, and tests/test_runtime_official.py has the official release upgrade an Airflow 2 database.

The old release's Secrets must be gone before the new SealedSecrets are applied: the sealed-secrets
controller (pkg/controller/controller.go, unseal) refuses to overwrite a Secret that is neither owned
by the SealedSecret nor annotated `sealedsecrets.bitnami.com/managed: "true"`, and it does not retry
when that Secret is deleted later (its Secret informer requeues only for Secrets it controls).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops import facts
from helpers.chart_switch import FERNET, SECRETS, SWITCH, change_chart_answers, community_repo, switch_to_official
from helpers.make import render_dev, run_validate
from helpers.render import render_official
from standins.controller import make_key, unseal_object

pytestmark = pytest.mark.slow  # copier copy + update, make seal, validate and render with the real chart


def sealed(repo: Path, path: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / path).read_text())


def selectors(repo: Path) -> dict[str, dict]:
    """Deployment and StatefulSet name -> its pod selector, from the last `make render`."""
    found = {}
    for path in (repo / "build/render/dev/chart").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("Deployment", "StatefulSet"):
                found[doc["metadata"]["name"]] = doc["spec"]["selector"]
    return found


def rendered(repo: Path, part: str, kind: str) -> dict[str, dict[str, str]]:
    """Name -> labels of each `kind` object in the last `make render` (part: chart or overlay)."""
    docs = [yaml.safe_load(p.read_text()) for p in (repo / "build/render/dev" / part).glob("*.yaml")]
    return {d["metadata"]["name"]: d["metadata"].get("labels") or {} for d in docs if d and d["kind"] == kind}


def runbook_selectors(readme: str, verb: str) -> set[str]:
    """The label selectors of the runbook's `kubectl ... <verb> secret -l <selector>` commands."""
    section = readme.split("## Move to Airflow 3", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(rf"kubectl -n <namespace> {verb} secret -l (\S+?)`", section))


def selects(selector: str, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


def test_a_community_repo_moves_to_the_official_chart_in_place(tmp_path: Path, copy_project, demo_answers,
                                                               controller_key) -> None:
    repo = community_repo(tmp_path, copy_project, demo_answers, controller_key)
    community = render_dev(repo)
    assert community.returncode == 0, community.stdout + community.stderr
    community_selectors = selectors(repo)
    community_secrets = rendered(repo, "chart", "Secret")
    runbook = (repo / "README.md").read_text()
    before = sealed(repo, FERNET)
    (ciphertext,) = before["spec"]["encryptedData"].values()
    fernet_key = unseal_object(controller_key, before)[facts.FERNET_KEY_OF["community"]]

    result = switch_to_official(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    answers = yaml.safe_load((repo / facts.ANSWERS_FILE).read_text())
    assert {k: answers[k] for k in SWITCH} == SWITCH
    # The community chart's secrets are gone with its values; the official chart's are sealed.
    for gone in ("airflow-db", "airflow-redis", "airflow-webserver-secret-key"):
        assert not (repo / SECRETS / f"{gone}.yaml").exists(), gone
    assert "sealed deploy/overlays/dev/secrets/airflow-metadata.yaml: connection" in result.stdout
    # The fernet key in use is kept: the same ciphertext, under the key the official chart reads.
    assert (f"renamed {FERNET}: {facts.FERNET_KEY_OF['community']} -> {facts.FERNET_KEY_OF['official']}"
            in result.stdout), result.stdout
    after = sealed(repo, FERNET)
    assert after["spec"]["encryptedData"] == {facts.FERNET_KEY_OF["official"]: ciphertext}
    assert unseal_object(controller_key, after) == {facts.FERNET_KEY_OF["official"]: fernet_key}

    render = render_official(repo)  # first: it caches the chart, so validate checks its values.schema.json
    assert render.returncode == 0, render.stdout + render.stderr
    strict = run_validate(repo, strict=True)
    assert strict.returncode == 0 and " 0 errors" in strict.stdout, strict.stdout + strict.stderr
    assert "values.schema.json" not in strict.stdout, strict.stdout
    # Why the runbook removes the old release first: the same workloads under new selectors, which
    # Kubernetes refuses to change (`spec.selector: field is immutable`), so a plain upgrade fails.
    changed = {name for name, sel in selectors(repo).items() if community_selectors.get(name, sel) != sel}
    release = demo_answers["project_name"]
    assert {f"{release}-{w}" for w in ("scheduler", "triggerer", "worker", "pgbouncer")} <= changed, changed
    # The old chart's Secret of the same name as a new SealedSecret (the release is named `airflow`) would
    # block it for good: the runbook's check, before the new SealedSecrets are applied, finds every one.
    clash = set(community_secrets) & set(rendered(repo, "overlay", "SealedSecret"))
    assert clash == {f"{release}-pgbouncer"}, clash
    (check,) = runbook_selectors(runbook, "get")
    assert all(selects(check, labels) for labels in community_secrets.values()), (check, community_secrets)
    helmrelease = yaml.safe_load((repo / "deploy/base/helmrelease.yaml").read_text())
    assert helmrelease["spec"]["chart"]["spec"]["sourceRef"]["name"] == facts.HELM_REPOSITORY_NAMES["official"]


def test_before_make_seal_validate_names_the_fernet_key_to_move(tmp_path: Path, copy_project, demo_answers,
                                                                controller_key) -> None:
    """Between the two commands the repo must not deploy: validate says why and what fixes it."""
    repo = community_repo(tmp_path, copy_project, demo_answers, controller_key)
    change_chart_answers(repo)
    result = run_validate(repo)
    assert result.returncode != 0
    assert ("Secret 'airflow-fernet-key' has no key 'fernet-key' (the chart reads it; it has `value`, the "
            "community chart's: `make seal` moves the sealed key to `fernet-key`)") in result.stdout, result.stdout


def test_on_argocd_the_runbook_deletes_the_old_secrets_it_checks_for(tmp_path: Path, copy_project,
                                                                     demo_answers) -> None:
    """Argo CD keeps the old release's Secrets until it prunes them in the sync that applies the new
    SealedSecrets, too late for the controller: step 3 deletes what the check looks for."""
    argo = {"gitops_engine": "argocd", "git_repo_url": "https://github.com/example/airflow-gitops.git"}
    repo = copy_project(tmp_path / "repo", {**demo_answers, **argo})
    readme = (repo / "README.md").read_text()
    (check,) = runbook_selectors(readme, "get")
    assert runbook_selectors(readme, "delete") == {check}
    assert check == f"release={demo_answers['project_name']},heritage=Helm"
    step3, later = readme.split("\n3. Stop Airflow", 1)[1].split("\n4. ", 1)
    assert f"delete secret -l {check}" in step3 and "kubectl apply -k" in later.split("\n7. ", 1)[0]
