"""Offline validation of this GitOps repo (`make validate`).

Builds every kustomization the cluster will apply (clusters/<cluster>/..., infrastructure,
deploy/overlays/<env>, ...) with kubectl kustomize, then checks each build: strict JSON Schemas
for Flux/SealedSecret/Argo kinds, kubernetes-validate for core kinds, cross references
(valuesFrom, Secrets, PVC->PV, dependsOn; Argo CD Applications against their AppProject, value
files and .copier-answers.yml) and the airflow chart's own rules on the merged Helm values
(HelmRelease or Application), because Flux and Argo never show Helm NOTES and the chart has no
values.schema.json. One line per problem (or JSON, or JUnit XML), exit 1 on errors.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from airflow_gitops.facts import KUBECTL_MIN_MINOR, KUBERNETES_VERSION, LEGACY_FLAVOR
from airflow_gitops.validate.alerts import check_prometheus_rules
from airflow_gitops.validate.argocd import check_argo_applications
from airflow_gitops.validate.build import BuildError, check_yaml_files, discover_builds, find_kubectl, kustomize_build
from airflow_gitops.validate.chart import load_chart_values
from airflow_gitops.validate.environments import (
    check_cluster_scoped,
    check_engine_purity,
    check_environments,
    check_namespace,
)
from airflow_gitops.validate.flux import check_flux_kustomizations, check_helmreleases
from airflow_gitops.validate.iam import check_iam
from airflow_gitops.validate.jenkins import check_jenkinsfile, deployed_images, jenkins_clouds
from airflow_gitops.validate.objects import (
    companion_objects,
    env_of,
    environment_answers,
    is_overlay,
    load_answers,
)
from airflow_gitops.validate.pins import check_pins
from airflow_gitops.validate.report import FORMATS, Issue, Report, as_text, render, text_line
from airflow_gitops.validate.schemas import SchemaStore, check_schemas
from airflow_gitops.validate.sealed import (
    check_ca_bundles,
    check_sealed_secrets,
    check_sealed_settings,
    check_stamps,
)
from airflow_gitops.validate.storage import check_volumes
from airflow_gitops.validate.values import deployed_releases


@dataclass(frozen=True)
class Run:
    """What one validation knows besides the builds."""

    repo: Path
    strict: bool
    answers: dict
    chart_defaults: dict | None  # the chart's values.yaml, when known (else the rules' own subset)
    chart_keys: dict | None  # its key tree, for the key-path check
    generated: set[Path]  # clusters/<cluster> dirs (Flux bootstrap paths, built from a generated kustomization)

    @property
    def engine(self) -> str | None:
        return self.answers.get("gitops_engine")


def validate_repo(repo: Path, strict: bool = False) -> Report:
    repo = repo.resolve()
    report = Report()
    kubectl = find_kubectl(repo)
    if kubectl is None:
        report.add("validate", Issue("ERROR", "", f"no kubectl >= 1.{KUBECTL_MIN_MINOR} found: run `make tools` "
                                     "(or set KUBECTL)"))
        return report
    report.extend(check_yaml_files(repo))
    answers = load_answers(repo)
    chart_defaults, chart_keys, problems = load_chart_values(repo)
    report.extend(problems)
    targets, generated = discover_builds(repo, answers.get("gitops_engine"))
    run = Run(repo, strict, answers, chart_defaults, chart_keys, generated)
    every = build_all(report, run, kubectl, targets)
    unchecked = check_builds(report, run, every)
    check_repo(report, run, every)
    if unchecked:
        where = "set AIRFLOW_GITOPS_SCHEMA_DIR or go online"
        if os.environ.get("AIRFLOW_GITOPS_SCHEMA_DIR"):
            where = "none for it in AIRFLOW_GITOPS_SCHEMA_DIR, which turns the online catalog off"
        report.add("schemas", Issue("WARN", "", f"not schema-checked (no schema: {where}): "
                                                f"{', '.join(sorted(unchecked))}"))
    return report


def build_all(report: Report, run: Run, kubectl: str, targets: list[Path]) -> dict[str, list[dict]]:
    """Every build root with kustomize (Argo CD's load restrictions under Argo CD): name -> objects."""
    if not targets:
        report.add("validate", Issue("ERROR", "", f"no kustomization or clusters/<env> dir found under {run.repo}"))
    every: dict[str, list[dict]] = {}
    for target in targets:
        name = str(target.relative_to(run.repo)) or "."
        report.targets.append(name)
        try:
            every[name] = kustomize_build(kubectl, target, root_only=run.engine == "argocd")
        except (BuildError, OSError, subprocess.SubprocessError) as exc:
            report.add(name, Issue("ERROR", "", f"kustomize build failed: {exc}"))
            continue
        report.objects += len(every[name])
    return every


def check_builds(report: Report, run: Run, every: dict[str, list[dict]]) -> set[str]:
    """The checks of each build on its own (an overlay together with its secrets/ build).
    Returns the kinds that had no schema."""
    store = SchemaStore(run.repo, os.environ.get("AIRFLOW_GITOPS_SCHEMA_DIR") or None)
    k8s_version = os.environ.get("KUBERNETES_VERSION", KUBERNETES_VERSION)
    unchecked: set[str] = set()
    for name, objs in every.items():
        # What the namespace holds: an overlay and its secrets/ (Flux applies them as two Kustomizations).
        context = objs + companion_objects(name, every)
        issues, missing = check_schemas(objs, store, k8s_version)
        unchecked |= missing
        issues += check_helmreleases(objs, run.chart_defaults, run.chart_keys, context, run.repo)
        issues += check_sealed_secrets(objs, env_of(name), run.strict)
        issues += check_volumes(context if is_overlay(name) else objs)
        issues += check_flux_kustomizations(objs, run.repo, run.generated)
        issues += check_prometheus_rules(objs)
        if is_overlay(name):  # an environment overlay
            issues += check_namespace(context)
        for issue in dict.fromkeys(issues):  # an issue of the shared context once per build
            report.add(name, issue)
    return unchecked


def check_repo(report: Report, run: Run, every: dict[str, list[dict]]) -> None:
    """The checks across builds: environments side by side, the engine, Argo CD, CA bundles, Jenkins."""
    # clusters/<cluster> are separate clusters by design: their cluster-scoped objects may differ.
    built = {name: objs for name, objs in every.items() if (run.repo / name).resolve() not in run.generated}
    report.extend(check_environments(every, run.repo))
    report.extend(check_cluster_scoped(built, run.repo) + check_engine_purity(every, run.engine))
    report.extend(check_argo_applications(every, run.repo, run.chart_defaults, run.chart_keys))
    report.extend(check_ca_bundles(run.repo, run.strict))
    report.extend(check_sealed_settings(run.repo))
    report.extend(check_stamps(run.repo, str(run.answers.get("airflow_chart") or LEGACY_FLAVOR), run.strict))
    report.extend(check_pins(run.repo, run.answers, str(run.answers.get("airflow_chart") or LEGACY_FLAVOR)))
    report.extend(check_iam(run.repo, deployed_releases(every, run.repo)))
    jenkinsfile = run.repo / "Jenkinsfile"
    if jenkinsfile.is_file():
        overlays = {Path(n).name: objs + companion_objects(n, every) for n, objs in built.items()
                    if Path(n).parent.name == "overlays"}
        images = deployed_images(every, run.repo)
        issues = check_jenkinsfile(jenkinsfile.read_text(), overlays, images,
                                   run.answers.get("jenkins_service_account"), environment_answers(run.repo))
        report.extend(("Jenkinsfile", issue) for issue in issues)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    parser.add_argument("--strict", action="store_true", help="placeholder secrets are errors (also STRICT=1)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (one line per problem), json, or junit (JUnit XML for Jenkins)")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="write the --format report to FILE and the text report to stdout")
    parser.add_argument("--yaml-only", action="store_true",
                        help="only check that every YAML file parses (no kubectl; the pre-commit hook)")
    parser.add_argument("--jenkins-clouds", action="store_true",
                        help="list the Jenkins Kubernetes clouds the DAG publishing job needs (from the Jenkinsfile)")
    args = parser.parse_args(argv)
    if args.jenkins_clouds:
        jenkinsfile = args.repo / "Jenkinsfile"
        if not jenkinsfile.is_file():
            print(f"no {jenkinsfile}", file=sys.stderr)
            return 2
        sys.stdout.writelines(f"{line}\n" for line in jenkins_clouds(jenkinsfile.read_text(),
                                                                    environment_answers(args.repo)))
        return 0
    if args.yaml_only:
        found = check_yaml_files(args.repo)
        sys.stdout.writelines(f"{text_line(where, issue)}\n" for where, issue in found)
        return 1 if found else 0
    strict = args.strict or os.environ.get("STRICT", "").lower() in ("1", "true", "yes")
    report = validate_repo(args.repo, strict)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render(report, args.format))
        sys.stdout.write(as_text(report))
    else:
        sys.stdout.write(render(report, args.format))
    return 1 if report.errors else 0
