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
REPO_WIDE_ANSWERS = ("project_name", "gitops_engine", "git_repo_url", "git_revision", "airflow_chart", "chart_version",
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
# EKS Pod Identity: one association per (namespace, ServiceAccount), each a CreatePodIdentityAssociation
# request (aws eks create-pod-identity-association --cli-input-json); a list, one per ServiceAccount.
POD_IDENTITY_ASSOCIATIONS = "pod-identity-associations.json"
# The log policy's ListBucket grant: S3 answers a GET/HEAD of a missing key 404 only if the caller may
# ListBucket for that request (else 403), and a HEAD has no s3:prefix, which IfExists lets through.
S3_LIST_PREFIX_OPERATOR = "StringLikeIfExists"
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"  # on the chart's ServiceAccount: EKS injects the role
AWS_IDENTITIES = ("irsa", "pod-identity")  # the aws_identity answer

# ---------------------------------------------------------------- the official chart's layout
# Value sections of the components that write or read task logs in S3 (workers and KubernetesExecutor
# task pods, triggerer, api-server), and the ServiceAccount each gets: <release>-<suffix>.
S3_LOG_COMPONENTS = ("workers", "triggerer", "apiServer")
OFFICIAL_SERVICE_ACCOUNTS = {"workers": "worker", "triggerer": "triggerer", "apiServer": "api-server"}
API_SERVER_HEALTH_PATH = "/api/v2/monitor/health"  # the chart's api-server probes
PGBOUNCER_PORT = 6543  # the official chart's ports.pgbouncer
# keda_autoscaling: KEDA's own Helm chart installs its operator here, with this pod label; the
# operator runs the chart's scaling query against the metadata database through pgbouncer.
KEDA_NAMESPACE = "keda"
KEDA_OPERATOR_LABELS = {"app": "keda-operator"}
KEDA_MAX_WORKERS = 10
# metrics: prometheus-operator (kube-prometheus-stack's defaults): Prometheus runs in this
# namespace with this pod label, and selects ServiceMonitors and PrometheusRules by this label.
METRICS_CHOICES = ("none", "prometheus-operator")
PROMETHEUS_NAMESPACE = "monitoring"
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}
PROMETHEUS_SELECTOR_LABELS = {"release": "kube-prometheus-stack"}
STATSD_PORTS = {"ingest": 9125, "scrape": 9102}  # the official chart's ports.statsdIngest/statsdScrape
PGBOUNCER_METRICS_PORT = 9127  # its pgbouncer metrics exporter sidecar (ports.pgbouncerScrape)
PGBOUNCER_RDS_CA_DIR = "/etc/pgbouncer-rds-ca"  # where pgbouncer reads root.crt (rds_tls_verify)


def service_accounts(flavor: str, release: str) -> list[str]:
    """The ServiceAccounts whose pods take the environment's IAM role: the community chart has one,
    named after the release; the official chart one per component (<release>-<component>)."""
    if flavor == "official":
        return [f"{release}-{OFFICIAL_SERVICE_ACCOUNTS[c]}" for c in S3_LOG_COMPONENTS]
    return [release]


def service_account_subjects(flavor: str, release: str, namespace: str) -> list[str]:
    return [f"system:serviceaccount:{namespace}:{sa}" for sa in service_accounts(flavor, release)]


def pod_identity_associations(flavor: str, release: str, namespace: str, cluster: str, role: str) -> list[dict]:
    """One CreatePodIdentityAssociation request (the EKS API's field names) per ServiceAccount that
    takes the role: EKS binds a role to one (namespace, ServiceAccount) per association."""
    return [{"clusterName": cluster, "namespace": namespace, "serviceAccount": sa, "roleArn": role}
            for sa in service_accounts(flavor, release)]


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
    # The official chart's names for the same keys (fernetKeySecretName, apiSecretKeySecretName,
    # jwtSecretName). Sealed once and kept: the chart would otherwise make new ones per install.
    SecretEntry("airflow-fernet-key", "fernet-key", "AIRFLOW_FERNET_KEY", generate="fernet",
                keep="a new one makes every stored connection and variable unreadable (rotate: make rotate-fernet)"),
    SecretEntry("airflow-api-secret-key", "api-secret-key", "AIRFLOW_API_SECRET_KEY", generate="token",
                keep="a new one signs everyone out"),
    SecretEntry("airflow-jwt-secret", "jwt-secret", "AIRFLOW_JWT_SECRET", generate="token",
                keep="a new one invalidates every token in flight: running tasks lose the Execution API"),
)
FERNET_KEY_OF = {"community": "value", "official": "fernet-key"}  # airflow-fernet-key's key, per chart flavor
FERNET_KEYS = tuple(FERNET_KEY_OF.values())


@dataclass(frozen=True)
class Composite:
    """A sealed value built from other secrets: a connection URL or pgbouncer's auth file. Its shape,
    with ${AIRFLOW_DB_PASSWORD}-style references to SECRETS entries, is the SealedSecret's annotation
    COMPOSE_ANNOTATION + key (not secret, reviewable); make seal fills the references in."""

    secret: str
    key: str
    quoting: str  # how a reference is inserted: "url" (percent-encoded) or "pgbouncer" (auth_file "..." string)


COMPOSE_ANNOTATION = "airflow-gitops.io/compose-"
COMPOSITES = (
    Composite("airflow-metadata", "connection", "url"),  # data.metadataSecretName
    Composite("airflow-result-backend", "connection", "url"),  # data.resultBackendSecretName
    Composite("airflow-broker-url", "connection", "url"),  # data.brokerUrlSecretName
    Composite("airflow-pgbouncer", "users.txt", "pgbouncer"),  # pgbouncer.configSecretName
    Composite("airflow-pgbouncer-stats", "connection", "url"),  # pgbouncer.metricsExporterSidecar.statsSecretName
)
COMPOSE_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def composite(secret: str, key: str) -> Composite | None:
    return next((c for c in COMPOSITES if (c.secret, c.key) == (secret, key)), None)


def compose_refs(shape: str) -> list[str]:
    """The SECRETS entries (by env name) a shape refers to, in order, once each."""
    return list(dict.fromkeys(COMPOSE_REF.findall(shape)))


def compose(shape: str, quoting: str, values: dict[str, str]) -> str:
    """The shape with each reference replaced by its value, quoted for where it stands."""
    from urllib.parse import quote

    def sub(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return quote(value, safe="") if quoting == "url" else value.replace('"', '""')
    return COMPOSE_REF.sub(sub, shape)


def entry_for_env(env: str) -> SecretEntry | None:
    return next((e for e in SECRETS if e.env == env), None)


def secret_entry(secret: str, key: str) -> SecretEntry | None:
    return next((e for e in SECRETS if (e.secret, e.key) == (secret, key)), None)


def secret_question(question: str) -> SecretEntry:
    return next(e for e in SECRETS if e.question == question)


# ---------------------------------------------------------------- charts
@dataclass(frozen=True)
class Chart:
    """A chart release whose values layout and rules this template encodes."""

    flavor: str  # the airflow_chart answer: "official" (Apache Airflow) or "community" (airflow-helm)
    name: str
    version: str
    repository: str
    release_name_max: int  # the chart's own limit on .Release.Name
    airflow_versions: tuple[tuple[int, int], tuple[int, int]]  # supported Airflow (major, minor), inclusive
    default_tag: str  # the image tag the chart defaults to
    key_paths: str  # scripts/chart_keys/<file>: the chart's values.yaml keys, without values ("": the chart
    # ships values.schema.json, which make validate reads from the cached chart instead)
    executors: tuple[str, ...] = EXECUTORS  # the executor answers this flavor deploys

    @property
    def airflow_range(self) -> str:
        (lo_major, lo_minor), (hi_major, hi_minor) = self.airflow_versions
        return f"{lo_major}.{lo_minor}-{hi_major}.{hi_minor}"

    @property
    def label(self) -> str:
        return f"{CHART_FLAVORS[self.flavor]} chart {self.name} {self.version}"

    def supports(self, tag: str) -> bool:
        match = re.match(r"^(\d+)\.(\d+)\.\d+(-python3\.\d{1,2})?$", tag)
        if not match:
            return False
        found = (int(match.group(1)), int(match.group(2)))
        return self.airflow_versions[0] <= found <= self.airflow_versions[1]


# airflow_chart answer -> what the README and errors call it.
CHART_FLAVORS = {"official": "Apache Airflow (official)", "community": "airflow-helm (community)"}
CHARTS = {
    # Airflow 3 only here, though the chart also deploys 2.x: this template's official flavor is the
    # Airflow 3 product (api-server, dag-processor, JWT); Airflow 3 removed CeleryKubernetesExecutor.
    # 42: its Jobs are <release>-migrate-database-job, and a Job's pods carry it as a 63-character label.
    ("official", "1.20.0"): Chart("official", "airflow", "1.20.0", "https://airflow.apache.org", 42,
                                  ((3, 0), (3, 1)), "3.1.8", "",
                                  ("CeleryExecutor", "KubernetesExecutor")),
    ("community", "8.9.0"): Chart("community", "airflow", "8.9.0", "https://airflow-helm.github.io/charts", 40,
                                  ((2, 0), (2, 9)), "2.8.4-python3.9", "airflow-8.9.0.json"),
}
HELM_REPOSITORY_NAMES = {"official": "apache-airflow", "community": "airflow-stable"}  # Flux HelmRepository
# New copies get the official chart; an answers file without airflow_chart predates it (community).
DEFAULT_FLAVOR = "official"
LEGACY_FLAVOR = "community"
DEFAULT_CHART = ("community", "8.9.0")  # the community flavor's pin (validate's community rules)


def default_version(flavor: str = DEFAULT_FLAVOR) -> str:
    return chart_versions(flavor)[0]


def chart(flavor: str = DEFAULT_CHART[0], version: str | None = None) -> Chart | None:
    if flavor not in CHART_FLAVORS:
        return None
    return CHARTS.get((flavor, default_version(flavor) if version is None else version))


def chart_versions(flavor: str = DEFAULT_CHART[0]) -> tuple[str, ...]:
    return tuple(version for f, version in CHARTS if f == flavor)


def chart_of(name: str, version: str, repository: str = "") -> Chart | None:
    """The chart a HelmRelease/Application pins (name, version and, when given, repository)."""
    return next((c for c in CHARTS.values() if (c.name, c.version) == (name, version)
                 and (not repository or repository.rstrip("/") == c.repository)), None)


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
