"""Secure by default: nothing in a generated repository is a usable secret or AWS key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CHART_DEFAULT_FERNET = "7T512UXSSmBOkpWimFHIVb8jK6lfmSAvx4mO6Arehnc="
FORBIDDEN = [
    (re.compile(re.escape(CHART_DEFAULT_FERNET)), "the chart's public default fernet key"),
    (re.compile(r"THIS IS UNSAFE!"), "the chart's default webserver secret key"),
    (re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), "an AWS access key id"),
    (re.compile(r"aws_secret_access_key|aws_access_key_id", re.I), "an AWS key field"),
    (re.compile(r"^\s*password:\s*['\"]?admin['\"]?\s*$", re.M), "an admin/admin password"),
    (re.compile(r"^kind:\s*Secret\s*$", re.M), "a plain Kubernetes Secret"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]


@pytest.mark.parametrize("executor", ["CeleryExecutor", "KubernetesExecutor"])
def test_no_plaintext_secret_in_any_file(tmp_path: Path, copy_project, demo_answers, executor) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "executor": executor})
    for path in (p for p in repo.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        for pattern, what in FORBIDDEN:
            assert not pattern.search(text), f"{path.relative_to(repo)} contains {what}"


def test_every_secret_is_a_sealed_secret_placeholder(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    folder = repo / "deploy/overlays/dev/secrets"
    kinds = {p.name: yaml.safe_load(p.read_text())["kind"] for p in folder.glob("*.yaml")}
    assert {n: k for n, k in kinds.items() if k != "SealedSecret"} == {"kustomization.yaml": "Kustomization",
                                                                        "namespace.yaml": "Namespace"}
    for path in (folder / name for name, kind in kinds.items() if kind == "SealedSecret"):
        obj = yaml.safe_load(path.read_text())
        for key, value in obj["spec"]["encryptedData"].items():
            # Obviously not ciphertext (never an "Ag..." look-alike) and says how to seal it.
            assert value.startswith("UNSEALED: run make seal ENV=dev SECRET="), (path.name, key)
        assert obj["spec"]["template"]["metadata"] == {"name": obj["metadata"]["name"], "namespace": "airflow-dev"}
