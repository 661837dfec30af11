"""What a run found, and the three ways `make validate` prints it (`--format text|json|junit`).

text:  one line per issue, `LEVEL where: [ref:] message`, then the summary line.
json:  {"builds": [...], "issues": [{"level", "where", "ref", "message"}...], "summary": {...}}.
junit: JUnit XML for Jenkins' `junit` step: one <testsuite> per build (and per other place that has
       issues: a YAML file, `Jenkinsfile`, `schemas`, ...), one <testcase> per issue. ERROR is a
       <failure>; WARN is <skipped> (Jenkins counts and lists it without failing the build, as
       `make validate` does); INFO passes with the line in <system-out>. A build without issues
       is one passing testcase, so every build shows.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

FORMATS = ("text", "json", "junit")
PASSED = "all checks passed"  # the testcase of a build without issues
XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # kustomize errors may carry them; XML 1.0 may not


class Level(StrEnum):
    ERROR = "ERROR"  # `make validate` fails
    WARN = "WARN"  # counted and shown, not failing
    INFO = "INFO"  # what was not checked, and why


ERROR, WARN, INFO = Level.ERROR, Level.WARN, Level.INFO


@dataclass(frozen=True)
class Issue:
    """What every check yields. `where` is the build or file it is about: a build check leaves it
    empty and the runner fills in the build; a repository-wide check names it."""

    level: Level
    ref: str  # Kind/namespace/name ("" for build-level problems)
    message: str
    where: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))  # a misspelt level fails here, not in the report

    def at(self, where: str) -> Issue:
        """This issue in `where`, unless the check named its own place."""
        return self if self.where else replace(self, where=where)


def about(issues: Iterable[Issue], ref: str, prefix: str = "") -> list[Issue]:
    """A rule's issues as those of one object: its ref, and `prefix` before each message."""
    return [replace(i, ref=i.ref or ref, message=f"{prefix}{i.message}") for i in issues]


def errors(messages: Iterable[str], ref: str = "", where: str = "") -> list[Issue]:
    """Messages of rules that only ever report errors."""
    return [Issue(Level.ERROR, ref, m, where) for m in messages]


@dataclass
class Report:
    entries: list[Issue] = field(default_factory=list)  # in the order found
    targets: list[str] = field(default_factory=list)  # every build attempted, in order
    errors: int = 0
    warnings: int = 0
    objects: int = 0

    @property
    def builds(self) -> int:
        return len(self.targets)

    @property
    def lines(self) -> list[str]:
        return [text_line(issue) for issue in self.entries]

    def add(self, issue: Issue) -> None:
        self.entries.append(issue)
        self.errors += issue.level == Level.ERROR
        self.warnings += issue.level == Level.WARN

    def extend(self, found: Iterable[Issue]) -> None:
        for issue in found:
            self.add(issue)

    def summary(self) -> str:
        return (f"validate: {self.builds} builds, {self.objects} objects, "
                f"{self.errors} errors, {self.warnings} warnings")


def text_line(issue: Issue) -> str:
    ref = f" {issue.ref}:" if issue.ref else ""
    return f"{issue.level} {issue.where}:{ref} {issue.message}"


def render(report: Report, fmt: str) -> str:
    """The report in one of FORMATS, ending with a newline."""
    return {"text": as_text, "json": as_json, "junit": as_junit}[fmt](report)


def as_text(report: Report) -> str:
    return "".join(f"{line}\n" for line in [*report.lines, report.summary()])


def as_json(report: Report) -> str:
    issues = [{"level": i.level, "where": i.where, "ref": i.ref, "message": i.message} for i in report.entries]
    summary = {"builds": report.builds, "objects": report.objects, "errors": report.errors,
               "warnings": report.warnings, "ok": report.errors == 0}
    return json.dumps({"builds": report.targets, "issues": issues, "summary": summary}, indent=2) + "\n"


def as_junit(report: Report) -> str:
    root = ET.Element("testsuites", name="make validate")
    for where, issues in _by_place(report).items():
        root.append(_suite(where, issues))
    _count(root, root.findall("testsuite/testcase"))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _by_place(report: Report) -> dict[str, list[Issue]]:
    """Builds first (in build order, with or without issues), then every other place with issues."""
    places: dict[str, list[Issue]] = {target: [] for target in report.targets}
    for issue in report.entries:
        places.setdefault(issue.where, []).append(issue)
    return places


def _suite(where: str, issues: list[Issue]) -> ET.Element:
    suite = ET.Element("testsuite", name=_xml(where))
    classname = _xml(where).replace(".", "_")  # Jenkins splits a classname into packages at dots
    for issue in issues:
        suite.append(_case(classname, issue, text_line(issue)))
    if not issues:
        ET.SubElement(suite, "testcase", classname=classname, name=PASSED)
    _count(suite, suite.findall("testcase"))
    return suite


def _case(classname: str, issue: Issue, line: str) -> ET.Element:
    name = f"{issue.ref}: {issue.message}" if issue.ref else issue.message
    case = ET.Element("testcase", classname=classname, name=_xml(name))
    if issue.level == Level.ERROR:
        ET.SubElement(case, "failure", type="ERROR", message=_xml(issue.message)).text = _xml(line)
    elif issue.level == Level.WARN:
        ET.SubElement(case, "skipped", message=_xml(f"WARN: {issue.message}"))
    else:
        ET.SubElement(case, "system-out").text = _xml(line)
    return case


def _count(element: ET.Element, cases: list[ET.Element]) -> None:
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    element.set("errors", "0")
    element.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))


def _xml(text: str) -> str:
    return XML_ILLEGAL.sub("?", text)
