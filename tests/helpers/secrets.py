"""The secrets a user types at `make seal` or copy time, and the SealedSecrets the cluster receives."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from helpers.render import kustomize_build

# What a user exports before sealing: every character class the rules allow that URL, shell or SQL
# quoting (and pgbouncer's auth file) could get wrong.
PASSWORDS = {
    "AIRFLOW_DB_PASSWORD": "Db-p@ss:w%rd#?&!(9);|*{x}",
    "AIRFLOW_REDIS_PASSWORD": "Tok3n-with-special&chars<>!#^",
    "AIRFLOW_ADMIN_PASSWORD": "admin-Pa55-03bc71",
}


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set for the block (what copy-time sealing reads), restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def built_sealed_secrets(repo: Path, env: str = "dev") -> dict[str, dict]:
    """SealedSecrets as the cluster receives them: after the kustomize build of the overlay, and of
    its secrets/ when that is a Kustomization of its own (Flux applies it first)."""
    overlay = repo / "deploy/overlays" / env
    builds = [overlay] + ([overlay / "secrets"] if (overlay / "secrets/kustomization.yaml").is_file() else [])
    return {o["metadata"]["name"]: o for path in builds for o in kustomize_build(path)
            if o["kind"] == "SealedSecret"}


def read_until(fd: int, marker: bytes | None, timeout: float = 30) -> bytes:
    """Read a pty (make seal's hidden prompt) until `marker` appears (or EOF when None); fail instead of hanging."""
    import select
    import time

    output, deadline = b"", time.monotonic() + timeout
    while marker is None or marker not in output:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {marker!r} within {timeout}s: {output!r}"
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            assert marker is None, f"EOF before {marker!r}: {output!r}"
            return output
        output += chunk
    return output
