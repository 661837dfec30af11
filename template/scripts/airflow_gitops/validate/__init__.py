"""`make validate`: offline checks of this GitOps repository, in layers (each imports only those above it).

Shared with render and preflight, outside this package: airflow_gitops.objects (dicts, YAML, answers)
<- build (kustomize) <- values (engine merges) <- chart_cache. Here: report (Issue, Level, Report,
text/json/junit) <- files, schemas <- community, official (each chart flavor's rules) <- policy (this
stack) <- flavors (the one choice of the flavor's rules) <- storage, sealed, environments, alerts, pins,
iam <- flux, appproject <- argocd <- jenkins <- checks (BUILD_CHECKS, REPO_CHECKS) <- cli (validate_repo, main).
"""

from airflow_gitops.validate.argocd import check_argo_applications
from airflow_gitops.validate.cli import main, validate_repo
from airflow_gitops.validate.community import (
    CHART_DEFAULTS,
    argo_chart_rules,
    effective_values,
    key_skeleton,
    unknown_key_paths,
)
from airflow_gitops.validate.environments import check_engine_purity
from airflow_gitops.validate.policy import check_airflow_values
from airflow_gitops.validate.report import Issue, Level, Report
from airflow_gitops.validate.sealed import check_sealed_secrets

__all__ = [
    "CHART_DEFAULTS", "Issue", "Level", "Report", "argo_chart_rules", "check_airflow_values",
    "check_argo_applications", "check_engine_purity", "check_sealed_secrets", "effective_values", "key_skeleton",
    "main", "unknown_key_paths", "validate_repo",
]
