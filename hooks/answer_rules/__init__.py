"""The rules of copier.yml's answers: RULES maps each question to its rule.

Copier runs ``validator:`` templates and treats any non-empty output as the error, so each rule
returns ``""`` when the answer is fine and otherwise a message naming the field and the rule.
Copier prefixes it with ``Validation error for question '<name>':`` and writes nothing.
hooks/validation.py exposes ``check`` to the templates; a rule's extra arguments are the other
answers it depends on (copier.yml passes them).

    base         required, pattern, DNS label, port, boolean, PostgreSQL identifier
    chart        release name, chart and version, image, executor, chart-only features
    aws          AWS identifiers, endpoints and ARNs
    repos        git URLs and branches, the Jenkins job
    destination  what the destination already holds (environments, files a copy would overwrite)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_gitops import facts

from .aws import (
    aws_account_id,
    aws_host,
    aws_region,
    efs_access_point_id,
    efs_file_system_id,
    eks_cluster_name,
    eks_oidc_issuer,
    irsa_role_arn,
    redis_auth,
    redis_host,
    s3_log_bucket,
    s3_log_kms_key_arn,
    web_certificate_arn,
    web_hostname,
)
from .base import boolean, dns_label, matches, pg_identifier, port
from .chart import (
    airflow_chart,
    chart_version,
    executor,
    extra_pip_packages,
    image_repository,
    image_tag,
    keda_autoscaling,
    metrics,
    project_name,
)
from .destination import environment, namespace, s3_log_prefix
from .repos import branch, dags_repo_url, git_url, jenkins_credentials_id, jenkins_service_account

RULES: dict[str, Callable[..., str]] = {
    "project_name": project_name,
    "airflow_chart": airflow_chart,
    "chart_version": chart_version,
    "airflow_image_repository": image_repository,
    "airflow_image_tag": image_tag,
    "executor": executor,
    "extra_pip_packages": extra_pip_packages,
    "environment": environment,
    "aws_region": aws_region,
    "aws_account_id": aws_account_id,
    "eks_cluster_name": eks_cluster_name,
    "namespace": namespace,
    "efs_file_system_id": efs_file_system_id,
    "efs_access_point_id": efs_access_point_id,
    "rds_host": aws_host("rds_host", ".rds.amazonaws.com", "RDS"),
    "rds_port": port("rds_port"),
    "rds_database": pg_identifier("rds_database"),
    "rds_user": pg_identifier("rds_user"),
    "redis_host": redis_host,
    "redis_tls": boolean("redis_tls"),
    "production_like": boolean("production_like"),
    "keda_autoscaling": keda_autoscaling,
    "metrics": metrics,
    "rds_tls_verify": boolean("rds_tls_verify"),
    "web_certificate_arn": web_certificate_arn,
    "redis_port": port("redis_port"),
    "redis_auth": redis_auth,
    "s3_log_bucket": s3_log_bucket,
    "s3_log_prefix": s3_log_prefix,
    "irsa_role_arn": irsa_role_arn,
    "eks_oidc_issuer": eks_oidc_issuer,
    "s3_log_kms_key_arn": s3_log_kms_key_arn,
    "web_hostname": web_hostname,
    "image_mirror": lambda value: matches(
        "image_mirror", value, facts.IMAGE_MIRROR.pattern.strip("^$"),
        "must be empty or a registry host name (with an optional :port, no scheme, no path), e.g. "
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com", optional=True),
    "keda_namespace": dns_label("keda_namespace", 63),
    "prometheus_namespace": dns_label("prometheus_namespace", 63),
    "prometheus_release_label": lambda value: matches(
        "prometheus_release_label", value, r"(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?",
        "must be a Kubernetes label value: up to 63 letters, digits, '-', '_' and '.', starting and ending "
        "with a letter or digit"),
    "web_alb_group": lambda value: matches(
        "web_alb_group", value, facts.ALB_GROUP_NAME.pattern.strip("^$"),
        "must be empty or an ALB group name: up to 63 lowercase letters, digits, '-' and '.', starting and "
        "ending with a letter or digit", optional=True),
    "dags_repo_url": dags_repo_url,
    "dags_repo_branch": branch("dags_repo_branch"),
    "git_repo_url": git_url("git_repo_url"),
    "git_revision": branch("git_revision"),
    "dags_repo_credentials_id": jenkins_credentials_id,
    "jenkins_service_account": jenkins_service_account,
}


def check(field: str, value: Any, *args: Any) -> str:
    """Jinja entry point: ``{{ check('aws_region', aws_region) }}`` renders the error or nothing."""
    return RULES[field](value, *args)
