"""Copier migrations: move user files along when the template renames something.

Declared in copier.yml ``_migrations`` (read from the new template, run by ``copier update``
for versions in (old, new]); each entry calls one of these commands in the project dir:

    migrations.py rename-answer ANSWERS_FILE OLD NEW   (stage "before": Copier reloads answers)
    migrations.py rename-key GLOB OLD.DOTTED.PATH NEW.DOTTED.PATH   (user YAML, e.g. values files)

Edits are ruamel.yaml round-trips: comments, key order and quoting survive. Every command is
idempotent (nothing to rename means nothing written), because an interrupted update is re-run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML


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


COMMANDS: dict[str, Callable[..., list[str]]] = {"rename-answer": rename_answer, "rename-key": rename_key_glob}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(f"usage: migrations.py {{{'|'.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        return 2
    for line in COMMANDS[argv[1]](*argv[2:]):
        print(f"migrate: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
