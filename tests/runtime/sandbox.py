"""A private network for one scenario, and the processes started in it.

The sandbox is a network namespace holding only a loopback interface: servers listen on the
ports the rendered configuration names (5432, 6432, 6379, 8793, ...) without colliding with
other scenarios or the host, nothing reaches the internet, and unknown names fail at once.
Needs root (CAP_SYS_ADMIN): CI runs as root; elsewhere the harness skips and says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REQUIRED_TOOLS = ("unshare", "nsenter", "setpriv", "mount", "ip", "hostname")


def unavailable() -> str | None:
    """Why sandboxes cannot run here, or None."""
    if os.geteuid() != 0:
        return "the runtime harness needs root (network and mount namespaces): CI runs it as root"
    missing = [tool for tool in REQUIRED_TOOLS if not shutil.which(tool)]
    if missing:
        return f"the runtime harness needs {', '.join(missing)} (util-linux, iproute2)"
    from .install import PGBOUNCER

    if not PGBOUNCER.installed():
        return f"pgbouncer {PGBOUNCER.version} is not built in {PGBOUNCER.prefix}: run `make runtime`"
    return None


class HarnessError(AssertionError):
    """The deployment did not do what it must; the message says what and shows the evidence."""


class Process:
    """A started process (group) with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.log = name, log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # children left in the group
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._fh.close()


class Sandbox:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[Process] = []
        self._holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && "
                                         "exec sleep infinity"], stdout=subprocess.PIPE, start_new_session=True)
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != b"up":
            raise HarnessError("could not create the sandbox network namespace")
        self.netns = f"/proc/{self._holder.pid}/ns/net"

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.netns}", *argv]

    def run(self, argv: list[str], *, timeout: float = 120, input: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.wrap(argv), capture_output=True, text=True, timeout=timeout, input=input, env=env)

    def spawn(self, name: str, argv: list[str]) -> Process:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = Process(name, self.wrap(argv), log)
        self.processes.append(proc)
        return proc

    def port_open(self, port: int, host: str = "127.0.0.1") -> bool:
        probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1)"
        return self.run(["python3", "-c", probe], timeout=10).returncode == 0

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._holder.pid, signal.SIGKILL)
        self._holder.wait(10)


def wait_for(what: str, check: Callable[[], bool], timeout: float, *, evidence: Callable[[], str] = lambda: "",
             interval: float = 0.5, fail_fast: Callable[[], str | None] = lambda: None) -> None:
    """Poll until `check()`; on timeout (or when fail_fast names a reason) raise with the evidence."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        reason = fail_fast()
        if reason:
            raise HarnessError(f"{what}: {reason}\n{evidence()}")
        time.sleep(interval)
    raise HarnessError(f"{what}: not within {timeout:g} s\n{evidence()}")
