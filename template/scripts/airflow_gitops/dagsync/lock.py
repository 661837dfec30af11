"""The lock that serialises publishers and rollbacks on one ROOT."""

from __future__ import annotations

import errno
import fcntl
import os
import time

from airflow_gitops.dagsync.layout import LOCK
from airflow_gitops.dagsync.tree import iso
from airflow_gitops.dagsync.volume import Ops
from airflow_gitops.errors import LOCK_TIMEOUT, UserError


class Lock:
    """flock() on ROOT/.lock (NFSv4 locks on EFS), polled so that a timeout can name the recorded holder."""

    def __init__(self, root: str, timeout: float, ops: Ops, command: str) -> None:
        self.path, self.timeout, self.ops, self.command = os.path.join(root, LOCK), timeout, ops, command

    def __enter__(self) -> Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, announced = time.monotonic() + self.timeout, False
        while not self.try_lock():
            holder = os.pread(self.fd, 512, 0).decode(errors="replace").strip() or "unknown (no pid recorded)"
            if time.monotonic() >= deadline:
                os.close(self.fd)
                raise UserError(f"lock {self.path} not acquired within {self.timeout:g} s: held by {holder}",
                                LOCK_TIMEOUT)
            if not announced:
                print(f"waiting for the lock {self.path}, held by {holder}", flush=True)
                announced = True
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.001)))
        record = f"pid={os.getpid()} host={os.uname().nodename} since={iso(time.time())} command={self.command}\n"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, record.encode(), 0)
        self.ops.bookkeeping += 1
        return self

    def try_lock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock; the kernel does the same for a SIGKILLed holder
