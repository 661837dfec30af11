"""Story: a user mistypes an answer. Copier stops with the field and the rule, and writes nothing.

The rule table is checked as unit tests of hooks/validation.py, called the way copier.yml's
`validator:` calls it (same arguments, the answer cast to the question's type); a handful of cases
go through a real `copier copy` to prove the wiring and that nothing is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops.facts import EXECUTORS
from helpers.copying import assert_nothing_written
from helpers.paths import ROOT, load_module

validation = load_module("hooks/validation.py", "bad_answers_validation")
QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text())
CHECK_CALL = re.compile(r"check\('(\w+)', (.*?)\)\s*}}", re.S)

BAD_ANSWERS = [
    ("project_name", "Airflow", "DNS-1123"),
    ("project_name", "a" * 41, "limits to 40"),
    ("project_name", "my_airflow", "DNS-1123"),
    ("chart_version", "8.x", "exact chart version"),
    ("chart_version", ">=8.9.0", "exact chart version"),
    ("airflow_image_repository", "apache/airflow:2.8.4", "no tag"),
    ("airflow_image_tag", "3.0.0", "2.0-2.9"),
    ("airflow_image_tag", "2.10.5", "2.0-2.9"),
    ("airflow_image_tag", "latest", "2.0-2.9"),
    ("executor", "LocalExecutor", "CeleryExecutor"),
    ("extra_pip_packages", ["apache-airflow-providers-slack"], "not pinned"),
    ("extra_pip_packages", ["slack>=1"], "not pinned"),
    ("extra_pip_packages", ["not a requirement!!"], "PEP 508"),
    ("extra_pip_packages", ["pkg @ https://example.com/pkg.whl"], "URL"),
    ("extra_pip_packages", "apache-airflow-providers-slack==8.6.0", "YAML list"),
    ("environment", "Prod", "DNS-1123"),
    ("environment", "a-very-long-environment-name", "at most 20"),
    ("aws_region", "eu-west", "region code"),
    ("aws_region", "EU-WEST-1", "region code"),
    ("aws_account_id", "12345678901", "12 digits"),
    ("aws_account_id", "12345678901a", "12 digits"),
    ("eks_cluster_name", "-cluster", "starting with a letter"),
    ("namespace", "Airflow_Dev", "DNS-1123"),
    ("namespace", "a" * 64, "at most 63"),
    ("efs_file_system_id", "fs-123", "8-40"),
    ("efs_file_system_id", "fs-0123456789ABCDEF0", "lowercase hex"),
    ("efs_file_system_id", "", "required"),
    ("efs_access_point_id", "", "required: without an access point the file system root is owned by root"),
    ("efs_access_point_id", "fsap-xyz", "fsap-"),
    ("efs_access_point_id", "fs-0123456789abcdef0", "fsap-"),
    ("rds_host", "db.abc.eu-west-1.rds.amazonaws.com:5432", "without ':port'"),
    ("rds_host", "localhost", "ending in .rds.amazonaws.com"),
    ("rds_host", "", "required"),
    ("rds_port", 0, "between 1 and 65535"),
    ("rds_port", "abc", "between 1 and 65535"),
    ("redis_port", "6379x", "between 1 and 65535"),
    ("production_like", "maybe", "answer true or false"),
    ("redis_tls", "yes please", "answer true or false"),
    ("rds_tls_verify", "sometimes", "answer true or false"),
    ("chart_version", "1.2.3", "not one this template knows"),
    ("redis_host", "clustercfg.airflow.abcdef.euw1.cache.amazonaws.com", "cluster mode disabled"),
    ("web_hostname", "1.2.3.4", "is an IP address"),
    ("web_certificate_arn", "arn:aws:acm:us-east-1:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef",
     "ACM certificates are regional"),
    ("web_certificate_arn", "arn:aws:iam::123456789012:server-certificate/x", "ACM certificate ARN"),
    ("rds_port", 70000, "between 1 and 65535"),
    ("rds_database", "air-flow", "PostgreSQL identifier"),
    ("rds_user", "postgres", "not the master user"),
    ("redis_host", "redis.example.com", "ending in .cache.amazonaws.com"),
    ("redis_port", 0, "between 1 and 65535"),
    ("s3_log_bucket", "My_Bucket", "S3 bucket names"),
    ("s3_log_bucket", "ab", "S3 bucket names"),
    ("s3_log_bucket", "my..bucket", "'..'"),
    ("s3_log_bucket", "192.168.1.1", "IP address"),
    ("s3_log_bucket", "xn--bucket", "xn--"),
    ("s3_log_bucket", "bucket-s3alias", "-s3alias"),
    ("s3_log_prefix", "/logs", "no leading or trailing '/'"),
    ("s3_log_prefix", "logs\nAIRFLOW__CORE__X: y", "key prefix"),
    ("irsa_role_arn", "arn:aws:iam::123456789012:user/airflow", "IAM role ARN"),
    ("irsa_role_arn", "arn:aws:iam::999999999999:role/airflow", "aws_account_id is 123456789012"),
    ("eks_oidc_issuer", "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF",
     "without https://"),
    ("eks_oidc_issuer", "oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF", "aws_region is"),
    ("s3_log_kms_key_arn", "alias/aws/s3", "not an alias"),
    ("s3_log_kms_key_arn", "arn:aws:kms:eu-west-1:123456789012:alias/logs", "KMS key ARN"),
    ("web_hostname", "Airflow.Example.com", "DNS name"),
    ("web_hostname", "airflow", "fully qualified"),
    ("web_hostname", "airflow.example.com/path", "DNS name"),
    ("web_alb_group", "Platform_ALB", "ALB group name"),
    ("web_alb_group", "a" * 64, "up to 63"),
    ("keda_namespace", "KEDA", "DNS-1123"),
    ("image_mirror", "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", "registry host name"),
    ("image_mirror", "registry.example.com/path", "no path"),
    ("prometheus_namespace", "monitoring/", "DNS-1123"),
    ("prometheus_release_label", "kube prometheus", "label value"),
]


def validate_like_copier(field: str, value: Any, answers: dict[str, Any]) -> str:
    """The error copier.yml's validator would render for `value` (empty: accepted)."""
    question = QUESTIONS[field]
    if question.get("type") == "yaml" and isinstance(value, str):
        value = yaml.safe_load(value)  # Copier parses yaml-typed answers before validating
    match = CHECK_CALL.search(question["validator"])
    assert match and match.group(1) == field, question["validator"]
    context = {**answers, field: value}
    args = [None if name.startswith("_copier_conf") else context.get(name)
            for name in (a.strip() for a in match.group(2).split(","))]
    return validation.check(field, *args)


@pytest.mark.parametrize(("field", "value", "rule"), BAD_ANSWERS, ids=[f"{f}={v!r}"[:60] for f, v, _ in BAD_ANSWERS])
def test_bad_answer_breaks_its_rule(demo_answers, field, value, rule) -> None:
    message = validate_like_copier(field, value, demo_answers)
    assert rule in message, message
    assert field in message or "required" in message, message  # the message names the question


def test_extra_pip_packages_are_refused_on_the_official_chart(official_answers) -> None:
    """The official chart has no install-at-start value: the packages would be silently dropped."""
    message = validate_like_copier("extra_pip_packages", ["apache-airflow-providers-slack==8.6.0"], official_answers)
    assert "not supported with the official chart" in message and "build an image FROM" in message, message
    assert validate_like_copier("extra_pip_packages", [], official_answers) == ""


def test_extra_pip_packages_stop_an_official_copy(tmp_path: Path, copy_project, official_answers) -> None:
    dst = tmp_path / "dst"
    with pytest.raises(ValueError, match=r"Validation error for question 'extra_pip_packages'.*official chart"):
        copy_project(dst, {**official_answers, "extra_pip_packages": ["apache-airflow-providers-slack==8.6.0"]})
    assert_nothing_written(dst)


def test_the_demo_answers_pass_every_rule(demo_answers) -> None:
    """The table can fail: the same calls accept good answers."""
    computed_defaults = {"production_like": False, "redis_tls": True, "rds_tls_verify": False, "redis_auth": True,
                         "s3_log_kms_key_arn": "", "web_alb_group": "",
                         "keda_namespace": "keda", "image_mirror": "", "prometheus_namespace": "monitoring",
                         "prometheus_release_label": "kube-prometheus-stack"}
    for field in sorted({f for f, _, _ in BAD_ANSWERS}):
        good = demo_answers[field] if field in demo_answers else computed_defaults[field]
        assert validate_like_copier(field, good, demo_answers) == "", field


END_TO_END = ["project_name='Airflow'", "rds_port='abc'", "production_like='maybe'", "efs_access_point_id=''",
              "web_certificate_arn='arn:aws:acm:us-east-1:123456789012:cert"]


@pytest.mark.parametrize(("field", "value", "rule"), [c for c in BAD_ANSWERS if f"{c[0]}={c[1]!r}"[:60] in END_TO_END])
def test_bad_answer_stops_the_copy(tmp_path: Path, copy_project, demo_answers, field, value, rule) -> None:
    dst = tmp_path / "dst"
    with pytest.raises(ValueError) as excinfo:
        copy_project(dst, {**demo_answers, field: value})
    message = str(excinfo.value)
    assert f"Validation error for question '{field}'" in message, message
    assert rule in message, message
    assert_nothing_written(dst)


@pytest.mark.parametrize("field", ["aws_region", "aws_account_id", "eks_cluster_name", "efs_file_system_id",
                                   "rds_host", "s3_log_bucket"])
def test_infrastructure_ids_have_no_silent_default(tmp_path: Path, copy_project, demo_answers, field) -> None:
    answers = {k: v for k, v in demo_answers.items() if k != field}
    dst = tmp_path / "dst"
    with pytest.raises(ValueError, match=field):
        copy_project(dst, answers)
    assert_nothing_written(dst)


def test_every_help_text_fits_an_80_column_terminal() -> None:
    """Copier prints help as written, after a two-column prompt mark: 76 columns a line at most."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    wide = [(name, line) for name, spec in config.items() if isinstance(spec, dict)
            for line in str(spec.get("help", "")).splitlines() if len(line) > 76]
    assert wide == []


def test_every_rule_is_wired_to_its_question() -> None:
    """hooks/validation.py RULES and copier.yml agree: each rule is some question's validator."""
    wired = {m.group(1) for spec in QUESTIONS.values() if isinstance(spec, dict)
             for m in [CHECK_CALL.search(str(spec.get("validator", "")))] if m}
    assert wired == set(validation.RULES)


def test_copier_offers_the_executors_the_facts_know() -> None:
    """copier.yml must list choices literally (Copier renders each item, not the list): keep them tied to facts."""
    assert tuple(QUESTIONS["executor"]["choices"]) == EXECUTORS
