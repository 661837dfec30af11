"""`make validate`: offline checks of this GitOps repository, in layers (each imports only those above it):

report (Issue, Report, text/json/junit) <- objects (dicts, YAML, answers) <- build (kustomize) <- schemas
<- values (engine merges) <- chart (validate-values.tpl) <- policy (this stack) <- storage, sealed,
environments <- flux, appproject <- argocd <- jenkins <- cli (validate_repo, main).
"""

from airflow_gitops.validate.argocd import argo_chart_rules, check_argo_applications
from airflow_gitops.validate.build import (
    BuildError,
    discover_builds,
    find_kubectl,
    generated_kustomization,
    kustomization_file,
    kustomize_build,
)
from airflow_gitops.validate.chart import CHART_DEFAULTS, effective_values, key_skeleton, unknown_key_paths
from airflow_gitops.validate.cli import main, validate_repo
from airflow_gitops.validate.environments import check_engine_purity
from airflow_gitops.validate.objects import dig, env_of, find, load_answers, ns_of
from airflow_gitops.validate.policy import check_airflow_values
from airflow_gitops.validate.report import Issue, Report
from airflow_gitops.validate.sealed import check_sealed_secrets
from airflow_gitops.validate.values import argo_sources, argo_values, deep_merge, helm_values

__all__ = [
    "CHART_DEFAULTS", "BuildError", "Issue", "Report", "argo_chart_rules", "argo_sources", "argo_values",
    "check_airflow_values", "check_argo_applications", "check_engine_purity", "check_sealed_secrets",
    "deep_merge", "dig", "discover_builds", "effective_values", "env_of", "find", "find_kubectl",
    "generated_kustomization", "helm_values", "key_skeleton", "kustomization_file", "kustomize_build",
    "load_answers", "main", "ns_of", "unknown_key_paths", "validate_repo",
]
