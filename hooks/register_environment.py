"""Copier task: make sure the Jenkinsfile lists this environment (idempotent).

The Jenkinsfile belongs to the primary answers file, so a further environment cannot
render it; instead this task adds the environment's line to ``ENVIRONMENTS``. Later
updates of the primary see that line as a user edit and keep it. Runs only at copy time.

Usage: register_environment.py '{"environment": ..., "namespace": ..., "production_like": ...}'
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from validation import groovy_str  # sibling module: a script's own directory is on sys.path

BLOCK = re.compile(r"(@Field final Map ENVIRONMENTS = \[\n)(.*?)(^\]\n)", re.S | re.M)
CLAIM = "airflow-dags"  # the PVC name in deploy/base/pvc.yaml


def entry(env: str, namespace: str, production_like: bool) -> str:
    flag = "true" if production_like else "false"
    return f"    {groovy_str(env)}: [namespace: {groovy_str(namespace)}, claim: '{CLAIM}', productionLike: {flag}],\n"


def register(jenkinsfile: Path, env: str, namespace: str, production_like: bool) -> str:
    if not jenkinsfile.is_file():
        return f"{jenkinsfile} not found: add {env!r} to your DAG publishing job by hand"
    text = jenkinsfile.read_text()
    match = BLOCK.search(text)
    if not match:
        return f"no ENVIRONMENTS map in {jenkinsfile}: add {env!r} by hand"
    lines = match.group(2).splitlines(keepends=True)
    new = entry(env, namespace, production_like)
    mine = [i for i, line in enumerate(lines) if line.lstrip().startswith(groovy_str(env) + ":")]
    if mine and lines[mine[0]] == new:
        return f"{env!r} already in {jenkinsfile.name}"
    if mine:
        lines[mine[0]] = new
    else:
        lines.append(new)
    jenkinsfile.write_text(text[:match.start(2)] + "".join(lines) + text[match.end(2):])
    return f"registered {env!r} in {jenkinsfile.name}"


def main(argv: list[str]) -> int:
    data = json.loads(argv[1])
    print(register(Path("Jenkinsfile"), data["environment"], data["namespace"], bool(data["production_like"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
