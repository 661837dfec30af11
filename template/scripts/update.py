#!/usr/bin/env python3
"""`make update`: bring every answers file of this repository to a new template version.

Copier updates one answers file at a time and needs a clean worktree for each, and it
exits 0 even when it leaves conflict markers. So this script:
  1. updates .copier-answers.yml (the primary: repo-wide files and its environment) first,
     then every .copier-answers.<env>.yml, passing the primary's repo-wide answers so all
     files stay in step;
  2. after each one, stops on conflict markers, unmerged paths or *.rej files and lists them;
  3. commits each step on a temporary commit and, at the end (success or not), resets
     softly to where you started: the whole update is left staged for you to review.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from airflow_gitops import facts  # scripts/ is on sys.path: this file's own directory
from airflow_gitops.errors import UserError, report

PRIMARY = facts.ANSWERS_FILE
REPO_WIDE = facts.REPO_WIDE_ANSWERS  # identical in every answers file (copier.yml asks them on the primary)
MARKER = re.compile(r"^(<{7}|>{7})( |$)", re.M)


def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=check).stdout


def answers_files(repo: Path) -> list[Path]:
    others = sorted(p for p in repo.glob(".copier-answers.*.yml") if p.name != PRIMARY)
    if not (repo / PRIMARY).is_file():
        raise UserError(f"{PRIMARY} not found: run make update from the repository root")
    return [repo / PRIMARY, *others]


def load_answers(path: Path) -> dict:
    import yaml  # PyYAML, from the tools environment

    return yaml.safe_load(path.read_text()) or {}


def repo_wide_data(primary: dict) -> list[str]:
    import json

    args = []
    for key in REPO_WIDE:
        if key in primary:
            value = primary[key]
            # YAML flow (JSON) keeps lists and strings typed as they are in the answers file.
            args += ["--data", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return args


REMOTE = facts.REMOTE_SOURCE


def source_problem(answers_file: Path) -> str | None:
    """Why `copier update` cannot find the template this file was made from (Copier's own error
    for these cases is 'Updating is only supported in git-tracked templates.')."""
    answers = load_answers(answers_file)
    src = str(answers.get("_src_path") or "")
    fix = ("set `_src_path` in the answers files to the template's git URL or absolute path (the one field "
           "you may edit by hand), commit, and run make update again")
    if not src or not answers.get("_commit"):
        return f"{answers_file.name} has no _src_path/_commit: it was not made by copier copy of a tagged template"
    if REMOTE.match(src):
        return None
    path = Path(src).expanduser()
    if not path.is_absolute():
        return f"{answers_file.name}: _src_path {src!r} is relative (resolved against the current directory); {fix}"
    if not path.is_dir():
        return f"{answers_file.name}: template {src} does not exist here; {fix}"
    if subprocess.run(["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        return f"{answers_file.name}: template {src} is not a git repository (copier updates between its tags); {fix}"
    return None


def problems(repo: Path) -> list[str]:
    """Files a conflicting update left behind: unmerged, with markers, or *.rej."""
    found = set(git("diff", "--name-only", "--diff-filter=U").split())
    changed = git("status", "--porcelain", "--untracked-files=all").splitlines()
    for line in changed:
        path = line[3:].split(" -> ")[-1]
        if path.endswith(".rej"):
            found.add(path)
        elif (repo / path).is_file():
            try:
                if MARKER.search((repo / path).read_text()):
                    found.add(path)
            except UnicodeDecodeError:
                continue
    return sorted(found)


def update_one(copier: str, answers: Path, version: str | None, extra: list[str]) -> None:
    cmd = [copier, "update", "--trust", "--defaults", "--conflict", "inline", "--answers-file", answers.name, *extra]
    if version:
        cmd += ["--vcs-ref", version]
    print(f"update: {answers.name}: {' '.join(cmd[1:])}", flush=True)
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise UserError(f"copier update failed for {answers.name} (exit {result.returncode})")


def run(repo: Path, copier: str, version: str | None, data: list[str] | tuple[str, ...] = ()) -> list[str]:
    """`data`: --data arguments for the primary (the further envs then take its repo-wide answers)."""
    if git("status", "--porcelain", "--untracked-files=all").strip():
        raise UserError("the worktree is not clean: commit or stash first (copier update needs it)")
    start = git("rev-parse", "HEAD").strip()
    files = answers_files(repo)
    for answers in files:
        if problem := source_problem(answers):
            raise UserError(problem)
    try:
        for answers in files:
            extra = list(data) if answers.name == PRIMARY else repo_wide_data(load_answers(repo / PRIMARY))
            update_one(copier, answers, version, extra)
            if found := problems(repo):
                return found
            git("add", "-A")
            git("-c", "user.name=make update", "-c", "user.email=make-update@localhost", "commit", "--quiet",
                "--no-verify", "--allow-empty", "-m", f"make update: {answers.name}")
    finally:
        # Back to where we started, keeping index and worktree (conflicts stay unmerged):
        # one reviewable change, nothing committed by us.
        if git("rev-parse", "HEAD").strip() != start:
            git("update-ref", "-m", "make update: back to the starting commit", "HEAD", start)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="template version (git tag) to update to; default: the newest")
    parser.add_argument("--copier", default=os.environ.get("COPIER", "copier"), help="copier executable")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    if not shutil.which(args.copier) and not Path(args.copier).exists():
        print(f"update: {args.copier} not found: pipx install copier==9.19.1 && "
              "pipx inject copier copier-template-extensions==0.3.4 cryptography", file=sys.stderr)
        return 2
    try:
        conflicts = run(repo, args.copier, args.version)
    except UserError as exc:
        return report("update: error", exc)
    if conflicts:
        print("update: conflicts to resolve (edit, remove the <<<<<<< / >>>>>>> blocks and *.rej files, "
              "then make validate):", file=sys.stderr)
        for path in conflicts:
            print(f"  {path}", file=sys.stderr)
        return 1
    print("update: all answers files updated; changes are staged for review")
    return 0


if __name__ == "__main__":
    sys.exit(main())
