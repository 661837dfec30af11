"""The names under ROOT, and the retention defaults (defined here once: the CLI, help and README use them)."""

from __future__ import annotations

import os

RELEASES, CURRENT, LOCK, STATE, IGNORE_FILE = "releases", "current", ".lock", ".state.json", ".airflowignore"
TMP = ".~sync_dags."  # prefix of every temp name: never published, removed by the next run
LEGACY_SLOTS = (".slot-a", ".slot-b")  # the old two-slot layout: read, linked from once, then pruned
MANIFEST_VERSION = 2
ID_LENGTH = 16  # hex digits of the tree's SHA-256

KEEP_LAST = 5  # superseded releases kept whatever their age (rollback targets)
KEEP_FOR = 86400.0  # seconds a superseded release is kept: the longest DAG run (queued, running, cleared)
GRACE = 360.0  # the floor of KEEP_FOR: dag_dir_list_interval 300 s + parse time
LINK_CAP = 177  # EFS: hard links per file; every kept release holds one link to each unchanged file


def release_dir(root: str, name: str) -> str:
    """A release's tree, or a legacy slot's (those live directly under ROOT)."""
    return os.path.join(root, name) if name in LEGACY_SLOTS else os.path.join(root, RELEASES, name)


def manifest_path(root: str, name: str) -> str:
    return release_dir(root, name) + ".manifest.json"


def link_target(name: str) -> str:
    """What `current` holds: relative, so that it resolves wherever the volume is mounted."""
    return name if name in LEGACY_SLOTS else f"{RELEASES}/{name}"
