"""Answer validation for copier.yml, exposed to Jinja as the ``check`` global.

Copier runs ``validator:`` templates and treats any non-empty output as the error,
so each rule returns ``""`` when the answer is fine and otherwise a message naming
the field and the rule.  Copier prefixes it with
``Validation error for question '<name>':`` and writes nothing.

Loaded through ``copier_template_extensions.TemplateExtensionLoader`` by file path, so it cannot
import sibling hook modules; the facts it shares with the generated repository come from
template/scripts/airflow_gitops/facts/, imported through a sys.path context.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.ext import Extension

_SCRIPTS = str(Path(__file__).resolve().parents[1] / "template" / "scripts")
sys.path.insert(0, _SCRIPTS)  # the generated repo's own modules: one implementation
# `copier update` loads the old and the new template in one process, each from its own clone:
# drop modules another clone imported, or this template would run the other version's facts.
for _name in [m for m in sys.modules if m.split(".")[0] in ("airflow_gitops", "seal")]:
    if not str(getattr(sys.modules[_name], "__file__", "") or "").startswith(_SCRIPTS):
        del sys.modules[_name]
try:
    from airflow_gitops import facts, images, secret_settings
finally:
    sys.path.remove(_SCRIPTS)

DNS_LABEL, DNS_NAME = facts.DNS1123_LABEL, facts.DNS1123_SUBDOMAIN
ACM_ARN = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}"
ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$")


def _required(field: str, value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"{field} is required (no default: it identifies your own infrastructure)"
    return ""


def _matches(field: str, value: Any, pattern: str, rule: str, *, optional: bool = False) -> str:
    if optional and (value is None or value == ""):
        return ""
    missing = _required(field, value)
    if missing:
        return missing
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        return f"{field} {value!r} is invalid: {rule}"
    return ""


def project_name(value: Any) -> str:
    err = _matches("project_name", value, DNS_LABEL.pattern,
                   "must be a DNS-1123 label (lowercase letters, digits, '-', "
                   "starting and ending with a letter or digit)")
    limit = min(c.release_name_max for c in facts.CHARTS.values())
    if not err and len(value) > limit:
        err = (f"project_name is {len(value)} characters: it is also the Helm release name, "
               f"which the chart limits to {limit}")
    return err


def environment(value: Any, dst_path: Any = None, answers_file: Any = None, overwrite: Any = False) -> str:
    """A DNS label, and not an environment this repository already has (copy refuses)."""
    err = dns_label("environment", 20)(value)
    if err or not dst_path or not answers_file:
        return err
    dst = Path(str(dst_path))
    answers = dst / str(answers_file)
    if conflicts := first_copy_conflicts(dst, answers, bool(overwrite)):
        shown = ", ".join(conflicts[:6]) + (f" and {len(conflicts) - 6} more" if len(conflicts) > 6 else "")
        return (f"environment: {dst} already has {shown}, which this template writes; a copy "
                "without a terminal would stop at the first one, half-written. Move them aside, or pass "
                "--overwrite to replace them")
    recorded = _answers(answers).get("environment")
    if recorded is not None and recorded != value:
        return (f"environment: {answers.name} belongs to environment {recorded!r}; to add {value!r} "
                f"run copier copy with -a .copier-answers.{value}.yml")
    if recorded == value and copier_operation() == "copy" and os.environ.get(RECOPY_ENV) != "1":
        # copier copy over an existing environment (--overwrite) would replace the user's edits.
        return (f"environment {value!r} already exists in {dst} ({answers.name}): copier copy would overwrite "
                f"your edits. Change it with `make update` (or copier update); for copier recopy set {RECOPY_ENV}=1")
    overlay = dst / "deploy" / "overlays" / value
    # Files, not directories: a copy that failed may leave empty directories behind, retry is fine.
    if recorded is None and overlay.is_dir() and any(p.is_file() for p in overlay.rglob("*")):
        return (f"environment {value!r} already exists in {dst} (deploy/overlays/{value}); "
                "use copier update to change it, or pick another name")
    return ""


RECOPY_ENV = "AIRFLOW_GITOPS_RECOPY"
_TEMPLATE = Path(__file__).resolve().parents[1] / "template"


def first_copy_conflicts(dst: Path, answers: Path, overwrite: bool) -> list[str]:
    """Files of a directory that is not yet a generated repository which the first copy would write
    (plainly named template paths: README.md, Makefile, scripts/...). Copier asks about each at a
    terminal; without one it stops at the first, with the files before it already written."""
    if overwrite or answers.exists() or (dst / facts.ANSWERS_FILE).exists() or not dst.is_dir() or sys.stdin.isatty():
        return []  # a generated repository (a further environment writes no repo-wide file), or asked
    ours = [path.relative_to(_TEMPLATE) for path in _TEMPLATE.rglob("*") if path.is_file()
            and "{" not in str(path.relative_to(_TEMPLATE)) and "__pycache__" not in path.parts]
    return sorted(str(rel.with_suffix("") if rel.suffix == ".jinja" else rel) for rel in ours
                  if (dst / (rel.with_suffix("") if rel.suffix == ".jinja" else rel)).is_file())


def copier_operation() -> str | None:
    """copy or update: Copier exposes it to templates only in _tasks/_exclude, so read its context."""
    try:
        from copier._main import _operation  # copier 9.19 (pinned): a ContextVar set by run_copy/run_update
    except ImportError:
        return None
    return _operation.get(None)


def _answers(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml  # copier depends on PyYAML

    data = yaml.safe_load(path.read_text()) or {}
    return data if isinstance(data, dict) else {}


def _other_environments(dst_path: Any, answers_file: Any) -> list[tuple[str, dict]]:
    """(file name, answers) of the repository's other environments (none in update's temp copies)."""
    if not dst_path:
        return []
    dst = Path(str(dst_path))
    return [(p.name, a) for p in sorted(dst.glob(".copier-answers*.yml"))
            if p.name != str(answers_file) and (a := _answers(p)).get("environment")]


def namespace(value: Any, cluster: Any = None, dst_path: Any = None, answers_file: Any = None) -> str:
    """Unique per cluster: two environments in one namespace share the release, the PV and the Secrets."""
    err = dns_label("namespace", 63)(value)
    for name, other in [] if err else _other_environments(dst_path, answers_file):
        if other.get("namespace") == value and other.get("eks_cluster_name") == cluster:
            return (f"namespace {value!r} is already environment {other['environment']!r}'s on cluster "
                    f"{cluster!r} ({name}): two environments in one namespace would share the Helm release, "
                    "the DAG volume and the Secrets; pick another namespace")
    return err


def s3_log_prefix(value: Any, bucket: Any = None, dst_path: Any = None, answers_file: Any = None) -> str:
    err = _matches("s3_log_prefix", value, r"[A-Za-z0-9!_.*()-]+(/[A-Za-z0-9!_.*()-]+)*",
                   "must be a key prefix like airflow/dev/logs: S3-safe characters, "
                   "'/'-separated, no leading or trailing '/'", optional=True)
    for name, other in [] if err else _other_environments(dst_path, answers_file):
        mine, theirs = str(value or "").strip("/"), str(other.get("s3_log_prefix") or "").strip("/")
        overlapping = mine == theirs or mine.startswith(theirs + "/") or theirs.startswith(mine + "/") \
            or not mine or not theirs
        if other.get("s3_log_bucket") == bucket and overlapping:
            return (f"s3_log_prefix {value!r} overlaps environment {other['environment']!r}'s "
                    f"{other.get('s3_log_prefix')!r} in bucket {bucket!r} ({name}): task logs of the two "
                    "environments would mix; pick a prefix of its own")
    return err


def dns_label(field: str, max_len: int = 63) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        err = _matches(field, value, DNS_LABEL.pattern,
                       "must be a DNS-1123 label (lowercase letters, digits, '-')")
        if not err and len(value) > max_len:
            err = f"{field} must be at most {max_len} characters (got {len(value)})"
        return err
    return rule


def airflow_chart(value: Any) -> str:
    if value not in facts.CHART_FLAVORS:
        return f"airflow_chart {value!r} is invalid: must be one of {', '.join(facts.CHART_FLAVORS)}"
    return ""


def chart_version(value: Any, flavor: Any = facts.LEGACY_FLAVOR) -> str:
    err = _matches("chart_version", value, r"[0-9]+\.[0-9]+\.[0-9]+",
                   "must be an exact chart version like 1.20.0 (GitOps pins, never ranges)")
    known = facts.chart_versions(str(flavor))
    if not err and value not in known:
        err = (f"chart_version {value!r} is not one this template knows the rules of for the {flavor} chart: "
               f"use one of {', '.join(known)}")
    return err


def image_repository(value: Any) -> str:
    return _matches("airflow_image_repository", value,
                    r"[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*",
                    "must be an image repository like apache/airflow (no tag, no digest)")


def _chart(chart_version: Any, flavor: Any) -> facts.Chart:
    flavor = str(flavor or facts.LEGACY_FLAVOR)
    found = facts.chart(flavor, str(chart_version)) if chart_version else facts.chart(flavor)
    return found or facts.chart(flavor) or facts.chart(facts.LEGACY_FLAVOR)  # type: ignore[return-value]


def image_tag(value: Any, chart_version: Any = None, flavor: Any = None) -> str:
    chart = _chart(chart_version, flavor)
    if not isinstance(value, str) or not chart.supports(value):
        return (f"airflow_image_tag {value!r} is invalid: the {chart.label} deploys Airflow "
                f"{chart.airflow_range} here: use a tag like {chart.default_tag} (no 'latest')")
    return ""


def executor(value: Any, flavor: Any = None) -> str:
    if value not in facts.EXECUTORS:
        return f"executor {value!r} is invalid: must be one of {', '.join(facts.EXECUTORS)}"
    chart = _chart(None, flavor)
    if value not in chart.executors:
        return (f"executor {value!r} is invalid with the {chart.label}: Airflow 3 removed it; use one of "
                f"{', '.join(chart.executors)}")
    return ""


def extra_pip_packages(value: Any, flavor: Any = "community") -> str:
    """PEP 508 requirements, pinned: an unpinned package changes under you at every pod start. Only
    the community chart installs them (airflow.extraPipPackages): the official chart has no such
    value, so there they would be silently dropped."""
    from packaging.requirements import InvalidRequirement, Requirement  # copier depends on it

    if value in (None, "", []):
        return ""
    if flavor == "official":
        return ("extra_pip_packages is not supported with the official chart, which has no install-at-start "
                "value: build an image FROM the Airflow image with them (pip install \"apache-airflow==<version>\" "
                "<packages>) and answer airflow_image_repository and airflow_image_tag with it; or answer []")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "extra_pip_packages must be a YAML list of strings, e.g. ['apache-airflow-providers-slack==8.6.0']"
    for item in value:
        try:
            req = Requirement(item)
        except InvalidRequirement as exc:
            return f"extra_pip_packages entry {item!r} is not a PEP 508 requirement: {exc}"
        if req.url:
            return f"extra_pip_packages entry {item!r} uses a URL: only index packages are allowed"
        if not any(spec.operator in ("==", "===", "~=") for spec in req.specifier):
            return (f"extra_pip_packages entry {item!r} is not pinned: use ==VERSION "
                    "(unpinned packages are re-resolved at every pod start)")
    return ""


def aws_region(value: Any) -> str:
    return _matches("aws_region", value, r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]",
                    "must be an AWS region code like eu-west-1")


def aws_account_id(value: Any) -> str:
    value = str(value) if isinstance(value, int) else value
    return _matches("aws_account_id", value, r"[0-9]{12}", "must be exactly 12 digits")


def eks_cluster_name(value: Any) -> str:
    return _matches("eks_cluster_name", value, r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}",
                    "must be 1-100 letters, digits, '-' or '_', starting with a letter or digit")


def efs_file_system_id(value: Any) -> str:
    return _matches("efs_file_system_id", value, r"fs-[0-9a-f]{8,40}",
                    "must look like fs-0123456789abcdef0 ('fs-' + 8-40 lowercase hex)")


def efs_access_point_id(value: Any) -> str:
    if value in (None, ""):
        return ("efs_access_point_id is required: without an access point the file system root is owned by "
                "root (0755) and the DAG publisher (uid 50000) gets EACCES. Create one with PosixUser "
                "Uid=50000,Gid=0 and a root directory created as 50000:0 mode 0755 (README: 'First deploy')")
    return _matches("efs_access_point_id", value, r"fsap-[0-9a-f]{8,40}",
                    "must look like fsap-0123456789abcdef0 ('fsap-' + 8-40 lowercase hex)")


def _aws_host(field: str, suffix: str, service: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        missing = _required(field, value)
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
    err = _aws_host("redis_host", ".cache.amazonaws.com", "ElastiCache primary")(value)
    if not err and value.startswith("clustercfg."):
        err = (f"redis_host {value!r} is a cluster-mode-enabled configuration endpoint: Celery's Redis "
               "transport needs a replication group with cluster mode disabled (its primary endpoint)")
    return err


def port(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            return f"{field} {value!r} is invalid: must be an integer port between 1 and 65535"
        return ""
    return rule


def boolean(field: str) -> Callable[..., str]:
    def rule(value: Any, *_: Any) -> str:
        if not isinstance(value, bool):
            return f"{field} {value!r} is invalid: answer true or false"
        return ""
    return rule


def pg_identifier(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        err = _matches(field, value, r"[a-z_][a-z0-9_]{0,62}",
                       "must be a PostgreSQL identifier: lowercase letters, digits, '_' (max 63)")
        if not err and value in ("postgres", "rdsadmin"):
            err = f"{field} must not be {value!r}: use a dedicated Airflow database user, not the master user"
        return err
    return rule


def keda_autoscaling(value: Any, flavor: Any = "official", celery: Any = True) -> str:
    if err := boolean("keda_autoscaling")(value):
        return err
    if value is True and (flavor != "official" or not celery):
        return ("keda_autoscaling scales Celery workers on the official chart (workers.celery.keda): "
                "answer false, or use airflow_chart=official with a Celery executor")
    return ""


def metrics(value: Any, flavor: Any = "official") -> str:
    if value not in facts.METRICS_CHOICES:
        return f"metrics {value!r} is invalid: must be one of {', '.join(facts.METRICS_CHOICES)}"
    if value != "none" and flavor != "official":
        return (f"metrics {value!r} needs the official chart (the community chart has no StatsD settings): "
                "answer none, or use airflow_chart=official")
    return ""


def redis_auth(value: Any, tls: Any = True) -> str:
    # ElastiCache enables AUTH only on replication groups with in-transit encryption.
    if err := boolean("redis_auth")(value):
        return err
    if value is True and tls is False:
        return ("redis_auth needs redis_tls: ElastiCache only accepts an AUTH token on a replication "
                "group with in-transit encryption (answer redis_tls=true, or redis_auth=false)")
    return ""


def s3_log_bucket(value: Any) -> str:
    err = _matches("s3_log_bucket", value, r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                   "S3 bucket names are 3-63 lowercase letters, digits, '.' and '-', "
                   "starting and ending with a letter or digit")
    if err:
        return err
    rules = [
        (".." in value, "must not contain '..'"),
        (_is_ip(value), "must not be formatted as an IP address"),
        (value.startswith(("xn--", "sthree-")), "must not start with 'xn--' or 'sthree-'"),
        (value.endswith(("-s3alias", "--ol-s3")), "must not end with '-s3alias' or '--ol-s3'"),
    ]
    return next((f"s3_log_bucket {value!r} is invalid: {msg}" for bad, msg in rules if bad), "")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def irsa_role_arn(value: Any, account_id: Any = None, dst_path: Any = None, answers_file: Any = None) -> str:
    err = _matches("irsa_role_arn", value, ROLE_ARN.pattern,
                   "must be an IAM role ARN like arn:aws:iam::123456789012:role/airflow-dev")
    if err:
        return err
    found = ROLE_ARN.match(value).group(1)  # type: ignore[union-attr]
    if account_id not in (None, "") and found != str(account_id):
        return (f"irsa_role_arn is in account {found} but aws_account_id is {account_id}: "
                "IRSA roles live in the cluster's account")
    for name, other in _other_environments(dst_path, answers_file):
        if other.get("irsa_role_arn") == value:
            return (f"irsa_role_arn {value!r} is also environment {other.get('environment')!r}'s ({name}): one "
                    "role has one trust policy and one log policy, so each environment needs its own role")
    return ""


def s3_log_kms_key_arn(value: Any) -> str:
    return _matches("s3_log_kms_key_arn", value, facts.KMS_KEY_ARN.pattern,
                    "must be a KMS key ARN like arn:aws:kms:eu-west-1:123456789012:key/<key id> (not an alias: "
                    "IAM policies name keys by ARN)", optional=True)


def eks_oidc_issuer(value: Any, region: Any = None) -> str:
    err = _matches("eks_oidc_issuer", value, facts.EKS_OIDC_ISSUER.pattern,
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
    err = _matches("web_hostname", value, DNS_NAME.pattern,
                   "must be empty (no ingress) or a lowercase DNS name like airflow.example.com",
                   optional=True)
    if not err and value and "." not in value:
        err = f"web_hostname {value!r} is invalid: must be a fully qualified DNS name like airflow.example.com"
    if not err and value and (_is_ip(value) or value.rsplit(".", 1)[-1].isdigit()):
        err = (f"web_hostname {value!r} is an IP address: the ALB serves a DNS name (with its ACM "
               "certificate); give the host name users open")
    return err


def web_certificate_arn(value: Any, region: Any = None, account: Any = None) -> str:
    err = _matches("web_certificate_arn", value, ACM_ARN,
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


def dags_repo_url(value: Any) -> str:
    if value in (None, ""):
        return ""  # DAGs live in dags/ of this repository
    return git_url("dags_repo_url")(value)


def git_url(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        return _matches(field, value,
                        r"(https://|ssh://[A-Za-z0-9._-]+@)[A-Za-z0-9.-]+(:[0-9]+)?/[A-Za-z0-9._~/-]+"
                        r"|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+",
                        "must be a git URL like https://github.com/org/repo.git or git@github.com:org/repo.git, "
                        "without credentials")
    return rule


def branch(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        err = _matches(field, value, r"[A-Za-z0-9._/-]+",
                       "must be a branch name (letters, digits, '.', '_', '/', '-')")
        if not err and (".." in value or value.startswith(("/", "-")) or value.endswith((".lock", "/", "."))):
            err = f"{field} {value!r} is not a valid git branch name"
        return err
    return rule


def jenkins_credentials_id(value: Any) -> str:
    return _matches("dags_repo_credentials_id", value, r"[A-Za-z0-9._-]{1,100}",
                    "must be empty or a Jenkins credentials ID (letters, digits, '.', '_', '-')", optional=True)


def jenkins_service_account(value: Any) -> str:
    err = _matches("jenkins_service_account", value,
                   r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?",
                   "must be <namespace>/<name> of a Kubernetes ServiceAccount, e.g. jenkins/jenkins")
    if not err and len(value.split("/")[0]) > 63:
        err = "jenkins_service_account: the namespace part must be at most 63 characters"
    if not err and value.split("/")[1] == "default":
        err = ("jenkins_service_account must not be a namespace's default ServiceAccount: every pod there would "
               "get the agents' rights, and kustomize rewrites the namespace of a subject named default")
    return err


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
    "rds_host": _aws_host("rds_host", ".rds.amazonaws.com", "RDS"),
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
    "image_mirror": lambda value: _matches(
        "image_mirror", value, facts.IMAGE_MIRROR.pattern.strip("^$"),
        "must be empty or a registry host name (with an optional :port, no scheme, no path), e.g. "
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com", optional=True),
    "keda_namespace": dns_label("keda_namespace", 63),
    "prometheus_namespace": dns_label("prometheus_namespace", 63),
    "prometheus_release_label": lambda value: _matches(
        "prometheus_release_label", value, r"(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?",
        "must be a Kubernetes label value: up to 63 letters, digits, '-', '_' and '.', starting and ending "
        "with a letter or digit"),
    "web_alb_group": lambda value: _matches(
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


_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@-]*$")
_YAML_SPECIAL = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|null|Null|NULL|~|[-+]?[0-9_.:]+([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o?[0-7]+)$"
)


def yaml_str(value: Any) -> str:
    """Render a string as a YAML scalar that parses back to exactly the same string.

    Plain when unambiguous (readable diffs), single-quoted when that needs no escape,
    JSON double-quoted otherwise: JSON strings are valid YAML, so quotes, ':', '#', newlines
    and '{{ }}' survive untouched.
    """
    text = str(value)
    if _PLAIN.match(text) and not _YAML_SPECIAL.match(text):
        return text
    if text.isprintable() and "'" not in text and text.strip() == text:
        return f"'{text}'"  # single-quoted YAML has no escapes besides ''
    return json.dumps(text)


groovy_str = facts.groovy_str


cluster_slug = facts.cluster_slug  # clusters/<slug>/, also the cluster's Jenkins cloud


REMOTE_SOURCE = facts.REMOTE_SOURCE


def absolute_src(answers: dict[str, Any]) -> dict[str, Any]:
    """The answers with `_src_path` made absolute: Copier stores a local template path as typed
    (`.`), and a later update, run from the project, would look for the template there."""
    src = str(answers.get("_src_path", ""))
    if not src or REMOTE_SOURCE.match(src) or os.path.isabs(os.path.expanduser(src)):
        return answers
    return {**answers, "_src_path": os.path.abspath(os.path.expanduser(src))}


@pass_context
def secret_shape(ctx: Any, name: str, key: str) -> str:
    """The shape of one composite SealedSecret entry, as these answers build it (secret_settings)."""
    return secret_settings.shapes(ctx)[name][key]


@pass_context
def secret_settings_manifest(ctx: Any, name: str) -> str:
    """secrets/settings/<name>.yaml: the non-secret half of SealedSecret `name`."""
    return secret_settings.manifest(name, ctx)


@pass_context
def secret_settings_names(ctx: Any) -> list[str]:
    return sorted(secret_settings.settings(ctx))


class ValidationExtension(Extension):
    """Registers ``check`` (answer validation), the ``yaml_str``/``groovy_str`` literal filters and the
    SealedSecrets' settings (``secret_settings_*``)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["check"] = check
        environment.filters["yaml_str"] = yaml_str
        environment.filters["groovy_str"] = groovy_str
        environment.globals["facts"] = facts  # names and paths templates share with the tools
        environment.globals["images"] = images  # the images the charts render (repositories, users)
        environment.globals["jenkins_entry"] = facts.jenkins_entry
        environment.filters["absolute_src"] = absolute_src
        environment.filters["cluster_slug"] = cluster_slug
        environment.globals.update(secret_shape=secret_shape, secret_settings_manifest=secret_settings_manifest,
                                   secret_settings_names=secret_settings_names)
