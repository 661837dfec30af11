"""Inside fresh mount and UTS namespaces (as root): give this process the filesystem a pod's
container sees, then become the container's user and exec its command.

    nsenter --net=<sandbox> unshare --mount --uts --propagation private python podns.py SPEC.json

SPEC (written by sandbox.py, mode 0600 because it holds the resolved env):
    hostname   the pod name (kubelet sets it; Airflow and Celery name themselves after it)
    covers     [{dir, keep: [paths]}]: tmpfs over `dir`, keeping `keep` visible (stage + bind)
    tmpfs      directories to cover with an empty tmpfs (image paths such as /opt, /home)
    dirs       [{path, uid, gid, mode}] made after the tmpfs mounts (the image's own directories)
    binds      [{source, target, read_only}]: volumes, and files such as /etc/hosts
    (then a private tmpfs on /tmp, as every container has its own)
    uid, gid, groups, cwd, env, argv
Stdlib only: it runs with the test interpreter before the container's user exists.
"""

from __future__ import annotations

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


def bind(source: str, target: str, read_only: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount("--bind", *(["-o", "ro"] if read_only else []), source, target)


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
    for item in spec.get("binds", []):
        bind(item["source"], item["target"], item["read_only"])
    # Last: a container's own /tmp (sockets such as pgbouncer's /tmp/.s.PGSQL.6432 must not meet
    # another pod's); the volume sources above may live under the host's /tmp.
    mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp")
    os.setgroups(spec.get("groups", []))
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    os.chdir(spec.get("cwd") or "/")
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
