"""Story: a platform engineer answers `metrics: prometheus-operator` and gets Airflow's StatsD metrics
in Prometheus and alerts on what stops Airflow. The rendered PrometheusRule runs in real promtool
(Debian's prometheus package, `make runtime`) against series that must fire each alert and series
that must not; the ServiceMonitor must select the chart's metric Services by their real port names,
the NetworkPolicies must let StatsD and the scrape through, and both objects must pass the
operator's CRD types (tests/standins/crd_types.mjs). tests/test_runtime_official.py
checks that real Airflow (each chart version's newest proven release) emits the metrics the alerts read."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops import facts
from helpers.make import run_validate
from helpers.paths import ROOT, skip_or_fail
from helpers.render import by_kind, objects, objs_with_pods, render_official
from helpers.secrets import PASSWORDS, environ
from standins import netpol
from standins.controller import make_cert, make_key

NAMESPACE = "airflow-dev"
BROKEN = {  # one input series per alert, as a failing Airflow would report it (1-minute samples)
    "AirflowSchedulerHeartbeatMissing": ("airflow_scheduler_heartbeat", "5+0x40"),  # counter stopped
    "AirflowDagImportErrors": ("airflow_dag_processing_import_errors", "2x40"),
    "AirflowTasksQueuedTooLong": ("airflow_executor_queued_tasks", "3x40"),
    "PgbouncerClientsWaiting": ("pgbouncer_pools_waiting_clients", "4x40"),
}
HEALTHY = {"airflow_scheduler_heartbeat": "0+12x40", "airflow_dag_processing_import_errors": "0x40",
           "airflow_executor_queued_tasks": "0 4 0 2 0x37", "pgbouncer_pools_waiting_clients": "0 1 0x39"}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, copy_project, official_answers) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("metrics")
    cert = make_cert(make_key(2048), tmp / "cert.pem")
    with environ(PASSWORDS):
        repo = copy_project(tmp / "repo", {**official_answers, "metrics": "prometheus-operator",
                                           "sealed_secrets_cert": str(cert)})
    result = render_official(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    return repo, objects(repo)


def rule_of(repo: Path) -> dict[str, Any]:
    (rule,) = by_kind(objects(repo, "overlay"), "PrometheusRule").values()
    return rule


def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        skip_or_fail("promtool not found: `make runtime` installs Debian's prometheus package (as root)")
    return path


def alert_expectations(rule: dict[str, Any], firing: dict[str, float]) -> list[dict[str, Any]]:
    """promtool's alert_rule_test entries: each alert, firing (with its labels and annotations) or not."""
    tests = []
    for r in rule["spec"]["groups"][0]["rules"]:
        exp = []
        if r["alert"] in firing:
            labels = dict(r["labels"])
            if r["alert"] == "AirflowTasksQueuedTooLong":  # min_over_time keeps the series' labels
                labels["namespace"] = NAMESPACE
            value = firing[r["alert"]]
            exp = [{"exp_labels": labels, "exp_annotations": {k: v.replace("{{ $value }}", f"{value:g}")
                                                               for k, v in r["annotations"].items()}}]
        tests.append({"eval_time": "30m", "alertname": r["alert"], "exp_alerts": exp})
    return tests


def run_promtool(tmp_path: Path, rule: dict[str, Any], series: dict[str, str],
                 firing: dict[str, float]) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr  # strict: an unknown rule field fails
    test = {"rule_files": [rules.name], "evaluation_interval": "1m",
            "tests": [{"interval": "1m",
                       "input_series": [{"series": f'{name}{{namespace="{NAMESPACE}"}}', "values": values}
                                        for name, values in series.items()],
                       "alert_rule_test": alert_expectations(rule, firing)}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    return subprocess.run([promtool(), "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)


def test_a_running_airflow_raises_no_alert(monitored, tmp_path) -> None:
    repo, _ = monitored
    result = run_promtool(tmp_path, rule_of(repo), HEALTHY, {})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", sorted(BROKEN))
def test_each_failure_raises_its_alert(alert, monitored, tmp_path) -> None:
    repo, _ = monitored
    name, values = BROKEN[alert]
    series = {**HEALTHY, name: values}
    value = 0 if alert == "AirflowSchedulerHeartbeatMissing" else float(values.split("x")[0])
    result = run_promtool(tmp_path, rule_of(repo), series, {alert: value})
    assert result.returncode == 0, result.stdout + result.stderr
    # and the same series does not pass as healthy: the test can fail
    assert run_promtool(tmp_path, rule_of(repo), series, {}).returncode != 0


def test_no_scheduler_metric_at_all_is_an_alert_too(monitored, tmp_path) -> None:
    """A scheduler that never started sends nothing: absent() fires, with the namespace it looked for."""
    repo, _ = monitored
    rule = rule_of(repo)
    series = {k: v for k, v in HEALTHY.items() if k != "airflow_scheduler_heartbeat"}
    (heartbeat,) = [r for r in rule["spec"]["groups"][0]["rules"] if r["alert"] == "AirflowSchedulerHeartbeatMissing"]
    heartbeat = {**heartbeat, "labels": {**heartbeat["labels"], "namespace": NAMESPACE}}
    one = {**rule, "spec": {"groups": [{**rule["spec"]["groups"][0], "rules": [heartbeat]}]}}
    result = run_promtool(tmp_path, one, series, {heartbeat["alert"]: 0})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_service_monitor_scrapes_the_charts_metric_services(monitored) -> None:
    repo, objs = monitored
    (monitor,) = by_kind(objects(repo, "overlay"), "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]
    selected = [s for s in by_kind(objs, "Service").values() if netpol.selects(selector, s["metadata"]["labels"])]
    assert sorted(s["metadata"]["name"] for s in selected) == ["airflow-pgbouncer", "airflow-statsd"]
    ports = {p["name"]: p["port"] for s in selected for p in s["spec"]["ports"]}
    scraped = {e["port"]: ports.get(e["port"]) for e in monitor["spec"]["endpoints"]}
    assert scraped == {"statsd-scrape": facts.STATSD_PORTS["scrape"], "pgb-metrics": facts.PGBOUNCER_METRICS_PORT}
    for obj in (monitor, rule_of(repo)):  # what kube-prometheus-stack's Prometheus selects them by
        assert facts.PROMETHEUS_SELECTOR_LABELS.items() <= obj["metadata"]["labels"].items()
    config = by_kind(objs, "ConfigMap")["airflow-config"]["data"]["airflow.cfg"]
    assert re.search(r"^statsd_on = True$", config, re.M) and "statsd_host = airflow-statsd" in config
    result = run_validate(repo, strict=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_statsd_and_the_scrape_pass_the_network_policies_and_nothing_else_does(monitored) -> None:
    repo, objs = monitored
    policies = list(by_kind(objects(repo, "overlay"), "NetworkPolicy").values())
    pods = {name: netpol.Pod(name, NAMESPACE, o["spec"]["template"]["metadata"].get("labels") or {})
            for name, o in objs_with_pods(objs).items()}
    statsd, pgbouncer = pods["airflow-statsd"], pods["airflow-pgbouncer"]
    for sender in ("airflow-scheduler", "airflow-dag-processor", "airflow-worker", "airflow-api-server"):
        assert netpol.allowed(policies, pods[sender], statsd, facts.STATSD_PORTS["ingest"], "UDP"), sender
    assert not netpol.allowed(policies, pods["airflow-scheduler"], statsd, facts.STATSD_PORTS["ingest"]), "UDP only"
    prometheus = netpol.Pod("prometheus-0", facts.PROMETHEUS_NAMESPACE, facts.PROMETHEUS_POD_LABELS,
                            namespace_labels={"kubernetes.io/metadata.name": facts.PROMETHEUS_NAMESPACE})
    assert netpol.allowed(policies, prometheus, statsd, facts.STATSD_PORTS["scrape"])
    assert netpol.allowed(policies, prometheus, pgbouncer, facts.PGBOUNCER_METRICS_PORT)
    assert not netpol.allowed(policies, prometheus, pgbouncer, facts.PGBOUNCER_PORT), "metrics, not the database"
    agent = netpol.Pod("jenkins-agent", NAMESPACE, {"app.kubernetes.io/name": "airflow-dag-publisher"})
    assert not netpol.allowed(policies, agent, statsd, facts.STATSD_PORTS["scrape"])


def test_validate_refuses_a_rule_prometheus_would_not_load(monitored) -> None:
    """The generated repo's own `make validate` runs promtool on the PrometheusRule (when installed)."""
    promtool()
    repo, _ = monitored
    path = repo / "deploy/overlays/dev/prometheusrule-airflow.yaml"
    before = path.read_text()
    try:
        path.write_text(before.replace("          for: 10m\n", "          for: ten minutes\n", 1))
        result = run_validate(repo)
        assert result.returncode != 0 and "is not a Prometheus duration" in result.stdout, result.stdout
        metric = "max(airflow_dag_processing_import_errors"
        path.write_text(before.replace(metric, metric + "(", 1))  # PromQL that does not parse
        result = run_validate(repo)
        assert result.returncode != 0 and "promtool check rules:" in result.stdout, result.stdout
    finally:
        path.write_text(before)


def crd_types(objs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    pkg = Path(os.environ.get("PROMETHEUS_TYPES", ROOT / ".tools/npm/node_modules/@kubernetes-models/"
                              "prometheus-operator/package.json")).parent
    if not pkg.is_dir():
        skip_or_fail(f"@kubernetes-models/prometheus-operator not installed at {pkg}: run `make setup`")
    return subprocess.run(["node", str(ROOT / "tests/standins/crd_types.mjs"), str(pkg)], capture_output=True,
                          text=True, input="\n".join(json.dumps(o) for o in objs), timeout=60)


def test_the_monitoring_objects_match_the_operators_crd_types(monitored) -> None:
    repo, _ = monitored
    monitoring = [o for o in objects(repo, "overlay") if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
    result = crd_types(monitoring)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(result.stdout.split()) == sorted(["ok", "ok", "PrometheusRule/airflow", "ServiceMonitor/airflow"])
    # and the check can fail: a scrape interval as a number, a rule group without its name
    (monitor,) = [o for o in monitoring if o["kind"] == "ServiceMonitor"]
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = 30
    assert crd_types([broken]).returncode != 0


def test_a_prometheus_elsewhere_is_an_answer_not_an_edit(tmp_path, copy_project, official_answers) -> None:
    """A Prometheus in another namespace, selecting by another release label, and KEDA in another
    namespace: the NetworkPolicies, the monitoring objects' labels and preflight follow the answers."""
    answers = {**official_answers, "metrics": "prometheus-operator", "prometheus_namespace": "observability",
               "prometheus_release_label": "prom", "keda_autoscaling": True, "keda_namespace": "autoscaling"}
    repo = copy_project(tmp_path / "repo", answers)
    overlay = repo / "deploy/overlays/dev"
    docs = {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in overlay.glob("*.yaml")}
    for name in ("servicemonitor-airflow.yaml", "prometheusrule-airflow.yaml"):
        assert docs[name][0]["metadata"]["labels"] == {"release": "prom"}, name
    policies = docs["networkpolicy-metrics.yaml"] + docs["networkpolicy-keda-pgbouncer.yaml"]
    pgbouncer = netpol.Pod("airflow-pgbouncer-0", NAMESPACE, {"component": "pgbouncer", "release": "airflow"},
                           ports={"pgbouncer": facts.PGBOUNCER_PORT, "pgb-metrics": facts.PGBOUNCER_METRICS_PORT})
    statsd = netpol.Pod("airflow-statsd-0", NAMESPACE, {"component": "statsd", "release": "airflow"},
                        ports={f"statsd-{k}": v for k, v in facts.STATSD_PORTS.items()})
    for namespace, labels, target, port, allowed in (
            ("observability", facts.PROMETHEUS_POD_LABELS, statsd, facts.STATSD_PORTS["scrape"], True),
            (facts.PROMETHEUS_NAMESPACE, facts.PROMETHEUS_POD_LABELS, statsd, facts.STATSD_PORTS["scrape"], False),
            ("autoscaling", facts.KEDA_OPERATOR_LABELS, pgbouncer, facts.PGBOUNCER_PORT, True),
            (facts.KEDA_NAMESPACE, facts.KEDA_OPERATOR_LABELS, pgbouncer, facts.PGBOUNCER_PORT, False)):
        pod = netpol.Pod("x", namespace, labels, namespace_labels={"kubernetes.io/metadata.name": namespace})
        assert netpol.allowed(policies, pod, target, port) is allowed, (namespace, target.name)
    needs = facts.cluster_requirements("flux", keda=True, metrics=True, keda_namespace="autoscaling",
                                       prometheus_namespace="observability")
    workloads = {(w.namespace, w.image) for r in needs for w in r.workloads}
    assert {("autoscaling", "keda"), ("observability", "prometheus-operator")} <= workloads
