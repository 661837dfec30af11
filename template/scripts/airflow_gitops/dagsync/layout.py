"""The names under ROOT: the two slots, `current`, the lock, the state, and the temp prefix."""

from __future__ import annotations

SLOTS = (".slot-a", ".slot-b")
CURRENT, LOCK, STATE, IGNORE_FILE = "current", ".lock", ".state.json", ".airflowignore"
TMP = ".~sync_dags."  # prefix of every temp name: never published, removed by the next run
MANIFEST_VERSION = 1
