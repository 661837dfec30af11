"""The official chart's layout: components, ServiceAccounts, ports, and the add-ons it talks to (KEDA,
Prometheus)."""

from __future__ import annotations

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
