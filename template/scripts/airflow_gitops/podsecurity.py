"""Pod Security Standards, checked before the admission controller does.

The namespace of every environment enforces facts.POD_SECURITY_LEVEL. A pod that breaks it is
refused by the API server at rollout, long after review; `make render` runs these checks on every
pod the chart renders (and the KubernetesExecutor's pod template), `make validate` on the Jenkins
agent's pod. The rules are those of https://kubernetes.io/docs/concepts/security/pod-security-standards/
(baseline, then restricted), as of the pinned facts.POD_SECURITY_VERSION.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                          "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                          "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
                          "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                          "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                "persistentVolumeClaim", "projected", "secret"})
SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
POD_TEMPLATE_PATHS = {  # where each workload kind keeps its PodSpec
    "Pod": ("spec",), "Deployment": ("spec", "template", "spec"), "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The PodSpec of a workload object, or None for other kinds."""
    path = POD_TEMPLATE_PATHS.get(obj.get("kind", ""))
    spec: Any = obj if path else None
    for key in path or ():
        spec = (spec or {}).get(key)
    return spec if isinstance(spec, dict) else None


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def violations(spec: dict[str, Any], level: str = "restricted") -> list[str]:
    """Every rule of `level` (baseline or restricted) the PodSpec breaks, one message each."""
    found = list(_baseline(spec))
    if level == "restricted":
        found += _restricted(spec)
    return found


def _baseline(spec: dict[str, Any]) -> Iterator[str]:
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield f"spec.{field} must be false"
    yield from _selinux("spec.securityContext", pod_sc)
    if _seccomp(pod_sc) == "Unconfined":
        yield "spec.securityContext.seccompProfile.type must not be Unconfined"
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"spec.securityContext.sysctls: {sysctl.get('name')} is not a safe sysctl"
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            yield f"volume {volume.get('name')}: hostPath volumes are not allowed"
    for c in containers(spec):
        where, sc = f"container {c.get('name')}", c.get("securityContext") or {}
        if sc.get("privileged"):
            yield f"{where}: securityContext.privileged must be false"
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            yield f"{where}: hostProcess containers are not allowed"
        extra = set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if extra:
            yield f"{where}: capabilities.add {sorted(extra)} beyond the baseline set"
        if any(p.get("hostPort") for p in c.get("ports") or []):
            yield f"{where}: hostPort is not allowed"
        if sc.get("procMount", "Default") != "Default":
            yield f"{where}: procMount must be Default"
        if _seccomp(sc) == "Unconfined":
            yield f"{where}: seccompProfile.type must not be Unconfined"
        yield from _selinux(f"{where}: securityContext", sc)


def _restricted(spec: dict[str, Any]) -> Iterator[str]:
    pod_sc = spec.get("securityContext") or {}
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name", "hostPath"}  # hostPath: already a baseline violation
        if not kinds <= RESTRICTED_VOLUMES:
            yield f"volume {volume.get('name')}: type {sorted(kinds - RESTRICTED_VOLUMES)} is not allowed"
    if pod_sc.get("runAsUser") == 0:
        yield "spec.securityContext.runAsUser must not be 0"
    for c in containers(spec):
        where, sc = f"container {c.get('name')}", c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{where}: securityContext.allowPrivilegeEscalation must be false"
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            yield f"{where}: runAsNonRoot must be true (on the pod or the container)"
        if sc.get("runAsUser") == 0:
            yield f"{where}: securityContext.runAsUser must not be 0"
        if (_seccomp(sc) or _seccomp(pod_sc)) not in SECCOMP_OK:
            yield f"{where}: seccompProfile.type must be RuntimeDefault or Localhost (on the pod or the container)"
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"{where}: capabilities.drop must include ALL"
        added = set(capabilities.get("add") or [])
        if added & BASELINE_CAPABILITIES - {"NET_BIND_SERVICE"}:  # beyond baseline: reported there
            yield f"{where}: capabilities.add may only hold NET_BIND_SERVICE"


def _seccomp(sc: dict[str, Any]) -> str:
    return (sc.get("seccompProfile") or {}).get("type", "")


def _selinux(where: str, sc: dict[str, Any]) -> Iterator[str]:
    options = sc.get("seLinuxOptions") or {}
    if options.get("type", "") not in SELINUX_TYPES:
        yield f"{where}.seLinuxOptions.type {options['type']!r} is not allowed"
    if options.get("user") or options.get("role"):
        yield f"{where}.seLinuxOptions: user and role must be unset"
