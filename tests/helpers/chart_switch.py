"""A community-chart repository, sealed and committed, and the runbook's move to the official chart
(README "Move to Airflow 3"): copier update with the official chart's answers, then `make seal`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from airflow_gitops import facts
from standins.controller import make_cert

from helpers.copying import COPIER, GIT_ENV, commit_all
from helpers.make import install_rds_ca, run_make
from helpers.secrets import PASSWORDS, environ

SECRETS = Path("deploy/overlays/dev/secrets")
FERNET = SECRETS / "airflow-fernet-key.yaml"
# The runbook's answers: the official flavor's pinned chart and its default Airflow 3 image.
OFFICIAL = facts.chart("official")
SWITCH = {"airflow_chart": "official", "chart_version": OFFICIAL.version, "airflow_image_tag": OFFICIAL.default_tag}


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
