"""Copier migrations: move user files along when the template renames something.

Declared in copier.yml ``_migrations`` (read from the new template, run by ``copier update``
for versions in (old, new]); each entry calls one of these commands in the project dir:

    migrations.py rename-answer ANSWERS_FILE OLD NEW   (stage "before": Copier reloads answers)
    migrations.py rename-key GLOB OLD.DOTTED.PATH NEW.DOTTED.PATH   (user YAML, e.g. values files)
    migrations.py move-cluster-dir ENV CLUSTER_SLUG ENGINE   (v0.2.0, stage "after")
    migrations.py jenkins-clouds STAGE ANSWERS_FILE   (v0.2.0, stages "before" and "after")

Edits are ruamel.yaml round-trips: comments, key order and quoting survive. Every command is
idempotent (nothing to rename means nothing written), because an interrupted update is re-run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template" / "scripts"))
from airflow_gitops import facts  # the Jenkinsfile's entry format and the cloud name


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _edit(path: Path, change: Callable[[Any], bool]) -> bool:
    """Load, change in place, write back only if something changed."""
    yaml = _yaml()
    doc = yaml.load(path.read_text())
    if doc is None or not change(doc):
        return False
    tmp = path.with_name(path.name + ".migrating")
    with tmp.open("w") as fh:
        yaml.dump(doc, fh)
    tmp.replace(path)
    return True


def _rename_in(mapping: Any, old: list[str], new: list[str]) -> bool:
    parent = mapping
    for part in old[:-1]:
        parent = parent.get(part) if hasattr(parent, "get") else None
        if parent is None:
            return False
    if not hasattr(parent, "get") or old[-1] not in parent:
        return False
    value = parent.pop(old[-1])
    target = mapping
    for part in new[:-1]:
        target = target.setdefault(part, {})
    if new[-1] in target:  # already migrated by hand: keep the user's newer value
        return True
    target[new[-1]] = value
    return True


def rename_key(path: Path, old: str, new: str) -> bool:
    return _edit(path, lambda doc: _rename_in(doc, old.split("."), new.split(".")))


def rename_answer(answers_file: str, old: str, new: str) -> list[str]:
    path = Path(answers_file)
    if path.is_file() and rename_key(path, old, new):
        return [f"{path}: answer {old} -> {new}"]
    return []


def rename_key_glob(pattern: str, old: str, new: str) -> list[str]:
    return [f"{p}: {old} -> {new}" for p in sorted(Path.cwd().glob(pattern)) if rename_key(p, old, new)]


def move_cluster_dir(env: str, slug: str, engine: str) -> list[str]:
    """v0.2.0: clusters/<env>/ became clusters/<cluster>/ (add-ons once per cluster) + clusters/<cluster>/<env>/.

    Copier has already removed the old files it owned. What is left to move is yours: the Flux
    bootstrap (`clusters/<env>/flux-system/`, whose sync still points at ./clusters/<env>). It moves
    to clusters/<cluster>/ with its path rewritten, and clusters/<env>/kustomization.yaml forwards the
    old path to the new objects (same names: nothing is pruned) until the new sync is applied."""
    old, new = Path("clusters") / env, Path("clusters") / slug
    if env == slug or not old.is_dir() or not new.is_dir():
        return []
    done: list[str] = []
    bootstrap = old / "flux-system"
    if bootstrap.is_dir() and not (new / "flux-system").exists():
        bootstrap.rename(new / "flux-system")
        done.append(f"moved {bootstrap} to {new / 'flux-system'}")
        sync = new / "flux-system" / "gotk-sync.yaml"
        if sync.is_file():
            text = sync.read_text()
            fixed = re.sub(rf"(path:\s*['\"]?)\./?clusters/{re.escape(env)}(['\"]?\s*$)", rf"\g<1>./{new}\g<2>",
                           text, flags=re.M)
            if fixed != text:
                sync.write_text(fixed)
                done.append(f"{sync}: sync path ./{old} -> ./{new}")
    forwarder = old / "kustomization.yaml"
    if (done or engine == "argocd") and not forwarder.exists():
        if engine == "argocd":
            resources = [f"../{slug}", f"../{slug}/{env}"]
        else:  # Flux's clusters/<cluster>/ has no kustomization.yaml: name what it holds
            files = sorted(f"../{slug}/{p.relative_to(new).as_posix()}" for p in new.rglob("*.yaml")
                           if "flux-system" not in p.relative_to(new).parts)
            resources = [*files, f"../{slug}/flux-system"]
        forwarder.write_text("# Left by the v0.2.0 migration: the old bootstrap path now applies the new layout.\n"
                             f"# Delete clusters/{env}/ once your sync points at ./clusters/{slug}.\n"
                             "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
                             + "".join(f"  - {r}\n" for r in resources))
        done.append(f"wrote {forwarder} (forwards ./{old} to ./{new})")
    leftovers = sorted(str(p) for p in old.rglob("*") if p.is_file() and p != forwarder)
    if leftovers:
        done.append(f"left in {old} (files you edited: carry your changes over to {new}/{env}/): "
                    + ", ".join(leftovers))
    return done


JENKINSFILE = Path("Jenkinsfile")
CLOUD_LINE = re.compile(r"^(\s*'(?:[^'\\]|\\.)*'\s*:\s*\[)(namespace:)")  # an entry without a cloud


def _stash() -> Path:
    """Where the before stage keeps the registered lines for the after stage: inside .git, never in the
    worktree (the update diffs the worktree)."""
    out = subprocess.run(["git", "rev-parse", "--git-path", "airflow-gitops-jenkins-entries.json"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def _answers(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(path.read_text()) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def _clusters() -> dict[str, str]:
    """environment -> eks_cluster_name, from every answers file in the project."""
    found = {}
    for path in sorted(Path.cwd().glob(".copier-answers*.yml")):
        data = _answers(path)
        if data.get("environment") and data.get("eks_cluster_name"):
            found[str(data["environment"])] = str(data["eks_cluster_name"])
    return found


def jenkins_clouds(stage: str, answers_file: str) -> list[str]:
    """v0.2.0: each ENVIRONMENTS entry of the Jenkinsfile names its cluster's Jenkins cloud.

    The primary's own line is the template's, and changes with it; the lines `copier copy` added for
    further environments are yours, right below it. Git merges two changes that touch neighbouring
    lines as a conflict, so before the update (primary, old format only) those lines are set aside
    (out of the worktree and the index Copier diffs); after it they come back below the template's
    new comment line. After every update, an entry without a cloud gets its environment's, from that
    environment's answers file (eks_cluster_name); an entry without answers is named for you to fix.
    The answers file is the one being updated (Copier has not loaded its answers in the before stage)."""
    answers = _answers(Path(answers_file))
    env, repo_role = str(answers.get("environment", "")), answers.get("repo_role", "primary")
    if not JENKINSFILE.is_file():
        return []
    text = JENKINSFILE.read_text()
    block = facts.JENKINS_ENVIRONMENTS.search(text)
    if not block:
        return [f"no ENVIRONMENTS map in {JENKINSFILE}: give each environment its cloud by hand (README.md)"]
    lines = block.group(2).splitlines(keepends=True)
    entries = [(i, next(iter(facts.jenkins_entries(line).items()), None)) for i, line in enumerate(lines)]
    done: list[str] = []
    if stage == "before":
        if repo_role != "primary":
            return []  # a further environment's update renders no Jenkinsfile
        own = [e for _, e in entries if e and e[0] == env]
        if not own or own[0][1].cloud is not None or _stash().exists():
            return []  # not a pre-v0.2.0 primary Jenkinsfile, or set aside already (a re-run)
        others = {i for i, e in entries if e and e[0] != env}
        if not others:
            return []
        _stash().write_text(json.dumps([lines[i] for i in sorted(others)]))
        kept = "".join(line for i, line in enumerate(lines) if i not in others)
        JENKINSFILE.write_text(text[:block.start(2)] + kept + text[block.end(2):])
        subprocess.run(["git", "add", "--", str(JENKINSFILE)], check=True)
        return [f"{JENKINSFILE}: set aside the entries of {len(others)} further environment(s) for the update"]
    stash = _stash()
    present = {e[0] for _, e in entries if e}
    if stash.exists():
        back = [line for line in json.loads(stash.read_text())
                if not set(facts.jenkins_entries(line)) & present]
        lines += back
        stash.unlink()
        if back:
            done.append(f"{JENKINSFILE}: {len(back)} further environment(s) back in ENVIRONMENTS")
    clusters = _clusters()
    for i, line in enumerate(lines):
        entry = next(iter(facts.jenkins_entries(line).items()), None)
        if not entry or entry[1].cloud is not None:
            continue
        name = entry[0]
        if name not in clusters:
            done.append(f"{JENKINSFILE}: {name!r} has no answers file: add cloud: '<its cluster's Jenkins cloud>' "
                        "to its ENVIRONMENTS entry by hand")
            continue
        cloud = facts.jenkins_cloud(clusters[name])
        lines[i] = CLOUD_LINE.sub(lambda m, c=cloud: f"{m.group(1)}cloud: {facts.groovy_str(c)}, {m.group(2)}", line)
        done.append(f"{JENKINSFILE}: {name!r} publishes through the Jenkins cloud {cloud!r} "
                    f"(eks_cluster_name {clusters[name]})")
    new_text = text[:block.start(2)] + "".join(lines) + text[block.end(2):]
    if new_text != text:
        JENKINSFILE.write_text(new_text)
    return done


COMMANDS: dict[str, Callable[..., list[str]]] = {"rename-answer": rename_answer, "rename-key": rename_key_glob,
                                                 "move-cluster-dir": move_cluster_dir,
                                                 "jenkins-clouds": jenkins_clouds}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(f"usage: migrations.py {{{'|'.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        return 2
    for line in COMMANDS[argv[1]](*argv[2:]):
        print(f"migrate: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
