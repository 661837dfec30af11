"""Argo CD Applications: their sources (https://argo-cd.readthedocs.io/en/stable/user-guide/multiple_sources/),
value files, release name, the answers they must follow, their AppProject, and the chart's and this
stack's rules on the values Argo CD hands to `helm template`."""

from __future__ import annotations

from pathlib import Path

from airflow_gitops.build import kustomization_file
from airflow_gitops.facts import ANSWERS_FILE, DNS1123_LABEL, EXACT_VERSION
from airflow_gitops.objects import dig, engine_of, load_answers, ref
from airflow_gitops.validate.appproject import check_app_project, check_project_limits
from airflow_gitops.validate.community import CHART
from airflow_gitops.validate.flavors import AirflowRelease, values_rules
from airflow_gitops.validate.report import ERROR, WARN, Issue, about, errors
from airflow_gitops.values import VALUES_REF, argo_sources, argo_values, chart_flavor, source_refs

HELM_RELEASE_NAME_MAX = 53  # Helm's own limit (the airflow chart's is lower, checked with the values)
Builds = dict[str, list[dict]]


def check_argo_applications(builds: Builds, repo: Path, chart_defaults: dict | None = None,
                            chart_keys: dict | None = None) -> list[Issue]:
    """AppProjects and Applications of every build, against the repo files and answers."""
    answers = load_answers(repo)
    chart_keys = chart_keys if chart_keys is not None else chart_defaults
    issues: list[Issue] = []
    for build, objs in builds.items():
        found: list[Issue] = []
        for obj in (o for o in objs if engine_of(o) == "argocd"):
            if obj.get("kind") == "AppProject":
                found += check_app_project(obj)
            elif obj.get("kind") == "Application":
                sources = argo_sources(obj)
                found += _argo_source_rules(obj, sources, repo)
                found += _retry_rules(obj)
                found += _argo_answer_rules(obj, sources, answers)
                found += check_project_limits(obj, sources, objs, deployed(sources, builds))
                found += _argo_airflow_values(obj, sources, repo, builds, chart_defaults, chart_keys)
        issues += [issue.at(build) for issue in found]
    return issues


def _retry_rules(app: dict) -> list[Issue]:
    """An automated sync's retries re-apply the revision the operation started with, unless
    `retry.refresh` (argo-cd#11494): a first sync of placeholder SealedSecrets, retried without
    limit, would never take the sealed commit pushed after it."""
    retry = dig(app, "spec.syncPolicy.retry") or {}
    if not retry or retry.get("limit", 0) == 0 or retry.get("refresh") is True:
        return []
    return [Issue(ERROR, ref(app), "spec.syncPolicy.retry: retries re-sync the revision the sync started with, so "
                  "a commit pushed meanwhile (the sealed secrets) is never taken: set retry.refresh: true")]


def source_path(src: dict) -> str | None:
    """The repo-relative directory a git source deploys (None: a chart or a pure `ref`)."""
    if src.get("chart") or src.get("path") is None:
        return None
    return Path(str(src["path"]).strip("/") or ".").as_posix()


def deployed(sources: list[tuple[str, dict]], builds: Builds) -> list[tuple[str, list[dict] | None]]:
    """(path, build objects or None if not built) of every git source with a path."""
    paths = [p for _, s in sources if (p := source_path(s)) is not None]
    return [(p, builds.get(p)) for p in paths]


def _argo_source_rules(app: dict, sources: list[tuple[str, dict]], repo: Path) -> list[Issue]:
    spec = app.get("spec") or {}
    found: list[Issue] = []
    if spec.get("sources") and spec.get("source"):
        found += errors(["spec.source and spec.sources are both set: Argo CD ignores spec.source"])
    if not sources:
        found += errors(["neither spec.source nor spec.sources is set"])
    refs = source_refs(sources)
    for label, src in sources:
        found += errors(_chart_source_rules(label, src))
        found += _release_rules(app, label, src)
        found += errors(_path_rules(label, src, repo))
        for i, entry in enumerate(dig(src, "helm.valueFiles") or []):
            found += about(_value_file_problem(str(entry), src, refs, repo), "", f"{label}: helm.valueFiles[{i}] "
                                                                                f"{entry!r}: ")
    return about(found, ref(app))


def _chart_source_rules(label: str, src: dict) -> list[str]:
    chart = src.get("chart")
    if not chart:
        return []
    errors = []
    if src.get("ref"):
        errors.append(f"{label}: a `ref` source cannot have `chart` ({chart!r})")
    revision = str(src.get("targetRevision") or "")
    if not EXACT_VERSION.match(revision):
        errors.append(f"{label}: chart {chart} targetRevision must pin an exact version "
                      f"(got {revision or 'unset = latest'!r})")
    return errors


def _release_rules(app: dict, label: str, src: dict) -> list[Issue]:
    chart = src.get("chart")
    if not chart:
        return []
    release = dig(src, "helm.releaseName")
    found: list[Issue] = []
    if not release and chart == "airflow":
        found.append(Issue(ERROR, "", f"{label}: helm.releaseName must be set (default is the Application name "
                      f"{dig(app, 'metadata.name')!r}, which counts against the chart's "
                      f"{CHART.release_name_max}-character limit)"))
    release = str(release or dig(app, "metadata.name", ""))
    if not DNS1123_LABEL.match(release):
        found.append(Issue(ERROR, "", f"{label}: helm.releaseName {release!r} is not a DNS-1123 label"))
    elif chart != "airflow" and len(release) > HELM_RELEASE_NAME_MAX:
        found.append(Issue(ERROR, "", f"{label}: helm.releaseName {release!r} is longer than {HELM_RELEASE_NAME_MAX} "
                      "characters"))
    return found


def _path_rules(label: str, src: dict, repo: Path) -> list[str]:
    path = source_path(src)
    if path is None:
        return []
    target = repo / path
    if not target.is_dir():
        return [f"{label}: path {src['path']!r} does not exist in the repo"]
    if kustomization_file(target) is None and not (target / "Chart.yaml").is_file():
        return [f"{label}: path {src['path']!r} has no kustomization.yaml (Argo CD would apply its "
                "YAML files as a plain directory)"]
    return []


def _value_file_problem(entry: str, src: dict, refs: set[str], repo: Path) -> list[Issue]:
    """The problem of one helm.valueFiles entry, if it does not resolve."""
    match = VALUES_REF.match(entry)
    if match:
        name, rel = match.groups()
        if name not in refs:
            return [Issue(ERROR, "", f"no source has `ref: {name}`")]
        target = (repo / rel).resolve()
        if not target.is_relative_to(repo.resolve()):
            return [Issue(ERROR, "", "escapes the repository")]
        if not target.is_file():
            level = WARN if dig(src, "helm.ignoreMissingValueFiles") else ERROR
            return [Issue(level, "", f"{rel!r} does not exist in the repo (`${name}/` paths start at the repo root)")]
        return []
    if "$" in entry:
        return [Issue(ERROR, "", "`$<ref>/` is only expanded at the start of the path")]
    if src.get("chart"):
        return [Issue(WARN, "", "a relative value file resolves inside the chart "
                                "(use `$values/<path from the repo root>`)")]
    path = source_path(src)
    if path is not None and (repo / path).is_dir() and not (repo / path / entry).is_file():
        return [Issue(ERROR, "", f"not found in {path}")]
    return []


def _argo_answer_rules(app: dict, sources: list[tuple[str, dict]], answers: dict) -> list[Issue]:
    """Every git source deploys this repository at the revision the answers name."""
    issues = []
    for label, src in sources:
        if src.get("chart"):
            continue
        for key, answer in (("repoURL", "git_repo_url"), ("targetRevision", "git_revision")):
            want, have = answers.get(answer), src.get(key)
            if want and str(have or "") != str(want):
                issues.append(Issue(ERROR, ref(app), f"{label}: {key} {have or 'unset = HEAD'!r} != {answer} "
                                    f"{want!r} in {ANSWERS_FILE}"))
    return issues


def _argo_airflow_values(app: dict, sources: list[tuple[str, dict]], repo: Path, builds: Builds,
                         chart_defaults: dict | None, chart_keys: dict | None = None) -> list[Issue]:
    found: list[Issue] = []
    refs = source_refs(sources)
    for label, src in (x for x in sources if x[1].get("chart") == "airflow"):
        values, value_errors = argo_values(src, refs, repo)
        found += errors(f"{label}: {msg}" for msg in value_errors)
        if values is None or value_errors:
            continue  # partial values would only add noise to the real problem
        context, unbuilt = _deployed_context(sources, builds)
        found += values_rules(AirflowRelease(
            values, chart_flavor(src.get("chart"), src.get("targetRevision"), src.get("repoURL")),
            str(src.get("targetRevision")), str(dig(src, "helm.releaseName") or dig(app, "metadata.name", "")),
            dig(app, "spec.destination.namespace"), context, unbuilt, "argocd", repo, chart_defaults, chart_keys))
    return about(found, ref(app))


def _deployed_context(sources: list[tuple[str, dict]], builds: Builds) -> tuple[list[dict] | None, str]:
    """(what the Application's path sources deploy, or None with why: some are not built, or none has a path)."""
    sources_deployed = deployed(sources, builds)
    unbuilt = [p for p, objs in sources_deployed if objs is None]
    if not sources_deployed or unbuilt:
        return None, f"{', '.join(unbuilt)} not built" if unbuilt else "no git source with a path deploys them"
    return [o for _, built in sources_deployed for o in built or []], ""
