"""The kubelet's check of a container's user, made before the cluster makes it (`make render`).

A pod can pass Pod Security and still never start: under runAsNonRoot the kubelet must be able to
tell that the container's user is not root, and refuses the container (CreateContainerConfigError)
when it cannot. The rules, from kubernetes pkg/kubelet/kuberuntime (security_context_others.go
verifyRunAsNonRoot, kuberuntime_manager.go getImageUser) and the runtime's getUserFromImage:

- the effective security context is the container's fields over the pod's;
- with runAsUser, only 0 is refused ("container's runAsUser breaks non-root policy");
- else the image's USER decides: none means root, "name[:group]" is a name, "uid[:gid]" a number;
  a name is refused ("image has non-numeric user (<name>), cannot verify user is non-root"), so is
  0 ("image will run as root") and a uid outside 0..2^31-1 ("image has an invalid user id").

An image images.py does not know is reported where its USER would decide. `run_as` is what the
container then runs as, for the runtime harness: uid and gid as containerd sets them (runAsGroup,
else the USER's group, else the uid's /etc/passwd entry, else 0), fsGroup and supplementalGroups,
the HOME runc gives a process without one, the working directory, and the argv Kubernetes builds
(command replaces ENTRYPOINT, args replace CMD). Not modelled: group names in USER, and the extra
groups of the user's /etc/group entries. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import images
from .podsecurity import containers

MAX_UID = 2**31 - 1  # validation.IsValidUserID
NUMBER = re.compile(r"^[+-]?\d+$")  # strconv.ParseInt


def effective(pod_sc: dict[str, Any] | None, container_sc: dict[str, Any] | None) -> dict[str, Any]:
    """securitycontext.DetermineEffectiveSecurityContext: the container's fields win."""
    return {**(pod_sc or {}), **(container_sc or {})}


def image_user(image: images.Image) -> tuple[int | None, str]:
    """(uid, "") for a numeric USER, (None, name) for a name; an image without USER runs as root."""
    user = image.user.split(":")[0]
    if not user:
        return 0, ""
    return (int(user), "") if NUMBER.match(user) else (None, user)


def refusal(pod: str, container: dict[str, Any], pod_sc: dict[str, Any] | None) -> str | None:
    """The kubelet's reason to refuse `container` of pod `pod`, in its words; None if it starts it."""
    sc = effective(pod_sc, container.get("securityContext"))
    if not sc.get("runAsNonRoot"):
        return None
    where = f'(pod: "{pod}", container: {container.get("name")})'
    if sc.get("runAsUser") is not None:
        return f"container's runAsUser breaks non-root policy {where}" if int(sc["runAsUser"]) == 0 else None
    image = images.lookup(str(container.get("image", "")))
    if image is None:
        return (f"image {container.get('image')} is unknown (not in airflow_gitops/images.py), and under runAsNonRoot "
                f"without runAsUser the kubelet decides by its USER {where}: give runAsUser, or add the image's facts")
    uid, name = image_user(image)
    if uid is None:
        entry = image.entry(name=name)
        fix = f"; give runAsUser: {entry.uid} ({name} in {image.name})" if entry else ""
        return (f"container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is "
                f"non-root {where}{fix}")
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    if not 0 <= uid <= MAX_UID:
        return (f"container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({MAX_UID})): "
                f"must be between 0 and {MAX_UID}, inclusive {where}")
    return None


def refusals(spec: dict[str, Any], pod: str) -> Iterator[str]:
    """Every container of the PodSpec the kubelet would refuse to start, one message each."""
    for c in containers(spec):
        reason = refusal(pod, c, spec.get("securityContext"))
        if reason:
            yield f"container {c.get('name')}: {reason}"


class RuntimeRefused(Exception):
    """The container runtime cannot create the container's process (e.g. a USER with no passwd entry)."""


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    groups: tuple[int, ...]  # fsGroup, then supplementalGroups
    home: str  # the HOME runc sets when the environment has none
    workdir: str
    argv: tuple[str, ...]


def argv(container: dict[str, Any], image: images.Image) -> tuple[str, ...]:
    """Kubernetes' command and args over the image's ENTRYPOINT and CMD (an empty list is unset)."""
    command, args = container.get("command") or [], container.get("args") or []
    if command:
        return (*command, *args)
    return (*image.entrypoint, *(args or image.cmd))


def run_as(spec: dict[str, Any], container: dict[str, Any], image: images.Image) -> RunAs:
    pod_sc = spec.get("securityContext") or {}
    sc = effective(pod_sc, container.get("securityContext"))
    user, _, group = image.user.partition(":")
    if sc.get("runAsUser") is not None:  # the runtime then ignores the image's USER, group and all
        uid, group = int(sc["runAsUser"]), ""
    elif not user or NUMBER.match(user):
        uid = int(user or 0)
    else:
        named = image.entry(name=user)
        if named is None:
            raise RuntimeRefused(f"unable to find user {user}: no matching entries in passwd file")
        uid = named.uid
    entry = image.entry(uid=uid)
    if sc.get("runAsGroup") is not None:
        gid = int(sc["runAsGroup"])
    elif group:
        if not NUMBER.match(group):
            raise RuntimeRefused(f"{image.name}: USER {image.user}: group names are not in images.py")
        gid = int(group)
    else:
        gid = entry.gid if entry else 0
    groups = ([int(pod_sc["fsGroup"])] if pod_sc.get("fsGroup") is not None else []) + \
        [int(g) for g in pod_sc.get("supplementalGroups") or []]
    return RunAs(uid, gid, tuple(groups), entry.home if entry else "/",
                 str(container.get("workingDir") or image.workdir or "/"), argv(container, image))
