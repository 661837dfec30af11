"""Run a rendered workload's containers the way the kubelet would, inside a sandbox.

Each container gets its own mount and UTS namespaces (podns.py): the pod name as host name, an
/etc/hosts that resolves the cluster Services and the AWS endpoints to the sandbox's loopback (the
only thing this harness maps) and the pod's own name, there only, to its own address
(`Cluster.ip_of`: another pod cannot resolve it, as a Deployment's pod has no DNS record), the
volumes at their mount paths, the service account token and the CA bundle the tests trust at the
image's path. The user, groups, HOME, working directory and argv are the kubelet's and the runtime's
(airflow_gitops/kubelet.py) from the image's facts (airflow_gitops/images.py: USER, ENTRYPOINT/CMD,
WORKDIR, ENV, /etc/passwd); a container the kubelet would refuse (runAsNonRoot it cannot verify) is
refused with its message, and an image without facts is refused too. What the image itself provides
(Python, the airflow CLI, psql; pgbouncer: the harness's build, bound in by pgbouncer.py) comes from
the machine; `Image` names it. The rendered env, command, args (with the kubelet's $(VAR)
expansion), probes and config files are used as rendered.

A Job's pod completes as the kubelet and the Job controller say (`complete_job`): under
restartPolicy OnFailure a failed container restarts after a back-off until backoffLimit, under
Never the first failure fails the Job.

A claim backed by an EFS access point (`Cluster.access_points`: claim -> its PosixUser) enforces that
identity, as EFS does ("EFS replaces the NFS client's user and group IDs with the identity configured
on the access point for all file system operations": new files get its uid/gid, permissions are
evaluated as it): a container running as another uid mounts the claim through an idmapped mount
(podns.py) that maps the access point's uid/gid on disk to the container's. So files it writes are
the access point's on disk, and it may do exactly what the access point's user may (not write a
root-owned file, for one). One uid per container is mapped; supplementary groups are not replaced.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from airflow_gitops import images, kubelet
from airflow_gitops.facts import AIRFLOW_UID

from .rendered import Mount, Objects, PodError, container_env, container_mounts, kube_expand, volume_sources
from .sandbox import HarnessError, Process, Sandbox

PODNS = Path(__file__).with_name("podns.py")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's path, as in the apache/airflow images
SERVICE_ACCOUNT_DIR = "/run/secrets/kubernetes.io/serviceaccount"  # /var/run -> /run
KUBERNETES_SERVICE = {"KUBERNETES_SERVICE_HOST": "172.20.0.1", "KUBERNETES_SERVICE_PORT": "443",
                      "KUBERNETES_PORT_443_TCP_ADDR": "172.20.0.1"}  # EKS's default; unreachable here
SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
IMAGE_ROOTS = ("opt", "home")  # image directories the harness covers with a tmpfs of the container's own


@dataclass(frozen=True)
class Image:
    """A container image: its Dockerfile's facts, and what on this machine stands in for its files."""

    facts: images.Image
    python_bin: Path  # first on PATH: python3, airflow
    sh_is_bash: bool = False  # its /bin/sh has bash's ${var/pattern/replacement} (busybox ash)
    binds: tuple[tuple[Path, str], ...] = ()  # (host dir, path) read-only: its own builds (pgbouncer.py)

    @property
    def name(self) -> str:
        return self.facts.name

    @property
    def dirs(self) -> list[tuple[str, int, int, int]]:
        """(path, uid, gid, mode) the image owns under /opt and /home: its users' homes, and its
        WORKDIR, which the Dockerfile gives its USER (group-writable: the airflow image's chmod g+rw)."""
        found = {u.home: (u.home, u.uid, u.gid, 0o755) for u in self.facts.passwd
                 if u.home.split("/")[1] in IMAGE_ROOTS}
        uid, name = kubelet.image_user(self.facts)
        owner = self.facts.entry(uid=uid, name=name or None)
        workdir = self.facts.workdir
        if workdir.split("/")[1] in IMAGE_ROOTS and workdir not in found and owner:
            found[workdir] = (workdir, owner.uid, owner.gid, 0o775)
        return list(found.values())

    @property
    def env(self) -> dict[str, str]:
        return dict(self.facts.env)

    def argv(self, command: list[str]) -> list[str]:
        argv = _strip_entrypoint(command)
        if self.sh_is_bash and argv[:1] == ["/bin/sh"]:
            argv = ["bash", *argv[1:]]
        return argv


def _strip_entrypoint(command: list[str]) -> list[str]:
    """What the image's init runs: `/usr/bin/dumb-init [--flags] --` execs its arguments; the airflow
    image's `/entrypoint` (scripts/docker/entrypoint_prod.sh) then execs `bash ...` and `python ...`
    as given and anything else as `airflow ...` (its DB wait is off: CONNECTION_CHECK_MAX_COUNT=0)."""
    argv = list(command)
    if argv[:1] == ["/usr/bin/dumb-init"]:
        argv = argv[argv.index("--") + 1:] if "--" in argv else argv[1:]
    if argv[:1] == ["/entrypoint"]:
        argv = argv[1:]
        if argv[:1] not in (["bash"], ["python"], ["airflow"]):
            argv = ["airflow", *argv]
    return argv


def _entrypoint_user(argv: tuple[str, ...], run_as: kubelet.RunAs, image: Image, where: str) -> str | None:
    """The airflow image's /entrypoint refuses a group other than 0 unless the uid is 50000, and gives a
    uid without a passwd entry one (home AIRFLOW_USER_HOME_DIR). Returns that passwd line, if any."""
    if "/entrypoint" not in argv[:3]:
        return None
    if run_as.gid != 0 and run_as.uid != AIRFLOW_UID:
        raise HarnessError(f"{where}: the image's /entrypoint exits: \"ERROR! You should run the image with GID=0\" "
                           f"(uid {run_as.uid}, gid {run_as.gid})")
    if image.facts.entry(uid=run_as.uid):
        return None
    return f"default:x:{run_as.uid}:0:default user:{image.env['AIRFLOW_USER_HOME_DIR']}:/sbin/nologin"


def airflow_image(python: Path) -> Image:
    return Image(images.AIRFLOW, python.parent)


def community_pgbouncer_image(python: Path) -> Image:
    # ghcr.io/airflow-helm/pgbouncer: pgbouncer, psql and python3 (the liveness probe uses them).
    return Image(images.COMMUNITY_PGBOUNCER, python.parent, sh_is_bash=True)


def official_pgbouncer_image(python: Path) -> Image:
    """apache/airflow:airflow-pgbouncer-*: the machine's pgbouncer in place of the image's."""
    return Image(images.OFFICIAL_PGBOUNCER, python.parent)


def pgbouncer_exporter_image(python: Path) -> Image:
    """No pgbouncer_exporter here: its container is built (and checked) but never started."""
    return Image(images.OFFICIAL_PGBOUNCER_EXPORTER, python.parent)


def stand_ins(python: Path) -> dict[str, Image]:
    """Every image the harness can run, by the name of its facts."""
    return {i.name: i for i in (airflow_image(python), community_pgbouncer_image(python),
                                official_pgbouncer_image(python), pgbouncer_exporter_image(python))}


@dataclass
class Container:
    pod: str
    name: str
    argv: list[str]
    env: dict[str, str]  # over the image's ENV; HOME included
    mounts: list[Mount]
    uid: int
    gid: int
    groups: list[int]
    image: Image
    # liveness/readiness/startup: (exec command, timeoutSeconds: the kubelet counts a slower probe as failed)
    probes: dict[str, tuple[list[str], float]] = field(default_factory=dict)
    cwd: str = "/"
    passwd: list[str] = field(default_factory=list)  # /etc/passwd lines beyond the image's

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
    images: dict[str, Image]  # images.Image name -> stand-in
    workdir: Path
    access_points: dict[str, tuple[int, int]] = field(default_factory=dict)  # claim -> enforced (uid, gid)
    pod_ips: dict[str, str] = field(default_factory=dict)  # pod name -> its address, given at first use

    def ip_of(self, pod: str) -> str:
        """The pod's own address (127.0.1.N: all of 127/8 is the sandbox's loopback). As on a cluster,
        the pod's name resolves to it only inside the pod itself: no other pod can resolve that name
        (a Deployment's pods have no DNS record), but any pod can reach the address."""
        if pod not in self.pod_ips:
            n = len(self.pod_ips) + 1
            self.pod_ips[pod] = f"127.0.{1 + n // 250}.{1 + n % 250}"
        return self.pod_ips[pod]

    def image_for(self, ref: str, where: str) -> Image:
        facts = images.lookup(ref)
        if facts is None:
            raise HarnessError(f"{where}: image {ref} is unknown (not in airflow_gitops/images.py): its USER, "
                               "ENTRYPOINT and WORKDIR are not known, so it cannot run as the kubelet would run it")
        if facts.name not in self.images:
            raise HarnessError(f"{where}: no local stand-in for {facts.name} ({ref})")
        return self.images[facts.name]


def build_pod(cluster: Cluster, workload: dict, pod_name: str) -> Pod:
    """A pod of a Deployment/StatefulSet, or a Pod object itself (a KubernetesExecutor task pod).
    Refused with the kubelet's message (HarnessError) if the kubelet would not start a container."""
    spec = workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]
    where = f"{workload['kind']}/{workload['metadata']['name']}"
    pod_dir = cluster.workdir / "pods" / pod_name
    sources = volume_sources(spec, cluster.objects, cluster.claims, pod_dir, where)

    def container(c: dict) -> Container:
        here = f"{where} container {c['name']}"
        image = cluster.image_for(c["image"], here)
        refused = kubelet.refusal(f"{pod_name}_{cluster.namespace}", c, spec.get("securityContext"))
        if refused:
            raise HarnessError(f"{here}: CreateContainerConfigError: {refused}")
        pod_env = {**KUBERNETES_SERVICE, **container_env(spec, c, cluster.objects, pod_name, cluster.namespace, here)}
        expanded = {**c, **{key: [kube_expand(str(a), pod_env) for a in c.get(key) or []]  # the kubelet's $(VAR)
                            for key in ("command", "args")}}
        try:
            run_as = kubelet.run_as(spec, expanded, image.facts)
        except kubelet.RuntimeRefused as exc:
            raise HarnessError(f"{here}: the container runtime refuses it: {exc}") from None
        env = {**image.env, "HOSTNAME": pod_name, **pod_env}
        extra = _entrypoint_user(run_as.argv, run_as, image, here)
        if extra:  # the entrypoint's user without a passwd entry
            env["HOME"] = image.env["AIRFLOW_USER_HOME_DIR"]
        env.setdefault("HOME", run_as.home)  # runc: from the user's passwd entry, else /
        probes = {kind: (image.argv(c[f"{kind}Probe"]["exec"]["command"]),
                         float(c[f"{kind}Probe"].get("timeoutSeconds", 1)))
                  for kind in ("liveness", "readiness", "startup") if "exec" in (c.get(f"{kind}Probe") or {})}
        return Container(pod_name, c["name"], image.argv(list(run_as.argv)), env,
                         _access_points(cluster, spec, c, container_mounts(c, sources, here), run_as),
                         run_as.uid, run_as.gid, list(run_as.groups), image, probes, run_as.workdir,
                         [extra] if extra else [])

    return Pod(pod_name, where, [container(c) for c in spec.get("initContainers") or []],
               [container(c) for c in spec["containers"]])


def _access_points(cluster: Cluster, spec: dict, c: dict, mounts: list[Mount], run_as: kubelet.RunAs) -> list[Mount]:
    """The mounts of claims behind an EFS access point, seen through its enforced identity."""
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []
              if "persistentVolumeClaim" in v}
    enforced = {vm["mountPath"]: cluster.access_points.get(claims.get(vm["name"], ""))
                for vm in c.get("volumeMounts") or []}
    return [replace(m, idmap=(*ap, run_as.uid, run_as.gid)) if (ap := enforced.get(m.target))
            and ap != (run_as.uid, run_as.gid) else m for m in mounts]


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


def _stand_in_paths(python_bin: Path) -> list[Path]:
    """What the machine lends the image, wherever it lives: the virtualenv (or the bin directory)
    and the prefix of the Python it was made from."""
    venv = python_bin.parent
    return [venv if (venv / "pyvenv.cfg").is_file() else python_bin, _python_home(python_bin)]


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
                     f"{cluster.ip_of(c.pod)}\t{c.pod}\n" + "".join(f"127.0.0.1\t{h}\n" for h in cluster.hosts))
    passwd = files / f"passwd-{c.name}"  # the image's /etc/passwd (the entries that matter)
    passwd.write_text("".join(f"{line}\n" for line in [*(u.passwd_line() for u in c.image.facts.passwd), *c.passwd]))
    sa = files / "serviceaccount"
    sa.mkdir(exist_ok=True)
    (sa / "namespace").write_text(cluster.namespace)
    (sa / "token").write_text("harness-token-no-cluster")
    (sa / "ca.crt").write_text(cluster.ca_bundle.read_text())
    binds = [{"source": str(m.source), "target": m.target, "read_only": m.read_only,
              **({"idmap": list(m.idmap)} if m.idmap else {})} for m in c.mounts]
    binds += [{"source": str(hosts), "target": "/etc/hosts", "read_only": True},
              {"source": str(passwd), "target": "/etc/passwd", "read_only": True},
              {"source": str(cluster.ca_bundle), "target": CA_BUNDLE, "read_only": True},
              {"source": str(sa), "target": SERVICE_ACCOUNT_DIR, "read_only": True}]
    binds += [{"source": str(source), "target": target, "read_only": True} for source, target in c.image.binds]
    python_bin = c.image.python_bin
    stand_in = _stand_in_paths(python_bin)
    env = {**c.image.env, "PATH": ":".join([str(python_bin), *SYSTEM_PATH]), **c.env}
    # The image's HOME and working directory exist in it: made here, but only inside the tmpfs of an
    # image root (never on the machine's own / or /home).
    dirs = [{"path": p, "uid": u, "gid": g, "mode": m} for p, u, g, m in c.image.dirs]
    taken = {d["path"] for d in dirs} | {b["target"] for b in binds}
    for path, uid, gid in ((env.get("HOME", "/"), c.uid, c.gid), (c.cwd, 0, 0)):
        if path.split("/")[1] in IMAGE_ROOTS and path not in taken:
            dirs.append({"path": path, "uid": uid, "gid": gid, "mode": 0o755})
            taken.add(path)
    roots = {m.target.split("/")[1] for m in c.mounts} | {d["path"].split("/")[1] for d in dirs}
    spec = {"hostname": c.pod, "stage": str(pod_dir / "stage"),
            "covers": _traversal_covers(stand_in), "keep": [str(p) for p in stand_in],
            "tmpfs": [f"/{r}" for r in sorted(roots) if r in IMAGE_ROOTS] + ["/run"],
            "dirs": dirs, "binds": binds, "uid": c.uid, "gid": c.gid, "groups": c.groups,
            "cwd": c.cwd, "env": env, "argv": argv}
    path = files / f"spec-{c.name}-{name}.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(spec))
    return path


def _launcher(cluster: Cluster, c: Container, argv: list[str], name: str) -> list[str]:
    return ["unshare", "--mount", "--uts", "--propagation", "private", sys.executable, str(PODNS),
            str(_spec(cluster, c, argv, name))]


def start(sandbox: Sandbox, cluster: Cluster, c: Container) -> Process:
    return sandbox.spawn(f"{c.pod}.{c.name}", _launcher(cluster, c, c.argv, "main"))


JOB_BACKOFF_LIMIT = 6  # the Job API's default spec.backoffLimit
CRASH_BACKOFF = 10.0  # the kubelet's first crash back-off (s); it doubles, capped here at a minute


def complete_job(sandbox: Sandbox, cluster: Cluster, job: dict, pod: Pod, processes: list[Process],
                 timeout: float, *, backoff: float = CRASH_BACKOFF) -> None:
    """Wait until a Job's pod completes: every container exits 0. Under restartPolicy OnFailure the
    kubelet restarts a failed container after a back-off, until the Job has seen backoffLimit + 1
    failures; under Never the first failure fails the Job. Raised with the failed container's log,
    so a caller never waits on a Job that has already failed."""
    policy = job["spec"]["template"]["spec"].get("restartPolicy", "Always")
    limit = job["spec"].get("backoffLimit", JOB_BACKOFF_LIMIT)
    deadline = time.monotonic() + timeout
    failures = 0
    while processes:
        if time.monotonic() > deadline:
            raise HarnessError(f"Job {job['metadata']['name']}: not complete within {timeout:g} s\n"
                               + "\n".join(p.tail(40) for p in processes))
        for proc in [p for p in processes if not p.alive()]:
            processes.remove(proc)
            code = proc.popen.returncode
            if code == 0:
                continue
            failures += 1
            if policy != "OnFailure" or failures > limit:
                raise HarnessError(f"Job {job['metadata']['name']}: container {proc.name} exited {code} (failure "
                                   f"{failures}, restartPolicy {policy}, backoffLimit {limit}):\n{proc.tail(40)}")
            time.sleep(min(backoff * 2 ** (failures - 1), 60))
            processes.append(start(sandbox, cluster, next(c for c in pod.containers
                                                          if proc.name == f"{c.pod}.{c.name}")))
        time.sleep(0.2)


def execute(sandbox: Sandbox, cluster: Cluster, c: Container, argv: list[str], *, timeout: float = 180,
            name: str = "exec") -> subprocess.CompletedProcess[str]:
    """`kubectl exec` into the container: its mounts, env and user, a new process."""
    return sandbox.run(_launcher(cluster, c, argv, name), timeout=timeout)
