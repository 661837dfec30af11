"""Every fact more than one file relies on, defined once.

Imported by the generated repository's tools (scripts/), by the Copier template's hooks (through a
sys.path context, see hooks/facts_path.py) and by the template's tests. Standard library only: the
hooks run inside Copier's own interpreter, and the tools before their venv exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------- repository
ANSWERS_FILE = ".copier-answers.yml"  # the primary answers file; further envs: .copier-answers.<env>.yml
PLACEHOLDER_PREFIX = "UNSEALED"  # an unsealed SealedSecret entry: "UNSEALED: run make seal ..."
GITOPS_ENGINES = {"flux": "Flux", "argocd": "Argo CD"}  # gitops_engine answer -> display name
# Answers stored in every answers file and kept identical by `make update` (copier.yml: ask on primary).
REPO_WIDE_ANSWERS = ("project_name", "gitops_engine", "git_repo_url", "git_revision", "chart_version",
                     "airflow_image_repository", "airflow_image_tag", "executor", "extra_pip_packages",
                     "dags_repo_url", "dags_repo_branch", "dags_repo_credentials_id", "jenkins_service_account", "ci")

# ---------------------------------------------------------------- grammars
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
EFS_FILE_SYSTEM_ID = r"fs-[0-9a-f]{8,40}"  # botocore's FileSystemId for a bare id
EFS_ACCESS_POINT_ID = r"fsap-[0-9a-f]{8,40}"
# aws-efs-csi-driver's old volumeHandle grammar fs-id[:path[:fsap-id]] (v3.0.0+ also takes efs:...).
EFS_HANDLE = re.compile(rf"^{EFS_FILE_SYSTEM_ID}(:(/[^:]*)?(:{EFS_ACCESS_POINT_ID})?)?$")
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
TEMPLATE_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")  # the chart's ${NAME} value templates
EKS_OIDC_ISSUER = re.compile(  # the cluster's IRSA issuer, without https:// (group 1: its region)
    r"^oidc\.eks\.([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9])\.amazonaws\.com/id/[0-9A-F]{32}$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/([0-9a-f-]{36}|mrk-[0-9a-f]{32})$")
REMOTE_SOURCE = re.compile(r"^([a-z][a-z0-9+.-]*://|gh:|gl:|[\w.-]+@[\w.-]+:)")  # a template not on disk

# ---------------------------------------------------------------- Airflow
EXECUTORS = ("CeleryExecutor", "KubernetesExecutor", "CeleryKubernetesExecutor")
CELERY_EXECUTORS = frozenset({"CeleryExecutor", "CeleryKubernetesExecutor"})  # need a broker and workers
KUBERNETES_EXECUTORS = frozenset({"KubernetesExecutor", "CeleryKubernetesExecutor"})  # start task pods
TASK_POD_COMPONENT = "task"  # `component` label of KubernetesExecutor task pods (the chart gives them none)
LOG_SERVER_PORTS = (8793, 8794)  # Airflow's worker and triggerer log servers, read by the web UI
AIRFLOW_UID, AIRFLOW_GID = 50000, 0  # the apache/airflow images' user; the EFS access point's PosixUser

# ---------------------------------------------------------------- AWS identity as code
def aws_partition(region: str) -> str:
    """The ARN partition of a region: IAM, S3 and KMS ARNs must name it (aws-us-gov, aws-cn, aws)."""
    return "aws-us-gov" if region.startswith("us-gov-") else "aws-cn" if region.startswith("cn-") else "aws"



IAM_DIR = "iam"  # deploy/overlays/<env>/iam/: the IRSA role's policies, as JSON for the aws CLI or Terraform
S3_LOGS_POLICY = "s3-logs-policy.json"  # permissions policy: the env's task-log prefix only
IRSA_TRUST_POLICY = "irsa-trust-policy.json"  # trust policy: the chart's ServiceAccount via the cluster's OIDC
POD_IDENTITY_TRUST_POLICY = "pod-identity-trust-policy.json"  # trust policy: EKS Pod Identity, scoped by tags
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"  # on the chart's ServiceAccount: EKS injects the role
AWS_IDENTITIES = ("irsa", "pod-identity")  # the aws_identity answer

# ---------------------------------------------------------------- Pod Security Admission
# https://kubernetes.io/docs/concepts/security/pod-security-standards/ : the level every
# environment's namespace enforces, and the policy version it is pinned to.
POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_VERSION = "v1.31"

# ---------------------------------------------------------------- DAGs on EFS
DAG_CLAIM = "airflow-dags"  # PersistentVolumeClaim of every environment (deploy/base/pvc.yaml)
DAG_VOLUME_MOUNT = "/opt/efs"  # where Airflow pods and the Jenkins agent mount the claim
DAGS_ROOT = f"{DAG_VOLUME_MOUNT}/dags"  # sync_dags.py --root: the slots and `current` live here
DAGS_FOLDER = f"{DAGS_ROOT}/current"  # the chart's dags.path, hence AIRFLOW__CORE__DAGS_FOLDER


# ---------------------------------------------------------------- secrets
@dataclass(frozen=True)
class SecretEntry:
    """One encryptedData entry of one SealedSecret and where its plaintext comes from."""

    secret: str  # SealedSecret (= Secret) name
    key: str
    env: str  # environment variable holding the value for `make seal` and copy-time sealing
    question: str | None = None  # copier.yml secret question asked at copy time
    generate: str | None = None  # "fernet" or "token": made by make seal when nothing is given
    prompt: str = ""
    keep: str = ""  # generated only: why make seal keeps a sealed value rather than making a new one


SECRETS = (
    SecretEntry("airflow-db", "password", "AIRFLOW_DB_PASSWORD", "db_password", prompt="RDS password for Airflow"),
    SecretEntry("airflow-redis", "password", "AIRFLOW_REDIS_PASSWORD", "redis_password",
                prompt="ElastiCache AUTH token"),
    SecretEntry("airflow-admin-user", "password", "AIRFLOW_ADMIN_PASSWORD", "admin_password",
                prompt="Airflow admin password"),
    SecretEntry("airflow-fernet-key", "value", "AIRFLOW_FERNET_KEY", generate="fernet",
                keep="a new one makes every stored connection and variable unreadable (rotate: make rotate-fernet)"),
    SecretEntry("airflow-webserver-secret-key", "value", "AIRFLOW_WEBSERVER_SECRET_KEY", generate="token",
                keep="a new one signs everyone out"),
)


def secret_entry(secret: str, key: str) -> SecretEntry | None:
    return next((e for e in SECRETS if (e.secret, e.key) == (secret, key)), None)


def secret_question(question: str) -> SecretEntry:
    return next(e for e in SECRETS if e.question == question)


# ---------------------------------------------------------------- charts
@dataclass(frozen=True)
class Chart:
    """A chart release whose values layout and rules this template encodes."""

    flavor: str  # "community" (airflow-helm); a second flavor would add an answer choosing it
    name: str
    version: str
    repository: str
    release_name_max: int  # the chart's own limit on .Release.Name
    airflow_versions: tuple[tuple[int, int], tuple[int, int]]  # supported Airflow (major, minor), inclusive
    default_tag: str  # the image tag the chart defaults to
    key_paths: str  # scripts/chart_keys/<file>: the chart's values.yaml keys, without values

    @property
    def airflow_range(self) -> str:
        (lo_major, lo_minor), (hi_major, hi_minor) = self.airflow_versions
        return f"{lo_major}.{lo_minor}-{hi_major}.{hi_minor}"

    def supports(self, tag: str) -> bool:
        match = re.match(r"^(\d+)\.(\d+)\.\d+(-python3\.\d{1,2})?$", tag)
        if not match:
            return False
        found = (int(match.group(1)), int(match.group(2)))
        return self.airflow_versions[0] <= found <= self.airflow_versions[1]


CHARTS = {
    ("community", "8.9.0"): Chart("community", "airflow", "8.9.0", "https://airflow-helm.github.io/charts", 40,
                                  ((2, 0), (2, 9)), "2.8.4-python3.9", "airflow-8.9.0.json"),
}
DEFAULT_CHART = ("community", "8.9.0")


def chart(flavor: str = DEFAULT_CHART[0], version: str = DEFAULT_CHART[1]) -> Chart | None:
    return CHARTS.get((flavor, version))


def chart_versions(flavor: str = DEFAULT_CHART[0]) -> tuple[str, ...]:
    return tuple(version for f, version in CHARTS if f == flavor)


# ---------------------------------------------------------------- the Jenkinsfile's ENVIRONMENTS map
JENKINS_ENTRY = re.compile(r"^\s*'((?:[^'\\]|\\.)*)'\s*:\s*\[namespace:\s*'((?:[^'\\]|\\.)*)',\s*"
                           r"claim:\s*'((?:[^'\\]|\\.)*)',\s*productionLike:\s*(true|false)\],?\s*$", re.M)


def groovy_str(value: object) -> str:
    """A single-quoted Groovy string literal (no interpolation) holding exactly ``value``."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'"


def _groovy_unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


def jenkins_entry(env: str, namespace: str, production_like: bool) -> str:
    """One line of `ENVIRONMENTS` (Jenkinsfile.jinja renders it, register_environment.py adds it)."""
    flag = "true" if production_like else "false"
    return (f"    {groovy_str(env)}: [namespace: {groovy_str(namespace)}, claim: {groovy_str(DAG_CLAIM)}, "
            f"productionLike: {flag}],")


def jenkins_entries(text: str) -> dict[str, tuple[str, str, bool]]:
    """env -> (namespace, claim, productionLike) from a Jenkinsfile's ENVIRONMENTS lines."""
    return {_groovy_unquote(env): (_groovy_unquote(ns), _groovy_unquote(claim), flag == "true")
            for env, ns, claim, flag in JENKINS_ENTRY.findall(text)}


# ---------------------------------------------------------------- tools and caches of the generated repository
KUBECTL_MIN_MINOR = 27  # kubectl >= 1.27 bundles kustomize v5 (validate, render, install_tools.py)
KUBERNETES_VERSION = "1.34.0"  # EKS's current minor: kubernetes-validate schemas, `helm template --kube-version`
CHART_CACHE = ".cache/charts"  # make render caches <chart>-<version>.tgz here; make validate reads its values.yaml
RDS_CA_BUNDLE = "rds-ca-bundle.pem"  # deploy/overlays/<env>/<this>: written by make rds-ca, read by pgbouncer
JENKINS_AGENT_RBAC = "jenkins-agents"  # Role and RoleBinding that let Jenkins run agent pods (deploy/base)
# SealedSecret scopes other than strict (seal.py --scope), as the controller's annotations.
SEALED_SCOPE_ANNOTATIONS = {"namespace-wide": "sealedsecrets.bitnami.com/namespace-wide",
                            "cluster-wide": "sealedsecrets.bitnami.com/cluster-wide"}
