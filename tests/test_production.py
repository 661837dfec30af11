"""Story: a platform engineer makes a production-like environment and reviews, with `make render`
and the real airflow-helm chart, what runs: replicas, disruption budgets, zone spread, requests
and limits, Pod Security on every pod, and chart RBAC only where the executor needs it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops import podsecurity
from airflow_gitops.facts import (
    DO_NOT_DISRUPT,
    IAM_DIR,
    IRSA_TRUST_POLICY,
    POD_IDENTITY_TRUST_POLICY,
    POD_SECURITY_LEVEL,
    POD_SECURITY_VERSION,
    S3_LOGS_POLICY,
)
from airflow_gitops.validate import iam
from helpers.make import render_dev, run_make, run_validate
from helpers.paths import chart_tgz
from helpers.render import by_kind, pod_annotations, rendered_objects, task_pod_templates, workloads
from standins import netpol

HA_COMPONENTS = {"scheduler": "Deployment", "web": "Deployment", "triggerer": "Deployment", "worker": "StatefulSet"}


@pytest.fixture(scope="module", params=["CeleryExecutor", "CeleryKubernetesExecutor"])
def production(request, tmp_path_factory, copy_project, demo_answers) -> tuple[Path, list[dict[str, Any]]]:
    answers = {**demo_answers, "production_like": True, "rds_tls_verify": True, "executor": request.param}
    repo = copy_project(tmp_path_factory.mktemp("prod") / "repo", answers)
    result = render_dev(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    return repo, rendered_objects(repo)


def test_production_runs_two_of_each_component_with_a_budget(production) -> None:
    _, objs = production
    pdbs = by_kind(objs, "PodDisruptionBudget")
    for component, kind in HA_COMPONENTS.items():
        workload = by_kind(objs, kind)[f"airflow-{component}"]
        assert workload["spec"]["replicas"] == 2, component
        pdb = pdbs[f"airflow-{component}"]
        assert pdb["spec"]["maxUnavailable"] == 1
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), component
        spread = {c["topologyKey"]: c for c in workload["spec"]["template"]["spec"]["topologySpreadConstraints"]}
        assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
        assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
        for constraint in spread.values():  # the selector must pick this component's own pods
            assert constraint["labelSelector"]["matchLabels"].items() <= labels.items(), component
    # pgbouncer: the chart fixes one replica, and a budget on one replica would block every drain.
    assert by_kind(objs, "Deployment")["airflow-pgbouncer"]["spec"]["replicas"] == 1
    assert "airflow-pgbouncer" not in pdbs
    worker = by_kind(objs, "StatefulSet")["airflow-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= 600 + 60  # graceful Celery stop, then SIGTERM


def test_pods_that_run_tasks_are_not_moved_mid_task(production) -> None:
    """Task pods (one task, no drain) carry what the cluster autoscaler and Karpenter honour; Celery
    workers are long-lived and drain gracefully instead, never pinning their nodes."""
    repo, objs = production
    tasks = task_pod_templates(objs)
    executor = yaml.safe_load((repo / ".copier-answers.yml").read_text())["executor"]
    assert len(tasks) == (1 if "Kubernetes" in executor else 0)
    for obj in tasks:
        assert DO_NOT_DISRUPT.items() <= pod_annotations(obj).items(), obj["metadata"]
    worker = by_kind(objs, "StatefulSet")["airflow-worker"]
    assert "karpenter.sh/do-not-disrupt" not in pod_annotations(worker)
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 600


def test_every_container_has_requests_and_a_memory_limit(production) -> None:
    _, objs = production
    for name, obj in workloads(objs).items():
        for c in podsecurity.containers(podsecurity.pod_spec(obj)):
            resources = c.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            assert {"cpu", "memory"} <= requests.keys(), (name, c["name"], resources)
            assert "memory" in limits and "cpu" not in limits, (name, c["name"], resources)
            assert quantity(requests["memory"]) <= quantity(limits["memory"]), (name, c["name"])


def test_every_pod_meets_the_namespace_pod_security_level(production) -> None:
    repo, objs = production
    namespace = by_kind(objs, "Namespace") or {n["metadata"]["name"]: n for n in
                                               yaml.safe_load_all((repo / "deploy/overlays/dev/secrets/namespace.yaml")
                                                                  .read_text())}
    labels = next(iter(namespace.values()))["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == POD_SECURITY_LEVEL == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == POD_SECURITY_VERSION
    specs = {name: podsecurity.pod_spec(obj) for name, obj in workloads(objs).items()}
    assert len(specs) >= 8
    for name, spec in specs.items():
        assert podsecurity.violations(spec) == [], name
        for c in podsecurity.containers(spec):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_task_pods_meet_it_too(production) -> None:
    _, objs = production
    template = by_kind(objs, "ConfigMap").get("airflow-pod-template")
    if template is None:
        assert "airflow-worker" in by_kind(objs, "StatefulSet")  # CeleryExecutor: there are no task pods
        return
    pod = yaml.safe_load(template["data"]["pod_template.yaml"])
    assert podsecurity.violations(pod["spec"]) == []
    assert pod["spec"]["containers"][0]["resources"]["requests"]["memory"] == "512Mi"


def test_chart_rbac_only_where_the_executor_starts_pods(production) -> None:
    _, objs = production
    kubernetes_like = "airflow-pod-template" in by_kind(objs, "ConfigMap")
    assert ("airflow" in by_kind(objs, "Role")) is kubernetes_like
    assert ("airflow" in by_kind(objs, "RoleBinding")) is kubernetes_like


def test_render_refuses_a_pod_the_namespace_would_refuse(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    values = repo / "deploy/overlays/dev/values.yaml"
    values.write_text(values.read_text() + "\nscheduler:\n  securityContext:\n    runAsUser: 0\n")
    result = render_dev(repo)
    assert result.returncode != 0
    assert "Deployment/airflow-scheduler: spec.securityContext.runAsUser must not be 0" in result.stderr
    assert "Pod Security 'restricted', which namespace airflow-dev enforces" in result.stderr
    assert "Deployment/airflow-web" not in result.stderr  # only the pod that breaks it is named


def test_a_development_environment_stays_small(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "production_like": False})
    assert render_dev(repo).returncode == 0
    objs = rendered_objects(repo)
    assert by_kind(objs, "PodDisruptionBudget") == {}
    assert by_kind(objs, "Deployment")["airflow-scheduler"]["spec"]["replicas"] == 1
    for name, obj in workloads(objs).items():  # hardening is not a production extra
        assert podsecurity.violations(podsecurity.pod_spec(obj)) == [], name


@pytest.mark.parametrize(("spec", "expected"), [
    ({"hostNetwork": True, "containers": [{"name": "c"}]}, "spec.hostNetwork must be false"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}], "containers": []}, "hostPath volumes are not allowed"),
    ({"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
      "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                       "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}}]},
     "capabilities.add ['NET_ADMIN'] beyond the baseline set"),
    ({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]},
     "container c: seccompProfile.type must not be Unconfined"),
    ({"securityContext": {"runAsNonRoot": True},
      "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                       "capabilities": {"drop": ["ALL"]}}}]},
     "container c: seccompProfile.type must be RuntimeDefault or Localhost"),
    ({"volumes": [{"name": "n", "nfs": {"server": "x", "path": "/"}}], "containers": []},
     "volume n: type ['nfs'] is not allowed"),
])
def test_pod_security_rules_catch_what_admission_refuses(spec: dict[str, Any], expected: str) -> None:
    found = podsecurity.violations(spec)
    assert any(expected in v for v in found), found


def quantity(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


# ---------------------------------------------------------------- AWS identity as code
def iam_file(repo: Path, name: str) -> Path:
    return repo / "deploy/overlays/dev" / IAM_DIR / name


def test_iam_policies_name_only_this_environment(production, demo_answers) -> None:
    repo, objs = production
    policy = json.loads(iam_file(repo, S3_LOGS_POLICY).read_text())
    assert iam.lint(policy) == []  # parliament, the real linter
    bucket, prefix = demo_answers["s3_log_bucket"], demo_answers["s3_log_prefix"]
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}/*"}
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    # The trust policy admits exactly the ServiceAccount the real chart renders, in its namespace.
    account = by_kind(objs, "ServiceAccount")["airflow"]  # the chart's (the overlay adds the Jenkins agent's)
    trust = json.loads(iam_file(repo, IRSA_TRUST_POLICY).read_text())["Statement"][0]
    issuer = demo_answers["eks_oidc_issuer"]
    subject = f"system:serviceaccount:airflow-dev:{account['metadata']['name']}"  # helm template: the release ns
    assert trust["Condition"]["StringEquals"] == {f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"}
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert trust["Principal"]["Federated"] == f"arn:aws:iam::{role.split(':')[4]}:oidc-provider/{issuer}"


@pytest.mark.parametrize(("file", "old", "new", "message"), [
    (S3_LOGS_POLICY, "airflow/dev/*\"", "*\"", "is outside this environment's log folder"),
    (S3_LOGS_POLICY, "s3:GetObject", "s3:GetObjectt", "parliament: UNKNOWN_ACTION"),
    (IRSA_TRUST_POLICY, ":airflow-dev:airflow", ":airflow-dev:default",
     "must be exactly 'system:serviceaccount:airflow-dev:airflow'"),
    (IRSA_TRUST_POLICY, "iam::123456789012:oidc", "iam::999999999999:oidc",
     "is not an OIDC provider of account 123456789012"),
])
def test_validate_catches_iam_drift(tmp_path: Path, copy_project, demo_answers, file, old, new, message) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    path = iam_file(repo, file)
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    result = run_validate(repo)
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) >= 1 and all(f"deploy/overlays/dev/{IAM_DIR}: {file}:" in e for e in errors), result.stdout
    assert any(message in e for e in errors), result.stdout


def test_without_the_oidc_issuer_there_is_no_trust_policy(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "eks_oidc_issuer": ""})
    assert iam_file(repo, S3_LOGS_POLICY).is_file() and not iam_file(repo, IRSA_TRUST_POLICY).exists()
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout
    assert f"INFO deploy/overlays/dev/{IAM_DIR}: {IRSA_TRUST_POLICY}: not generated: answer eks_oidc_issuer" \
        in result.stdout


# ---------------------------------------------------------------- NetworkPolicies
def pods_of(objs: list[dict[str, Any]], namespace: str) -> dict[str, netpol.Pod]:
    """Each rendered workload (and the task-pod template) as the pod the CNI would see."""
    found = {}
    templates = [(name, o["spec"]["template"]) for name, o in workloads(objs).items()]
    if "airflow-pod-template" in by_kind(objs, "ConfigMap"):
        templates.append(("task", yaml.safe_load(by_kind(objs, "ConfigMap")["airflow-pod-template"]["data"]
                                                 ["pod_template.yaml"])))
    for name, template in templates:
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports") or []
                 if "name" in p}
        found[name] = netpol.Pod(name, namespace, template["metadata"].get("labels") or {}, ports)
    return found


def config_env(objs: list[dict[str, Any]], key: str) -> str:
    secret = by_kind(objs, "Secret")["airflow-config-envs"]
    return base64.b64decode(secret["data"][key]).decode() if "data" in secret else secret["stringData"][key]


def test_network_policies_let_airflow_flows_through_and_nothing_else(production) -> None:
    """The flows the rendered configuration names (each pod's DATABASE_HOST, the web Service, the log
    server ports) are allowed; a pod that is not the release's is not. Evaluated with tests/standins/netpol.py:
    no CNI runs here, and the runtime harness does not enforce policies."""
    _, objs = production
    policies = list(by_kind(objs, "NetworkPolicy").values())
    assert {p["metadata"]["name"] for p in policies} >= {"default-deny-ingress", "airflow-pgbouncer-ingress"}
    pods = pods_of(objs, "airflow-dev")
    service = config_env(objs, "DATABASE_HOST").split(".")[0]
    db_pods = [p for p in pods.values() if netpol.selects({"matchLabels": by_kind(objs, "Service")[service]["spec"]
                                                           ["selector"]}, p.labels)]
    assert [p.name for p in db_pods] == ["airflow-pgbouncer"]
    db, db_port = db_pods[0], int(config_env(objs, "DATABASE_PORT"))
    clients = [p for p in pods.values() if p is not db]
    assert len(clients) >= 7
    for client in clients:  # every Airflow pod reads the metadata DB through pgbouncer
        assert netpol.allowed(policies, client, db, db_port), client.name
    web = pods["airflow-web"]
    web_port = by_kind(objs, "Service")["airflow-web"]["spec"]["ports"][0]["targetPort"]
    assert netpol.allowed(policies, netpol.Address("10.0.12.34"), web, web_port)  # the ALB, target-type ip
    log_port = int(config_env(objs, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"))
    log_servers = [pods["airflow-worker"], pods["airflow-scheduler"]] + ([pods["task"]] if "task" in pods else [])
    for server in log_servers:
        assert netpol.allowed(policies, web, server, log_port), server.name
    assert netpol.allowed(policies, web, pods["airflow-triggerer"], 8794)
    # Least privilege: the Jenkins agent (same namespace), the release's labels from another
    # namespace, and a worker reaching the scheduler are all refused.
    agent = netpol.Pod("jenkins-agent", "airflow-dev", {"app.kubernetes.io/name": "airflow-dag-publisher"})
    impostor = netpol.Pod("x", "other", {"release": "airflow", "component": "web"})
    assert not netpol.allowed(policies, agent, db, db_port)
    assert not netpol.allowed(policies, agent, pods["airflow-worker"], log_port)
    assert not netpol.allowed(policies, impostor, db, db_port)
    assert not netpol.allowed(policies, impostor, pods["airflow-worker"], log_port)
    assert not netpol.allowed(policies, pods["airflow-worker"], pods["airflow-scheduler"], log_port)
    assert not netpol.allowed(policies, netpol.Address("10.0.12.34"), db, db_port)


@pytest.mark.parametrize(("policy", "rule"), [
    ({"podSelector": {"matchLabels": {"a": "b"}}, "ingress": [{"from": [{"podSelector": {}}],
                                                               "ports": [{"port": "named"}]}]}, "named port"),
])
def test_the_policy_evaluator_resolves_named_ports(policy, rule) -> None:
    policies = [{"metadata": {"namespace": "ns"}, "spec": policy}]
    dest = netpol.Pod("d", "ns", {"a": "b"}, {"named": 6432})
    assert netpol.allowed(policies, netpol.Pod("s", "ns", {}), dest, 6432), rule
    assert not netpol.allowed(policies, netpol.Pod("s", "ns", {}), dest, 6433), rule
    assert not netpol.allowed(policies, netpol.Pod("s", "other", {}), dest, 6432), rule
    assert netpol.allowed(policies, netpol.Pod("s", "ns", {}), netpol.Pod("e", "ns", {"a": "c"}), 1)  # not selected


def test_validate_catches_pod_identity_drift(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "aws_identity": "pod-identity"})
    assert run_validate(repo).returncode == 0
    path = iam_file(repo, POD_IDENTITY_TRUST_POLICY)
    path.write_text(path.read_text().replace('"airflow-dev"', '"airflow-prod"').replace("sts:TagSession", "sts:X"))
    errors = [line for line in run_validate(repo).stdout.splitlines() if line.startswith("ERROR")]
    assert any("aws:RequestTag/kubernetes-namespace must be exactly 'airflow-dev'" in e for e in errors), errors
    assert any("sts:AssumeRole and sts:TagSession" in e for e in errors), errors


KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/01234567-89ab-cdef-0123-456789abcdef"


def test_an_sse_kms_bucket_gets_its_key_through_s3_only(tmp_path: Path, copy_project, demo_answers) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "s3_log_kms_key_arn": KMS_KEY})
    policy = json.loads(iam_file(repo, S3_LOGS_POLICY).read_text())
    assert iam.lint(policy) == []
    (kms,) = [s for s in policy["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
    assert kms["Resource"] == [KMS_KEY] and set(kms["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
    assert run_validate(repo).returncode == 0
    path = iam_file(repo, S3_LOGS_POLICY)
    path.write_text(path.read_text().replace(f'"{KMS_KEY}"', '"*"'))
    errors = [line for line in run_validate(repo).stdout.splitlines() if line.startswith("ERROR")]
    assert any("kms resource '*' must be the log bucket's key ARN" in e for e in errors), errors


def test_govcloud_policies_name_their_partition(tmp_path: Path, copy_project, demo_answers) -> None:
    region, issuer = "us-gov-west-1", "oidc.eks.us-gov-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
    repo = copy_project(tmp_path / "repo", {
        **demo_answers, "aws_region": region, "eks_oidc_issuer": issuer,
        "irsa_role_arn": "arn:aws-us-gov:iam::123456789012:role/airflow-dev",
        "web_certificate_arn": demo_answers["web_certificate_arn"].replace("arn:aws:", "arn:aws-us-gov:")
        .replace("eu-west-1", region),
        "rds_host": demo_answers["rds_host"].replace("eu-west-1", region)})
    policy = json.loads(iam_file(repo, S3_LOGS_POLICY).read_text())
    assert {r.split(":")[1] for s in policy["Statement"] for r in s["Resource"]} == {"aws-us-gov"}
    trust = json.loads(iam_file(repo, IRSA_TRUST_POLICY).read_text())
    assert trust["Statement"][0]["Principal"]["Federated"].startswith("arn:aws-us-gov:iam::123456789012:")
    result = run_validate(repo)
    assert result.returncode == 0 and "ERROR" not in result.stdout, result.stdout


@pytest.mark.parametrize("flavor", ["official", "community"])
def test_an_image_mirror_serves_every_image_of_the_release(flavor, tmp_path, copy_project, demo_answers,
                                                         official_answers) -> None:
    """image_mirror (an ECR pull-through cache): every container and task pod image of both charts is
    pulled through it, and the kubelet check still knows each image (make render passes)."""
    from airflow_gitops import images as image_facts

    mirror = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    base = official_answers if flavor == "official" else demo_answers
    extra = {"metrics": "prometheus-operator", "executor": "KubernetesExecutor"} if flavor == "official" else \
        {"executor": "CeleryKubernetesExecutor", "rds_tls_verify": True, "production_like": True}
    repo = copy_project(tmp_path / "repo", {**base, **extra, "image_mirror": mirror})
    chart = chart_tgz(flavor)
    result = run_make(repo, "render", "ENV=dev", f"CHART={chart}")
    assert result.returncode == 0, result.stdout + result.stderr
    objs = rendered_objects(repo)
    specs = [podsecurity.pod_spec(o) for o in workloads(objs).values()] + [t["spec"] for t in task_pod_templates(objs)]
    refs = {c["image"] for spec in specs if spec for c in podsecurity.containers(spec)}
    assert refs and all(ref.startswith(mirror + "/") for ref in refs), sorted(refs)
    assert all(image_facts.lookup(ref) for ref in refs), sorted(refs)
    assert any("/docker-hub/apache/airflow:" in ref for ref in refs)
    # The repository validates as it is: one pgbouncer map in the values (its TLS to RDS kept), and the
    # Jenkins DAG check's image is the deployed one, pulled through the mirror or not.
    result = run_validate(repo)
    assert result.returncode == 0, result.stdout
    values = yaml.safe_load((repo / "build/render/dev/values.yaml").read_text())
    if flavor == "community":
        assert values["pgbouncer"]["serverSSL"]["mode"] == "verify-full"
        assert values["pgbouncer"]["image"]["repository"].startswith(mirror)
