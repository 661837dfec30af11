"""The command line: arguments, --help text and exit codes (the entry point is scripts/sync_dags.py)."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable

from airflow_gitops import dagsync
from airflow_gitops.dagsync.commands import check, prune_command, publish, rollback, status
from airflow_gitops.dagsync.layout import GRACE, KEEP_FOR, KEEP_LAST, LINK_CAP
from airflow_gitops.errors import SYNC_DAGS_EXIT_CODES as EXIT_CODES
from airflow_gitops.errors import USAGE, UserError, report

STATS_HELP = """--stats prints one JSON line on stderr: {"action" (first-publish, published, reused, already-live),
"release", "written", "linked", "copied" (hard link refused, e.g. EMLINK: copied from the source instead;
"refused" counts the errors), "unlinked", "mkdir", "rmdir", "symlink", "renamed", "utime", "fsync", "total"
(their sum: operations on the trees and `current`), "bookkeeping" (manifest, state and lock writes), "hashed"
(source files hashed, locally), "base" (how the live tree's content was known: manifest, scanned, none;
untouched when no tree was built), "pruned", "seconds"}."""
RETENTION_HELP = f"""retention: the live release, the last --keep-last, every release superseded less than --keep-for
ago (never less than --grace), and every --keep ID. Each kept release holds a hard link to every file
unchanged since: EFS allows {LINK_CAP} per file, past which files are copied (counted in --stats)."""
CAUSES = {errno.ENOSPC: "the volume is full", errno.EDQUOT: "a quota is exhausted",
          errno.EACCES: "permission denied (the access point's user must own ROOT)", errno.EPERM: "not permitted",
          errno.EROFS: "the volume is mounted read-only", errno.EMLINK: "too many hard links to one file"}


def parser() -> argparse.ArgumentParser:
    def sub(name: str, func: Callable[[argparse.Namespace], int], help_text: str, epilog: str = EXIT_CODES):
        cmd = subs.add_parser(name, help=help_text, epilog=epilog, formatter_class=fmt)
        cmd.set_defaults(func=func)
        if name != "check":
            cmd.add_argument("--root", required=True, help="directory holding releases/ and `current`")
        return cmd

    def check_options(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--ignore-syntax", choices=("regexp", "glob"), help="Airflow's [core] dag_ignore_file_"
                         "syntax for .airflowignore (default: $AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX, else regexp)")
        cmd.add_argument("--plugins", help="plugins folder put on sys.path for the DagBag, as [core] plugins_folder "
                         "(default: SOURCE/plugins if it exists, else Airflow's own setting)")

    def retention_options(cmd: argparse.ArgumentParser, pins: bool = True) -> None:
        cmd.add_argument("--keep-last", type=int, default=KEEP_LAST, metavar="N", help="superseded releases kept "
                         f"whatever their age, the newest first (default {KEEP_LAST})")
        cmd.add_argument("--keep-for", type=float, default=KEEP_FOR, metavar="SECONDS", help="keep every release "
                         f"superseded less than this ago: your longest DAG run (default {KEEP_FOR:g})")
        cmd.add_argument("--grace", type=float, default=GRACE, metavar="SECONDS", help="the floor of --keep-for "
                         f"(default {GRACE:g}: dag_dir_list_interval 300 s + parse time)")
        if pins:
            cmd.add_argument("--keep", action="append", metavar="ID", help="also keep this release (repeatable)")

    def runner_options(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--lock-timeout", type=float, default=600.0, help="seconds to wait for the lock (default 600)")
        cmd.add_argument("--jobs", type=int, default=16, help="calls on the volume in flight at once (default 16)")
        cmd.add_argument("--stats", action="store_true", help="print operation counts as one JSON line on stderr")

    fmt = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(description=dagsync.__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=fmt)
    subs = top.add_subparsers(dest="command", required=True)
    pub = sub("publish", publish, "build SOURCE's release (unchanged files hard-linked) and switch `current` to it",
              "\n\n".join((RETENTION_HELP, EXIT_CODES, STATS_HELP)))
    pub.add_argument("--source", required=True, help="the DAG tree to publish (a git checkout)")
    pub.add_argument("--check", action="store_true", help="run the DAG checks first; publish nothing if they fail")
    pub.add_argument("--verify", action="store_true", help="trust no manifest: scan and hash the live release on "
                     "the volume; link nothing edited by hand, and repair a hand-edited release that goes live "
                     "again (reads every file: O(tree))")
    pub.add_argument("--no-wait", action="store_true", help=argparse.SUPPRESS)  # old; a publish never waits now
    pub.add_argument("--revision", help="revision to record (default: git -C SOURCE rev-parse HEAD, else unknown)")
    retention_options(pub)
    runner_options(pub)
    check_options(pub)
    pru = sub("prune", prune_command, "remove the releases the retention rule does not keep",
              "\n\n".join((RETENTION_HELP, EXIT_CODES)))
    retention_options(pru)
    runner_options(pru)
    chk = sub("check", check, "compile what Airflow parses, and load its DagBag when airflow is importable")
    chk.add_argument("--source", required=True)
    check_options(chk)
    rol = sub("rollback", rollback, "point `current` at the release published before the live one")
    rol.add_argument("--lock-timeout", type=float, default=600.0, help="seconds to wait for the lock (default 600)")
    sta = sub("status", status, "show the live release, every release kept and why, and the rollback target")
    sta.add_argument("--json", action="store_true", help="machine-readable output")
    retention_options(sta, pins=False)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        return report("sync_dags", exc)
    except OSError as exc:
        cause = CAUSES.get(exc.errno or 0)
        hint = f" ({cause})" if cause else ""
        if args.command in ("publish", "prune"):
            hint += ("; nothing live was changed: `current` still points at a complete release. If a release "
                     "was edited by hand, publish with --verify")
        print(f"sync_dags: I/O error: {exc}{hint}", file=sys.stderr)
        return USAGE
