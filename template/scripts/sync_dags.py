#!/usr/bin/env python3
"""Publish a DAG tree atomically onto the shared EFS volume that Airflow reads.

    python sync_dags.py check --source DIR [--ignore-syntax regexp|glob] [--plugins DIR]
    python sync_dags.py publish --source DIR --root /opt/efs/dags [--check] [--verify] [--grace 360] [--stats]
    python sync_dags.py rollback --root /opt/efs/dags
    python sync_dags.py status --root /opt/efs/dags [--json]

Layout under ROOT (Airflow's DAGS_FOLDER is ROOT/current, so the hidden names are invisible to it):
    .slot-a/ .slot-b/        two complete trees used in turn
    .slot-a.manifest.json    per slot: every path with its kind, size, mode and SHA-256 (and "clean")
    current -> .slot-a       relative symlink (agents and pods mount the volume at different paths)
    .lock                    flock()ed by publish/rollback; holds "pid=.. host=.. since=.. command=.."
    .state.json              revision and times per slot; `current` on disk is the truth, this describes it

What is published: every file of SOURCE except `.git`, `__pycache__`, `*.pyc` and this tool's temp names
(`.~sync_dags.*`). `.airflowignore` means "do not parse", never "do not ship": ignored helper packages are
published. A symlink inside SOURCE is published as what it points to (a file or a directory copied),
so the tree has no link that could dangle where the volume is mounted or make Airflow's walk report a
"recursive loop"; a link leaving SOURCE, dangling, or pointing at its own ancestor is refused (exit 1).

Change detection is by content: SOURCE is hashed locally, and each slot's manifest says what the slot
holds, so a publish reads two manifests instead of stat()ing the trees on EFS, where every call is a
network round trip. It writes only the files whose content or mode differ into the idle slot (a changed
file is a new inode: the slots share inodes through hard links), writes the manifest, then swaps
`current` by symlink(tmp) + rename(tmp, current): `ln -sfn` is unlink + symlink, not atomic. The live
tree is never written. Writes run --jobs at a time: EFS serves parallel calls in parallel. Before it
writes into a slot, a publish records the paths it is going to touch in that slot's manifest, so a run
killed at any point is repaired by the next one for the cost of those paths only. `--verify` trusts no
manifest: it scans and hashes both slots on the volume, and repairs a slot that was edited by hand.

`check` (and `publish --check`) stages the tree exactly as it would be published, then compiles the
files Airflow parses there (its .airflowignore rules: per-directory files, `[core] dag_ignore_file_syntax`
regexp or glob, and `[core] dag_discovery_safe_mode`) and, when `airflow` is importable, loads Airflow's
DagBag on that tree with it as DAGS_FOLDER (on sys.path, as in the scheduler) and reports import errors.
Without airflow it says so: import errors are then NOT checked.
Python 3.9+ standard library only: it runs inside the apache/airflow:2.8.4-python3.9 image.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, NamedTuple

SLOTS = (".slot-a", ".slot-b")
CURRENT, LOCK, STATE, IGNORE_FILE = "current", ".lock", ".state.json", ".airflowignore"
TMP = ".~sync_dags."  # prefix of every temp name: never published, removed by the next run
MANIFEST_VERSION = 1
EXIT_OK, EXIT_CHECK, EXIT_USAGE, EXIT_LOCK, EXIT_GRACE, EXIT_ROLLBACK = range(6)
EXIT_CODES = """exit codes:
  0  success: published, already live, rolled back, check passed, status shown
  1  DAG check failed (`check`, --check), or SOURCE has a symlink that leaves it, dangles or loops
     (`check` and `publish` refuse it): one `file:line:message` per problem; nothing written
  2  usage or I/O error (bad arguments, missing directory, `status` on a ROOT without `current`,
     a source file changed during the publish)
  3  the lock was not taken within --lock-timeout (the message names the holder)
  4  the idle slot is still within its grace period and --no-wait was given
  5  rollback impossible: no previous tree, or it is dirty (a publish into it was interrupted)"""
STATS_HELP = """--stats prints one JSON line on stderr: {"action", "written", "linked", "unlinked", "mkdir", "rmdir",
"symlink", "renamed", "utime", "total" (their sum: operations on the trees and `current`), "bookkeeping"
(manifest, state and lock writes), "hashed" (source files hashed, locally), "idle" (how the idle slot's
content was known: manifest, recovered, scanned or empty; untouched when already live), "seconds"}."""
# Airflow 3.3 moved DagBag to airflow.dag_processing.dagbag and dropped include_examples (examples
# follow [core] load_examples): take what the installed Airflow has.
DAGBAG_PROBE = """import inspect, json, os, sys
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
options = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
bag = DagBag(dag_folder=sys.argv[1], **options)
errors = {str(k): str(v) for k, v in bag.import_errors.items()}
print("SYNC_DAGS_DAGBAG " + json.dumps({"dags": len(bag.dags), "import_errors": errors}))
"""
NO_AIRFLOW = ("import errors were NOT checked: `airflow` is not importable by {python} (compile only); "
              "run the check in the Airflow image, as the Jenkinsfile does")


class Fail(Exception):
    """An expected failure: printed without a traceback, exits with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Item(NamedTuple):
    """One path of a tree: a directory, or a file with its size, permission bits and SHA-256."""

    kind: str  # "d" directory, "f" regular file, "?" anything else found on the volume
    size: int = 0
    mode: int = 0
    digest: str = ""  # "" = unknown content: never equal to anything

    def same(self, other: Item | None) -> bool:
        if other is None or other.kind != self.kind or self.kind == "?":
            return False
        return self.kind == "d" or (bool(self.digest) and self == other)

    def dump(self) -> list[Any]:
        return ["d"] if self.kind == "d" else [self.kind, self.size, self.mode, self.digest]


Tree = dict  # "/"-separated relative path -> Item, parents before their children


def iso(ts: float) -> str:
    utc = datetime.fromtimestamp(ts, timezone.utc)  # noqa: UP017 (datetime.UTC is 3.11+)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parallel(jobs: int, func: Callable[[Any], object], items: Iterable[Any]) -> None:
    """func over items, `jobs` threads at a time (on EFS a call waits for the network, not the CPU); the
    first exception is raised once the others have finished. Items go in batches: a thread per item costs
    more than a local call."""
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            func(item)
        return
    batches = [items[n::jobs * 4] for n in range(min(len(items), jobs * 4))]
    with ThreadPoolExecutor(max_workers=min(jobs, len(batches))) as pool:
        for _ in pool.map(lambda batch: [func(item) for item in batch], batches):
            pass


# ------------------------------------------------------------------------------------------------ source
def skipped(name: str) -> bool:
    return name in (".git", "__pycache__") or name.endswith(".pyc") or name.startswith(TMP)


class Source:
    """SOURCE as it will be published: symlinks inside it followed, the tool's skip list applied, hashed."""

    def __init__(self, path: str) -> None:
        if not os.path.isdir(path):
            raise Fail(EXIT_USAGE, f"source {path} is not a directory")
        self.root = os.path.realpath(path)
        self.tree: Tree = {}
        self.origin: dict[str, str] = {}  # rel -> the real file whose bytes are published there
        self.mtime: dict[str, int] = {}
        self.problems: list[str] = []
        self.walk(self.root, "", frozenset([self.root]))
        if self.problems:
            for problem in self.problems:
                print(problem, file=sys.stderr)
            raise Fail(EXIT_CHECK, f"{len(self.problems)} symlink problem(s) in {path}; nothing published")

    def files(self) -> int:
        return sum(1 for item in self.tree.values() if item.kind == "f")

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def walk(self, real_dir: str, prefix: str, ancestors: frozenset[str]) -> None:
        with os.scandir(real_dir) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            if skipped(entry.name):
                continue
            if entry.is_symlink():
                self.follow(entry.path, rel, ancestors)
            elif entry.is_dir(follow_symlinks=False):
                self.tree[rel] = Item("d")
                self.walk(entry.path, rel + "/", ancestors | {entry.path})
            elif entry.is_file(follow_symlinks=False):
                self.add_file(rel, entry.path)
            else:
                print(f"warning: skipping special file {entry.path}", file=sys.stderr)

    def follow(self, link: str, rel: str, ancestors: frozenset[str]) -> None:
        target, real = os.readlink(link), os.path.realpath(link)
        where = f"{rel}:0:symlink -> {target}"
        if not self.inside(real):
            self.problems.append(f"{where} leaves the source (resolves to {real}); links are published as what "
                                 "they point to, so the target must be inside the source: move it in, or copy it")
        elif not os.path.exists(real):
            self.problems.append(f"{where} dangles (nothing at {real})")
        elif os.path.isdir(real):
            if real in ancestors:
                self.problems.append(f"{where} points at its own parent directory {real}: a loop")
                return
            self.tree[rel] = Item("d")
            self.walk(real, rel + "/", ancestors | {real})
        elif os.path.isfile(real):
            self.add_file(rel, real)
        else:
            print(f"warning: skipping {rel}: symlink to the special file {real}", file=sys.stderr)

    def add_file(self, rel: str, real: str) -> None:
        st = os.stat(real)
        self.tree[rel] = Item("f", st.st_size, stat.S_IMODE(st.st_mode))
        self.origin[rel], self.mtime[rel] = real, st.st_mtime_ns

    def hash_all(self) -> None:
        """Fill in every digest (local reads only: the source is on the agent's disk)."""

        for rel, real in self.origin.items():  # serially: local reads of small files, threads cost more
            self.tree[rel] = self.tree[rel]._replace(digest=sha256_file(real))


# ------------------------------------------------------------------------------------------------ checks
class Rule(NamedTuple):
    """One .airflowignore line as Airflow 2.8 (airflow/utils/file.py) compiles it."""

    regex: re.Pattern[str]
    raw: str
    include: bool  # glob only: False for a `!` pattern (re-includes)
    relative_to: str | None  # glob: the ignore file's directory when the pattern has a slash; else the name


# re2, which Airflow compiles regexp patterns with, has no lookaround and no backreferences
RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\(\?P=|\\[1-9]")


def regexp_rule(pattern: str, base: str, where: str, warnings: list[str]) -> Rule | None:
    if RE2_UNSUPPORTED.search(pattern):
        warnings.append(f"{where}: Airflow ignores the pattern {pattern!r}: re2 has no lookaround/backreferences")
        return None
    try:
        return Rule(re.compile(pattern), pattern, True, base)
    except re.error as exc:
        warnings.append(f"{where}: Airflow ignores the invalid regexp {pattern!r}: {exc}")
        return None


def glob_segment(seg: str) -> str:
    """One path segment of a gitignore glob: `*` and `?` stay within the segment, `[...]` is a class
    (`[!...]` or `[^...]` negated), a backslash escapes the next character (a trailing one is an error, which
    makes Airflow's listing fail), an unclosed `[` is literal."""
    out, i = [], 0
    while i < len(seg):
        char = seg[i]
        if char == "\\":
            if i + 1 == len(seg):
                raise ValueError(f"escape character at the end of {seg!r}")
            out.append(re.escape(seg[i + 1]))
            i += 1
        elif char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and class_end(seg, i) > 0:
            end = class_end(seg, i)
            members = seg[i + 1:end]
            negate = members[:1] in ("!", "^")
            members = (members[1:] if negate else members).replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "") + members + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def class_end(seg: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start` (a `]` right after `[` or `[!` is a member), or -1."""
    i = start + 1
    i += 1 if seg[i:i + 1] in ("!", "^") else 0
    i += 1 if seg[i:i + 1] == "]" else 0
    return seg.find("]", i)


def glob_regex(pattern: str) -> tuple[str, bool] | None:
    """A gitignore pattern as the regex Airflow's glob syntax (gitwildmatch) matches with, and whether it
    ignores (True) or re-includes (`!`, False); None for a no-op line.

    The regex is matched against a name (a pattern without an inner slash) or against a path relative to
    the ignore file's directory; a directory gets a trailing "/" when the pattern ends with one.
    """
    text = pattern.lstrip() if pattern.endswith("\\ ") else pattern.strip()
    if not text or text.startswith("#") or text == "/":
        return None
    include = not text.startswith("!")
    text = text if include else text[1:]
    dir_only = text.endswith("/")
    segs: list[str] = []
    for seg in text.split("/"):
        if not (seg == "**" and segs and segs[-1] == "**"):  # a/**/**/b is a/**/b
            segs.append(seg)
    if segs == ["**", ""]:
        return r"^.+/.*$", include  # "**/": everything below the top level, no top-level file
    if segs[0] == "":
        segs = segs[1:]  # a leading slash anchors the pattern at the ignore file's directory
    elif len(segs) == 1 or (len(segs) == 2 and dir_only):
        segs = segs if segs[0] == "**" else ["**", *segs]  # a bare name matches at any depth
    if not segs or segs == [""]:
        raise ValueError(f"invalid glob pattern {pattern!r}")
    if dir_only and len(segs) > 1:
        segs[-1] = "**"  # "dir/" is "dir/**" for directories (they are matched with a trailing slash)
    return "^" + "".join(glob_parts(segs)) + "$", include


def glob_parts(segs: list[str]) -> Iterator[str]:
    last, sep = len(segs) - 1, ""
    for n, seg in enumerate(segs):
        if seg == "**":
            if n == 0:
                yield "[^/]+(?:/.*)?" if n == last else "(?:.+/)?"  # any leading directories
                sep = ""
            elif n == last:
                yield "/.*"  # everything inside
            else:
                yield "(?:/.+)?"  # zero or more directories in between
                sep = "/"
            continue
        yield sep + ("[^/]+" if seg == "*" else glob_segment(seg))
        if n == last:
            yield "(?:/.*)?"  # a name matches a directory together with what is inside it
        sep = "/"


def glob_rule(pattern: str, ignore_dir: str, where: str, warnings: list[str]) -> Rule | None:
    if pattern.strip() == "/":
        return None
    compiled = glob_regex(pattern)
    if compiled is None:
        return None
    relative_to = ignore_dir if pattern.startswith("/") or "/" in pattern.rstrip("/") else None
    return Rule(re.compile(compiled[0]), pattern, compiled[1], relative_to)


def ignored(path: str, is_dir: bool, rules: list[Rule], syntax: str) -> bool:
    if syntax == "regexp":  # any pattern re.search()ing the path relative to the DAG folder
        return any(rule.regex.search(os.path.relpath(path, rule.relative_to)) for rule in rules)
    matched = False  # glob: the last matching pattern decides, `!` re-includes
    for rule in rules:
        rel = os.path.relpath(path, rule.relative_to) if rule.relative_to else os.path.basename(path)
        if rule.raw.endswith("/") and is_dir:
            rel += "/"
        if rule.regex.match(rel):
            matched = rule.include
    return matched


def read_rules(root: str, base: str, syntax: str, warnings: list[str]) -> list[Rule]:
    path = os.path.join(root, IGNORE_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as fh:
        lines = [re.sub(r"\s*#.*", "", line) for line in fh.read().split("\n")]
    rules = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        where = f"{os.path.relpath(path, base)}:{number}"
        try:
            rule = regexp_rule(line, base, where, warnings) if syntax == "regexp" else glob_rule(
                line, root, where, warnings)
        except ValueError as exc:
            raise Fail(EXIT_CHECK, f"{where}: {exc}: Airflow fails to list the DAG folder with it") from None
        rules += [rule] if rule else []
    return rules


def airflow_listing(base: str, syntax: str, warnings: list[str]) -> tuple[list[str], list[str]]:
    """(listed, ignored) files under base, relative, walked as Airflow 2.8's find_path_from_directory does:
    rules inherited by subdirectories, each directory's .airflowignore added to them, ignored
    directories not descended (their files count as ignored), .airflowignore itself never listed."""
    listed, skipped_files, inherited = [], [], {base: []}
    for root, dirs, files in os.walk(base):
        rules = inherited.pop(root, [])
        rules = list(dict.fromkeys(rules + read_rules(root, base, syntax, warnings)))
        keep = []
        for name in sorted(dirs):
            path = os.path.join(root, name)
            if ignored(path, True, rules, syntax):
                skipped_files += [os.path.relpath(os.path.join(d, f), base) for d, _, fs in os.walk(path) for f in fs]
            else:
                keep.append(name)
                inherited[path] = rules
        dirs[:] = keep
        for name in sorted(files):
            if name != IGNORE_FILE:
                rel = os.path.relpath(os.path.join(root, name), base)
                (skipped_files if ignored(os.path.join(root, name), False, rules, syntax) else listed).append(rel)
    return listed, skipped_files


def might_contain_dag(path: str) -> bool:
    """Airflow's safe-mode heuristic: a file is parsed only if it mentions both "dag" and "airflow"."""
    with open(path, "rb") as fh:
        content = fh.read().lower()
    return b"dag" in content and b"airflow" in content


def config_flag(name: str, default: bool) -> bool:
    value = os.environ.get(f"AIRFLOW__CORE__{name}")
    return default if value is None else value.strip().lower() in ("true", "t", "1", "yes", "y")


def compile_problems(staged: str, rels: Iterable[str]) -> list[str]:
    import warnings

    problems = []
    for rel in rels:
        with open(os.path.join(staged, rel), "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are not failures
            try:
                compile(fh.read(), rel, "exec", dont_inherit=True)
            except SyntaxError as exc:
                problems.append(f"{rel}:{exc.lineno or 0}:{exc.msg}")
            except ValueError as exc:  # null bytes
                problems.append(f"{rel}:0:{exc}")
    return problems


@contextmanager
def staged_tree(source: Source) -> Iterator[str]:
    """The tree exactly as a publish would write it, in a local temp directory (hard links when possible)."""
    staged = tempfile.mkdtemp(prefix="sync_dags-check-")
    try:
        for rel, item in source.tree.items():
            path = os.path.join(staged, rel)
            if item.kind == "d":
                os.mkdir(path)
                continue
            try:
                os.link(source.origin[rel], path)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(source.origin[rel], path)
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def dagbag_problems(staged: str, plugins: str | None, syntax: str | None) -> tuple[list[str], int]:
    """Airflow's DagBag in a child process (DAG files run arbitrary code; airflow is slow to import), with
    the staged tree as DAGS_FOLDER: Airflow puts DAGS_FOLDER and PLUGINS_FOLDER on sys.path itself."""
    import subprocess

    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": staged, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.update({"AIRFLOW__CORE__PLUGINS_FOLDER": plugins} if plugins else {})
    env.update({"AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": syntax} if syntax else {})
    proc = subprocess.run([sys.executable, "-c", DAGBAG_PROBE, staged], capture_output=True, text=True, env=env)
    found = [line for line in proc.stdout.splitlines() if line.startswith("SYNC_DAGS_DAGBAG ")]
    if proc.returncode or not found:
        return [f".:0:the DagBag did not load (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"], 0
    result = json.loads(found[-1].split(" ", 1)[1])
    problems = []
    for path, trace in result["import_errors"].items():
        lines = re.findall(rf'File "{re.escape(path)}", line (\d+)', trace) or ["0"]
        message = ([line.strip() for line in trace.splitlines() if line.strip()] or ["import error"])[-1]
        problems.append(f"{os.path.relpath(path, staged)}:{lines[-1]}:{message}")
    return sorted(problems), result["dags"]


def airflow_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("airflow") is not None


def run_checks(source: Source, args: argparse.Namespace) -> str:
    """Raise Fail(1) listing every problem; return the summary line of a passed check."""
    syntax = args.ignore_syntax or os.environ.get("AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX", "regexp") or "regexp"
    if syntax not in ("regexp", "glob"):
        raise Fail(EXIT_USAGE, f"unsupported dag_ignore_file_syntax {syntax!r} (Airflow knows regexp and glob)")
    with staged_tree(source) as staged:
        warnings: list[str] = []
        listed, skipped_files = airflow_listing(staged, syntax, warnings)
        safe = config_flag("DAG_DISCOVERY_SAFE_MODE", True)
        parsed = [rel for rel in listed if rel.endswith(".py") and (not safe or might_contain_dag(
            os.path.join(staged, rel)))]
        problems = compile_problems(staged, parsed)
        others = sorted(set(r for r in source.origin if r.endswith(".py")) - set(parsed))
        warnings += [f"{p} (not parsed by Airflow; breaks any DAG importing it)" for p in compile_problems(
            staged, others)]
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        plugins = os.path.abspath(args.plugins) if args.plugins else (
            os.path.join(staged, "plugins") if source.tree.get("plugins", Item("f")).kind == "d" else None)
        what = (f"{len(parsed)} DAG files parsed ({len(skipped_files)} files ignored by {IGNORE_FILE}, "
                f"{syntax} syntax; {source.files()} files published)")
        if not problems and airflow_importable():
            problems, dags = dagbag_problems(staged, plugins, args.ignore_syntax)
            what += f"; DagBag: {dags} DAGs, no import errors"
        elif not problems:
            note = NO_AIRFLOW.format(python=sys.executable)
            print(f"warning: {note}", file=sys.stderr)
            what += f"; {note}"
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        raise Fail(EXIT_CHECK, f"DAG check failed: {len(problems)} problem(s) in {source.root}; nothing published")
    return what


# ------------------------------------------------------------------------------------------------ volume
class Ops:
    """Performs and counts the calls on the volume (each one a network round trip on EFS); thread-safe."""

    KINDS = ("written", "linked", "unlinked", "mkdir", "rmdir", "symlink", "renamed", "utime")

    def __init__(self, jobs: int = 1) -> None:
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.bookkeeping = 0  # manifest, state and lock writes, reported apart from the trees
        self.jobs, self.guard = jobs, threading.Lock()

    def count(self, kind: str, n: int = 1) -> None:
        with self.guard:
            self.counts[kind] += n

    def summary(self) -> dict[str, int]:
        return {**self.counts, "total": sum(self.counts.values()), "bookkeeping": self.bookkeeping}

    def do(self, kind: str, func: Callable[..., object], *args: str) -> None:
        func(*args)
        self.count(kind)

    def write_file(self, source: Source, rel: str, dst: str) -> None:
        """A new inode under the final name (the slot is not live); the mode is given at creation (umask
        applies, like rsync without -p), the source mtime set after (rsync -t). The bytes are hashed as they
        are copied: a source changed since it was hashed fails the run instead of publishing other bytes
        than the manifest records (the path stays pending: the next run rewrites it)."""
        want, digest = source.tree[rel], hashlib.sha256()
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, want.mode)
        self.count("written")
        try:
            with open(source.origin[rel], "rb") as fin:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    digest.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
            if digest.hexdigest() != want.digest:
                raise Fail(EXIT_USAGE, f"source file {rel} changed during the publish; run it again")
            mtime = source.mtime[rel]
            os.utime(out, ns=(mtime, mtime))
            self.count("utime")
        finally:
            os.close(out)

    def unlink(self, path: str) -> None:
        """A file, or whatever is there (a directory edited in by hand); absent is fine."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except (IsADirectoryError, PermissionError):  # Linux says EISDIR, POSIX allows EPERM
            if not os.path.isdir(path) or os.path.islink(path):
                raise
            self.remove_tree(path)
            return
        self.count("unlinked")

    def rmdir(self, path: str) -> None:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.remove_tree(path)  # holds files the manifest does not know: added by hand
            return
        self.count("rmdir")

    def remove_tree(self, path: str) -> None:
        with os.scandir(path) as it:
            for child in list(it):
                if child.is_dir(follow_symlinks=False):
                    self.remove_tree(child.path)
                else:
                    self.do("unlinked", os.unlink, child.path)
        self.do("rmdir", os.rmdir, path)


def by_depth(paths: Iterable[str], deepest_first: bool = False) -> list[list[str]]:
    levels: dict[int, list[str]] = {}
    for path in paths:
        levels.setdefault(path.count("/"), []).append(path)
    return [levels[depth] for depth in sorted(levels, reverse=deepest_first)]


class Plan(NamedTuple):
    remove: list  # present but unwanted (or of another kind), with every known path below them
    mkdir: list
    write: list  # files to (re)write: absent, different, or of unknown content

    def empty(self) -> bool:
        return not (self.remove or self.mkdir or self.write)

    def touched(self) -> set[str]:
        return set(self.remove) | set(self.mkdir) | set(self.write)


def diff(want: Tree, have: Tree) -> Plan:
    """What turns a slot holding `have` into `want`; compares manifests only."""
    remove = [rel for rel, item in have.items() if item.kind == "?" or want.get(rel, Item("?")).kind != item.kind]
    dirs = {rel for rel in remove if have[rel].kind == "d"}
    if dirs:  # everything known below a removed directory goes with it
        below = [rel for rel in have if rel not in dirs and any(a in dirs for a in ancestors(rel))]
        remove = list(dict.fromkeys(remove + below))
    gone = set(remove)
    mkdir = [rel for rel, item in want.items() if item.kind == "d" and (rel in gone or rel not in have)]
    write = [rel for rel, item in want.items() if item.kind == "f" and (rel in gone or not item.same(have.get(rel)))]
    return Plan(remove, mkdir, write)


def ancestors(rel: str) -> Iterator[str]:
    parts = rel.split("/")
    for n in range(1, len(parts)):
        yield "/".join(parts[:n])


def apply(plan: Plan, source: Source, have: Tree, target: str, ops: Ops, link_from: str | None = None) -> None:
    """Execute a plan, `ops.jobs` calls at a time; with link_from (a complete slot of the same tree) files
    are hard-linked from it instead of written."""
    gone = set(plan.remove)
    parallel(ops.jobs, lambda rel: ops.unlink(f"{target}/{rel}"), [r for r in plan.remove if have[r].kind != "d"])
    for level in by_depth((r for r in plan.remove if have[r].kind == "d"), deepest_first=True):
        parallel(ops.jobs, lambda rel: ops.rmdir(f"{target}/{rel}"), level)
    for level in by_depth(plan.mkdir):
        parallel(ops.jobs, lambda rel: make_dir(f"{target}/{rel}", ops), level)

    def put(rel: str) -> None:
        path = f"{target}/{rel}"
        if rel in have and rel not in gone:  # a different file there: a new inode, never an in-place write
            ops.unlink(path)
        try:
            if link_from:
                ops.do("linked", os.link, f"{link_from}/{rel}", path)
            else:
                ops.write_file(source, rel, path)
        except FileExistsError:  # left by an interrupted run that the manifest could not record
            ops.unlink(path)
            put(rel)

    parallel(ops.jobs, put, plan.write)


def make_dir(path: str, ops: Ops) -> None:
    try:
        ops.do("mkdir", os.mkdir, path)
    except FileExistsError:
        if not os.path.isdir(path) or os.path.islink(path):
            ops.unlink(path)
            ops.do("mkdir", os.mkdir, path)


def scan_slot(path: str, jobs: int) -> Tree:
    """What a slot really holds: every entry lstat()ed and every file read and hashed (--verify, recovery)."""
    tree: Tree = {}

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            for entry in sorted(it, key=lambda e: e.name):
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    tree[rel] = Item("d")
                    walk(entry.path, rel + "/")
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    tree[rel] = Item("f", st.st_size, stat.S_IMODE(st.st_mode))
                else:
                    tree[rel] = Item("?")

    def digest(rel: str) -> None:
        tree[rel] = tree[rel]._replace(digest=sha256_file(f"{path}/{rel}"))

    if os.path.isdir(path):
        walk(path, "")
        parallel(jobs, digest, [rel for rel, item in tree.items() if item.kind == "f"])
    return tree


# ------------------------------------------------------------------------------------------------ manifests
def manifest_path(root: str, slot: str) -> str:
    return os.path.join(root, f"{slot}.manifest.json")


def read_manifest(root: str, slot: str) -> dict[str, Any] | None:
    try:
        with open(manifest_path(root, slot), encoding="utf-8") as fh:
            data = json.load(fh)
        tree = {rel: Item(*value) for rel, value in data["entries"].items()}
        return {"clean": bool(data["clean"]), "tree": tree, "pending": list(data.get("pending", []))}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        print(f"warning: ignoring unreadable {manifest_path(root, slot)}: {exc}", file=sys.stderr)
        return None


def write_manifest(root: str, slot: str, tree: Tree, ops: Ops, pending: Iterable[str] | None = None) -> None:
    """clean: the slot holds exactly `tree`. Not clean: it holds `tree` for sure, and the `pending` paths
    are being written (a run killed now leaves them in any state)."""
    body = {"version": MANIFEST_VERSION, "slot": slot, "clean": pending is None,
            "entries": {rel: item.dump() for rel, item in tree.items()}}
    if pending is not None:
        body["pending"] = sorted(pending)
    write_atomic(root, manifest_path(root, slot), json.dumps(body, separators=(",", ":")), ops)


def write_atomic(root: str, path: str, text: str, ops: Ops) -> None:
    """tmp + fsync + rename: readers and crashes see the old or the new file, never half of one."""
    tmp = os.path.join(root, TMP + os.path.basename(path))
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    ops.bookkeeping += 2


def slot_content(root: str, slot: str, verify: bool, ops: Ops) -> tuple[Tree, str]:
    """What the slot holds and how that is known: manifest (trusted), recovered (an interrupted run's
    pending paths looked at), scanned (no manifest, or --verify), or empty (no slot directory)."""
    path = os.path.join(root, slot)
    manifest = None if verify else read_manifest(root, slot)
    if manifest is None:
        if not os.path.lexists(path):
            return {}, "empty"
        return scan_slot(path, ops.jobs), "scanned"
    tree = manifest["tree"]
    if manifest["clean"]:
        return tree, "manifest"
    for rel in manifest["pending"]:  # parents first: a pending directory's children are pending too
        try:
            st = os.lstat(f"{path}/{rel}")
        except (FileNotFoundError, NotADirectoryError):
            continue
        tree[rel] = Item("d") if stat.S_ISDIR(st.st_mode) else Item("f" if stat.S_ISREG(st.st_mode) else "?")
    return tree, "recovered"


def sync_slot(root: str, slot: str, source: Source, ops: Ops, verify: bool,
              before_write: Callable[[], None] = lambda: None, link_from: str | None = None) -> tuple[Plan, str]:
    """Make `slot` hold the source tree; its manifest records the paths in flight before anything is written."""
    have, how = slot_content(root, slot, verify, ops)
    plan = diff(source.tree, have)
    target = os.path.join(root, slot)
    if not plan.empty():
        before_write()
        touched = plan.touched()
        known = {rel: item for rel, item in have.items() if rel not in touched}
        write_manifest(root, slot, known, ops, pending=touched)
    if not os.path.isdir(target):
        ops.do("mkdir", os.mkdir, target)
    if not plan.empty():
        apply(plan, source, have, target, ops, link_from)
    if not plan.empty() or how != "manifest":
        write_manifest(root, slot, source.tree, ops)
    return plan, how


# ------------------------------------------------------------------------------------------------ ROOT
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
                raise Fail(EXIT_LOCK, f"lock {self.path} not acquired within {self.timeout:g} s: held by {holder}")
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


def read_live(root: str) -> str | None:
    """The slot `current` points at, or None before the first publish."""
    path = os.path.join(root, CURRENT)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError:
        raise Fail(EXIT_USAGE, f"{path} exists but is not a symlink; move it away first") from None
    if target not in SLOTS or not os.path.isdir(os.path.join(root, target)):
        raise Fail(EXIT_USAGE, f"{path} -> {target}: not one of this tool's slots {SLOTS}")
    return target


def other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def load_state(root: str) -> dict[str, Any]:
    try:
        with open(os.path.join(root, STATE), encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        state = {}
    except ValueError as exc:
        print(f"warning: ignoring unreadable {STATE}: {exc}", file=sys.stderr)
        state = {}
    return {"live": None, "previous": None, "slots": {}, **state}


def save_state(root: str, state: dict[str, Any], ops: Ops) -> None:
    state.update(version=2, updated_at=iso(time.time()))
    write_atomic(root, os.path.join(root, STATE), json.dumps(state, indent=2, sort_keys=True) + "\n", ops)
    fsync_dir(root)


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reconcile(root: str, state: dict[str, Any], live: str | None) -> bool:
    """Make the state agree with `current` when a run was killed between its flip and its state write.
    Returns whether anything changed (the caller then saves the state)."""
    if live is None or state["live"] == live:
        return False
    flipped_at = iso(os.lstat(os.path.join(root, CURRENT)).st_mtime)  # the symlink was made by the flip
    slots, left = state["slots"], other(live)
    rec = slots.setdefault(live, {"state": "dirty"})
    if rec.get("state") != "complete":  # only fully synced trees are flipped to
        rec.update(state="complete", published_at=flipped_at)
    rec["switched_away_at"] = None
    if state["live"] == left or (left not in slots and os.path.isdir(os.path.join(root, left))):
        # It was live until the flip (or its history is lost): its readers get the grace period.
        slots.setdefault(left, {"state": "dirty"})["switched_away_at"] = flipped_at
    state.update(previous=left if state["live"] == left else state["previous"], live=live)
    return True


def repair(root: str, ops: Ops) -> None:
    """Temp files of an interrupted run in ROOT (the flip's link, manifests, state)."""
    with os.scandir(root) as it:
        for entry in list(it):
            if entry.name.startswith(TMP):
                ops.unlink(entry.path)


def flip(root: str, slot: str, ops: Ops) -> None:
    tmp = os.path.join(root, TMP + CURRENT)
    ops.do("symlink", os.symlink, slot, tmp)  # relative target: resolves wherever the volume is mounted
    ops.do("renamed", os.replace, tmp, os.path.join(root, CURRENT))
    fsync_dir(root)


def rollback_target(root: str, state: dict[str, Any], live: str) -> tuple[str | None, str]:
    prev = state["previous"]
    if prev is None or prev == live:
        return None, "there is no previous publish to roll back to"
    if not os.path.isdir(os.path.join(root, prev)):
        return None, f"the previous slot {prev} is absent"
    if state["slots"].get(prev, {}).get("state") != "complete":
        return None, f"the previous slot {prev} is dirty (a publish into it was interrupted); publish instead"
    return prev, ""


def wait_grace(state: dict[str, Any], slot: str, grace: float, no_wait: bool) -> None:
    """Airflow may still be reading a tree that stopped being live less than `grace` seconds ago."""
    left_at = epoch(state["slots"].get(slot, {}).get("switched_away_at"))
    remaining = grace - (time.time() - left_at) if left_at is not None else 0
    if remaining <= 0:
        return
    why = f"{slot} stopped being live {grace - remaining:.1f} s ago and the grace period is {grace:g} s"
    if no_wait:
        raise Fail(EXIT_GRACE, f"{why}: {remaining:.1f} s remain; retry later or drop --no-wait")
    print(f"waiting {remaining:.1f} s before writing into it: {why}", flush=True)
    time.sleep(remaining)


# ------------------------------------------------------------------------------------------------ commands
def git_revision(source: str) -> str:
    import subprocess

    try:
        proc = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def publish(args: argparse.Namespace) -> int:
    started, root = time.monotonic(), os.path.abspath(args.root)
    source = Source(args.source)
    if os.path.commonpath([source.root, os.path.realpath(root)]) in (source.root, os.path.realpath(root)):
        raise Fail(EXIT_USAGE, f"source {source.root} and root {root} must not contain one another")
    if args.check:
        print(f"check passed: {run_checks(source, args)}")  # before anything is written
    source.hash_all()
    info = {"revision": args.revision or git_revision(source.root), "files": source.files()}
    ops = Ops(args.jobs)
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # exist_ok: a concurrent first publish may create it too
        ops.count("mkdir")
    with Lock(root, args.lock_timeout, ops, "publish"):
        repair(root, ops)
        live = read_live(root)
        state = load_state(root)
        reconciled = reconcile(root, state, live)
        if live is None:
            action, how = first_publish(root, source, state, info, args, ops)
        else:
            action, how = publish_idle(root, source, state, info, live, args, ops, reconciled)
    if args.stats:
        stats = {"action": action, **ops.summary(), "hashed": len(source.origin), "idle": how,
                 "seconds": round(time.monotonic() - started, 3)}
        print(json.dumps(stats), file=sys.stderr)
    return EXIT_OK


def first_publish(root: str, source: Source, state: dict, info: dict, args: argparse.Namespace,
                  ops: Ops) -> tuple[str, str]:
    """Write the first slot, go live, then fill the other slot with hard links so that the next publish
    is incremental too. Run again, it resumes an interrupted first publish."""
    fresh, spare = SLOTS
    for slot in SLOTS:
        state["slots"][slot] = {"state": "dirty", **info, "published_at": None, "switched_away_at": None}
    save_state(root, state, ops)
    _, how = sync_slot(root, fresh, source, ops, args.verify)
    flip(root, fresh, ops)
    sync_slot(root, spare, source, ops, args.verify, link_from=os.path.join(root, fresh))
    state["slots"][fresh].update(state="complete", published_at=iso(time.time()))
    state["slots"][spare]["state"] = "complete"  # the same tree, but never live: not a rollback target
    state.update(live=fresh, previous=None)
    save_state(root, state, ops)
    print(f"published {info['files']} files (revision {info['revision']}): current -> {fresh}; "
          f"{spare} seeded with hard links")
    return "first-publish", how


def live_matches(root: str, live: str, source: Source, args: argparse.Namespace, ops: Ops) -> bool:
    """Is the live slot the source tree? From its manifest, or with --verify from the volume (a hand edit
    found there is written into the manifest, so that the next publish into that slot repairs it)."""
    if not args.verify:
        manifest = read_manifest(root, live)
        return bool(manifest and manifest["clean"] and same_tree(manifest["tree"], source.tree))
    real = scan_slot(os.path.join(root, live), ops.jobs)
    manifest = read_manifest(root, live)
    if not (manifest and manifest["clean"] and same_tree(manifest["tree"], real)):
        print(f"--verify: the live slot {live} differs from its manifest (edited by hand?); manifest rewritten")
        write_manifest(root, live, real, ops)
    return same_tree(real, source.tree)


def same_tree(a: Tree, b: Tree) -> bool:
    return a.keys() == b.keys() and all(item.same(b[rel]) for rel, item in a.items())


def publish_idle(root: str, source: Source, state: dict, info: dict, live: str, args: argparse.Namespace,
                 ops: Ops, reconciled: bool) -> tuple[str, str]:
    if live_matches(root, live, source, args, ops):
        rec = state["slots"].setdefault(live, {"state": "complete"})
        recorded = rec.get("revision")
        if reconciled or recorded != info["revision"] or rec.get("files") != info["files"]:
            rec.update(info)  # the live tree is this revision's tree too
            save_state(root, state, ops)
        print(f"already live: {live} holds {source.root} (revision {info['revision']}"
              + (f", recorded before as {recorded}" if recorded not in (None, info["revision"]) else "")
              + (", state reconciled with `current`" if reconciled else "") + "); no tree written")
        return "already-live", "untouched"
    idle = other(live)

    def before_write() -> None:  # readers may still be in the idle tree: wait before touching it
        wait_grace(state, idle, args.grace, args.no_wait)
        left_at = state["slots"].get(idle, {}).get("switched_away_at")
        state["slots"][idle] = {"state": "dirty", **info, "switched_away_at": left_at}
        save_state(root, state, ops)

    plan, how = sync_slot(root, idle, source, ops, args.verify, before_write)
    flip(root, idle, ops)
    now = iso(time.time())
    state["slots"][idle] = {"state": "complete", **info, "published_at": now, "switched_away_at": None}
    state["slots"].setdefault(live, {"state": "dirty"})["switched_away_at"] = now
    state.update(live=idle, previous=live)
    save_state(root, state, ops)
    print(f"published revision {info['revision']} ({info['files']} files): current -> {idle}; "
          f"{len(plan.write)} written, {len(plan.remove)} removed, {len(plan.mkdir)} dirs made ({how})")
    return "published", how


def rollback(args: argparse.Namespace) -> int:
    root, ops = os.path.abspath(args.root), Ops()
    if not os.path.isdir(root):
        raise Fail(EXIT_ROLLBACK, f"cannot roll back: {root} does not exist (nothing published)")
    with Lock(root, args.lock_timeout, ops, "rollback"):
        repair(root, ops)
        live = read_live(root)
        if live is None:
            raise Fail(EXIT_ROLLBACK, f"cannot roll back: {root} has no {CURRENT} (nothing published)")
        state = load_state(root)
        reconcile(root, state, live)
        target, reason = rollback_target(root, state, live)
        if target is None:
            raise Fail(EXIT_ROLLBACK, f"cannot roll back: {reason}")
        flip(root, target, ops)
        state["slots"].setdefault(live, {"state": "dirty"})["switched_away_at"] = iso(time.time())
        state["slots"][target]["switched_away_at"] = None
        state.update(live=target, previous=live)
        save_state(root, state, ops)
    print(f"rolled back: current -> {target} (revision {state['slots'][target].get('revision', 'unknown')}); "
          f"{live} is now the previous tree")
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.root)
    live = read_live(root) if os.path.isdir(root) else None
    if live is None:
        raise Fail(EXIT_USAGE, f"{root} has no {CURRENT}: nothing has been published there")
    state = load_state(root)
    reconcile(root, state, live)  # in memory only: status never writes
    target, reason = rollback_target(root, state, live)
    keys = ("state", "revision", "files", "published_at", "switched_away_at")
    slot = {s: {"slot": s, **{k: state["slots"].get(s, {}).get(k) for k in keys}} for s in SLOTS}
    report = {"root": root, "live": slot[live], "previous": slot.get(state["previous"] or ""),
              "can_rollback": target is not None, "rollback_blocker": reason or None}
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    cur, prev = report["live"], report["previous"]
    print(f"live:     {live}  revision {cur['revision']}  {cur['files']} files  published {cur['published_at']}")
    if prev:
        print(f"previous: {prev['slot']}  revision {prev['revision']}  {prev['state']}  "
              f"left live {prev['switched_away_at']}")
    print("rollback: " + ("possible" if target else f"impossible: {reason}"))
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    print(f"check passed: {run_checks(Source(args.source), args)}")
    return EXIT_OK


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
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EXIT_CODES, formatter_class=fmt)
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
    except Fail as exc:
        print(f"sync_dags: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        hint = "; if a slot was changed by hand, publish with --verify" if args.command == "publish" else ""
        print(f"sync_dags: I/O error: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
