"""PrometheusRule objects (answer metrics): their rule groups as Prometheus loads them.

With `promtool` on PATH (Debian/Ubuntu package prometheus, or Prometheus' release tarball), each
PrometheusRule's groups go through `promtool check rules`, which parses them strictly (an unknown
field, a bad duration or PromQL fails). Without it, the shape checks below still run and an INFO
says what was not checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from airflow_gitops.validate.report import ERROR, INFO, Issue

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")  # Prometheus' duration grammar


def ref_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"PrometheusRule/{meta.get('namespace', '')}/{meta.get('name', '')}"


def shape_problems(obj: dict) -> list[str]:
    problems = []
    for group in (obj.get("spec") or {}).get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            if not name or ("alert" in rule) == ("record" in rule):
                problems.append(f"group {group.get('name')!r}: each rule is one `alert` or one `record`")
            if not str(rule.get("expr") or "").strip():
                problems.append(f"rule {name!r} has no expr")
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problems.append(f"rule {name!r}: `for: {rule['for']}` is not a Prometheus duration (5m, 1h30m)")
    return problems


def promtool_problems(obj: dict, promtool: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump({"groups": (obj.get("spec") or {}).get("groups") or []}))
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip() and "Checking" not in ln]
    return [f"promtool check rules: {' '.join(lines)[-600:]}"]


def check_prometheus_rules(objs: list[dict]) -> list[Issue]:
    rules = [o for o in objs if o.get("kind") == "PrometheusRule"]
    if not rules:
        return []
    promtool = shutil.which("promtool")
    issues = [Issue(ERROR, ref_of(o), p) for o in rules for p in shape_problems(o)]
    if promtool:
        issues += [Issue(ERROR, ref_of(o), p) for o in rules for p in promtool_problems(o, promtool)]
    else:
        issues.append(Issue(INFO, "", "PrometheusRule expressions not parsed: install promtool (package prometheus)"))
    return issues
