"""Every check `make validate` runs, in the order it reports them: one list per build, one per
repository. A check takes the one context it is given and yields Issues; the runner (cli.py) puts
a build check's issues in their build, and a repository check's in the place it names (else the
place registered here). Adding a rule: write it in its module, add it to one list here."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from airflow_gitops.facts import LEGACY_FLAVOR
from airflow_gitops.objects import companion_objects, env_of, environment_answers, is_overlay
from airflow_gitops.validate.alerts import check_prometheus_rules
from airflow_gitops.validate.argocd import check_argo_applications
from airflow_gitops.validate.environments import (
    check_cluster_scoped,
    check_engine_purity,
    check_environments,
    check_namespace,
)
from airflow_gitops.validate.flux import check_flux_kustomizations, check_helmreleases
from airflow_gitops.validate.iam import check_iam
from airflow_gitops.validate.jenkins import check_jenkinsfile, deployed_images
from airflow_gitops.validate.pins import check_pins
from airflow_gitops.validate.report import WARN, Issue
from airflow_gitops.validate.schemas import SchemaStore, check_schemas
from airflow_gitops.validate.sealed import check_ca_bundles, check_sealed_secrets, check_sealed_settings, check_stamps
from airflow_gitops.validate.storage import check_volumes
from airflow_gitops.values import deployed_releases


@dataclass
class Run:
    """What one validation knows: the repository, its answers, the chart data and every build."""

    repo: Path
    strict: bool
    answers: dict
    chart_defaults: dict | None  # the chart's values.yaml, when known (else the rules' own subset)
    chart_keys: dict | None  # its key tree, for the key-path check
    generated: set[Path]  # clusters/<cluster> dirs (Flux bootstrap paths, built from a generated kustomization)
    schemas: SchemaStore
    k8s_version: str
    every: dict[str, list[dict]] = field(default_factory=dict)  # build name -> its objects
    unchecked: set[str] = field(default_factory=set)  # kinds no schema was found for

    @property
    def engine(self) -> str | None:
        return self.answers.get("gitops_engine")

    @property
    def flavor(self) -> str:
        """The airflow_chart answer (a repository from before it has the community chart)."""
        return str(self.answers.get("airflow_chart") or LEGACY_FLAVOR)

    @property
    def built(self) -> dict[str, list[dict]]:
        """The builds but clusters/<cluster>: separate clusters by design, whose cluster-scoped objects may differ."""
        return {name: objs for name, objs in self.every.items() if (self.repo / name).resolve() not in self.generated}


@dataclass(frozen=True)
class Build:
    """One build and what its namespace holds: an overlay together with its secrets/ build (Flux
    applies them as two Kustomizations)."""

    name: str
    objs: list[dict]
    run: Run

    @property
    def context(self) -> list[dict]:
        return self.objs + companion_objects(self.name, self.run.every)

    @property
    def overlay(self) -> bool:
        return is_overlay(self.name)


def _schemas(b: Build) -> list[Issue]:
    issues, missing = check_schemas(b.objs, b.run.schemas, b.run.k8s_version)
    b.run.unchecked.update(missing)
    return issues


def _jenkinsfile(run: Run) -> list[Issue]:
    jenkinsfile = run.repo / "Jenkinsfile"
    if not jenkinsfile.is_file():
        return []
    overlays = {Path(n).name: objs + companion_objects(n, run.every) for n, objs in run.built.items()
                if Path(n).parent.name == "overlays"}
    return check_jenkinsfile(jenkinsfile.read_text(), overlays, deployed_images(run.every, run.repo),
                             run.answers.get("jenkins_service_account"), environment_answers(run.repo))


def _unchecked(run: Run) -> list[Issue]:
    if not run.unchecked:
        return []
    where = "set AIRFLOW_GITOPS_SCHEMA_DIR or go online"
    if os.environ.get("AIRFLOW_GITOPS_SCHEMA_DIR"):
        where = "none for it in AIRFLOW_GITOPS_SCHEMA_DIR, which turns the online catalog off"
    return [Issue(WARN, "", f"not schema-checked (no schema: {where}): {', '.join(sorted(run.unchecked))}")]


BUILD_CHECKS: tuple[Callable[[Build], Iterable[Issue]], ...] = (
    _schemas,
    lambda b: check_helmreleases(b.objs, b.run.chart_defaults, b.run.chart_keys, b.context, b.run.repo),
    lambda b: check_sealed_secrets(b.objs, env_of(b.name), b.run.strict),
    lambda b: check_volumes(b.context if b.overlay else b.objs),
    lambda b: check_flux_kustomizations(b.objs, b.run.repo, b.run.generated),
    lambda b: check_prometheus_rules(b.objs),
    lambda b: check_namespace(b.context) if b.overlay else [],  # an environment overlay
)

# (check, the place its issues are in when it names none)
REPO_CHECKS: tuple[tuple[Callable[[Run], Iterable[Issue]], str], ...] = (
    (lambda run: check_environments(run.every, run.repo), ""),
    (lambda run: check_cluster_scoped(run.built, run.repo), ""),
    (lambda run: check_engine_purity(run.every, run.engine), ""),
    (lambda run: check_argo_applications(run.every, run.repo, run.chart_defaults, run.chart_keys), ""),
    (lambda run: check_ca_bundles(run.repo, run.strict), ""),
    (lambda run: check_sealed_settings(run.repo), ""),
    (lambda run: check_stamps(run.repo, run.flavor, run.strict), ""),
    (lambda run: check_pins(run.repo, run.answers, run.flavor), ""),
    (lambda run: check_iam(run.repo, deployed_releases(run.every, run.repo)), ""),
    (_jenkinsfile, "Jenkinsfile"),
    (_unchecked, "schemas"),
)
