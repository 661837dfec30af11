"""`.airflowignore` as Airflow compiles it (regexp or glob), and the files Airflow lists with it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import NamedTuple

from airflow_gitops.dagsync.layout import IGNORE_FILE
from airflow_gitops.errors import PROBLEMS, UserError


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
            raise UserError(f"{where}: {exc}: Airflow fails to list the DAG folder with it", PROBLEMS) from None
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
