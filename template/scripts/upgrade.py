#!/usr/bin/env python3
"""`make upgrade AIRFLOW=<version> [CHART=<version>]`: move this repository to another Airflow release.

The Airflow image tag and the chart version are answers, so the move goes through Copier, as any
answer change does: `copier update` of the same template version with the new answers, for every
answers file (scripts/update.py: one staged change to review, stops on conflicts). Then make renders,
validates and shows what changes for the cluster (make diff), and this prints the runbook of the step.

Refused: a version the chart does not deploy, and any downgrade (Airflow's migrations only go forward:
a database the newer release migrated cannot run the older one; restore the snapshot instead).
A Renovate branch that bumped `airflow_image_tag` / `chart_version` in the answers files alone is
completed the same way: the deployed versions are read from the rendered files, not the answers.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import update
from airflow_gitops import facts
from airflow_gitops.errors import UserError, report
from airflow_gitops.values import deployed_versions

Version = tuple[int, ...]


def version_of(text: str) -> Version:
    """3.3.2 or 3.3.2-python3.12 -> (3, 3, 2)."""
    found = re.match(r"^v?(\d+)\.(\d+)\.(\d+)", str(text))
    if not found:
        raise UserError(f"{text!r} is not a version")
    return tuple(int(part) for part in found.groups())


def deployed(repo: Path, flavor: str) -> tuple[str, str]:
    """(chart version, Airflow image tag) the repository's rendered files deploy today."""
    chart, tag = deployed_versions(repo, flavor)
    if not chart or not tag:
        raise UserError("cannot tell the deployed versions: deploy/base/values.yaml or the chart pin is missing")
    return chart, tag


def target_of(flavor: str, current: tuple[str, str], airflow: str, chart: str | None) -> tuple[str, str]:
    chart = chart or current[0]
    known = facts.chart(flavor, chart)
    if known is None:
        raise UserError(f"CHART={chart}: this template knows the {facts.CHART_FLAVORS[flavor]} chart "
                           f"{', '.join(facts.chart_versions(flavor))} (a newer template version may know more: "
                           "make update first)")
    if not known.supports(airflow):
        raise UserError(f"AIRFLOW={airflow}: the {known.label} deploys Airflow {known.airflow_range} here")
    for what, old, new in (("Airflow", current[1], airflow), ("the chart", current[0], chart)):
        if version_of(new) < version_of(old):
            raise UserError(f"{what} {new} is older than the deployed {old}: refused. Airflow's migrations only "
                               "go forward, so the older release cannot run on a database the newer one migrated; "
                               "to go back, restore the RDS snapshot taken before the upgrade and revert its commit")
    return chart, airflow


def reset_answers(repo: Path, files: list[Path], chart: str, tag: str) -> bool:
    """Put the answers back to what is deployed (a Renovate branch bumped them alone); True if changed."""
    changed = False
    for path in files:
        text = path.read_text()
        new = re.sub(r"^(airflow_image_tag: ).*$", lambda m: m.group(1) + tag, text, flags=re.M)
        new = re.sub(r"^(chart_version: ).*$", lambda m: m.group(1) + chart, new, flags=re.M)
        if new != text:
            path.write_text(new)
            changed = True
    return changed


def upgrade(repo: Path, copier: str, airflow: str | None, chart: str | None,
            from_answers: bool = False) -> tuple[tuple[str, str], tuple[str, str]]:
    """`from_answers`: the target is what the primary answers file names; the answers files alone may
    differ from HEAD (Renovate writes its bump uncommitted, then runs its post-upgrade task)."""
    files = update.answers_files(repo)
    dirty = lambda: update.git("status", "--porcelain", "--untracked-files=all").splitlines()  # noqa: E731
    answer_paths = {str(p.relative_to(repo)) for p in files}
    if any(line[3:] not in answer_paths for line in dirty()) or (dirty() and not from_answers):
        raise UserError("the worktree is not clean: commit or stash first (copier update needs it)")
    primary = update.load_answers(repo / update.PRIMARY)
    if from_answers:
        airflow, chart = str(primary.get("airflow_image_tag")), str(primary.get("chart_version"))
    flavor = str(primary.get("airflow_chart") or facts.LEGACY_FLAVOR)
    current = deployed(repo, flavor)
    target = target_of(flavor, current, str(airflow), chart)
    if target == current and (str(primary.get("chart_version")), str(primary.get("airflow_image_tag"))) == target:
        return current, target
    start = update.git("rev-parse", "HEAD").strip()
    try:
        reset_answers(repo, files, *current)  # Copier must start from the answers the files were made with
        if dirty():
            update.git("-c", "user.name=make upgrade", "-c", "user.email=make-upgrade@localhost", "commit",
                       "--quiet", "--no-verify", "-am", "make upgrade: the answers as deployed")
        data = ["--data", f"chart_version={target[0]}", "--data", f"airflow_image_tag={target[1]}"]
        if conflicts := update.run(repo, copier, ":current:", data):
            raise UserError("copier update left conflicts to resolve: " + ", ".join(conflicts))
    finally:
        if update.git("rev-parse", "HEAD").strip() != start:
            update.git("update-ref", "-m", "make upgrade: back to the starting commit", "HEAD", start)
    return current, target


def runbook(flavor: str, current: tuple[str, str], target: tuple[str, str], envs: list[str]) -> str:
    release = facts.chart(flavor, target[0])
    migrations = (f"the Job <project>-run-airflow-migrations runs `airflow db migrate` ({current[1]} -> {target[1]}); "
                  "every other pod waits for it" if flavor == "official" else
                  "the chart's db-migrations runs `airflow db migrate`; the other pods wait for it")
    return "\n".join([
        f"upgrade: Airflow {current[1]} -> {target[1]}, {release.label if release else target[0]} "
        f"(was {current[0]}); staged for review, not committed.",
        "Runbook for this step (per environment: " + ", ".join(envs) + "):",
        "  1. Read the release notes between the two versions (Airflow's 'Significant changes'), and run",
        "     `ruff check --select AIR3 dags/` for what the new version removed.",
        "  2. Snapshot the database before merging: aws rds create-db-snapshot --db-instance-identifier <id> "
        f"--db-snapshot-identifier airflow-<env>-before-{target[1].split('-')[0].replace('.', '-')}",
        f"  3. Commit and merge: {migrations}.",
        "  4. A failed upgrade is not rolled back (migrations only go forward): fix forward, or restore the",
        "     snapshot into the same endpoint and revert the commit (README: \"Upgrades\").",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--airflow", help="Airflow image tag to move to, e.g. 3.3.2")
    target.add_argument("--from-answers", action="store_true",
                        help="move to the versions the primary answers file names (a Renovate branch bumped them)")
    parser.add_argument("--chart", help="chart version to move to (default: the one deployed)")
    parser.add_argument("--copier", default=os.environ.get("COPIER", "copier"), help="copier executable")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    try:
        current, target = upgrade(repo, args.copier, args.airflow, args.chart, args.from_answers)
    except UserError as exc:
        return report("upgrade: error", exc)
    if current == target:
        print(f"upgrade: already on Airflow {target[1]} with chart {target[0]}: nothing to do")
        return 0
    flavor = str(update.load_answers(repo / update.PRIMARY).get("airflow_chart") or facts.LEGACY_FLAVOR)
    envs = sorted(str(update.load_answers(p).get("environment")) for p in update.answers_files(repo))
    text = runbook(flavor, current, target, envs)
    out = repo / "build" / "upgrade-runbook.txt"  # make upgrade prints it again after render, validate, diff
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
