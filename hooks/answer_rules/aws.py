"""Rules of the AWS answers: identifiers, endpoints, ARNs and the names AWS accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from airflow_gitops import facts

from .base import DNS_NAME, boolean, is_ip, matches, required
from .destination import other_environments

ACM_ARN = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}"
ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$")


def aws_region(value: Any) -> str:
    return matches("aws_region", value, r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]",
                   "must be an AWS region code like eu-west-1")


def aws_account_id(value: Any) -> str:
    value = str(value) if isinstance(value, int) else value
    return matches("aws_account_id", value, r"[0-9]{12}", "must be exactly 12 digits")


def eks_cluster_name(value: Any) -> str:
    return matches("eks_cluster_name", value, r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}",
                   "must be 1-100 letters, digits, '-' or '_', starting with a letter or digit")


def efs_file_system_id(value: Any) -> str:
    return matches("efs_file_system_id", value, r"fs-[0-9a-f]{8,40}",
                   "must look like fs-0123456789abcdef0 ('fs-' + 8-40 lowercase hex)")


def efs_access_point_id(value: Any) -> str:
    if value in (None, ""):
        return ("efs_access_point_id is required: without an access point the file system root is owned by "
                "root (0755) and the DAG publisher (uid 50000) gets EACCES. Create one with PosixUser "
                "Uid=50000,Gid=0 and a root directory created as 50000:0 mode 0755 (README: 'First deploy')")
    return matches("efs_access_point_id", value, r"fsap-[0-9a-f]{8,40}",
                   "must look like fsap-0123456789abcdef0 ('fsap-' + 8-40 lowercase hex)")


def aws_host(field: str, suffix: str, service: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        missing = required(field, value)
        if missing:
            return missing
        if not isinstance(value, str) or ":" in value:
            return (f"{field} {value!r} is invalid: give the hostname only, without ':port' "
                    "(the port is its own question)")
        if not DNS_NAME.match(value) or not value.endswith(suffix):
            return f"{field} {value!r} is invalid: must be the {service} endpoint hostname ending in {suffix}"
        return ""
    return rule


def redis_host(value: Any) -> str:
    err = aws_host("redis_host", ".cache.amazonaws.com", "ElastiCache primary")(value)
    if not err and value.startswith("clustercfg."):
        err = (f"redis_host {value!r} is a cluster-mode-enabled configuration endpoint: Celery's Redis "
               "transport needs a replication group with cluster mode disabled (its primary endpoint)")
    return err


def redis_auth(value: Any, tls: Any = True) -> str:
    # ElastiCache enables AUTH only on replication groups with in-transit encryption.
    if err := boolean("redis_auth")(value):
        return err
    if value is True and tls is False:
        return ("redis_auth needs redis_tls: ElastiCache only accepts an AUTH token on a replication "
                "group with in-transit encryption (answer redis_tls=true, or redis_auth=false)")
    return ""


def s3_log_bucket(value: Any) -> str:
    err = matches("s3_log_bucket", value, r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                  "S3 bucket names are 3-63 lowercase letters, digits, '.' and '-', "
                  "starting and ending with a letter or digit")
    if err:
        return err
    rules = [
        (".." in value, "must not contain '..'"),
        (is_ip(value), "must not be formatted as an IP address"),
        (value.startswith(("xn--", "sthree-")), "must not start with 'xn--' or 'sthree-'"),
        (value.endswith(("-s3alias", "--ol-s3")), "must not end with '-s3alias' or '--ol-s3'"),
    ]
    return next((f"s3_log_bucket {value!r} is invalid: {msg}" for bad, msg in rules if bad), "")


def irsa_role_arn(value: Any, account_id: Any = None, dst_path: Any = None, answers_file: Any = None) -> str:
    err = matches("irsa_role_arn", value, ROLE_ARN.pattern,
                  "must be an IAM role ARN like arn:aws:iam::123456789012:role/airflow-dev")
    if err:
        return err
    found = ROLE_ARN.match(value).group(1)  # type: ignore[union-attr]
    if account_id not in (None, "") and found != str(account_id):
        return (f"irsa_role_arn is in account {found} but aws_account_id is {account_id}: "
                "IRSA roles live in the cluster's account")
    for name, other in other_environments(dst_path, answers_file):
        if other.get("irsa_role_arn") == value:
            return (f"irsa_role_arn {value!r} is also environment {other.get('environment')!r}'s ({name}): one "
                    "role has one trust policy and one log policy, so each environment needs its own role")
    return ""


def s3_log_kms_key_arn(value: Any) -> str:
    return matches("s3_log_kms_key_arn", value, facts.KMS_KEY_ARN.pattern,
                   "must be a KMS key ARN like arn:aws:kms:eu-west-1:123456789012:key/<key id> (not an alias: "
                   "IAM policies name keys by ARN)", optional=True)


def eks_oidc_issuer(value: Any, region: Any = None) -> str:
    err = matches("eks_oidc_issuer", value, facts.EKS_OIDC_ISSUER.pattern,
                  "must be the cluster's OIDC issuer without https://, like "
                  "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF "
                  "(aws eks describe-cluster --query cluster.identity.oidc.issuer)", optional=True)
    if err or not value:
        return err
    found = facts.EKS_OIDC_ISSUER.match(value).group(1)  # type: ignore[union-attr]
    if region not in (None, "") and found != region:
        return f"eks_oidc_issuer is in {found}, but aws_region is {region}: the cluster's issuer is in its region"
    return ""


def web_hostname(value: Any) -> str:
    err = matches("web_hostname", value, DNS_NAME.pattern,
                  "must be empty (no ingress) or a lowercase DNS name like airflow.example.com",
                  optional=True)
    if not err and value and "." not in value:
        err = f"web_hostname {value!r} is invalid: must be a fully qualified DNS name like airflow.example.com"
    if not err and value and (is_ip(value) or value.rsplit(".", 1)[-1].isdigit()):
        err = (f"web_hostname {value!r} is an IP address: the ALB serves a DNS name (with its ACM "
               "certificate); give the host name users open")
    return err


def web_certificate_arn(value: Any, region: Any = None, account: Any = None) -> str:
    err = matches("web_certificate_arn", value, ACM_ARN,
                  "must be an ACM certificate ARN like "
                  "arn:aws:acm:eu-west-1:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab")
    if err:
        return err
    cert_region, cert_account = value.split(":")[3:5]
    if region and cert_region != region:
        return (f"web_certificate_arn is in {cert_region}, but the ALB is in aws_region {region}: "
                "ACM certificates are regional")
    if account and cert_account != str(account):
        return f"web_certificate_arn is in account {cert_account}, not aws_account_id {account}"
    return ""
