"""Flux objects: each HelmRelease's chart source, pinned version, release name and values (the
chart's and this stack's rules on what helm-controller will hand to Helm,
https://github.com/fluxcd/helm-controller), and each Kustomization's path, source and dependsOn
(https://fluxcd.io/flux/components/kustomize/kustomizations/)."""

from __future__ import annotations

from pathlib import Path

from airflow_gitops.build import kustomization_file
from airflow_gitops.facts import DNS1123_LABEL, EXACT_VERSION, FLUX_UPGRADE_STRATEGY
from airflow_gitops.objects import dig, find, ns_of, ref
from airflow_gitops.validate.flavors import AirflowRelease, values_rules
from airflow_gitops.validate.report import WARN, Issue, about, errors
from airflow_gitops.values import chart_flavor, helm_values

BOOTSTRAP_SOURCE = ("GitRepository", "flux-system")  # made by `flux bootstrap`, not by this repo


def check_helmreleases(objs: list[dict], chart_defaults: dict | None = None,
                       chart_keys: dict | None = None, context: list[dict] | None = None,
                       repo: Path | None = None) -> list[Issue]:
    """`context`: every object of the release's namespace (the Secrets its values name may come
    from another Kustomization of the same environment). `repo`: where `make render` cached charts."""
    chart_keys = chart_keys if chart_keys is not None else chart_defaults
    context = context if context is not None else objs
    issues: list[Issue] = []
    for hr in (o for o in objs if o.get("kind") == "HelmRelease"):
        issues += about(_release_rules(hr, objs, chart_defaults, chart_keys, context, repo), ref(hr))
    return issues


def _release_rules(hr: dict, objs: list[dict], chart_defaults: dict | None, chart_keys: dict | None,
                   context: list[dict], repo: Path | None = None) -> list[Issue]:
    """The issues of one HelmRelease."""
    spec = hr.get("spec") or {}
    chart = dig(spec, "chart.spec") or {}
    found = errors(_chart_source_rules(hr, chart, objs))
    release, problems = _release_name(hr, spec)
    is_airflow = chart.get("chart") == "airflow"
    if not is_airflow and len(release) > 40:
        problems.append(f"spec.releaseName {release!r} is longer than 40 characters")
    found += errors(problems)
    if is_airflow:
        found += errors(_upgrade_rules(spec))
    values, value_errors, warnings = helm_values(hr, objs)
    found += errors(value_errors) + [Issue(WARN, "", msg) for msg in warnings]
    if not is_airflow or value_errors or warnings:
        return found  # partial values would only add noise to the real problem
    return found + values_rules(AirflowRelease(
        values, chart_flavor(chart.get("chart"), chart.get("version")), str(chart.get("version")), release,
        spec.get("targetNamespace") or ns_of(hr), context, "", "flux", repo, chart_defaults, chart_keys))


def _chart_source_rules(hr: dict, chart: dict, objs: list[dict]) -> list[str]:
    if not chart:
        return []
    errors = []
    source = chart.get("sourceRef") or {}
    kind = source.get("kind", "HelmRepository")
    src_ns = source.get("namespace") or ns_of(hr)
    external = (kind, source.get("name")) == BOOTSTRAP_SOURCE
    if not external and find(objs, kind, str(source.get("name")), src_ns) is None:
        errors.append(f"chart.spec.sourceRef {kind}/{source.get('name')} not found in namespace {src_ns} in this build")
    version = str(chart.get("version", ""))
    if not EXACT_VERSION.match(version):
        errors.append(f"chart.spec.version must pin an exact version (got {version or 'unset = *'!r})")
    return errors


def _upgrade_rules(spec: dict) -> list[str]:
    """helm-controller remediates a failed upgrade (RemediateOnFailure, the default) by a rollback
    (or an uninstall) once `retries` > 0 or `remediateLastFailure`: for Airflow that puts the old
    image on a schema the new release's migrations already moved forward."""
    upgrade = spec.get("upgrade") or {}
    if dig(upgrade, "strategy.name") == FLUX_UPGRADE_STRATEGY:
        return []
    remediation = upgrade.get("remediation") or {}
    retries = remediation.get("retries", 0)
    if retries == 0 and not remediation.get("remediateLastFailure", False):
        return []
    how = remediation.get("strategy", "rollback")
    return [f"upgrade: a failed upgrade would be remediated by {how} (upgrade.remediation), onto a schema the new "
            f"release's migrations may already have moved forward (they are forward-only): set "
            f"upgrade.strategy.name: {FLUX_UPGRADE_STRATEGY} (Flux >= 2.7), or upgrade.remediation.retries: 0"]


def _release_name(hr: dict, spec: dict) -> tuple[str, list[str]]:
    """(the release name helm-controller uses, problems with it)."""
    release = spec.get("releaseName")
    if not release:
        default = "-".join(filter(None, [spec.get("targetNamespace"), dig(hr, "metadata.name")]))
        return default, ["spec.releaseName must be set explicitly (default is [<targetNamespace>-]<name>)"]
    if not DNS1123_LABEL.match(release):
        return release, [f"spec.releaseName {release!r} is not a DNS-1123 label"]
    return release, []


def check_flux_kustomizations(objs: list[dict], repo: Path, generated_dirs: set[Path] | None = None) -> list[Issue]:
    issues: list[Issue] = []
    for ks in objs:
        if ks.get("kind") != "Kustomization" or not str(ks.get("apiVersion", "")).startswith("kustomize.toolkit"):
            continue
        issues += errors(_kustomization_rules(ks, objs, repo, generated_dirs or set()), ref(ks))
    return issues


def _kustomization_rules(ks: dict, objs: list[dict], repo: Path, generated_dirs: set[Path]) -> list[str]:
    spec = ks.get("spec") or {}
    errors = []
    path = str(spec.get("path") or ".").removeprefix("./")
    target = (repo / path).resolve()
    if not target.is_dir():
        errors.append(f"spec.path {spec.get('path')!r} does not exist in the repo")
    elif kustomization_file(target) is None and target not in generated_dirs:
        errors.append(f"spec.path {spec.get('path')!r} has no kustomization.yaml")
    for dep in spec.get("dependsOn") or []:
        dep_ns = dep.get("namespace") or ns_of(ks)
        if find(objs, "Kustomization", str(dep.get("name")), dep_ns) is None:
            errors.append(f"dependsOn {dep_ns}/{dep.get('name')}: no such Kustomization in this build")
    src = spec.get("sourceRef") or {}
    src_ns = src.get("namespace") or ns_of(ks)
    if (src.get("kind"), src.get("name")) != BOOTSTRAP_SOURCE and find(
            objs, str(src.get("kind")), str(src.get("name")), src_ns) is None:
        errors.append(f"sourceRef {src.get('kind')}/{src_ns}/{src.get('name')} not found in this build")
    return errors
