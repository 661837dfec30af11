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
from pathlib import Path

from airflow_gitops.build import BuildError, discover_builds, find_kubectl, kustomize_build
from airflow_gitops.facts import KUBECTL_MIN_MINOR, KUBERNETES_VERSION
from airflow_gitops.objects import environment_answers, load_answers
from airflow_gitops.validate.checks import BUILD_CHECKS, REPO_CHECKS, Build, Run
from airflow_gitops.validate.community import load_chart_values
from airflow_gitops.validate.files import check_yaml_files
from airflow_gitops.validate.jenkins import jenkins_clouds
from airflow_gitops.validate.report import ERROR, FORMATS, Issue, Report, as_text, render, text_line
from airflow_gitops.validate.schemas import SchemaStore


def validate_repo(repo: Path, strict: bool = False) -> Report:
    repo = repo.resolve()
    report = Report()
    kubectl = find_kubectl(repo)
    if kubectl is None:
        report.add(Issue(ERROR, "", f"no kubectl >= 1.{KUBECTL_MIN_MINOR} found: run `make tools` "
                         "(or set KUBECTL)", "validate"))
        return report
    report.extend(check_yaml_files(repo))
    answers = load_answers(repo)
    chart_defaults, chart_keys, problems = load_chart_values(repo)
    report.extend(problems)
    targets, generated = discover_builds(repo, answers.get("gitops_engine"))
    run = Run(repo, strict, answers, chart_defaults, chart_keys, generated,
              SchemaStore(repo, os.environ.get("AIRFLOW_GITOPS_SCHEMA_DIR") or None),
              os.environ.get("KUBERNETES_VERSION", KUBERNETES_VERSION))
    build_all(report, run, kubectl, targets)
    for name, objs in run.every.items():
        issues = [issue for check in BUILD_CHECKS for issue in check(Build(name, objs, run))]
        report.extend(issue.at(name) for issue in dict.fromkeys(issues))  # the shared context's issue once a build
    for check, place in REPO_CHECKS:
        report.extend(issue.at(place) for issue in check(run))
    return report


def build_all(report: Report, run: Run, kubectl: str, targets: list[Path]) -> None:
    """Every build root with kustomize (Argo CD's load restrictions under Argo CD) into run.every."""
    if not targets:
        report.add(Issue(ERROR, "", f"no kustomization or clusters/<env> dir found under {run.repo}", "validate"))
    for target in targets:
        name = str(target.relative_to(run.repo)) or "."
        report.targets.append(name)
        try:
            run.every[name] = kustomize_build(kubectl, target, root_only=run.engine == "argocd")
        except (BuildError, OSError, subprocess.SubprocessError) as exc:
            report.add(Issue(ERROR, "", f"kustomize build failed: {exc}", name))
            continue
        report.objects += len(run.every[name])


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
        sys.stdout.writelines(f"{text_line(issue)}\n" for issue in found)
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
