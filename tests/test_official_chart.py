"""Story: a platform engineer generates Airflow 3 on the official Apache Airflow chart (the default),
for Flux and for Argo CD, seals the secrets for the cluster, and checks with the repository's own
`make render` (the real chart of the newest version, from ../shared) and `make validate STRICT=1` what will run:
every credential from a SealedSecret of the environment, nothing the chart generates itself, and
every object a rendered pod needs present in the render."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml
from airflow_gitops import facts
from helpers.copying import ENGINES
from helpers.make import install_rds_ca, run_validate
from helpers.render import (
    by_kind,
    objects,
    objs_with_pods,
    pod_annotations,
    render_official,
    task_pod_templates,
)
from helpers.secrets import PASSWORDS
from standins import netpol
from standins.controller import make_cert, make_key, unseal_object


@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


@pytest.fixture(scope="module", params=sorted(ENGINES))
def official(request, tmp_path_factory, copy_project, official_answers, controller_key, monkeypatch_module):
    tmp = tmp_path_factory.mktemp(request.param)
    cert = make_cert(controller_key, tmp / "cert.pem")
    for name, value in PASSWORDS.items():
        monkeypatch_module.setenv(name, value)
    answers = {**official_answers, **ENGINES[request.param], "rds_tls_verify": True, "sealed_secrets_cert": str(cert)}
    repo = copy_project(tmp / "repo", answers)
    install_rds_ca(repo, cert.read_bytes())
    result = render_official(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    return request.param, repo, answers


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_the_copy_validates_strictly_and_renders(official) -> None:
    _, repo, _ = official
    result = run_validate(repo, strict=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 errors" in result.stdout, result.stdout


def test_the_chart_generates_no_secret_and_no_plaintext_is_anywhere(official) -> None:
    _, repo, _ = official
    chart = objects(repo, "chart")
    assert [o["metadata"]["name"] for o in chart if o["kind"] == "Secret"] == []
    # No password in any file of the repository or its render (values, ConfigMaps, pgbouncer.ini).
    for path in [p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts and ".cache" not in p.parts]:
        text = path.read_text(errors="ignore")
        for name, value in PASSWORDS.items():
            assert value not in text, f"{name} in plaintext in {path.relative_to(repo)}"
    values = yaml.safe_load((repo / "build/render/dev/values.yaml").read_text())
    for key in ("fernetKey", "jwtSecret", "apiSecretKey", "webserverSecretKey"):
        assert not values.get(key), key
    assert values["data"].get("metadataConnection") is None


def test_every_object_a_pod_needs_is_in_the_render(official) -> None:
    _, repo, answers = official
    everything = objects(repo)
    have = {(o["kind"], o["metadata"]["name"]) for o in everything}
    sealed = {o["metadata"]["name"]: set(o["spec"]["encryptedData"]) | set((o["spec"].get("template") or {})
                                                                            .get("data") or {})
              for o in everything if o["kind"] == "SealedSecret"}
    pods = 0
    for obj in everything:
        spec = (obj.get("spec") or {}).get("template", {}).get("spec")
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job") or not spec:
            continue
        pods += 1
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert ("ServiceAccount", spec["serviceAccountName"]) in have, where
        for c in spec["containers"] + spec.get("initContainers", []):
            for env in c.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in sealed.get(ref["name"], set()), f"{where}: {ref}"
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in sealed or ("Secret", name) in have, f"{where}: Secret {name}"
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in have, where
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in have, where
    assert pods >= 6
    # Airflow 3's components: api-server (not the webserver), a standalone dag-processor, the triggerer.
    deployments = {o["metadata"]["name"] for o in everything if o["kind"] == "Deployment"}
    release = answers["project_name"]
    assert {f"{release}-api-server", f"{release}-dag-processor", f"{release}-scheduler"} <= deployments
    assert f"{release}-webserver" not in deployments


def test_the_sealed_values_are_what_airflow_and_pgbouncer_read(official, controller_key) -> None:
    _, repo, answers = official
    secrets = {o["metadata"]["name"]: unseal_object(controller_key, o)
               for o in objects(repo, "overlay") if o["kind"] == "SealedSecret"}
    release, ns = answers["project_name"], answers["namespace"]
    url = urlsplit(secrets["airflow-metadata"]["connection"])
    assert (url.scheme, url.hostname, url.port) == ("postgresql", f"{release}-pgbouncer.{ns}", facts.PGBOUNCER_PORT)
    assert unquote(url.password or "") == PASSWORDS["AIRFLOW_DB_PASSWORD"]
    assert url.path == f"/{release}-metadata"
    users = secrets["airflow-pgbouncer"]["users.txt"]
    assert users == f'"{answers["rds_user"]}" "{PASSWORDS["AIRFLOW_DB_PASSWORD"]}"'
    for key in ("fernet-key", "api-secret-key", "jwt-secret"):
        secret = {"fernet-key": "airflow-fernet-key", "api-secret-key": "airflow-api-secret-key",
                  "jwt-secret": "airflow-jwt-secret"}[key]
        assert len(secrets[secret][key]) >= 32, key
    if "airflow-broker-url" in secrets:  # Celery
        broker = urlsplit(secrets["airflow-broker-url"]["connection"])
        assert broker.scheme == "rediss" and unquote(broker.password or "") == PASSWORDS["AIRFLOW_REDIS_PASSWORD"]
        assert "ssl_cert_reqs=required" in broker.query
        assert urlsplit(secrets["airflow-result-backend"]["connection"]).scheme == "db+postgresql"


def test_the_log_role_trusts_each_component_that_uses_s3(official) -> None:
    _, repo, answers = official
    iam = repo / "deploy/overlays/dev" / facts.IAM_DIR
    accounts = facts.service_accounts("official", answers["project_name"])
    have = {o["metadata"]["name"] for o in objects(repo, "chart") if o["kind"] == "ServiceAccount"}
    assert set(accounts) <= have  # the names the chart really gives them
    if answers.get("aws_identity") == "pod-identity":
        trust = json.loads((iam / facts.POD_IDENTITY_TRUST_POLICY).read_text())
        tagged = trust["Statement"][0]["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"]
        assert sorted(tagged) == sorted(accounts)
    else:
        trust = json.loads((iam / facts.IRSA_TRUST_POLICY).read_text())
        subjects = next(v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub"))
        assert sorted(subjects) == sorted(f"system:serviceaccount:{answers['namespace']}:{a}" for a in accounts)
        for sa in (o for o in objects(repo, "chart") if o["kind"] == "ServiceAccount"):
            annotated = facts.IRSA_ROLE_ANNOTATION in (sa["metadata"].get("annotations") or {})
            assert annotated == (sa["metadata"]["name"] in accounts), sa["metadata"]["name"]


def test_the_cluster_controllers_find_what_they_act_on(official) -> None:
    """Node autoscalers leave task-running pods alone; the ALB controller gates rollouts on target
    registration; the namespace is never pruned, by the annotation of the engine that applies it."""
    engine, repo, _ = official
    objs = objects(repo)
    celery = [d for name, d in by_kind(objs, "Deployment").items() if name.endswith("-worker")]
    tasks = task_pod_templates(objs)
    assert len(celery) + len(tasks) == 1, "one of a Celery worker or a task pod template"
    for obj in tasks:  # one task each, no drain: never moved by a consolidation
        assert facts.DO_NOT_DISRUPT.items() <= pod_annotations(obj).items(), obj["metadata"]
    for obj in celery:  # long-lived: drained gracefully, never pinning their nodes
        assert "karpenter.sh/do-not-disrupt" not in pod_annotations(obj)
        assert obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 600
    (namespace,) = by_kind(objs, "Namespace").values()
    label, value = facts.ALB_READINESS_GATE_LABEL
    assert namespace["metadata"]["labels"][label] == value  # the demo answers have web_hostname
    prune = {"flux": ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
             "argocd": ("argocd.argoproj.io/sync-options", "Prune=false,Delete=false")}
    annotations = namespace["metadata"]["annotations"]
    assert dict([prune[engine]]).items() <= annotations.items()
    assert not [key for key in annotations if key.split("/")[0] in ("kustomize.toolkit.fluxcd.io", "argocd.argoproj.io")
                and key.split("/")[0] != prune[engine][0].split("/")[0]], annotations  # each engine its own
    (ingress,) = by_kind(objs, "Ingress").values()
    assert "alb.ingress.kubernetes.io/group.name" not in ingress["metadata"]["annotations"]
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "ip"


def test_the_jobs_are_not_helm_hooks(official) -> None:
    engine, repo, _ = official
    jobs = [o for o in objects(repo, "chart") if o["kind"] == "Job"]
    assert len(jobs) == 2
    for job in jobs:
        annotations = job["metadata"].get("annotations") or {}
        assert "helm.sh/hook" not in annotations, job["metadata"]["name"]
        if engine == "argocd":
            assert annotations["argocd.argoproj.io/hook"] == "Sync"


BREAKS = {  # an edit a user might make -> what make validate must say
    "plaintext-fernet": ("deploy/overlays/dev/values.yaml", "\nfernetKey: not-a-secret-here\n",
                         "`fernetKey` holds a secret in values"),
    "schema": ("deploy/overlays/dev/values.yaml", "\nstatsd:\n  enabled: sometimes\n",
               "values.schema.json: at '/statsd/enabled'"),
    "generated-jwt": ("deploy/base/values.yaml", None, "`jwtSecretName` must name a Secret"),
    "top-level-typo": ("deploy/overlays/dev/values.yaml", "\nschedulr:\n  replicas: 2\n",
                       "unknown top-level values key 'schedulr'"),
    "bundle-not-mounted": ("deploy/overlays/dev/values.yaml", "\nscheduler:\n  extraVolumeMounts: []\n",
                           "`scheduler.extraVolumeMounts` must mount ConfigMap airflow-dag-bundle at"),
    "bundle-edited": ("deploy/base/efs_release_bundle.py", "\n# edited here\n",
                      "not the SHA-256 of deploy/base/efs_release_bundle.py"),
    "missing-secret": ("deploy/overlays/dev/secrets/kustomization.yaml", None,
                       "names Secret 'airflow-jwt-secret', which nothing in namespace"),
}


@pytest.mark.parametrize("official", ["flux"], indirect=True)  # one engine: both share the value rules
@pytest.mark.parametrize("case", sorted(BREAKS))
def test_validate_refuses_what_would_break_the_release(case, official, tmp_path) -> None:
    _, repo, _ = official
    path, addition, message = BREAKS[case]
    target = repo / path
    before = target.read_text()
    try:
        if addition is not None:
            target.write_text(before + addition)
        elif case == "generated-jwt":
            target.write_text(before.replace("jwtSecretName:", "# jwtSecretName:"))
        else:
            target.write_text(before.replace("  - airflow-jwt-secret.yaml\n", ""))
        result = run_validate(repo)
        assert result.returncode != 0 and message in result.stdout, result.stdout
    finally:
        target.write_text(before)


@pytest.mark.parametrize("official", ["flux"], indirect=True)  # sealing does not depend on the engine
def test_resealing_the_db_password_reseals_every_secret_that_holds_it(official, controller_key) -> None:
    _, repo, _ = official
    folder = repo / "deploy/overlays/dev/secrets"
    before = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    new = "n3w-Db-pass:w@rd"
    result = subprocess.run(["make", "-s", "-C", str(repo), "seal", "ENV=dev", "SECRET=airflow-metadata",
                             f"TOOLS_PYTHON={sys.executable}"],
                            capture_output=True, text=True, env={**os.environ, "AIRFLOW_DB_PASSWORD": new})
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        changed = sorted(n for n, text in before.items() if (folder / n).read_text() != text)
        holders = ["airflow-metadata.yaml", "airflow-pgbouncer-stats.yaml", "airflow-pgbouncer.yaml",
                   "airflow-result-backend.yaml"]
        assert changed == holders, result.stdout
        for name in holders:
            doc = yaml.safe_load((folder / name).read_text())
            (value,) = unseal_object(controller_key, doc).values()
            assert (quote(new, safe="") if name != "airflow-pgbouncer.yaml" else f'"{new}"') in value, name
        assert "airflow-fernet-key.yaml" not in changed and "airflow-jwt-secret.yaml" not in changed
    finally:
        for name, text in before.items():
            (folder / name).write_text(text)


def test_decoded_secret_values_are_never_base64_in_git(official) -> None:
    """The SealedSecrets hold ciphertext only: no entry is a base64 of a password."""
    _, repo, _ = official
    for path in (repo / "deploy/overlays/dev/secrets").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for value in ((doc or {}).get("spec") or {}).get("encryptedData", {}).values():
                try:
                    decoded = base64.b64decode(value).decode(errors="ignore")
                except ValueError:
                    continue
                assert not any(p in decoded for p in PASSWORDS.values()), path.name


NEWEST = facts.chart("official")
OLDEST = facts.chart("official", facts.chart_versions("official")[0])
REFUSED = {  # an answer the official flavor cannot deploy -> what the copy must say
    "airflow-2-tag": ({"airflow_image_tag": "2.10.5"}, "Validation error for question 'airflow_image_tag'",
                      f"deploys Airflow {NEWEST.airflow_range}"),
    "too-new-tag": ({"airflow_image_tag": "3.99.0"}, "Validation error for question 'airflow_image_tag'",
                    f"deploys Airflow {NEWEST.airflow_range}"),
    # Each chart version takes only the Airflow minors proven on it.
    "newest-tag-on-the-oldest-chart": ({"chart_version": OLDEST.version, "airflow_image_tag": NEWEST.default_tag},
                                       "Validation error for question 'airflow_image_tag'",
                                       f"deploys Airflow {OLDEST.airflow_range}"),
    "community-version": ({"chart_version": "8.9.0"}, "Invalid choice for 'chart_version'",
                          str(list(facts.chart_versions("official")))),
    "celery-kubernetes": ({"executor": "CeleryKubernetesExecutor"}, "Validation error for question 'executor'",
                          "Airflow 3 removed it"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_answer_the_flavor_cannot_deploy_is_refused(case, tmp_path, copy_project, official_answers) -> None:
    answers, question, rule = REFUSED[case]
    with pytest.raises(ValueError, match=question) as refused:
        copy_project(tmp_path / "repo", {**official_answers, **answers})
    assert rule in str(refused.value)
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


def test_a_new_copy_gets_the_official_chart_and_a_community_version_keeps_community(tmp_path, copy_project,
                                                                                   official_answers) -> None:
    fresh = {k: v for k, v in official_answers.items() if k not in ("airflow_chart", "chart_version",
                                                                     "airflow_image_tag")}
    repo = copy_project(tmp_path / "new", fresh)
    answers = yaml.safe_load((repo / facts.ANSWERS_FILE).read_text())
    assert (answers["airflow_chart"], answers["chart_version"], answers["airflow_image_tag"]) == \
        ("official", NEWEST.version, NEWEST.default_tag)
    # An answers file from before the question (chart_version 8.9.0, no airflow_chart) stays community.
    legacy = copy_project(tmp_path / "old", {**fresh, "chart_version": "8.9.0", "airflow_image_tag": "2.8.4-python3.9"})
    assert yaml.safe_load((legacy / facts.ANSWERS_FILE).read_text())["airflow_chart"] == "community"


# ---------------------------------------------------------------- KEDA and NetworkPolicies
@pytest.fixture(scope="module")
def keda(tmp_path_factory, copy_project, official_answers, controller_key, monkeypatch_module):
    """A production-like environment whose Celery workers KEDA scales, sealed and rendered."""
    tmp = tmp_path_factory.mktemp("keda")
    cert = make_cert(controller_key, tmp / "cert.pem")
    for name, value in PASSWORDS.items():
        monkeypatch_module.setenv(name, value)
    repo = copy_project(tmp / "repo", {**official_answers, "keda_autoscaling": True, "production_like": True,
                                       "sealed_secrets_cert": str(cert)})
    install_rds_ca(repo, cert.read_bytes())
    result = render_official(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    return repo, objects(repo)


def test_keda_scales_the_workers_on_their_own_connection(keda) -> None:
    repo, objs = keda
    (scaled,) = by_kind(objs, "ScaledObject").values()
    target = scaled["spec"]["scaleTargetRef"]
    worker = by_kind(objs, target["kind"])[target["name"]]
    assert "replicas" not in worker["spec"], "KEDA owns the worker count"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, facts.KEDA_MAX_WORKERS)
    (container,) = [c for c in worker["spec"]["template"]["spec"]["containers"]
                    if c["name"] == target["envSourceContainerName"]]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql" and "task_instance" in trigger["metadata"]["query"]
    (env,) = [e for e in container["env"] if e["name"] == trigger["metadata"]["connectionFromEnv"]]
    ref = env["valueFrom"]["secretKeyRef"]
    sealed = by_kind(objects(repo, "overlay"), "SealedSecret")[ref["name"]]
    assert ref["key"] in sealed["spec"]["encryptedData"], "KEDA reads a key the SealedSecret holds"
    result = run_validate(repo, strict=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_refuses_keda_around_pgbouncer(keda, tmp_path) -> None:
    repo, _ = keda
    path = repo / "deploy/overlays/dev/values.yaml"
    before = path.read_text()
    try:
        path.write_text(before.replace("      usePgbouncer: true\n", "      usePgbouncer: false\n"))
        result = run_validate(repo)
        assert result.returncode != 0 and "`workers.celery.keda.usePgbouncer` must stay true" in result.stdout
    finally:
        path.write_text(before)


def test_network_policies_let_the_airflow_3_flows_through_and_nothing_else(keda) -> None:
    """Evaluated with tests/standins/netpol.py (Kubernetes' semantics; no CNI runs here): every pod of the
    release reaches pgbouncer, workers reach the api-server's Execution API, the ALB reaches the
    api-server, the KEDA operator reaches pgbouncer; the Jenkins agent and other KEDA pods do not."""
    repo, objs = keda
    policies = list(by_kind(objects(repo, "overlay"), "NetworkPolicy").values())
    namespace = yaml.safe_load((repo / "build/render/dev/release.yaml").read_text())["namespace"]
    pods = {name: netpol.Pod(name, namespace, o["spec"]["template"]["metadata"].get("labels") or {},
                             {p["name"]: p["containerPort"] for c in o["spec"]["template"]["spec"]["containers"]
                              for p in c.get("ports") or [] if "name" in p})
            for name, o in objs_with_pods(objs).items()}
    release = yaml.safe_load((repo / ".copier-answers.yml").read_text())["project_name"]
    pgbouncer, api = pods[f"{release}-pgbouncer"], pods[f"{release}-api-server"]
    clients = [p for p in pods.values() if p is not pgbouncer]
    assert len(clients) >= 7, [p.name for p in clients]  # api-server, scheduler, dag-processor, ... and the Jobs
    for client in clients:
        assert netpol.allowed(policies, client, pgbouncer, facts.PGBOUNCER_PORT), client.name
    api_port = api.ports["api-server"]
    assert netpol.allowed(policies, pods[f"{release}-worker"], api, api_port)  # the Execution API
    assert netpol.allowed(policies, netpol.Address("10.0.12.34"), api, api_port)  # the ALB, target-type ip
    keda_ns = {"kubernetes.io/metadata.name": facts.KEDA_NAMESPACE}
    operator = netpol.Pod("keda-operator", facts.KEDA_NAMESPACE, facts.KEDA_OPERATOR_LABELS, namespace_labels=keda_ns)
    other = netpol.Pod("keda-admission", facts.KEDA_NAMESPACE, {"app": "keda-admission-webhooks"},
                       namespace_labels=keda_ns)
    agent = netpol.Pod("jenkins-agent", namespace, {"app.kubernetes.io/name": "airflow-dag-publisher"})
    assert netpol.allowed(policies, operator, pgbouncer, facts.PGBOUNCER_PORT)
    assert not netpol.allowed(policies, other, pgbouncer, facts.PGBOUNCER_PORT)
    assert not netpol.allowed(policies, agent, pgbouncer, facts.PGBOUNCER_PORT)


def test_production_like_runs_two_of_every_component_with_a_budget(keda) -> None:
    """pgbouncer included: two replicas, never on one node, at most one down in a drain. One
    dag-processor: two on one bundle parse every file twice and add no availability."""
    _, objs = keda
    deployments = by_kind(objs, "Deployment")
    replicas = {name: d["spec"].get("replicas") for name, d in deployments.items()}
    assert replicas == {"airflow-api-server": 2, "airflow-dag-processor": 1, "airflow-pgbouncer": 2,
                        "airflow-scheduler": 2, "airflow-triggerer": 2, "airflow-worker": None}  # KEDA's
    budgets = {p["spec"]["selector"]["matchLabels"]["component"]: p["spec"]
               for p in by_kind(objs, "PodDisruptionBudget").values()}
    assert set(budgets) == {"api-server", "pgbouncer", "scheduler", "triggerer", "worker"}
    assert all(b.get("maxUnavailable") == 1 for b in budgets.values()), budgets
    anti = deployments["airflow-pgbouncer"]["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == "kubernetes.io/hostname"


NOT_APPLICABLE = {  # an answer given where it cannot apply is refused, never dropped
    "metrics-on-community": ({"airflow_chart": "community"}, {"metrics": "prometheus-operator"}, "'metrics'",
                             "needs the official chart"),
    "keda-on-community": ({"airflow_chart": "community"}, {"keda_autoscaling": True}, "'keda_autoscaling'",
                          "scales Celery workers on the official chart"),
    "keda-without-celery": ({}, {"keda_autoscaling": True, "executor": "KubernetesExecutor"}, "'keda_autoscaling'",
                            "scales Celery workers on the official chart"),
}


@pytest.mark.parametrize("case", sorted(NOT_APPLICABLE))
def test_an_answer_that_cannot_apply_is_refused(case, tmp_path, copy_project, official_answers,
                                                demo_answers) -> None:
    flavor, answers, question, rule = NOT_APPLICABLE[case]
    base = demo_answers if flavor else official_answers
    with pytest.raises(ValueError, match=r"Validation error for question " + question) as refused:
        copy_project(tmp_path / "repo", {**base, **answers})
    assert rule in str(refused.value)
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())
