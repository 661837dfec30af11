"""Inside fresh mount and UTS namespaces (as root): give this process the filesystem a pod's
container sees, then become the container's user and exec its command.

    nsenter --net=<sandbox> unshare --mount --uts --propagation private python podns.py SPEC.json

SPEC (written by sandbox.py, mode 0600 because it holds the resolved env):
    hostname   the pod name (kubelet sets it; Airflow and Celery name themselves after it)
    covers     [{dir, keep: [paths]}]: tmpfs over `dir`, keeping `keep` visible (stage + bind)
    tmpfs      directories to cover with an empty tmpfs (image paths such as /opt, /home)
    dirs       [{path, uid, gid, mode}] made after the tmpfs mounts (the image's own directories)
    binds      [{source, target, read_only[, idmap]}]: volumes, and files such as /etc/hosts;
               idmap [disk_uid, disk_gid, uid, gid]: an idmapped mount (an EFS access point, pods.py)
    keep       paths the image's stand-in lives at (interpreters): visible even under /tmp
    (then a private tmpfs on /tmp, as every container has its own)
    uid, gid, groups, cwd, env, argv
The private /tmp hides the machine's: what the container needs from it (the `keep` paths of a
checkout cloned under /tmp, volumes mounted under /tmp) is bound back from the machine's /tmp,
held open before the tmpfs covers it. Wherever the checkout lives, the container sees the same.
Stdlib only: it runs with the test interpreter before the container's user exists.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def cover(directory: str, keep: list[str], stage: str) -> None:
    """Replace `directory` by a traversable tmpfs that still shows the `keep` paths under it."""
    staged = []
    for i, path in enumerate(keep):
        spot = os.path.join(stage, f"keep-{i}")
        os.makedirs(spot, exist_ok=True)
        mount("--bind", path, spot)
        staged.append((spot, path))
    mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", directory)
    for spot, path in staged:
        os.makedirs(path, exist_ok=True)
        mount("--bind", spot, path)


def bind(source: str, target: str, read_only: bool, idmap: list[int] | None = None) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    if idmap:
        idmapped_bind(source, target, idmap)
        if read_only:
            mount("-o", "remount,bind,ro", target)
        return
    # --no-canonicalize: a source through /proc/<pid>/fd/<n> must reach the kernel as written.
    mount("--no-canonicalize", "--bind", *(["-o", "ro"] if read_only else []), source, target)


# Linux's mount API (5.12+; util-linux 2.38's mount has no X-mount.idmap): the same numbers on every arch.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = 1, -100, 0x1000, 0x8000
MOVE_MOUNT_F_EMPTY_PATH, MOUNT_ATTR_IDMAP, CLONE_NEWUSER = 0x4, 0x00100000, 0x10000000


class MountAttr(ctypes.Structure):
    _fields_ = [  # noqa: RUF012  (ctypes reads it as a class attribute)
        ("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def user_namespace(uid_map: str, gid_map: str) -> int:
    """An fd of a new user namespace with these maps (a child made it, then exits)."""
    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        code = 0 if libc.unshare(CLONE_NEWUSER) == 0 else 1
        os.write(ready_w, b"x")
        os.read(done_r, 1)
        os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    os.read(ready_r, 1)
    try:
        with open(f"/proc/{pid}/uid_map", "w") as fh:
            fh.write(uid_map)
        with open(f"/proc/{pid}/gid_map", "w") as fh:
            fh.write(gid_map)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)


def idmapped_bind(source: str, target: str, idmap: list[int]) -> None:
    """Bind `source` at `target` so that (disk_uid, disk_gid) on disk is (uid, gid) through it: files the
    container creates get disk_uid:disk_gid, and it is checked as that owner. Other ids are unmapped."""
    disk_uid, disk_gid, uid, gid = idmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    userns = user_namespace(f"{disk_uid} {uid} 1\n", f"{disk_gid} {gid} 1\n")
    tree = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), OPEN_TREE_CLONE | os.O_CLOEXEC
                               | AT_RECURSIVE), f"open_tree {source}")
    attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns)
    _check(libc.syscall(SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr)), f"mount_setattr MOUNT_ATTR_IDMAP {source}")
    _check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
           f"move_mount {target}")
    os.close(tree)
    os.close(userns)


def under_tmp(path: str) -> bool:
    return os.path.normpath(path) == "/tmp" or os.path.normpath(path).startswith("/tmp/")


def private_tmp(keep: list[str], binds: list[dict]) -> None:
    """A tmpfs of the container's own on /tmp, then the `keep` paths and the `binds` that live
    under the machine's /tmp bound back in from it (held open as a file descriptor)."""
    machine_tmp = os.open("/tmp", os.O_PATH | os.O_DIRECTORY)
    mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp")

    def from_machine(path: str) -> str:
        rest = os.path.relpath(os.path.normpath(path), "/tmp")
        return f"/proc/{os.getpid()}/fd/{machine_tmp}" + ("" if rest == "." else f"/{rest}")

    for path in keep:
        if under_tmp(path):
            bind(from_machine(path), path, True)
    for item in binds:
        source = from_machine(item["source"]) if under_tmp(item["source"]) else item["source"]
        bind(source, item["target"], item["read_only"], item.get("idmap"))
    os.close(machine_tmp)


def main(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    subprocess.run(["hostname", spec["hostname"]], check=True)
    for item in spec.get("covers", []):
        cover(item["dir"], item["keep"], spec["stage"])
    for directory in spec.get("tmpfs", []):
        mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", directory)
    for item in spec.get("dirs", []):
        os.makedirs(item["path"], exist_ok=True)
        os.chown(item["path"], item["uid"], item["gid"])
        os.chmod(item["path"], item["mode"])
    late = [b for b in spec.get("binds", []) if under_tmp(b["target"])]
    for item in spec.get("binds", []):
        if item not in late:
            bind(item["source"], item["target"], item["read_only"], item.get("idmap"))
    # Last: a container's own /tmp (sockets such as pgbouncer's /tmp/.s.PGSQL.6432 must not meet
    # another pod's); the volume sources above may live under the host's /tmp.
    private_tmp(spec.get("keep", []), late)
    os.setgroups(spec.get("groups", []))
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    os.chdir(spec.get("cwd") or "/")
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
