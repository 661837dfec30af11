"""Copier task: make sure the Jenkinsfile lists this environment (idempotent).

The Jenkinsfile belongs to the primary answers file, so a further environment cannot
render it; instead this task adds the environment's line (its cluster's cloud, namespace,
claim) at the end of ``ENVIRONMENTS``, below the comment line that follows the primary's
own: later updates of the primary see it as a user edit and keep it, and a template change
to the primary's line merges cleanly (the comment line keeps the two hunks apart). Runs
only at copy time.

Usage: register_environment.py '{"environment": ..., "namespace": ..., "production_like": ...,
                                 "eks_cluster_name": ...}'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template" / "scripts"))
from airflow_gitops import facts  # the entry format the Jenkinsfile and validate.py share


def register(jenkinsfile: Path, env: str, namespace: str, production_like: bool, cluster: str) -> str:
    if not jenkinsfile.is_file():
        return f"{jenkinsfile} not found: add {env!r} to your DAG publishing job by hand"
    text = jenkinsfile.read_text()
    match = facts.JENKINS_ENVIRONMENTS.search(text)
    if not match:
        return f"no ENVIRONMENTS map in {jenkinsfile}: add {env!r} by hand"
    lines = match.group(2).splitlines(keepends=True)
    new = facts.jenkins_entry(env, namespace, production_like, facts.jenkins_cloud(cluster)) + "\n"
    mine = [i for i, line in enumerate(lines) if env in facts.jenkins_entries(line)]
    if mine and lines[mine[0]] == new:
        return ""  # rendered by this very copy (the primary) or registered before
    if mine:
        lines[mine[0]] = new
    else:
        lines.append(new)
    jenkinsfile.write_text(text[:match.start(2)] + "".join(lines) + text[match.end(2):])
    return f"registered {env!r} in {jenkinsfile.name}"


def main(argv: list[str]) -> int:
    data = json.loads(argv[1])
    message = register(Path("Jenkinsfile"), data["environment"], data["namespace"], bool(data["production_like"]),
                       data["eks_cluster_name"])
    if message:
        print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
