"""Rules of the chart and Airflow answers: the release name, the chart and its version, the image,
the executor and the features only one chart has (extra pip packages, KEDA, metrics).
"""

from __future__ import annotations

from typing import Any

from airflow_gitops import facts

from .base import DNS_LABEL, boolean, matches


def project_name(value: Any) -> str:
    err = matches("project_name", value, DNS_LABEL.pattern,
                  "must be a DNS-1123 label (lowercase letters, digits, '-', "
                  "starting and ending with a letter or digit)")
    limit = min(c.release_name_max for c in facts.CHARTS.values())
    if not err and len(value) > limit:
        err = (f"project_name is {len(value)} characters: it is also the Helm release name, "
               f"which the chart limits to {limit}")
    return err


def airflow_chart(value: Any) -> str:
    if value not in facts.CHART_FLAVORS:
        return f"airflow_chart {value!r} is invalid: must be one of {', '.join(facts.CHART_FLAVORS)}"
    return ""


def chart_version(value: Any, flavor: Any = facts.LEGACY_FLAVOR) -> str:
    err = matches("chart_version", value, r"[0-9]+\.[0-9]+\.[0-9]+",
                  "must be an exact chart version like 1.20.0 (GitOps pins, never ranges)")
    known = facts.chart_versions(str(flavor))
    if not err and value not in known:
        err = (f"chart_version {value!r} is not one this template knows the rules of for the {flavor} chart: "
               f"use one of {', '.join(known)}")
    return err


def image_repository(value: Any) -> str:
    return matches("airflow_image_repository", value,
                   r"[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*",
                   "must be an image repository like apache/airflow (no tag, no digest)")


def _chart(chart_version: Any, flavor: Any) -> facts.Chart:
    flavor = str(flavor or facts.LEGACY_FLAVOR)
    found = facts.chart(flavor, str(chart_version)) if chart_version else facts.chart(flavor)
    return found or facts.chart(flavor) or facts.chart(facts.LEGACY_FLAVOR)  # type: ignore[return-value]


def image_tag(value: Any, chart_version: Any = None, flavor: Any = None) -> str:
    chart = _chart(chart_version, flavor)
    if not isinstance(value, str) or not chart.supports(value):
        return (f"airflow_image_tag {value!r} is invalid: the {chart.label} deploys Airflow "
                f"{chart.airflow_range} here: use a tag like {chart.default_tag} (no 'latest')")
    return ""


def executor(value: Any, flavor: Any = None) -> str:
    if value not in facts.EXECUTORS:
        return f"executor {value!r} is invalid: must be one of {', '.join(facts.EXECUTORS)}"
    chart = _chart(None, flavor)
    if value not in chart.executors:
        return (f"executor {value!r} is invalid with the {chart.label}: Airflow 3 removed it; use one of "
                f"{', '.join(chart.executors)}")
    return ""


def extra_pip_packages(value: Any, flavor: Any = "community") -> str:
    """PEP 508 requirements, pinned: an unpinned package changes under you at every pod start. Only
    the community chart installs them (airflow.extraPipPackages): the official chart has no such
    value, so there they would be silently dropped."""
    from packaging.requirements import InvalidRequirement, Requirement  # copier depends on it

    if value in (None, "", []):
        return ""
    if flavor == "official":
        return ("extra_pip_packages is not supported with the official chart, which has no install-at-start "
                "value: build an image FROM the Airflow image with them (pip install \"apache-airflow==<version>\" "
                "<packages>) and answer airflow_image_repository and airflow_image_tag with it; or answer []")
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "extra_pip_packages must be a YAML list of strings, e.g. ['apache-airflow-providers-slack==8.6.0']"
    for item in value:
        try:
            req = Requirement(item)
        except InvalidRequirement as exc:
            return f"extra_pip_packages entry {item!r} is not a PEP 508 requirement: {exc}"
        if req.url:
            return f"extra_pip_packages entry {item!r} uses a URL: only index packages are allowed"
        if not any(spec.operator in ("==", "===", "~=") for spec in req.specifier):
            return (f"extra_pip_packages entry {item!r} is not pinned: use ==VERSION "
                    "(unpinned packages are re-resolved at every pod start)")
    return ""


def keda_autoscaling(value: Any, flavor: Any = "official", celery: Any = True) -> str:
    if err := boolean("keda_autoscaling")(value):
        return err
    if value is True and (flavor != "official" or not celery):
        return ("keda_autoscaling scales Celery workers on the official chart (workers.celery.keda): "
                "answer false, or use airflow_chart=official with a Celery executor")
    return ""


def metrics(value: Any, flavor: Any = "official") -> str:
    if value not in facts.METRICS_CHOICES:
        return f"metrics {value!r} is invalid: must be one of {', '.join(facts.METRICS_CHOICES)}"
    if value != "none" and flavor != "official":
        return (f"metrics {value!r} needs the official chart (the community chart has no StatsD settings): "
                "answer none, or use airflow_chart=official")
    return ""
