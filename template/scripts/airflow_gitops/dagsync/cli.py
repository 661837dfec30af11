"""The command line: arguments, --help text and exit codes (the entry point is scripts/sync_dags.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from airflow_gitops import dagsync
from airflow_gitops.dagsync.commands import check, publish, rollback, status
from airflow_gitops.errors import SYNC_DAGS_EXIT_CODES as EXIT_CODES
from airflow_gitops.errors import USAGE, UserError, report

STATS_HELP = """--stats prints one JSON line on stderr: {"action", "written", "linked", "unlinked", "mkdir", "rmdir",
"symlink", "renamed", "utime", "total" (their sum: operations on the trees and `current`), "bookkeeping"
(manifest, state and lock writes), "hashed" (source files hashed, locally), "idle" (how the idle slot's
content was known: manifest, recovered, scanned or empty; untouched when already live), "seconds"}."""


def parser() -> argparse.ArgumentParser:
    def sub(name: str, func: Callable[[argparse.Namespace], int], help_text: str, epilog: str = EXIT_CODES):
        cmd = subs.add_parser(name, help=help_text, epilog=epilog, formatter_class=fmt)
        cmd.set_defaults(func=func)
        return cmd

    def check_options(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--ignore-syntax", choices=("regexp", "glob"), help="Airflow's [core] dag_ignore_file_"
                         "syntax for .airflowignore (default: $AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX, else regexp)")
        cmd.add_argument("--plugins", help="plugins folder put on sys.path for the DagBag, as [core] plugins_folder "
                         "(default: SOURCE/plugins if it exists, else Airflow's own setting)")

    fmt = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(description=dagsync.__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=fmt)
    subs = top.add_subparsers(dest="command", required=True)
    pub = sub("publish", publish, "sync SOURCE into the idle slot and switch `current` to it",
              EXIT_CODES + "\n\n" + STATS_HELP)
    pub.add_argument("--source", required=True, help="the DAG tree to publish (a git checkout)")
    pub.add_argument("--root", required=True, help="directory holding the slots and `current`")
    pub.add_argument("--check", action="store_true", help="run the DAG checks first; publish nothing if they fail")
    pub.add_argument("--verify", action="store_true", help="trust no manifest: scan and hash the slots on the "
                     "volume, and repair a slot edited by hand (reads every file: O(tree))")
    pub.add_argument("--grace", type=float, default=360.0, help="seconds a tree stays untouched after it "
                     "stopped being live (default 360: dag_dir_list_interval 300 s + parse time)")
    pub.add_argument("--no-wait", action="store_true", help="exit 4 instead of waiting out the grace period")
    pub.add_argument("--revision", help="revision to record (default: git -C SOURCE rev-parse HEAD, else unknown)")
    pub.add_argument("--lock-timeout", type=float, default=600.0, help="seconds to wait for the lock (default 600)")
    pub.add_argument("--jobs", type=int, default=16, help="calls on the volume in flight at once (default 16)")
    pub.add_argument("--stats", action="store_true", help="print operation counts as one JSON line on stderr")
    check_options(pub)
    chk = sub("check", check, "compile what Airflow parses, and load its DagBag when airflow is importable")
    chk.add_argument("--source", required=True)
    check_options(chk)
    rol = sub("rollback", rollback, "point `current` back at the previous tree")
    rol.add_argument("--root", required=True)
    rol.add_argument("--lock-timeout", type=float, default=600.0, help="seconds to wait for the lock (default 600)")
    sta = sub("status", status, "show the live and the previous tree")
    sta.add_argument("--root", required=True)
    sta.add_argument("--json", action="store_true", help="machine-readable output")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        return report("sync_dags", exc)
    except OSError as exc:
        hint = "; if a slot was changed by hand, publish with --verify" if args.command == "publish" else ""
        print(f"sync_dags: I/O error: {exc}{hint}", file=sys.stderr)
        return USAGE
