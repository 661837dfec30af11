"""Restart what reads a changed Secret: revision stamps in the environment's values.

The chart cannot see a change in a Secret it did not render: a re-sealed password or a new
pgbouncer.ini reaches pods only when they restart (pgbouncer mounts its files with subPath, which
never updates in place), and the chart's own checksum annotations hash nothing when the Secrets come
from outside it. So `make seal` (and `make stamp`) write a hash of what each group of pods reads into
their pod annotations in deploy/overlays/<env>/secrets-revision.yaml, the environment's last values
layer: a file of the tools', which copier update never re-renders (values.yaml is the template's and
the user's). A new hash changes the pod template, and the release rolls them. `make validate` fails
(STRICT) or warns while a stamp is stale.

The hash covers public files only (ciphertext, settings, the RDS CA bundle): it reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from airflow_gitops.facts import RDS_CA_BUNDLE

STAMP = "airflow-gitops.io/secrets-revision"  # on the Airflow pods
# On the pgbouncer pods: its own key, because the community chart writes airflow.podAnnotations and
# pgbouncer.podAnnotations into one map on pgbouncer's pods (a key in both would be a duplicate YAML
# key there, which helm-controller's post-renderer refuses).
PGBOUNCER_STAMP = "airflow-gitops.io/pgbouncer-revision"
REVISION_FILE = "secrets-revision.yaml"  # deploy/overlays/<env>/<this>: a values layer written by make seal/stamp
# What each chart's pgbouncer reads (besides the RDS CA bundle): the official chart's its config
# Secret and its exporter's URL; the community chart's builds users.txt from airflow-db at start.
PGBOUNCER_SECRETS = {"official": ("airflow-pgbouncer", "airflow-pgbouncer-stats"),
                     "community": ("airflow-db", "airflow-redis")}
PGBOUNCER_ONLY = {"official": ("airflow-pgbouncer", "airflow-pgbouncer-stats"), "community": ()}


def stamp_paths(flavor: str) -> dict[tuple[str, ...], tuple[str, str]]:
    """values path of a pod-annotations map -> (the group of pods it restarts, the annotation)."""
    airflow = ("airflowPodAnnotations",) if flavor == "official" else ("airflow", "podAnnotations")
    return {airflow: ("airflow", STAMP), ("pgbouncer", "podAnnotations"): ("pgbouncer", PGBOUNCER_STAMP)}


def _files(overlay: Path, secrets: tuple[str, ...]) -> list[Path]:
    """The SealedSecret files of `secrets` and their settings files."""
    return [path for name in secrets for path in (overlay / "secrets" / f"{name}.yaml",
                                                  overlay / "secrets" / "settings" / f"{name}.yaml") if path.is_file()]


def _digest(overlay: Path, files: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(files):
        sha.update(str(path.relative_to(overlay)).encode() + b"\0" + path.read_bytes() + b"\0")
    # 16 base32 characters: 80 bits, and too little entropy per character for secret scanners to
    # take it for a key (16 hex characters are flagged).
    return base64.b32encode(sha.digest()[:10]).decode().lower()


def revisions(overlay: Path, flavor: str) -> dict[str, str]:
    """group -> the hash of what it reads: pgbouncer its Secrets and the CA; the Airflow pods every
    SealedSecret but pgbouncer's own (not the kustomization or the Namespace: no pod reads them)."""
    sealed = sorted({p.stem for p in (overlay / "secrets").glob("*.yaml")} - {"kustomization", "namespace"})
    pgbouncer = _files(overlay, PGBOUNCER_SECRETS[flavor]) + [p for p in [overlay / RDS_CA_BUNDLE] if p.is_file()]
    airflow = _files(overlay, tuple(n for n in sealed if n not in PGBOUNCER_ONLY[flavor]))
    return {"airflow": _digest(overlay, airflow), "pgbouncer": _digest(overlay, pgbouncer)}


def stale(values: dict, overlay: Path, flavor: str) -> list[str]:
    """The values paths whose stamp is missing or not the current revision."""
    want = revisions(overlay, flavor)
    found = []
    for path, (group, stamp) in stamp_paths(flavor).items():
        node = values
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get(stamp) != want[group]:
            found.append(".".join(path))
    return found
