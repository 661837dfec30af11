"""Every fact more than one file relies on, defined once.

Imported by the generated repository's tools (scripts/), by the Copier template's hooks (through a
sys.path context, see hooks/facts_path.py) and by the template's tests. Standard library only: the
hooks run inside Copier's own interpreter, and the tools before their venv exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

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
# The user named nobody in the Alpine/busybox images of pgbouncer, its exporter and statsd-exporter
# (images.py): the values give it by number, or the kubelet cannot check runAsNonRoot (kubelet.py).
NOBODY_UID = 65534

# ---------------------------------------------------------------- GitOps engines' lifecycle
# A failed Airflow upgrade must not be rolled back: the migration Job may already have moved the
# schema forward (forward-only), and the old image's pods would wait for migrations forever.
# helm-controller's RetryOnFailure (Flux >= 2.7) retries the upgrade as it is, with no remediation.
FLUX_UPGRADE_STRATEGY = "RetryOnFailure"

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
# pgbouncer.ini max_prepared_statements: KEDA's postgresql scaler (pgx) prepares its query, which in
# transaction mode needs pgbouncer to track prepared statements; the chart's pgbouncer image (1.23.1)
# has them off unless set (on by default, 200, only from 1.24.0). 100: pgbouncer 1.21.0's suggestion.
PGBOUNCER_MAX_PREPARED_STATEMENTS = 100
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


# ---------------------------------------------------------------- image mirror (answer image_mirror)
# An ECR pull-through cache serves each upstream registry under a repository prefix of its rule:
# <account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<upstream repository>. These are the prefixes
# the generated README tells you to create the rules with (one per upstream the charts pull from).
MIRROR_PREFIXES = {"docker.io": "docker-hub", "quay.io": "quay", "ghcr.io": "github"}
IMAGE_MIRROR = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+(:[0-9]{1,5})?$")


def upstream(repository: str) -> tuple[str, str]:
    """(registry, path) of an image repository as the charts write it (Docker Hub without a host)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", repository


def mirrored(repository: str, mirror: str) -> str:
    """`repository` pulled through the mirror (unchanged without one, or from a registry it has no rule for)."""
    registry, path = upstream(repository)
    if not mirror or registry not in MIRROR_PREFIXES:
        return repository
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"  # a Docker Hub official image: ECR's cache names it docker-hub/library/<name>
    return f"{mirror}/{MIRROR_PREFIXES[registry]}/{path}"


def unmirrored(repository: str) -> str:
    """The upstream repository a mirrored one stands for (as the charts write it); others as they are."""
    host, _, rest = repository.partition("/")
    prefix, _, path = rest.partition("/")
    by_prefix = {v: k for k, v in MIRROR_PREFIXES.items()}
    if "." not in host or prefix not in by_prefix or not path:
        return repository
    if by_prefix[prefix] == "docker.io":
        return path.removeprefix("library/")
    return f"{by_prefix[prefix]}/{path}"


# ---------------------------------------------------------------- node autoscalers
# Pods that run tasks (Celery workers, KubernetesExecutor task pods) must not be moved by a node
# consolidation in the middle of a task: the annotation each autoscaler honours.
DO_NOT_DISRUPT = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "karpenter.sh/do-not-disrupt": "true"}
# AWS Load Balancer Controller, target-type ip: pods of a namespace with this label get a readiness
# gate, so a rollout waits until the ALB has registered the new pod (no 502s while old ones go).
ALB_READINESS_GATE_LABEL = ("elbv2.k8s.aws/pod-readiness-gate-inject", "enabled")
# An ALB group name (alb.ingress.kubernetes.io/group.name): Ingresses with the same one share an ALB.
ALB_GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def alb_annotations(certificate_arn: str, health_path: str, group: str = "") -> dict[str, str]:
    """The web Ingress' annotations for the AWS Load Balancer Controller: an internal ALB sending to
    pod IPs, HTTPS on 443 with the ACM certificate, plain HTTP only redirecting."""
    annotations = {
        "alb.ingress.kubernetes.io/scheme": "internal",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/healthcheck-path": health_path,
        "alb.ingress.kubernetes.io/certificate-arn": certificate_arn,
        "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
        "alb.ingress.kubernetes.io/ssl-redirect": "443",
        "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }
    return {**annotations, "alb.ingress.kubernetes.io/group.name": group} if group else annotations


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
    default_tag: str  # the image tag new copies get (official: the newest release proven on it, below)
    key_paths: str  # scripts/chart_keys/<file>: the chart's values.yaml keys, without values ("": the chart
    # ships values.schema.json, which make validate reads from the cached chart instead)
    executors: tuple[str, ...] = EXECUTORS  # the executor answers this flavor deploys
    # Airflow releases the runtime proof (tests/test_runtime*.py) deploys with this chart, oldest first:
    # the official flavor allows exactly the minors listed here, each proven by its newest patch release.
    proven: tuple[str, ...] = ()
    # The chart's own default image tag (values.yaml defaultAirflowTag), which tests check the tgz against.
    app_version: str = ""

    @property
    def airflow_range(self) -> str:
        (lo_major, lo_minor), (hi_major, hi_minor) = self.airflow_versions
        low, high = f"{lo_major}.{lo_minor}", f"{hi_major}.{hi_minor}"
        return low if low == high else f"{low}-{high}"

    @property
    def label(self) -> str:
        return f"{CHART_FLAVORS[self.flavor]} chart {self.name} {self.version}"

    def supports(self, tag: str) -> bool:
        found = airflow_minor(tag)
        return found is not None and self.airflow_versions[0] <= found <= self.airflow_versions[1]


def airflow_minor(tag: str) -> tuple[int, int] | None:
    """(major, minor) of an apache/airflow image tag (3.3.2, 2.8.4-python3.9), None if it is not one."""
    match = re.match(r"^(\d+)\.(\d+)\.\d+(-python3\.\d{1,2})?$", tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def version_key(version: str) -> tuple[int, ...]:
    """An exact release version (1.21.0, 3.3.2) as a tuple that sorts as releases do."""
    return tuple(int(part) for part in version.split("-")[0].split("."))


def official_chart(version: str, airflow: tuple[str, ...], app_version: str) -> Chart:
    """An official chart release this template knows: its Airflow range is the minors of the releases
    proven on it (`airflow`, oldest first; the newest is what new copies get)."""
    minors = sorted({airflow_minor(release) for release in airflow})  # type: ignore[type-var]
    return Chart("official", "airflow", version, "https://airflow.apache.org", 42, (minors[0], minors[-1]),
                 airflow[-1], "", ("CeleryExecutor", "KubernetesExecutor"), airflow, app_version)


# airflow_chart answer -> what the README and errors call it.
CHART_FLAVORS = {"official": "Apache Airflow (official)", "community": "airflow-helm (community)"}
CHARTS = {
    # Airflow 3 only here, though the chart also deploys 2.x: this template's official flavor is the
    # Airflow 3 product (api-server, dag-processor, JWT); Airflow 3 removed CeleryKubernetesExecutor.
    # 42: its Jobs are <release>-migrate-database-job, and a Job's pods carry it as a 63-character label.
    # A new chart version is one official_chart(...) line here plus its tgz in ../shared/charts:
    # tests/test_chart_versions.py renders and validates a copy on it and requires a runtime proof of
    # each release listed (tests/test_runtime_official.py runs them, tests/runtime/install.py has them).
    ("official", "1.20.0"): official_chart("1.20.0", ("3.1.8",), app_version="3.1.8"),
    ("official", "1.21.0"): official_chart("1.21.0", ("3.2.2", "3.3.2"), app_version="3.2.0"),
    # Next: chart 1.22.0 (June 2026, appVersion 3.2.2, published sha256 1f7d1dfe3d58e2c5...), once its tgz
    # can be had: ("official", "1.22.0"): official_chart("1.22.0", ("3.2.2", "3.3.2"), app_version="3.2.2"),
    ("community", "8.9.0"): Chart("community", "airflow", "8.9.0", "https://airflow-helm.github.io/charts", 40,
                                  ((2, 0), (2, 9)), "2.8.4-python3.9", "airflow-8.9.0.json", proven=("2.8.4",),
                                  app_version="2.8.4-python3.9"),
}
HELM_REPOSITORY_NAMES = {"official": "apache-airflow", "community": "airflow-stable"}  # Flux HelmRepository
# New copies get the official chart; an answers file without airflow_chart predates it (community).
DEFAULT_FLAVOR = "official"
LEGACY_FLAVOR = "community"


def default_version(flavor: str) -> str:
    """The chart version new copies get: the newest this template knows (each is runtime-proven)."""
    return max(chart_versions(flavor), key=version_key)


def chart(flavor: str, version: str | None = None) -> Chart | None:
    """A flavor's chart release (its newest without a version), None if this template does not know it."""
    if flavor not in CHART_FLAVORS:
        return None
    return CHARTS.get((flavor, default_version(flavor) if version is None else version))


def chart_versions(flavor: str) -> tuple[str, ...]:
    """The versions of a flavor's chart this template knows the rules of, oldest first."""
    return tuple(sorted((version for f, version in CHARTS if f == flavor), key=version_key))


def chart_of(name: str, version: str, repository: str = "") -> Chart | None:
    """The chart a HelmRelease/Application pins (name, version and, when given, repository)."""
    return next((c for c in CHARTS.values() if (c.name, c.version) == (name, version)
                 and (not repository or repository.rstrip("/") == c.repository)), None)


# ---------------------------------------------------------------- the Jenkinsfile's ENVIRONMENTS map
def cluster_slug(name: object) -> str:
    """clusters/<slug>/: an EKS cluster name (letters, digits, '-', '_') as a DNS-safe directory name."""
    return str(name).lower().replace("_", "-")


def jenkins_cloud(eks_cluster_name: object) -> str:
    """The Jenkins Kubernetes cloud that starts the DAG publisher's pods on this EKS cluster: named like
    its clusters/<cluster>/ directory. Without a cloud, the Kubernetes plugin takes the first Kubernetes
    cloud of Jenkins (PodTemplateStepExecution.resolveCloud), whatever cluster that is."""
    return cluster_slug(eks_cluster_name)


# The ENVIRONMENTS map, one entry a line (groups: opening line, entries, closing line).
JENKINS_ENVIRONMENTS = re.compile(r"(@Field final Map ENVIRONMENTS = \[\n)(.*?)(^\]\n)", re.S | re.M)
_GROOVY_STR = r"'((?:[^'\\]|\\.)*)'"
# One entry per line: 'env': [cloud: '...', namespace: '...', claim: '...', productionLike: true|false],
# Lines written before v0.2.0 have no cloud (migrations.py add-jenkins-clouds gives them one).
JENKINS_ENTRY = re.compile(rf"^\s*{_GROOVY_STR}\s*:\s*\[(?:cloud:\s*{_GROOVY_STR},\s*)?namespace:\s*{_GROOVY_STR},\s*"
                           rf"claim:\s*{_GROOVY_STR},\s*productionLike:\s*(true|false)\],?\s*$", re.M)


def groovy_str(value: object) -> str:
    """A single-quoted Groovy string literal (no interpolation) holding exactly ``value``."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'"


def _groovy_unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


@dataclass(frozen=True)
class JenkinsEntry:
    """An environment as the DAG publishing job sees it."""

    namespace: str
    claim: str
    production_like: bool
    cloud: str | None  # None: a line from before v0.2.0


def jenkins_entry(env: str, namespace: str, production_like: bool, cloud: str) -> str:
    """One line of `ENVIRONMENTS` (Jenkinsfile.jinja renders it, register_environment.py adds it)."""
    flag = "true" if production_like else "false"
    return (f"    {groovy_str(env)}: [cloud: {groovy_str(cloud)}, namespace: {groovy_str(namespace)}, "
            f"claim: {groovy_str(DAG_CLAIM)}, productionLike: {flag}],")


def jenkins_entries(text: str) -> dict[str, JenkinsEntry]:
    """env -> its entry, from a Jenkinsfile's ENVIRONMENTS lines."""
    return {_groovy_unquote(env): JenkinsEntry(_groovy_unquote(ns), _groovy_unquote(claim), flag == "true",
                                               _groovy_unquote(cloud) if cloud else None)
            for env, cloud, ns, claim, flag in JENKINS_ENTRY.findall(text)}


# ---------------------------------------------------------------- tools and caches of the generated repository
KUBECTL_MIN_MINOR = 27  # kubectl >= 1.27 bundles kustomize v5 (validate, render, install_tools.py)
HELM_MIN = (3, 8)  # make render: helm v3.8+ (OCI charts) or v4 (install_tools.py)
# install_tools.py's kubectl and helm (from a PyPI wheel) are Linux x86-64 binaries: elsewhere, PATH's.
TOOLS_WHEEL_PLATFORM = ("Linux", "x86_64")  # platform.system(), platform.machine()
# The Pythons `make tools` builds .venv with, each tested (tests/test_tools_pythons.py); CI images use 3.12.
TOOLS_PYTHONS = ("3.11", "3.12", "3.13")
KUBERNETES_VERSION = "1.34.0"  # EKS's current minor: kubernetes-validate schemas, `helm template --kube-version`
CHART_CACHE = ".cache/charts"  # make render caches <chart>-<version>.tgz here; make validate reads its values.yaml
RDS_CA_BUNDLE = "rds-ca-bundle.pem"  # deploy/overlays/<env>/<this>: written by make rds-ca, read by pgbouncer
JENKINS_AGENT_RBAC = "jenkins-agents"  # Role and RoleBinding that let Jenkins run agent pods (deploy/base)
# SealedSecret scopes other than strict (seal.py --scope), as the controller's annotations.
SEALED_SCOPE_ANNOTATIONS = {"namespace-wide": "sealedsecrets.bitnami.com/namespace-wide",
                            "cluster-wide": "sealedsecrets.bitnami.com/cluster-wide"}


# ---------------------------------------------------------------- what the cluster must run (make preflight)
# Each minimum is the oldest release that serves every field/API the generated repository uses,
# with the source that says so beside it. README.md's "Cluster requirements" renders them,
# scripts/airflow_gitops/preflight.py checks them against the cluster kubectl points at.
FLUX_NAMESPACE = "flux-system"  # `flux bootstrap`'s default, where clusters/<cluster>/*.yaml put the Kustomizations
ARGOCD_NAMESPACE = "argocd"  # the Applications' and AppProjects' namespace (clusters/<cluster>/)
ADDON_NAMESPACE = "kube-system"  # sealed-secrets-controller (its name kubeseal defaults to), EFS CSI, AWS LB controller
INGRESS_CLASS = "alb"  # web_hostname: the Ingress's ingressClassName, the AWS Load Balancer Controller's class


@dataclass(frozen=True)
class Workload:
    """A controller's Deployment (or DaemonSet, StatefulSet) whose image tag tells its version."""

    kind: str  # Deployment, DaemonSet or StatefulSet
    namespace: str
    name: str | None  # None: any object of that kind in the namespace running `image`
    image: str  # last path segment of the container image's repository (registries and mirrors vary)


@dataclass(frozen=True)
class Requirement:
    """One component the generated repository needs in the cluster, and how preflight finds it."""

    key: str
    name: str  # as the README and preflight's output call it
    minimum: str  # oldest version that serves what `why` names
    why: str  # the field or API of this repository that needs it
    detect: str  # how `make preflight` tells (README column)
    workloads: tuple[Workload, ...] = ()
    crds: tuple[tuple[str, str], ...] = ()  # (CRD name, version it must serve)
    objects: tuple[tuple[str, str], ...] = ()  # (kind, name) of cluster-scoped objects it must have made
    installed_here: bool = False  # this repository installs it (infrastructure/): absent before the first sync


KUBERNETES = Requirement(
    # Every environment's Namespace pins Pod Security `restricted` at POD_SECURITY_VERSION (v1.31), and
    # `make render` checks the pods against that version's rules. An older API server does not refuse the
    # label: it evaluates a version newer than its own as its `latest` (KEP-2579, kubernetes/enhancements
    # keps/sig-auth/2579-psp-replacement, "Monitoring": "evaluated as latest ... recorded as future"), i.e.
    # rules nobody checked these pods against. So 1.31, the version the pods were checked for.
    # Needed anyway: Ingress networking.k8s.io/v1 (1.19), the kubernetes.io/metadata.name label the
    # NetworkPolicies select namespaces by (1.22), HorizontalPodAutoscaler autoscaling/v2 for KEDA (1.23).
    "kubernetes", "Kubernetes", "1.31",
    f"Namespaces enforce Pod Security `restricted` pinned at {POD_SECURITY_VERSION}", "the API server's /version")
SEALED_SECRETS = Requirement(
    # SealedSecret status conditions (type Synced) are what the Flux healthCheckExprs and Argo CD's
    # SealedSecret health read: bitnami-labs/sealed-secrets#382 added them, opt-in (--update-status)
    # from v0.15.0, on by default from v0.17.0 (sealed-secrets RELEASE-NOTES.md, v0.15.0/v0.17.0;
    # redhat-cop/gitops-catalog#75). This repository installs chart 2.18.0, which is newer.
    "sealed-secrets", "Sealed Secrets controller", "0.17.0",
    "SealedSecrets Ready only once decrypted (their `Synced` status condition)",
    f"Deployment {ADDON_NAMESPACE}/sealed-secrets-controller's image tag; CRD sealedsecrets.bitnami.com v1alpha1",
    (Workload("Deployment", ADDON_NAMESPACE, "sealed-secrets-controller", "sealed-secrets-controller"),),
    (("sealedsecrets.bitnami.com", "v1alpha1"),), installed_here=True)
EFS_CSI = Requirement(
    # Access points in a static PV's volumeHandle (fs-id::fsap-id): aws-efs-csi-driver v1.0.0,
    # "Support access points on the same file system" (#185, CHANGELOG-1.x.md). The mount is the node
    # plugin's (DaemonSet efs-csi-node); the controller only provisions dynamically, which this repo does not.
    "efs-csi", "AWS EFS CSI driver", "1.0.0", "static EFS PersistentVolume with an access point in `volumeHandle`",
    f"CSIDriver efs.csi.aws.com; DaemonSet {ADDON_NAMESPACE}/efs-csi-node's image tag",
    (Workload("DaemonSet", ADDON_NAMESPACE, "efs-csi-node", "aws-efs-csi-driver"),),
    objects=(("CSIDriver", "efs.csi.aws.com"),))
FLUX = (
    Requirement(
        # HelmRepository source.toolkit.fluxcd.io/v1: GA in Flux 2.3 with source-controller v1.3.0, which
        # helm-controller v1.0.0 requires (helm-controller CHANGELOG.md, 1.0.0 "Upgrade procedure").
        "flux-source-controller", "Flux source-controller", "1.3.0", "HelmRepository source.toolkit.fluxcd.io/v1",
        f"Deployment {FLUX_NAMESPACE}/source-controller's image tag; CRDs helmrepositories, gitrepositories v1",
        (Workload("Deployment", FLUX_NAMESPACE, "source-controller", "source-controller"),),
        (("helmrepositories.source.toolkit.fluxcd.io", "v1"), ("gitrepositories.source.toolkit.fluxcd.io", "v1"))),
    Requirement(
        # Kustomization spec.healthCheckExprs (CEL): kustomize-controller v1.5.0, Flux 2.5
        # (fluxcd/kustomize-controller#1344, RFC-0009; https://fluxcd.io/blog/2025/02/flux-v2.5.0/).
        "flux-kustomize-controller", "Flux kustomize-controller", "1.5.0",
        "Kustomization `healthCheckExprs` (the secrets Kustomization waits for every SealedSecret)",
        f"Deployment {FLUX_NAMESPACE}/kustomize-controller's image tag; CRD kustomizations v1",
        (Workload("Deployment", FLUX_NAMESPACE, "kustomize-controller", "kustomize-controller"),),
        (("kustomizations.kustomize.toolkit.fluxcd.io", "v1"),)),
    Requirement(
        # HelmRelease helm.toolkit.fluxcd.io/v2: helm-controller v1.0.0 (CHANGELOG.md 1.0.0). Upgrade strategy
        # RetryOnFailure (a failed upgrade is retried, never rolled back): fluxcd/helm-controller#1281
        # (merged August 2025, after v1.3.0), shipped in v1.4.0 with Flux 2.7
        # (https://fluxcd.io/blog/2025/09/flux-v2.7.0/). But before v1.4.5 each RetryOnFailure retry grew
        # .status.history without bound until the object outgrew etcd (fluxcd/helm-controller#1359, fixed by
        # #1360, backported in #1361, Flux v2.7.5: "Fix HelmRelease history truncation when using the
        # RetryOnFailure strategy"): a failing upgrade retried every 10 minutes would get there.
        "flux-helm-controller", "Flux helm-controller", "1.4.5",
        "HelmRelease v2 with `upgrade.strategy.name: RetryOnFailure`",
        f"Deployment {FLUX_NAMESPACE}/helm-controller's image tag; CRD helmreleases v2",
        (Workload("Deployment", FLUX_NAMESPACE, "helm-controller", "helm-controller"),),
        (("helmreleases.helm.toolkit.fluxcd.io", "v2"),)),
)
ARGOCD = Requirement(
    # spec.syncPolicy.retry.refresh ("use the latest revision on retry"): argoproj/argo-cd#23038 (opened
    # 2025-05-19, closes #11494). NOT VERIFIED which release first ships it: v3.1 if it merged before
    # release-3.1 was cut (RC1 2025-06-16); argoproj-labs/argocd-operator#1989 lists `refresh` as new when
    # moving to v3.2.1. Conservatively 3.2.0. Older needs, all met by it: multi-source Applications with
    # `ref` (2.6), helm.valuesObject (2.8), ServerSideApply=true (2.5).
    "argocd", "Argo CD", "3.2.0", "multi-source Applications, `syncPolicy.retry.refresh`",
    f"StatefulSet {ARGOCD_NAMESPACE}/argocd-application-controller's and Deployment argocd-repo-server's "
    "image tags; CRDs applications, appprojects v1alpha1",
    (Workload("StatefulSet", ARGOCD_NAMESPACE, "argocd-application-controller", "argocd"),
     Workload("Deployment", ARGOCD_NAMESPACE, "argocd-repo-server", "argocd")),
    (("applications.argoproj.io", "v1alpha1"), ("appprojects.argoproj.io", "v1alpha1")))
AWS_LB_CONTROLLER = Requirement(
    # networking.k8s.io/v1 Ingress, the only one Kubernetes >= 1.22 serves: v2.4.0 is the first release
    # that watches it (its release notes: clusters before 1.19 stay on v2.3.x), and the first whose Helm
    # chart creates the IngressClass `alb`. (`ssl-redirect` itself is in the docs from v2.3.)
    "aws-lb-controller", "AWS Load Balancer Controller", "2.4.0",
    f"Ingress class `{INGRESS_CLASS}` with the `ssl-redirect`, `listen-ports`, `ssl-policy` annotations",
    f"Deployment {ADDON_NAMESPACE}/aws-load-balancer-controller's image tag; IngressClass {INGRESS_CLASS}",
    (Workload("Deployment", ADDON_NAMESPACE, "aws-load-balancer-controller", "aws-load-balancer-controller"),),
    objects=(("IngressClass", INGRESS_CLASS),))
INGRESS_CONTROLLER = "ingress.k8s.aws/alb"  # the IngressClass's spec.controller the AWS Load Balancer Controller serves
KEDA = Requirement(
    # The chart's ScaledObject (keda.sh/v1alpha1, postgresql trigger with connectionFromEnv) is KEDA 2.0's
    # shape (https://keda.sh/docs/2.0/scalers/postgresql/), but KEDA < 2.9 creates autoscaling/v2beta2
    # HPAs, which Kubernetes stopped serving in 1.26 (kedacore/keda#3606 moved to autoscaling/v2 for 2.9;
    # https://kubernetes.io/docs/reference/using-api/deprecation-guide/#horizontalpodautoscaler-v126).
    "keda", "KEDA", "2.9.0", "the chart's ScaledObject for the Celery workers (keda_autoscaling)",
    f"Deployment {KEDA_NAMESPACE}/keda-operator's image tag; CRD scaledobjects.keda.sh v1alpha1",
    (Workload("Deployment", KEDA_NAMESPACE, "keda-operator", "keda"),),
    (("scaledobjects.keda.sh", "v1alpha1"),))
PROMETHEUS_OPERATOR = Requirement(
    # PrometheusRule arrived in 0.20.0 (prometheus-operator CHANGELOG.md); from 0.39.0 the operator needs
    # Kubernetes 1.16+ and ships apiextensions.k8s.io/v1 CRDs (Documentation/compatibility.md), the only
    # ones Kubernetes 1.22+ serves. Nothing newer is used (endpoints: port, interval; rules: expr, for).
    "prometheus-operator", "Prometheus Operator", "0.39.0", "ServiceMonitor and PrometheusRule (metrics)",
    f"a Deployment in {PROMETHEUS_NAMESPACE} running the prometheus-operator image; "
    "CRDs servicemonitors, prometheusrules v1",
    (Workload("Deployment", PROMETHEUS_NAMESPACE, None, "prometheus-operator"),),
    (("servicemonitors.monitoring.coreos.com", "v1"), ("prometheusrules.monitoring.coreos.com", "v1")))


POD_IDENTITY_AGENT = Requirement(
    # aws_identity: pod-identity. Without the agent the SDKs find no credentials, and Airflow's S3 log
    # handler swallows the error (task logs silently never reach S3). Any release serves what the
    # associations need: the version is EKS's; only that the add-on runs is checked.
    "pod-identity-agent", "EKS Pod Identity Agent", "0.0.1", "aws_identity: pod-identity (the pods' AWS credentials)",
    f"DaemonSet {ADDON_NAMESPACE}/eks-pod-identity-agent (the EKS add-on)",
    (Workload("DaemonSet", ADDON_NAMESPACE, "eks-pod-identity-agent", "eks-pod-identity-agent"),))


def in_namespace(req: Requirement, default: str, namespace: str) -> Requirement:
    """`req` with its workloads (and what the README says) in the namespace the answers name."""
    if namespace == default:
        return req
    workloads = tuple(replace(w, namespace=namespace) if w.namespace == default else w for w in req.workloads)
    return replace(req, workloads=workloads, detect=req.detect.replace(default, namespace))


def cluster_requirements(engine: str, keda: bool = False, metrics: bool = False, ingress: bool = False,
                         pod_identity: bool = False, keda_namespace: str = KEDA_NAMESPACE,
                         prometheus_namespace: str = PROMETHEUS_NAMESPACE) -> list[Requirement]:
    """What one environment's answers need in its cluster, in the order preflight checks them."""
    found = [KUBERNETES, *(FLUX if engine == "flux" else (ARGOCD,)), SEALED_SECRETS, EFS_CSI]
    return found + [r for r, used in ((POD_IDENTITY_AGENT, pod_identity), (AWS_LB_CONTROLLER, ingress),
                                      (in_namespace(KEDA, KEDA_NAMESPACE, keda_namespace), keda),
                                      (in_namespace(PROMETHEUS_OPERATOR, PROMETHEUS_NAMESPACE, prometheus_namespace),
                                       metrics)) if used]
