"""`make preflight [ENV=<env>]`: does the cluster kubectl points at run what this repository needs?

Reads the environments' answers (.copier-answers*.yml) for what they use, then asks the cluster, with
your kubectl and its current context (or $KUBECONFIG), read-only GETs only (`kubectl get --raw`):
the Kubernetes version, the CRDs and the versions they serve, the controllers' image tags, the
namespaces and objects the manifests name. The minimums are facts.cluster_requirements().

One line per check: OK, WARN (cannot tell: an image pinned by digest, a read RBAC forbids, something
this repository installs itself and has not yet), MISSING or TOO OLD (what was found, and the minimum).
Exit status: 0 every check is OK or WARN; 1 at least one MISSING or TOO OLD; 2 nothing could be checked
(no kubectl, no reachable cluster, an unknown ENV).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from airflow_gitops import facts
from airflow_gitops.build import find_kubectl
from airflow_gitops.errors import OK, PROBLEMS, UserError, report
from airflow_gitops.objects import Loader

FAILED = ("MISSING", "TOO OLD")
TIMEOUT = "20s"  # kubectl --request-timeout: a dead API server answers no faster
# The API paths of what preflight reads (GET only). Collections end with the plural.
PATHS = {
    "Namespace": "/api/v1/namespaces/{name}",
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    "DaemonSet": "/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}",
    "CSIDriver": "/apis/storage.k8s.io/v1/csidrivers/{name}",
    "IngressClass": "/apis/networking.k8s.io/v1/ingressclasses/{name}",
}
VERSION_IN_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")  # v1.4.0, 2.16.1, v2.1.4-eksbuild.1, 0.32.2-r3
UNREACHABLE = ("Unable to connect to the server", "was refused", "connection refused", "no such host",
               "i/o timeout", "deadline exceeded", "certificate", "couldn't get current server API group list",
               "current-context", "no configuration has been provided")


class CannotTell(Exception):
    """This one read failed for a reason other than absence (RBAC, a server error): a WARN."""


@dataclass(frozen=True)
class Result:
    status: str  # OK, WARN, MISSING, TOO OLD
    text: str

    def line(self) -> str:
        return f"{self.status:<8} {self.text}"


@dataclass(frozen=True)
class Needs:
    """What the checked environments use, merged."""

    envs: tuple[str, ...]
    cluster: str
    engine: str
    keda: bool
    metrics: bool
    ingress: bool
    jenkins_service_account: str
    pod_identity: bool = False
    keda_namespace: str = facts.KEDA_NAMESPACE
    prometheus_namespace: str = facts.PROMETHEUS_NAMESPACE

    def requirements(self) -> list[facts.Requirement]:
        return facts.cluster_requirements(self.engine, self.keda, self.metrics, self.ingress, self.pod_identity,
                                          self.keda_namespace, self.prometheus_namespace)


# ---------------------------------------------------------------- answers
def environments(repo: Path) -> dict[str, dict]:
    """environment -> its answers, from every .copier-answers*.yml (each holds the repo-wide ones too)."""
    found: dict[str, dict] = {}
    for path in sorted(repo.glob(".copier-answers*.yml")):
        try:
            data = yaml.load(path.read_text(), Loader=Loader)
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{path.name} is unreadable: {exc}") from exc
        if isinstance(data, dict) and data.get("environment"):
            found[str(data["environment"])] = data
    return found


def needs(repo: Path, env: str | None) -> Needs:
    envs = environments(repo)
    if not envs:
        raise UserError(f"no .copier-answers*.yml with an environment in {repo}: run it in the repository's root")
    if env is not None and env not in envs:
        raise UserError(f"ENV={env}: no such environment (this repository has {', '.join(sorted(envs))})")
    chosen = {env: envs[env]} if env else envs
    clusters = {str(a.get("eks_cluster_name", "")) for a in chosen.values()}
    if len(clusters) > 1:
        on = ", ".join(f"{e} ({a.get('eks_cluster_name')})" for e, a in sorted(chosen.items()))
        raise UserError(f"the environments run on different clusters: {on}; "
                        "give the one whose cluster kubectl points at: make preflight ENV=<env>")
    first = next(iter(chosen.values()))
    return Needs(tuple(sorted(chosen)), clusters.pop(), str(first.get("gitops_engine", "flux")),
                 any(a.get("keda_autoscaling") is True for a in chosen.values()),
                 any(a.get("metrics") == "prometheus-operator" for a in chosen.values()),
                 any(bool(a.get("web_hostname")) for a in chosen.values()),
                 str(first.get("jenkins_service_account", "")),
                 any(a.get("aws_identity") == "pod-identity" for a in chosen.values()),
                 str(first.get("keda_namespace") or facts.KEDA_NAMESPACE),
                 str(first.get("prometheus_namespace") or facts.PROMETHEUS_NAMESPACE))


# ---------------------------------------------------------------- the cluster, through kubectl
class Cluster:
    """Read-only access through `kubectl get --raw` (the current context, or $KUBECONFIG)."""

    def __init__(self, kubectl: str) -> None:
        self.kubectl = kubectl
        self.context = self._run("config", "current-context").stdout.strip()
        self.server = self._run("config", "view", "--minify", "-o",
                                "jsonpath={.clusters[0].cluster.server}").stdout.strip()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.kubectl, *args], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise UserError(f"cannot run {self.kubectl}: {exc}") from exc

    def describe(self) -> str:
        return f"kubectl context {self.context or '(none)'} ({self.server or 'no server'})"

    def unreachable(self, text: str) -> UserError:
        if not self.context:
            return UserError(f"kubectl has no current context: set KUBECONFIG or run kubectl config use-context "
                             f"({text})")
        return UserError(f"cannot query the API server of kubectl context {self.context} "
                         f"({self.server or 'no server'}): {text}")

    def get(self, path: str) -> dict | None:
        """The object at `path`, or None when the API answers NotFound."""
        done = self._run("get", "--raw", path, f"--request-timeout={TIMEOUT}")
        if done.returncode == 0:
            try:
                return json.loads(done.stdout)
            except ValueError as exc:
                raise CannotTell(f"GET {path} did not answer JSON") from exc
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        text = message[-1] if message else f"kubectl exited {done.returncode}"
        if "(NotFound)" in text:
            return None
        if any(marker in text for marker in UNREACHABLE):
            raise self.unreachable(text)
        raise CannotTell(text)

    def object(self, kind: str, name: str, namespace: str = "") -> dict | None:
        return self.get(PATHS[kind].format(name=name, namespace=namespace))

    def items(self, kind: str, namespace: str) -> list[dict]:
        found = self.get(PATHS[kind].format(name="", namespace=namespace).rstrip("/")) or {}
        return list(found.get("items") or [])


# ---------------------------------------------------------------- versions
def parse_version(text: str) -> tuple[int, ...] | None:
    match = VERSION_IN_TAG.match(text)
    return tuple(int(g) for g in match.groups(default="0")) if match else None


def at_least(found: tuple[int, ...], minimum: str) -> bool:
    wanted = tuple(int(p) for p in minimum.split("."))
    return found[:len(wanted)] >= wanted


def image_tag(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; tag "" when it is pinned by digest only."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return (name[:colon], name[colon + 1:]) if colon > slash else (name, "")


def containers(obj: dict) -> list[dict]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


# ---------------------------------------------------------------- checks
def check_kubernetes(cluster: Cluster) -> Result:
    need = facts.KUBERNETES
    try:
        found = cluster.get("/version")
    except CannotTell as exc:  # the first read: if even /version fails, nothing else will answer
        raise cluster.unreachable(str(exc)) from exc
    git_version = str((found or {}).get("gitVersion", ""))
    version = parse_version(git_version)
    if version is None:
        return Result("WARN", f"{need.name}: /version says {git_version!r}, no version: cannot tell "
                              f"(needs >= {need.minimum}: {need.why})")
    if not at_least(version, need.minimum):
        return Result("TOO OLD", f"{need.name} {git_version}: needs >= {need.minimum}, for {need.why}")
    return Result("OK", f"{need.name} {git_version} (>= {need.minimum})")


def absent(need: facts.Requirement, what: str) -> Result:
    if need.installed_here:
        return Result("WARN", f"{what}: not installed yet; this repository installs {need.name} (infrastructure), "
                              "so run make preflight again after the first sync, before make seal")
    return Result("MISSING", f"{what}: install {need.name} >= {need.minimum}, for {need.why}")


def check_crd(cluster: Cluster, need: facts.Requirement, name: str, version: str) -> Result:
    what = f"CRD {name} {version}"
    try:
        crd = cluster.object("CustomResourceDefinition", name)
    except CannotTell as exc:
        return Result("WARN", f"{what}: cannot tell ({exc})")
    if crd is None:
        return absent(need, what)
    served = [v.get("name") for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served")]
    if version not in served:
        return Result("TOO OLD", f"{what}: the CRD serves {', '.join(map(str, served)) or 'no version'}, "
                                 f"not {version}; upgrade {need.name} to >= {need.minimum}, for {need.why}")
    return Result("OK", what)


def check_workload(cluster: Cluster, need: facts.Requirement, work: facts.Workload) -> Result:
    where = f"{work.kind} {work.namespace}/{work.name or '*'}"
    try:
        if work.name is None:
            found = [o for o in cluster.items(work.kind, work.namespace)
                     if any(image_tag(c.get("image", ""))[0].rsplit("/", 1)[-1] == work.image for c in containers(o))]
            obj = found[0] if found else None
            where = f"{work.kind} {work.namespace}/{obj['metadata']['name']}" if obj else \
                f"a {work.kind} in {work.namespace} running the {work.image} image"
        else:
            obj = cluster.object(work.kind, work.name, work.namespace)
    except CannotTell as exc:
        return Result("WARN", f"{need.name} ({where}): cannot tell ({exc})")
    if obj is None:
        return absent(need, f"{need.name} ({where})")
    images = [c.get("image", "") for c in containers(obj)
              if image_tag(c.get("image", ""))[0].rsplit("/", 1)[-1] == work.image]
    if not images:
        return Result("WARN", f"{need.name} ({where}): no container runs an image named {work.image}: "
                              f"cannot tell its version (needs >= {need.minimum})")
    tag = image_tag(images[0])[1]
    version = parse_version(tag)
    if version is None:
        return Result("WARN", f"{need.name} ({where}): image {images[0]} has no version tag: cannot tell "
                              f"(needs >= {need.minimum}: {need.why})")
    if not at_least(version, need.minimum):
        return Result("TOO OLD", f"{need.name} {tag} ({where}): needs >= {need.minimum}, for {need.why}")
    return Result("OK", f"{need.name} {tag} ({where}, >= {need.minimum})")


def check_object(cluster: Cluster, need: facts.Requirement, kind: str, name: str) -> Result:
    what = f"{kind} {name}"
    try:
        obj = cluster.object(kind, name)
    except CannotTell as exc:
        return Result("WARN", f"{what}: cannot tell ({exc})")
    if obj is None:
        return absent(need, what)
    controller = (obj.get("spec") or {}).get("controller")
    if kind == "IngressClass" and controller != facts.INGRESS_CONTROLLER:
        return Result("MISSING", f"{what} belongs to {controller!r}, not {facts.INGRESS_CONTROLLER} "
                                 f"({need.name}): the Ingress would get no ALB")
    return Result("OK", what)


def check_namespace(cluster: Cluster, name: str, why: str) -> Result:
    try:
        found = cluster.object("Namespace", name)
    except CannotTell as exc:
        return Result("WARN", f"Namespace {name}: cannot tell ({exc})")
    return Result("OK", f"Namespace {name}") if found else Result("MISSING", f"Namespace {name}: {why}")


def check_jenkins(cluster: Cluster, service_account: str) -> Iterator[Result]:
    namespace, _, name = service_account.partition("/")
    why = f"jenkins_service_account {service_account}: the agent RoleBindings name it"
    yield (result := check_namespace(cluster, namespace, why))
    if result.status != "OK":
        return
    try:
        found = cluster.object("ServiceAccount", name, namespace)
    except CannotTell as exc:
        yield Result("WARN", f"ServiceAccount {service_account}: cannot tell ({exc})")
        return
    yield Result("OK", f"ServiceAccount {service_account}") if found else \
        Result("MISSING", f"ServiceAccount {service_account}: {why}; Jenkins' Kubernetes cloud must run as it")


def checks(cluster: Cluster, need: Needs) -> Iterator[Result]:
    yield check_kubernetes(cluster)
    for req in (r for r in need.requirements() if r is not facts.KUBERNETES):
        for name, version in req.crds:
            yield check_crd(cluster, req, name, version)
        for work in req.workloads:
            yield check_workload(cluster, req, work)
        for kind, name in req.objects:
            yield check_object(cluster, req, kind, name)
    if need.keda:  # the NetworkPolicy lets the operator in by this namespace's name
        yield check_namespace(cluster, need.keda_namespace, "keda_autoscaling: networkpolicy-keda-pgbouncer.yaml "
                                                             "admits the KEDA operator from it")
    if need.metrics:
        yield check_namespace(cluster, need.prometheus_namespace, "metrics: networkpolicy-metrics.yaml admits "
                                                                   "Prometheus from it")
    if need.jenkins_service_account:
        yield from check_jenkins(cluster, need.jenkins_service_account)


def run(repo: Path, env: str | None, out: TextIO = sys.stdout) -> int:
    try:
        need = needs(repo, env)
        kubectl = find_kubectl(repo)
        if kubectl is None:
            raise UserError("no kubectl: set KUBECTL, put kubectl >= 1.27 on PATH, or run make tools")
        cluster = Cluster(kubectl)
        print(f"preflight: {', '.join(need.envs)} on cluster {need.cluster} ({facts.GITOPS_ENGINES.get(need.engine)}),"
              f" {cluster.describe()}", file=out)
        results = []
        for result in checks(cluster, need):
            print(result.line(), file=out, flush=True)
            results.append(result)
    except UserError as exc:  # nothing can be checked: the one error, exit 2
        return report("preflight: cannot check the cluster", exc)
    failed = [r for r in results if r.status in FAILED]
    warned = sum(r.status == "WARN" for r in results)
    print(f"preflight: {len(results) - len(failed) - warned} OK, {warned} WARN, {len(failed)} failed", file=out)
    return PROBLEMS if failed else OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="preflight.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", help="check this environment only (default: every one; they must share a cluster)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository's root (default: .)")
    args = parser.parse_args(argv)
    return run(args.repo, args.env)
