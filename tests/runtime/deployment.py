"""One environment of a generated repository, deployed into a sandbox and driven like a cluster.

    with Deployment(repo, "dev", workdir, airflow_python, controller_key) as dep:
        dep.render(chart)             # the repository's own `make render`
        dep.start_services()          # RDS, ElastiCache stand-ins
        dep.publish_dags()            # the Jenkinsfile's DAG steps in its agent pod, onto the DAG volume
        dep.start("airflow-pgbouncer") ...

The SealedSecrets are decrypted with the throwaway controller key the test sealed them for,
exactly as the controller would produce the Secrets. Nothing is edited in the render: the
sandbox's /etc/hosts points the endpoint names at its loopback, and the servers listen on the
rendered ports.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from airflow_gitops import images
from airflow_gitops.facts import AIRFLOW_GID, AIRFLOW_UID, DAG_CLAIM

from . import pgbouncer
from .install import PGBOUNCER, RUNTIMES
from .pods import (
    KUBERNETES_SERVICE,
    Cluster,
    Container,
    Image,
    Pod,
    build_pod,
    complete_job,
    execute,
    stand_ins,
    start,
)
from .rendered import Mount, Objects, Rendered
from .sandbox import HarnessError, Process, Sandbox, wait_for
from .services import Postgres, Redis
from .tls import CertificateAuthority


def timed(method: Callable[..., T]) -> Callable[..., T]:
    """Record each step's wall time: the harness prints them, the closing notes quote them."""
    @functools.wraps(method)
    def wrapper(self: Deployment, *args: Any, **kwargs: Any) -> T:
        started = time.monotonic()
        try:
            return method(self, *args, **kwargs)
        finally:
            label = " ".join([method.__name__, *(str(a) for a in args[:1] if isinstance(a, str))])
            self.timings.append((label, time.monotonic() - started))
    return wrapper


STATEFUL_POD = "{name}-0"
DEPLOYMENT_POD = "{name}-5d8f7c9b6-x2k4q"  # replica-set hash + pod suffix, as a Deployment names its pods
JOB_POD = "{name}-7kq2d"  # a Job's pod: the Job's name + a random suffix
# Where the Kubernetes plugin's `sh` runs: its workspace volume (/home/jenkins/agent) holds the checkout.
AGENT_WORKSPACE = "/home/jenkins/agent/workspace/publish-dags"
T = TypeVar("T")
# What `airflow db migrate` says when done: Airflow 2 and 3.0-3.1 print the first, 3.2+ log the second.
MIGRATED = ("Database migrating done", "Database migration done")
RELEASE_TIMEOUT = float(os.environ.get("AIRFLOW_RUNTIME_TIMEOUT", "240"))


@dataclass
class Boot:
    thread: threading.Thread
    done: threading.Event = field(default_factory=threading.Event)
    processes: list[Process] = field(default_factory=list)
    error: BaseException | None = None


def unseal(key: Any, sealed_secret: dict) -> tuple[str, dict[str, str]]:
    """What the sealed-secrets controller makes of one SealedSecret: (Secret name, data)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from standins.controller import unseal_object  # the controller's decryption

    template = sealed_secret["spec"].get("template") or {}
    plain = {k: str(v) for k, v in (template.get("data") or {}).items()}
    if any("{{" in v for v in plain.values()):
        raise HarnessError("SealedSecret template.data Go templates are not emulated")
    name = (template.get("metadata") or {}).get("name") or sealed_secret["metadata"]["name"]
    return name, {**plain, **unseal_object(key, sealed_secret)}


class Deployment:
    def __init__(self, repo: Path, env: str, workdir: Path, airflow_python: Path, controller_key: Any, *,
                 tool_env: dict[str, str], redis_tls: bool | None = None, redis_password: str | None = None) -> None:
        self.repo, self.env, self.workdir, self.tool_env = repo, env, workdir, tool_env
        self.airflow_python, self.key = airflow_python, controller_key
        self.answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
        # The ElastiCache stand-in follows the answers unless the test says otherwise.
        self.server_tls = self.answers.get("redis_tls", True) if redis_tls is None else redis_tls
        self.server_password = redis_password
        self.sandbox = Sandbox(workdir)
        self.ca = CertificateAuthority(workdir / "ca")
        self.pods: dict[str, Pod] = {}
        self.timings: list[tuple[str, float]] = []
        self._started_at = time.monotonic()
        self.boots: dict[str, Boot] = {}
        self.efs = workdir / "efs"
        self.efs.mkdir()
        os.chown(self.efs, AIRFLOW_UID, AIRFLOW_GID)  # the access point's root directory, created as 50000:0

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.close()
        steps = ", ".join(f"{label} {seconds:.1f}s" for label, seconds in self.timings)
        print(f"runtime: {self.repo.name}/{self.env}: {time.monotonic() - self._started_at:.1f}s ({steps})")

    # ------------------------------------------------------------ the repository's own tools
    def make(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", "-s", "-C", str(self.repo), *args, f"TOOLS_PYTHON={sys.executable}"],
                              capture_output=True, text=True, timeout=timeout, env=self.tool_env)

    @timed
    def render(self, chart: Path) -> Rendered:
        proc = self.make("render", f"ENV={self.env}", f"CHART={chart}")
        if proc.returncode != 0:
            raise HarnessError(f"make render failed:\n{proc.stdout}{proc.stderr}")
        self.rendered = Rendered(self.repo / "build" / "render" / self.env)
        self.check_airflow_release()
        unsealed = dict(unseal(self.key, s) for s in self.rendered.sealed_secrets())
        self.objects = Objects.from_render(self.rendered, unsealed)
        return self.rendered

    def check_airflow_release(self) -> None:
        """The installed Airflow that stands in for the apache/airflow image must be the release the
        render deploys (a repo re-answered with a new tag needs that tag's runtime, RUNTIMES)."""
        version = next((v for v, r in RUNTIMES.items() if r.python == self.airflow_python), None)
        if version is None:
            return  # not one of the installed runtimes (the harness's own tests): nothing to compare
        specs = [w["spec"]["template"]["spec"] for kind in ("Deployment", "StatefulSet", "Job")
                 for w in self.rendered.kinds(kind)]
        refs = [c["image"] for spec in specs for c in spec["containers"] + spec.get("initContainers", [])]
        tags = {images.split_ref(ref)[1].split("-")[0] for ref in refs if images.lookup(ref) is images.AIRFLOW}
        if tags - {version}:
            raise HarnessError(f"the render deploys apache/airflow {', '.join(sorted(tags))}, but this Deployment "
                               f"runs Airflow {version}: pass that release's runtime (helpers.tools.airflow_python)")

    # ------------------------------------------------------------ AWS stand-ins
    def endpoint_names(self) -> list[str]:
        namespace, names = self.rendered.release["namespace"], [self.answers["rds_host"]]
        if self.answers.get("redis_host"):
            names.append(self.answers["redis_host"])
        for svc in self.rendered.kinds("Service"):
            base = svc["metadata"]["name"]
            names += [base, f"{base}.{namespace}", f"{base}.{namespace}.svc", f"{base}.{namespace}.svc.cluster.local"]
        return names

    @timed
    def start_services(self) -> None:
        a = self.answers
        user, password = self.db_login()
        self.postgres = Postgres(self.sandbox, self.ca, a["rds_host"], int(a["rds_port"]))
        self.postgres.create_login(user, password, a["rds_database"])
        self.redis = None
        if a.get("redis_host"):
            password = self.server_password
            if password is None and a.get("redis_auth", True):
                password = self.redis_token()
            self.redis = Redis(self.sandbox, self.ca, a["redis_host"], int(a["redis_port"]), tls=self.server_tls,
                               password=password)
        if "Kubernetes" in a["executor"]:
            self.start_kube_api()
        self.cluster = Cluster(self.objects, {DAG_CLAIM: self.efs}, self.endpoint_names(),
                               self.rendered.release["namespace"], self.ca.bundle,
                               {**stand_ins(self.airflow_python), **self.pgbouncer_images()}, self.workdir,
                               access_points={DAG_CLAIM: (AIRFLOW_UID, AIRFLOW_GID)})

    def pgbouncer_images(self) -> dict[str, Image]:
        """The image of every rendered `pgbouncer` container, with the harness's build standing in
        for the pgbouncer version its tag names (pgbouncer.py), bound over its /usr/local/sbin."""
        if not PGBOUNCER.installed():
            raise HarnessError(f"pgbouncer {PGBOUNCER.version} is not built in {PGBOUNCER.prefix}: run `make runtime`")
        refs = {c["image"] for d in self.rendered.kinds("Deployment")
                for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "pgbouncer"}
        found: dict[str, Image] = {}
        standing = stand_ins(self.airflow_python)
        for i, ref in enumerate(sorted(refs)):
            known = images.lookup(ref)
            if known is None or known.name not in standing:
                raise HarnessError(f"pgbouncer image {ref}: no facts or stand-in (airflow_gitops/images.py)")
            try:
                directory = pgbouncer.stand_in(ref, self.workdir / "images" / f"pgbouncer-{i}", PGBOUNCER.binary)
            except ValueError as exc:
                raise HarnessError(str(exc)) from None
            found[known.name] = replace(standing[known.name], binds=((directory, pgbouncer.CONTAINER_DIR),))
        return found

    @property
    def official(self) -> bool:
        return self.answers.get("airflow_chart") == "official"

    def db_login(self) -> tuple[str, str]:
        """The RDS login the sealed secrets hold: airflow-db (community), pgbouncer's users.txt (official)."""
        if not self.official:
            db = self.objects.secrets["airflow-db"]
            return db["username"], db["password"]
        line = self.objects.secrets["airflow-pgbouncer"]["users.txt"].strip().splitlines()[0]
        user, password = (part.strip('"').replace('""', '"') for part in line.split('" "', 1))
        return user, password

    def redis_token(self) -> str:
        if not self.official:
            return self.objects.secrets["airflow-redis"]["password"]
        from urllib.parse import unquote, urlsplit

        return unquote(urlsplit(self.objects.secrets["airflow-broker-url"]["connection"]).password or "")

    def start_kube_api(self) -> None:
        """The API stand-in (kubeapi.py) at the in-cluster address: reads answered, pods recorded."""
        address, port = KUBERNETES_SERVICE["KUBERNETES_SERVICE_HOST"], KUBERNETES_SERVICE["KUBERNETES_SERVICE_PORT"]
        self.sandbox.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"]).check_returncode()
        cert = self.ca.issue("kube-apiserver", [address, "kubernetes.default.svc"])
        self.created_pods = self.workdir / "kube-api-pods"
        self.created_pods.mkdir()
        proc = self.sandbox.spawn("kube-api", [sys.executable, str(Path(__file__).with_name("kubeapi.py")), address,
                                               port, str(cert.cert), str(cert.key), str(self.created_pods)])
        wait_for("Kubernetes API stand-in serving", lambda: "serving" in proc.text(), 20, evidence=proc.tail)

    def task_pods(self) -> list[dict]:
        """Pods the KubernetesExecutor asked the API to create, in order."""
        import json

        return [json.loads(p.read_text()) for p in sorted(self.created_pods.glob("pod-*.json"))]

    # ------------------------------------------------------------ DAGs (what the Jenkins job does)
    @timed
    def publish_dags(self, revision: str = "0123456789abcdef0123456789abcdef01234567") -> list[
            subprocess.CompletedProcess[str]]:
        """The Jenkinsfile's DAG steps (check, publish, status), each `sh` command as it is written, in its
        agent pod's `airflow` container as the Jenkinsfile renders that pod for this environment (its own
        Groovy, tests/standins/declarative.py), built like every pod here: the kubelet's rules, the image's
        facts, the EFS access point's identity on the claim. The `jnlp` container (the plugin's image, git) is
        not run: the checkout is this repository, mounted where the plugin's workspace holds it."""
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from standins.declarative import sh_commands  # the Jenkinsfile's `sh` steps as written

        publisher = self.dag_publisher()
        env = {**publisher.env, "DAGS_REVISION": revision}  # what the Checkout stage sets
        done = []
        for i, (_, command) in enumerate(sh_commands((self.repo / "Jenkinsfile").read_text())):
            proc = execute(self.sandbox, self.cluster, replace(publisher, env=env), ["sh", "-xe", "-c", command],
                           name=f"dag-step-{i}")
            if proc.returncode != 0:
                raise HarnessError(f"the Jenkinsfile's `{command}` failed ({proc.returncode}):\n"
                                   f"{proc.stdout}{proc.stderr}")
            done.append(proc)
        return done

    def dag_publisher(self) -> Container:
        """The `airflow` container of the Jenkinsfile's agent pod for this environment."""
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from standins.declarative import run_jenkinsfile  # the Jenkinsfile's own Groovy

        agent = run_jenkinsfile(self.repo / "Jenkinsfile", self.workdir, params={"ENVIRONMENT": self.env}).agent(
            "Publish DAGs")
        if agent["namespace"] != self.cluster.namespace:
            raise HarnessError(f"the Jenkinsfile starts {self.env}'s agent pod in {agent['namespace']}, "
                               f"not the release's namespace {self.cluster.namespace}")
        pod = yaml.safe_load(agent["yaml"])
        pod["metadata"]["name"] = "airflow-dag-publisher"
        pod["spec"]["containers"] = [c for c in pod["spec"]["containers"] if c["name"] == "airflow"]
        publisher = build_pod(self.cluster, pod, "airflow-dag-publisher-q7x2m").container("airflow")
        return replace(publisher, mounts=[*publisher.mounts, Mount(AGENT_WORKSPACE, self.repo, True)],
                       cwd=AGENT_WORKSPACE)

    # ------------------------------------------------------------ pods
    def pod(self, workload: str) -> Pod:
        if workload not in self.pods:
            obj = (self.rendered.find("Deployment", workload) or self.rendered.find("Job", workload)
                   or self.rendered.get("StatefulSet", workload))
            pattern = {"StatefulSet": STATEFUL_POD, "Job": JOB_POD}.get(obj["kind"], DEPLOYMENT_POD)
            self.pods[workload] = build_pod(self.cluster, obj, pattern.format(name=workload))
        return self.pods[workload]

    def start(self, workload: str, *, init_attempts: int = 3, skip: tuple[str, ...] = (),
              obj: dict | None = None) -> Pod:
        """Schedule the pod: its init containers run in order (retried like the kubelet does), then
        every container starts; pods boot concurrently, as on a node. `obj`: a Pod the API received."""
        if obj is not None:
            self.pods[workload] = build_pod(self.cluster, obj, obj["metadata"]["name"])
        pod = self.pod(workload)
        boot = Boot(threading.Thread(target=self._boot, args=(workload, pod, init_attempts, skip), daemon=True))
        self.boots[workload] = boot
        boot.thread.start()
        return pod

    def _boot(self, workload: str, pod: Pod, attempts: int, skip: tuple[str, ...]) -> None:
        boot = self.boots[workload]
        try:
            for init in pod.init_containers:
                self._run_init(init, attempts)
            boot.processes = [start(self.sandbox, self.cluster, c) for c in pod.containers if c.name not in skip]
        except BaseException as exc:  # reported by running()
            boot.error = exc
        finally:
            boot.done.set()

    def _run_init(self, c: Container, attempts: int) -> None:
        for attempt in range(1, attempts + 1):
            proc = execute(self.sandbox, self.cluster, c, c.argv, name=f"init{attempt}", timeout=RELEASE_TIMEOUT)
            if proc.returncode == 0:
                return
            if attempt == attempts:
                raise HarnessError(f"init container {c.label} failed {attempts} times (exit {proc.returncode}):\n"
                                   f"{(proc.stdout + proc.stderr)[-3000:]}")
            time.sleep(2 * attempt)

    @timed
    def running(self, workload: str, timeout: float = RELEASE_TIMEOUT) -> list[Process]:
        """Wait until the pod's init containers are done and its containers started."""
        boot = self.boots[workload]
        if not boot.done.wait(timeout):
            raise HarnessError(f"pod {workload}: init containers still running after {timeout:g} s")
        if boot.error is not None:
            raise boot.error
        return boot.processes

    @timed
    def rerun_job(self, workload: str, chart: Path, timeout: float = RELEASE_TIMEOUT) -> None:
        """What the engine does with a Job at the next upgrade or sync after a commit (a new Job: its pod
        template is immutable): render again, the controller decrypts the new SealedSecrets, and the
        Job's new pod runs to completion on them."""
        self.render(chart)
        self.cluster.objects = self.objects
        self.pods.pop(workload, None)
        self.start(workload)
        self.wait_job(workload, timeout)

    @timed
    def wait_job(self, workload: str, timeout: float) -> None:
        """Wait until the Job's pod completes (pods.complete_job: the kubelet's restartPolicy and the
        Job's backoffLimit); a failure is raised with the container's log."""
        complete_job(self.sandbox, self.cluster, self.rendered.get("Job", workload), self.pod(workload),
                     list(self.running(workload, timeout)), timeout)

    def process(self, workload: str, container: str | None = None) -> Process:
        procs = self.running(workload)
        return next(p for p in procs if container is None or p.name.endswith(f".{container}"))

    def user_of(self, workload: str, container: str | None = None) -> tuple[int, int]:
        """(uid, gid) the container's process runs as (podns.py execs it in place of the launcher)."""
        status = Path(f"/proc/{self.process(workload, container).popen.pid}/status").read_text()
        ids = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines()
               if line.startswith(("Uid:", "Gid:"))}
        return ids["Uid"], ids["Gid"]

    def exec(self, workload: str, argv: list[str], container: str | None = None,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
        pod = self.pod(workload)
        c = pod.container(container) if container else pod.containers[0]
        return execute(self.sandbox, self.cluster, c, argv, timeout=timeout)

    @timed
    def probe(self, workload: str, kind: str = "liveness", container: str | None = None) -> None:
        pod = self.pod(workload)
        c = pod.container(container) if container else pod.containers[0]
        if kind not in c.probes:
            raise HarnessError(f"{c.label} has no {kind} exec probe")
        argv, timeout = c.probes[kind]
        try:
            proc = execute(self.sandbox, self.cluster, c, argv, name=f"{kind}-probe", timeout=timeout + 10)
        except subprocess.TimeoutExpired:  # + the namespace set-up; the kubelet would have given up
            raise HarnessError(f"the {kind} probe of {c.label} did not answer within {timeout:g} s: "
                               "the kubelet would restart it") from None
        if proc.returncode != 0:
            raise HarnessError(f"the {kind} probe of {c.label} fails (exit {proc.returncode}): the kubelet would "
                               f"restart it:\n{(proc.stdout + proc.stderr)[-2000:]}")

    @timed
    def wait_log(self, workload: str, text: str | tuple[str, ...], timeout: float, *, container: str | None = None,
                 fatal: dict[str, str] | None = None) -> None:
        """Wait for `text` (or any of several) in a container's output; a `fatal` marker fails at once
        with its meaning."""
        proc = self.process(workload, container)
        texts = (text,) if isinstance(text, str) else text

        def fail_fast() -> str | None:
            log = proc.text()
            for marker, meaning in (fatal or {}).items():
                if marker in log:
                    line = next(ln for ln in log.splitlines() if marker in ln)
                    return f"{meaning}: {line.strip()[:400]}"
            return None if proc.alive() else f"{proc.name} exited ({proc.popen.returncode})"

        wait_for(f"{proc.name} logs {' or '.join(map(repr, texts))}", lambda: any(t in proc.text() for t in texts),
                 timeout, evidence=proc.tail, fail_fast=fail_fast)

    # ------------------------------------------------------------ Airflow, through its database
    def sql(self, query: str) -> str:
        return self.postgres.psql(query, db=self.answers["rds_database"])

    @timed
    def wait_dag(self, dag_id: str, timeout: float) -> None:
        # Airflow 2 marks a parsed DAG is_active; Airflow 3 renamed it to the negated is_stale.
        active = ("coalesce((to_jsonb(dag) ->> 'is_active')::boolean, "
                  "NOT (to_jsonb(dag) ->> 'is_stale')::boolean)")
        parser = "airflow-dag-processor" if "airflow-dag-processor" in self.boots else "airflow-scheduler"
        wait_for(f"DAG {dag_id} parsed into the metadata DB",
                 lambda: self._table_has("dag", f"dag_id = '{dag_id}' AND {active}"), timeout,
                 evidence=lambda: self.process(parser).tail(40))

    @timed
    def wait_for_sql(self, query: str, expected: str, timeout: float) -> None:
        def check() -> bool:
            try:
                return self.sql(query) == expected
            except HarnessError:
                return False
        wait_for(f"{query!r} returns {expected!r}", check, timeout, evidence=lambda: self.sql(query))

    def _table_has(self, table: str, where: str) -> bool:
        try:
            return self.sql(f"SELECT count(*) FROM {table} WHERE {where}") not in ("", "0")
        except HarnessError:  # before the migrations created it
            return False

    @timed
    def trigger(self, dag_id: str, run_id: str = "harness-run") -> str:
        proc = self.exec("airflow-scheduler", ["bash", "-c", f"airflow dags unpause {dag_id} && "
                                                             f"airflow dags trigger {dag_id} -r {run_id}"])
        if proc.returncode != 0:
            raise HarnessError(f"airflow dags trigger {dag_id} failed:\n{proc.stdout}{proc.stderr}")
        return run_id

    @timed
    def wait_run(self, dag_id: str, run_id: str, timeout: float, evidence_from: tuple[str, ...]) -> str:
        def state() -> str:
            return self.sql(f"SELECT state FROM dag_run WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'")

        def evidence() -> str:
            tis = self.sql(f"SELECT task_id, state, hostname, queue FROM task_instance WHERE run_id = '{run_id}'")
            logs = "\n".join(f"--- {w}\n{self.process(w).tail(30)}" for w in evidence_from)
            return f"task instances: {tis or 'none'}\n{logs}"

        wait_for(f"DAG run {dag_id}/{run_id} finished", lambda: state() in ("success", "failed"), timeout,
                 evidence=evidence, interval=1.0)
        final = state()
        if final != "success":
            raise HarnessError(f"DAG run {dag_id}/{run_id} ended {final}\n{evidence()}")
        return final

    def connection_extra(self, conn_id: str) -> tuple[bool, str]:
        row = self.sql(f"SELECT is_extra_encrypted, extra FROM connection WHERE conn_id = '{conn_id}'")
        if not row:
            raise HarnessError(f"connection {conn_id} is not in the metadata DB")
        encrypted, _, extra = row.partition("|")
        return encrypted == "t", extra


def fernet_decrypt(key: str, token: str) -> str:
    from cryptography.fernet import Fernet, MultiFernet

    keys = [Fernet(k.strip()) for k in key.split(",") if k.strip()]
    return MultiFernet(keys).decrypt(token.encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def make_workdir(prefix: str) -> Path:
    """A traversable directory outside pytest's 0700 tmp: the containers' users must reach volumes."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=f"airflow-runtime-{prefix}-"))
    path.chmod(0o755)
    return path


def remove_workdir(path: Path) -> None:
    if os.environ.get("AIRFLOW_RUNTIME_KEEP") == "1":  # keep logs and pod files for a post-mortem
        print(f"runtime: kept {path}")
        return
    shutil.rmtree(path, ignore_errors=True)
