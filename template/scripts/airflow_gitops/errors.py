"""The one error type of this repository's tools, and their exit codes (the one table of them).

A tool raises `UserError` for anything the user can fix (a bad argument, a missing file, a value a
rule refuses, a cluster it cannot reach); its entry point catches it, prints one line without a
traceback and exits with the error's `code`. Anything else is a bug and keeps its traceback.

Exit codes, the same in every tool:

    0  done, or nothing to do
    1  it ran and found problems, one line each: validate's errors, preflight's MISSING or TOO OLD,
       update's conflicts, sync_dags' DAG check or symlink problems; install_tools has no kubectl
       and helm for this machine; copier copy refused to seal (hooks/sealing.py CopyRefused)
    2  user error, nothing (more) done: `<tool>: error: <message>` from seal, render, update and
       upgrade; `preflight: cannot check the cluster: ...`; `sync_dags: ...` (usage or I/O error);
       validate --jenkins-clouds without a Jenkinsfile; argparse's usage errors
    3  sync_dags: the lock was not taken within --lock-timeout (the message names the holder)
    4  unused (was sync_dags --no-wait: releases are never overwritten, so a publish never waits)
    5  sync_dags: rollback impossible (no release published before the live one, or it is an old slot)

SYNC_DAGS_EXIT_CODES is sync_dags' --help epilog: the same codes, in the words of its commands.
Standard library only, Python 3.9: sync_dags.py imports it inside the Airflow image.
"""

from __future__ import annotations

import sys

OK, PROBLEMS, USAGE = 0, 1, 2
LOCK_TIMEOUT, NO_ROLLBACK = 3, 5  # sync_dags only

SYNC_DAGS_EXIT_CODES = f"""exit codes:
  {OK}  success: published, already live, pruned, rolled back, check passed, status shown
  {PROBLEMS}  DAG check failed (`check`, --check), or SOURCE has a symlink that leaves it, dangles or loops
     (`check` and `publish` refuse it): one `file:line:message` per problem; nothing written
  {USAGE}  usage or I/O error (bad arguments, missing directory, `status` on a ROOT without `current`,
     a source file changed during the publish)
  {LOCK_TIMEOUT}  the lock was not taken within --lock-timeout (the message names the holder)
  {NO_ROLLBACK}  rollback impossible: no release was published before the live one, or that tree is a slot
     of the old two-slot layout"""


class UserError(Exception):
    """A problem the user can fix: printed as one line without a traceback, the tool exits `code`."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


def report(prefix: str, exc: UserError) -> int:
    """Print `<prefix>: <message>` on stderr (prefix e.g. "seal: error"); returns the exit code."""
    print(f"{prefix}: {exc}", file=sys.stderr)
    return exc.code
