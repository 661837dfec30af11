#!/usr/bin/env python3
"""A FUSE passthrough filesystem that adds a fixed latency to every call and counts the calls.

    python benchmarks/latencyfs.py BACKING MOUNTPOINT [--latency-ms 1] [--no-cache]

Every request the kernel sends to this daemon (lookups, getattr, open, read, write, flush, release,
create, mkdir, link, rename, ...) sleeps --latency-ms before it is passed to BACKING: a model of
EFS, where each NFS operation is a network round trip of about a millisecond. The kernel's own
caches answer the rest, as the NFS client's do, with the EFS mount defaults' times (attributes 3 s,
names 30 s; a name that does not exist is looked up every time). Requests are served by libfuse's
worker threads (its defaults), as EFS serves parallel calls: a client with parallel calls overlaps
their latency, a serial one (cp, rsync) pays it call after call.
No extended attributes (EFS has none): the kernel learns that once and stops asking.

Control protocol on stdin/stdout, one line each: `counts` answers a JSON object {op: calls} since
the last `reset`; `reset` answers `ok`. Closing stdin unmounts. `Mount` below does all of it.
Needs /dev/fuse, fusermount3 (Debian fuse3), root or a user allowed to mount, and mfusepy.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


# After these, libfuse's high-level API calls getattr on the same path, in the same thread, to fill in the
# kernel's reply: one kernel request, as an NFS reply carries the attributes. That getattr is not charged.
REPLY_WITH_ATTRS = {"create", "mkdir", "mknod", "symlink", "link", "utimens", "chmod", "chown", "truncate"}


def unavailable() -> str | None:
    """Why a latency mount cannot be made here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent (a container without the fuse device?)"
    if os.geteuid() != 0:
        return "not root: mounting FUSE filesystems needs root here"
    if not shutil.which("fusermount3"):
        return "fusermount3 is not installed (Debian package fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: libfuse3 itself is missing
        return f"mfusepy cannot be loaded ({exc}): pip install -r requirements-test.txt and apt-get install fuse3"
    return None


def serve(backing: str, mountpoint: str, latency: float, cache: bool = True) -> None:
    import mfusepy

    counts: collections.Counter[str] = collections.Counter()
    guard, replying = threading.Lock(), {}  # native thread id -> path whose attributes libfuse is fetching

    class LatencyFS(mfusepy.Operations):
        use_ns = True

        def __getattribute__(self, name: str) -> Any:
            # Every operation this class defines pays the latency and is counted, the first thing it does.
            attr = object.__getattribute__(self, name)
            if name in OPS:
                @functools.wraps(attr)
                def timed(*args: Any) -> Any:
                    thread = threading.get_native_id()  # not threading.local: ctypes callbacks lose it
                    if name == "getattr" and args and replying.get(thread) == args[0]:
                        replying[thread] = None  # libfuse filling in the reply of the call before: no request
                        return attr(*args)
                    with guard:
                        counts[name] += 1
                    time.sleep(latency)
                    result = attr(*args)
                    replying[thread] = args[0] if name in REPLY_WITH_ATTRS else None
                    return result
                return timed
            return attr

        @staticmethod
        def real(path: str) -> str:
            return backing + path

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            st = os.fstat(fh) if fh is not None else os.lstat(self.real(path))
            keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks")
            attrs = {key: getattr(st, key) for key in keys}
            attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
            return attrs

        def access(self, path: str, amode: int) -> int:
            if not os.access(self.real(path), amode):
                raise mfusepy.FuseOSError(errno.EACCES)
            return 0

        def readlink(self, path: str) -> str:
            return os.readlink(self.real(path))

        def opendir(self, path: str) -> int:
            os.lstat(self.real(path))
            return 0

        def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
            # With use_ino an entry needs its inode number: readdir(3) hides entries whose d_ino is 0.
            with os.scandir(self.real(path)) as it:
                return [(e.name, {"st_ino": e.inode(), "st_mode": kind(e)}, 0) for e in it]

        def releasedir(self, path: str, fh: int) -> int:
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            os.mkdir(self.real(path), mode)
            return 0

        def rmdir(self, path: str) -> int:
            os.rmdir(self.real(path))
            return 0

        def unlink(self, path: str) -> int:
            os.unlink(self.real(path))
            return 0

        def symlink(self, target: str, source: str) -> int:
            os.symlink(source, self.real(target))
            return 0

        def link(self, target: str, source: str) -> int:
            os.link(self.real(source), self.real(target))
            return 0

        def rename(self, old: str, new: str) -> int:
            os.rename(self.real(old), self.real(new))
            return 0

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(self.real(path), mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            os.lchown(self.real(path), uid, gid)
            return 0

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            os.truncate(self.real(path), length)
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            if times is None:
                os.utime(self.real(path), follow_symlinks=False)
            else:
                os.utime(self.real(path), ns=times, follow_symlinks=False)
            return 0

        def open(self, path: str, flags: int) -> int:
            return os.open(self.real(path), flags)

        def create(self, path: str, mode: int, flags: int) -> int:
            return os.open(self.real(path), flags | os.O_CREAT, mode)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            return os.pread(fh, size, offset)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            return os.pwrite(fh, data, offset)

        def flush(self, path: str, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            os.close(fh)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            os.fsync(fh)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(self.real(path))
            keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_namemax")
            return {key: getattr(st, key) for key in keys}

    OPS = {name for name, value in vars(LatencyFS).items() if callable(value) and not name.startswith("_")}
    OPS.discard("real")

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "reset":
                with guard:
                    counts.clear()
                print("ok", flush=True)
            elif line.strip() == "counts":
                with guard:
                    print(json.dumps(dict(counts)), flush=True)
        subprocess.run(["fusermount3", "-u", mountpoint], check=False)  # stdin closed: unmount, serve() returns

    threading.Thread(target=control, daemon=True).start()
    # Cache times of the EFS mount defaults (acregmin 3 s, acdirmin 30 s); names that do not exist are
    # asked for every time (negative_timeout 0). Without cache every stat and lookup reaches the daemon.
    attr, entry = (3, 30) if cache else (0, 0)
    mfusepy.FUSE(LatencyFS(), mountpoint, foreground=True, use_ino=True, fsname="latencyfs",
                 attr_timeout=attr, entry_timeout=entry, negative_timeout=0)


def kind(entry: os.DirEntry[str]) -> int:
    """The file-type bits of a directory entry, from readdir's d_type (no stat call)."""
    if entry.is_symlink():
        return stat.S_IFLNK
    return stat.S_IFDIR if entry.is_dir(follow_symlinks=False) else stat.S_IFREG


class Mount:
    """`with Mount(backing, mountpoint, latency_ms=1) as fs:` ... `fs.reset()`, `fs.counts()`; always unmounts."""

    def __init__(self, backing: Path, mountpoint: Path, latency_ms: float = 1.0, cache: bool = True) -> None:
        self.backing, self.mountpoint = Path(backing), Path(mountpoint)
        self.args = ["--latency-ms", str(latency_ms)] + ([] if cache else ["--no-cache"])
        self.proc: subprocess.Popen[str] | None = None
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in __exit__): the daemon's stderr

    def __enter__(self) -> Mount:
        reason = unavailable()
        if reason:
            raise RuntimeError(f"cannot mount a latency filesystem: {reason}")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, str(HERE), str(self.backing), str(self.mountpoint), *self.args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.monotonic() + 15
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.proc.poll()
                self.log.seek(0)
                output = self.log.read()
                self.__exit__()
                raise RuntimeError(f"latencyfs did not mount {self.mountpoint} (exit {code}): {output}")
            time.sleep(0.02)
        return self

    def ask(self, command: str) -> str:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def reset(self) -> None:
        self.ask("reset")

    def counts(self) -> dict[str, int]:
        return json.loads(self.ask("counts"))

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]  # the daemon unmounts and exits
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if os.path.ismount(self.mountpoint):  # the daemon died before unmounting
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
        self.proc = None
        self.log.close()


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("backing")
    cli.add_argument("mountpoint")
    cli.add_argument("--latency-ms", type=float, default=1.0, help="added to every call (default 1)")
    cli.add_argument("--no-cache", action="store_true", help="no attribute or name cache in the kernel: every "
                     "stat and lookup is a call (deterministic counts)")
    args = cli.parse_args()
    reason = unavailable()
    if reason:
        print(f"latencyfs: {reason}", file=sys.stderr)
        return 2
    serve(os.path.abspath(args.backing), os.path.abspath(args.mountpoint), args.latency_ms / 1000, not args.no_cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
