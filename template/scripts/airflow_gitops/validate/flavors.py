"""The one place that picks the community or the official chart's rules for the values of an Airflow
release, whichever engine installs it (a Flux HelmRelease or an Argo CD Application)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_gitops.validate.community import argo_chart_rules, unknown_key_messages
from airflow_gitops.validate.official import official_rules
from airflow_gitops.validate.policy import check_airflow_values, check_value_refs
from airflow_gitops.validate.report import INFO, Issue, about


@dataclass(frozen=True)
class AirflowRelease:
    """The merged values of one airflow-chart release and what its rules read besides."""

    values: dict
    flavor: str | None  # "official" / "community" (airflow_gitops.values.chart_flavor), None if unknown
    version: str  # the chart version it pins
    release: str  # the Helm release name
    namespace: str | None
    context: list[dict] | None  # the objects of the environment's namespace (None: not all of them built)
    unbuilt: str  # why `context` is None
    engine: str  # "flux" or "argocd"
    repo: Path | None  # where `make render` cached the chart
    chart_defaults: dict | None  # the community chart's values.yaml, when known
    chart_keys: dict | None  # its key tree


def values_rules(r: AirflowRelease) -> list[Issue]:
    """Every rule on the release's values, messages prefixed `values: `."""
    if r.flavor == "official":
        return about(official_rules(r.values, r.version, r.repo, r.namespace, r.context, r.release), "", "values: ")
    found = check_airflow_values(r.values, r.release, r.chart_defaults)
    if r.engine == "argocd":
        found += argo_chart_rules(r.values, r.chart_defaults)
    found += unknown_key_messages(r.values, r.chart_keys)
    if r.context is None:
        found.append(Issue(INFO, "", f"Secret/PVC references not checked ({r.unbuilt})"))
    else:
        found += check_value_refs(r.values, r.namespace, r.context)
    return about(found, "", "values: ")
