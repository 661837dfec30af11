"""DAGs on EFS: each claim binds its static PersistentVolume (StorageClass, access modes, claimRef
both ways), and the EFS handle names an access point, in the grammar every aws-efs-csi-driver reads
(https://github.com/kubernetes-sigs/aws-efs-csi-driver/tree/master/examples/kubernetes/access_points)."""

from __future__ import annotations

from airflow_gitops.facts import AIRFLOW_GID, AIRFLOW_UID, EFS_HANDLE
from airflow_gitops.objects import dig, find, ref
from airflow_gitops.validate.report import ERROR, WARN, Issue


def check_volumes(objs: list[dict]) -> list[Issue]:
    pvs = {dig(o, "metadata.name"): o for o in objs if o.get("kind") == "PersistentVolume"}
    issues: list[Issue] = []
    for pvc in (o for o in objs if o.get("kind") == "PersistentVolumeClaim"):
        issues += _claim_rules(pvc, pvs)
    for pv in pvs.values():
        if dig(pv, "spec.csi.driver") == "efs.csi.aws.com":
            issues += _efs_rules(pv, objs)
    return issues


def _claim_rules(pvc: dict, pvs: dict[str, dict]) -> list[Issue]:
    spec = pvc.get("spec") or {}
    issues = []
    if "storageClassName" not in spec:
        issues.append(Issue(ERROR, ref(pvc), "spec.storageClassName must be set explicitly "
                            "(else the default StorageClass is filled in and static binding fails)"))
    volume = spec.get("volumeName")
    if not volume:
        return issues
    pv = pvs.get(volume)
    if pv is None:
        return [*issues, Issue(ERROR, ref(pvc), f"spec.volumeName {volume!r}: no PersistentVolume in this build")]
    pv_class = dig(pv, "spec.storageClassName", "")
    if spec.get("storageClassName", "") != pv_class:
        issues.append(Issue(ERROR, ref(pvc), f"storageClassName {spec.get('storageClassName')!r} != "
                            f"PersistentVolume/{volume} storageClassName {pv_class!r}"))
    missing = set(spec.get("accessModes") or []) - set(dig(pv, "spec.accessModes") or [])
    if missing:
        issues.append(Issue(ERROR, ref(pvc), f"accessModes {sorted(missing)} not offered by "
                            f"PersistentVolume/{volume}"))
    return issues


def _efs_rules(pv: dict, objs: list[dict]) -> list[Issue]:
    handle = str(dig(pv, "spec.csi.volumeHandle", ""))
    issues = []
    if not EFS_HANDLE.match(handle):
        issues.append(Issue(ERROR, ref(pv), f"csi.volumeHandle {handle!r} must be fs-<id>[:/path][:fsap-<id>]"
                            " (old grammar, ids fs-/fsap- + 8-40 hex)"))
    elif ":fsap-" not in handle:
        issues.append(Issue(ERROR, ref(pv), f"csi.volumeHandle {handle!r} has no access point: the EFS root "
                            f"is owned by root (0755), so the DAG publisher (uid {AIRFLOW_UID}) gets EACCES; use "
                            f"fs-<id>::fsap-<id> with an access point for {AIRFLOW_UID}:{AIRFLOW_GID}"))
    issues += _claim_binding(pv, objs)
    if dig(pv, "spec.persistentVolumeReclaimPolicy") != "Retain":
        issues.append(Issue(WARN, ref(pv), "persistentVolumeReclaimPolicy should be Retain for EFS"))
    return issues


def _claim_binding(pv: dict, objs: list[dict]) -> list[Issue]:
    """A static PV must name its claim: else any claim of the StorageClass can bind it first."""
    claim = dig(pv, "spec.claimRef") or {}
    if not claim.get("name") or not claim.get("namespace"):
        return [Issue(ERROR, ref(pv), "spec.claimRef (namespace and name) must bind the volume to its claim: "
                      "without it any PersistentVolumeClaim of the StorageClass can take it")]
    pvc = find(objs, "PersistentVolumeClaim", claim["name"], claim["namespace"])
    if pvc is None:
        return [Issue(ERROR, ref(pv), f"spec.claimRef {claim['namespace']}/{claim['name']}: no such "
                      "PersistentVolumeClaim in this build")]
    if dig(pvc, "spec.volumeName") != dig(pv, "metadata.name"):
        return [Issue(ERROR, ref(pv), f"spec.claimRef names {claim['namespace']}/{claim['name']}, whose "
                      f"volumeName is {dig(pvc, 'spec.volumeName')!r}")]
    return []
