"""Answers reach the YAML exactly as typed, or are rejected: never concatenated blindly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.paths import ROOT, load_module
from helpers.render import merged_values

validation = load_module("hooks/validation.py", "template_validation")

# Text that would break or change YAML if concatenated: every validator must refuse it.
SYNTAX = [
    'say "hi"', "it's", "a: b", "a #comment", "line1\nline2", "{{ 7 * 7 }}", "{% raw %}", "${NAME}",
    "- item", "? key", "| block", "> folded", "`tick`", "%pct", " padded ", "tab\there", "ünïcode",
    "back\\slash", "[list]", "{map: 1}", "a,b", "trailing:", "\u2028sep",
]
# Text that is a legal answer for some fields but means something else to YAML when unquoted.
AMBIGUOUS = ["true", "no", "null", "~", "1e3", "0x1F", "012", "1_000", "*alias", "&anchor", "!tag", "@at", "...", "---"]
HOSTILE = SYNTAX + AMBIGUOUS + [""]
QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text())
STRING_FIELDS = [name for name in validation.RULES if QUESTIONS[name].get("type") == "str"]


@pytest.mark.parametrize("text", HOSTILE)
def test_yaml_str_round_trips(text: str) -> None:
    rendered = validation.yaml_str(text)
    assert yaml.safe_load(f"key: {rendered}\n") == {"key": text}
    assert "\n" not in rendered


@pytest.mark.parametrize("field", STRING_FIELDS)
def test_hostile_text_is_rejected_by_every_string_field(field: str) -> None:
    """Each free-text answer has a validator; hostile strings never reach a template."""
    for text in SYNTAX:
        assert validation.check(field, text) != "", f"{field} accepted {text!r}"


def test_pip_requirement_with_quotes_and_markers_is_kept_exactly(tmp_path: Path, copy_project, demo_answers) -> None:
    """A legal requirement full of YAML-special characters lands in the values byte for byte."""
    requirement = "apache-airflow-providers-slack[common.sql] == 8.6.0 ; python_version >= '3.8' and os_name != \"nt\""
    repo = copy_project(tmp_path / "repo", {**demo_answers, "extra_pip_packages": [requirement]})
    values = yaml.safe_load((repo / "deploy/base/values.yaml").read_text())
    assert values["airflow"]["extraPipPackages"] == [requirement]


def test_yaml_ambiguous_answers_keep_their_type(tmp_path: Path, copy_project, demo_answers) -> None:
    """Answers that YAML would read as bool/null/number/alias stay the exact strings typed."""
    answers = {**demo_answers, "project_name": "true", "environment": "no", "namespace": "null",
               "rds_database": "yes", "rds_user": "on", "s3_log_prefix": "*alias/!bang/012"}
    repo = copy_project(tmp_path / "repo", answers)
    assert merged_values(repo, "no")["externalDatabase"]["database"] == "yes"
    release = yaml.safe_load((repo / "deploy/base/helmrelease.yaml").read_text())
    assert release["spec"]["releaseName"] == "true"
    overlay = yaml.safe_load((repo / "deploy/overlays/no/kustomization.yaml").read_text())
    assert overlay["namespace"] == "null"
    secret = yaml.safe_load((repo / "deploy/overlays/no/secrets/settings/airflow-db.yaml").read_text())
    assert secret["spec"]["template"]["data"]["username"] == "on"
    values = yaml.safe_load((repo / "deploy/overlays/no/values.yaml").read_text())
    folder = values["airflow"]["config"]["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"]
    assert folder == "s3://demo-airflow-logs-123456789012/*alias/!bang/012"
