"""Run a rendered workload's containers the way the kubelet would, inside a sandbox.

Each container gets its own mount and UTS namespaces (podns.py): the pod name as host name,
an /etc/hosts that resolves the cluster Services and the AWS endpoints to the sandbox's
loopback (the only thing this harness maps), the volumes at their mount paths, the service
account token, the CA bundle the tests trust at the image's path, and the user of the
container's securityContext. What the image itself provides (Python, the airflow CLI,
pgbouncer, psql, the passwd entry of its user) comes from the machine; `Image` names it (pgbouncer:
the harness's build, bound in by pgbouncer.py).
The rendered env, command, args, probes and config files are used as rendered.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .rendered import Mount, Objects, PodError, container_env, container_mounts, volume_sources
from .sandbox import Process, Sandbox

PODNS = Path(__file__).with_name("podns.py")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's path, as in the apache/airflow images
SERVICE_ACCOUNT_DIR = "/run/secrets/kubernetes.io/serviceaccount"  # /var/run -> /run
KUBERNETES_SERVICE = {"KUBERNETES_SERVICE_HOST": "172.20.0.1", "KUBERNETES_SERVICE_PORT": "443",
                      "KUBERNETES_PORT_443_TCP_ADDR": "172.20.0.1"}  # EKS's default; unreachable here
SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]


@dataclass(frozen=True)
class Image:
    """The parts of a container image that the machine stands in for."""

    name: str
    python_bin: Path  # first on PATH: python3, airflow
    env: dict[str, str]
    dirs: tuple[tuple[str, int, int, int], ...]  # (path, uid, gid, mode) the image owns
    user: str  # its passwd line
    entrypoint: tuple[str, ...] = ()  # the image's ENTRYPOINT-like prefix of `command`, dropped
    sh_is_bash: bool = False  # its /bin/sh has bash's ${var/pattern/replacement} (busybox ash)
    binds: tuple[tuple[Path, str], ...] = ()  # (host dir, path) read-only: its own builds (pgbouncer.py)

    def argv(self, command: list[str]) -> list[str]:
        argv = _strip_entrypoint(command)
        if self.sh_is_bash and argv[:1] == ["/bin/sh"]:
            argv = ["bash", *argv[1:]]
        return argv


def _strip_entrypoint(command: list[str]) -> list[str]:
    """Drop `/usr/bin/dumb-init [--flags] --` and the airflow image's `/entrypoint`: the
    entrypoint only adds an /etc/passwd entry and a DB wait, which the chart disables
    (CONNECTION_CHECK_MAX_COUNT=0); then it execs its arguments."""
    argv = list(command)
    if argv[:1] == ["/usr/bin/dumb-init"]:
        argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    if argv[:1] == ["/entrypoint"]:
        argv = argv[1:]
    return argv


def airflow_image(python: Path) -> Image:
    return Image("apache/airflow", python.parent,
                 {"AIRFLOW_HOME": "/opt/airflow", "HOME": "/home/airflow", "AIRFLOW_USER_HOME_DIR": "/home/airflow",
                  "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"},
                 (("/opt/airflow", 50000, 0, 0o775), ("/home/airflow", 50000, 0, 0o755)),
                 "airflow:x:50000:0:airflow:/home/airflow:/bin/bash", ("/usr/bin/dumb-init", "/entrypoint"))


def pgbouncer_image(python: Path) -> Image:
    # ghcr.io/airflow-helm/pgbouncer: pgbouncer, psql and python3 (the liveness probe uses them).
    return Image("airflow-helm/pgbouncer", python.parent, {"HOME": "/home/pgbouncer", "LANG": "C.UTF-8"},
                 (("/home/pgbouncer", 1001, 1001, 0o755),), "pgbouncer:x:1001:1001::/home/pgbouncer:/bin/sh",
                 ("/usr/bin/dumb-init",), sh_is_bash=True)


@dataclass
class Container:
    pod: str
    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    uid: int
    gid: int
    groups: list[int]
    image: Image
    # liveness/readiness/startup: (exec command, timeoutSeconds: the kubelet counts a slower probe as failed)
    probes: dict[str, tuple[list[str], float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.pod}/{self.name}"


@dataclass
class Pod:
    name: str  # host name, HOSTNAME
    workload: str
    init_containers: list[Container]
    containers: list[Container]

    def container(self, name: str) -> Container:
        found = [c for c in self.containers + self.init_containers if c.name == name]
        if not found:
            raise PodError(f"pod {self.name} has no container {name!r}")
        return found[0]


@dataclass
class Cluster:
    """What every pod of the namespace shares: objects, volumes, names, images."""

    objects: Objects
    claims: dict[str, Path]  # PersistentVolumeClaim -> local directory
    hosts: list[str]  # names resolving to the sandbox loopback
    namespace: str
    ca_bundle: Path
    images: dict[str, Image]  # image repository substring -> stand-in
    workdir: Path

    def image_for(self, ref: str, where: str) -> Image:
        for key, image in self.images.items():
            if key in ref:
                return image
        raise PodError(f"{where}: no local stand-in for image {ref}")


def build_pod(cluster: Cluster, workload: dict, pod_name: str) -> Pod:
    """A pod of a Deployment/StatefulSet, or a Pod object itself (a KubernetesExecutor task pod)."""
    spec = workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]
    where = f"{workload['kind']}/{workload['metadata']['name']}"
    pod_dir = cluster.workdir / "pods" / pod_name
    pod_sc = spec.get("securityContext") or {}
    sources = volume_sources(spec, cluster.objects, cluster.claims, pod_dir, where)

    def container(c: dict) -> Container:
        here = f"{where} container {c['name']}"
        sc = {**pod_sc, **(c.get("securityContext") or {})}
        image = cluster.image_for(c["image"], here)
        env = {"HOSTNAME": pod_name, **KUBERNETES_SERVICE,
               **container_env(spec, c, cluster.objects, pod_name, cluster.namespace, here)}
        probes = {kind: (image.argv(c[f"{kind}Probe"]["exec"]["command"]),
                         float(c[f"{kind}Probe"].get("timeoutSeconds", 1)))
                  for kind in ("liveness", "readiness", "startup") if "exec" in (c.get(f"{kind}Probe") or {})}
        return Container(pod_name, c["name"], image.argv([*(c.get("command") or []), *(c.get("args") or [])]),
                         env, container_mounts(c, sources, here), int(sc.get("runAsUser", 0)),
                         int(sc.get("runAsGroup", 0)),
                         [int(sc["fsGroup"])] if "fsGroup" in sc else [], image, probes)

    return Pod(pod_name, where, [container(c) for c in spec.get("initContainers") or []],
               [container(c) for c in spec["containers"]])


# ---------------------------------------------------------------- launching
def _traversal_covers(paths: list[Path]) -> list[dict]:
    """Directories the container user could not traverse to reach `paths` (a 0700 /root holding
    the interpreter): covered by a traversable tmpfs that still shows the needed child."""
    covers: dict[str, set[str]] = {}
    for path in paths:
        parts = path.resolve().parts
        for i in range(1, len(parts) - 1):
            ancestor = Path(*parts[:i + 1])
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                covers.setdefault(str(ancestor), set()).add(str(Path(*parts[:i + 2])))
                break
    return [{"dir": d, "keep": sorted(keep)} for d, keep in covers.items()]


def _python_home(python_bin: Path) -> Path:
    cfg = python_bin.parent / "pyvenv.cfg"
    for line in cfg.read_text().splitlines() if cfg.is_file() else []:
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).resolve().parent
    return Path(sys.base_prefix)


def _spec(cluster: Cluster, c: Container, argv: list[str], name: str) -> Path:
    pod_dir = cluster.workdir / "pods" / c.pod
    files = pod_dir / "files"
    files.mkdir(parents=True, exist_ok=True)
    hosts = files / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
                     f"127.0.0.1\t{c.pod}\n" + "".join(f"127.0.0.1\t{h}\n" for h in cluster.hosts))
    passwd = files / f"passwd-{c.uid}"
    passwd.write_text(Path("/etc/passwd").read_text() + c.image.user + "\n")
    sa = files / "serviceaccount"
    sa.mkdir(exist_ok=True)
    (sa / "namespace").write_text(cluster.namespace)
    (sa / "token").write_text("harness-token-no-cluster")
    (sa / "ca.crt").write_text(cluster.ca_bundle.read_text())
    binds = [{"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in c.mounts]
    binds += [{"source": str(hosts), "target": "/etc/hosts", "read_only": True},
              {"source": str(passwd), "target": "/etc/passwd", "read_only": True},
              {"source": str(cluster.ca_bundle), "target": CA_BUNDLE, "read_only": True},
              {"source": str(sa), "target": SERVICE_ACCOUNT_DIR, "read_only": True}]
    binds += [{"source": str(source), "target": target, "read_only": True} for source, target in c.image.binds]
    python_bin = c.image.python_bin
    env = {**c.image.env, "PATH": ":".join([str(python_bin), *SYSTEM_PATH]), **c.env}
    roots = sorted({m.target.split("/")[1] for m in c.mounts} | {d.split("/")[1] for d, *_ in c.image.dirs})
    spec = {"hostname": c.pod, "stage": str(pod_dir / "stage"),
            "covers": _traversal_covers([python_bin, _python_home(python_bin)]),
            "tmpfs": [f"/{r}" for r in roots if r in ("opt", "home")] + ["/run"],
            "dirs": [{"path": p, "uid": u, "gid": g, "mode": m} for p, u, g, m in c.image.dirs],
            "binds": binds, "uid": c.uid, "gid": c.gid, "groups": c.groups,
            "cwd": c.env.get("HOME") or c.image.env.get("HOME", "/"), "env": env, "argv": argv}
    spec["dirs"] += [{"path": env["HOME"], "uid": c.uid, "gid": c.gid, "mode": 0o755}] \
        if not any(env["HOME"] == b["target"] for b in binds) else []
    path = files / f"spec-{c.name}-{name}.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(spec))
    return path


def _launcher(cluster: Cluster, c: Container, argv: list[str], name: str) -> list[str]:
    return ["unshare", "--mount", "--uts", "--propagation", "private", sys.executable, str(PODNS),
            str(_spec(cluster, c, argv, name))]


def start(sandbox: Sandbox, cluster: Cluster, c: Container) -> Process:
    return sandbox.spawn(f"{c.pod}.{c.name}", _launcher(cluster, c, c.argv, "main"))


def execute(sandbox: Sandbox, cluster: Cluster, c: Container, argv: list[str], *, timeout: float = 180,
            name: str = "exec") -> subprocess.CompletedProcess[str]:
    """`kubectl exec` into the container: its mounts, env and user, a new process."""
    return sandbox.run(_launcher(cluster, c, argv, name), timeout=timeout)
