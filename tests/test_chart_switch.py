"""Story: a repository on the community chart (Airflow 2) moves to the official chart (Airflow 3)
in place, as the README's runbook says: `copier update -d airflow_chart=official ...`, `make seal`,
`make validate STRICT=1`. Nothing switches by itself (tests/test_update.py), the fernet key in use
survives, and tests/test_runtime_official.py has the official release upgrade an Airflow 2 database.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops import facts
from conftest import COPIER, GIT_ENV, commit_all, install_rds_ca, render_dev, run_make, run_validate
from controller import make_cert, make_key, unseal_object
from test_official_chart import render_official
from test_runtime import PASSWORDS, environ

pytestmark = pytest.mark.slow  # copier copy + update, make seal, validate and render with the real chart

SECRETS = Path("deploy/overlays/dev/secrets")
FERNET = SECRETS / "airflow-fernet-key.yaml"
# The runbook's answers: the official flavor's pinned chart and its default Airflow 3 image.
OFFICIAL = facts.chart("official")
SWITCH = {"airflow_chart": "official", "chart_version": OFFICIAL.version, "airflow_image_tag": OFFICIAL.default_tag}


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


def community_repo(tmp: Path, copy_project, demo_answers: dict[str, Any], key) -> Path:
    """A community-chart repository with every secret sealed, committed (copier update needs a clean tree)."""
    cert = make_cert(key, tmp / "cert.pem")
    with environ(PASSWORDS):
        repo = copy_project(tmp / "repo", {**demo_answers, "rds_tls_verify": True, "sealed_secrets_cert": str(cert)})
    install_rds_ca(repo, cert.read_bytes())
    commit_all(repo, "on the community chart")
    return repo


def change_chart_answers(repo: Path) -> None:
    """The runbook's first command: the same template version, the official chart's answers."""
    data = [arg for name, value in SWITCH.items() for arg in ("--data", f"{name}={value}")]
    subprocess.run([COPIER, "update", "--trust", "--defaults", "--quiet", "--vcs-ref", ":current:", *data],
                   cwd=repo, check=True, capture_output=True, env=dict(os.environ, **GIT_ENV))


def switch_to_official(repo: Path) -> subprocess.CompletedProcess[str]:
    """The runbook's two commands: change the chart answers in place, then seal what the new chart reads."""
    change_chart_answers(repo)
    with environ(PASSWORDS):
        return run_make(repo, "seal", "ENV=dev")


@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


def test_a_community_repo_moves_to_the_official_chart_in_place(tmp_path: Path, copy_project, demo_answers,
                                                               controller_key) -> None:
    repo = community_repo(tmp_path, copy_project, demo_answers, controller_key)
    community = render_dev(repo)
    assert community.returncode == 0, community.stdout + community.stderr
    community_selectors = selectors(repo)
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
