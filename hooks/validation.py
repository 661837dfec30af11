"""Answer validation and the template's Jinja helpers (the ``check`` global, the literal filters).

Copier runs ``validator:`` templates and treats any non-empty output as the error:
``{{ check('aws_region', aws_region) }}`` renders the rule's message or nothing. The rules are
hooks/answer_rules/ (RULES); this module is the Jinja glue.

Loaded through ``copier_template_extensions.TemplateExtensionLoader`` by file path, so it cannot
import sibling hook modules: the rules (hooks/answer_rules/) and the facts it shares with the generated
repository (template/scripts/airflow_gitops/) are imported through a sys.path context.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.ext import Extension

_HOOKS = str(Path(__file__).resolve().parent)
_SCRIPTS = str(Path(_HOOKS).parent / "template" / "scripts")
_OURS = {"airflow_gitops": _SCRIPTS, "answer_rules": _HOOKS}  # top-level package -> the clone's dir
sys.path[:0] = [_SCRIPTS, _HOOKS]  # the generated repo's own modules (one implementation), the rules
# `copier update` loads the old and the new template in one process, each from its own clone:
# drop modules another clone imported, or this template would run the other version's rules and facts.
for _name in [m for m in sys.modules if m.split(".")[0] in _OURS]:
    if not str(getattr(sys.modules[_name], "__file__", "") or "").startswith(_OURS[_name.split(".")[0]]):
        del sys.modules[_name]
try:
    from airflow_gitops import facts, images, secret_settings
    from answer_rules import RULES  # question -> rule: what `check` calls
finally:
    sys.path.remove(_SCRIPTS)
    sys.path.remove(_HOOKS)


def check(field: str, value: Any, *args: Any) -> str:
    """Jinja entry point: ``{{ check('aws_region', aws_region) }}`` renders the error or nothing."""
    return RULES[field](value, *args)


_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@-]*$")
_YAML_SPECIAL = re.compile(
    r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|null|Null|NULL|~|[-+]?[0-9_.:]+([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|0o?[0-7]+)$"
)


def yaml_str(value: Any) -> str:
    """Render a string as a YAML scalar that parses back to exactly the same string.

    Plain when unambiguous (readable diffs), single-quoted when that needs no escape,
    JSON double-quoted otherwise: JSON strings are valid YAML, so quotes, ':', '#', newlines
    and '{{ }}' survive untouched.
    """
    text = str(value)
    if _PLAIN.match(text) and not _YAML_SPECIAL.match(text):
        return text
    if text.isprintable() and "'" not in text and text.strip() == text:
        return f"'{text}'"  # single-quoted YAML has no escapes besides ''
    return json.dumps(text)


groovy_str = facts.groovy_str


cluster_slug = facts.cluster_slug  # clusters/<slug>/, also the cluster's Jenkins cloud


REMOTE_SOURCE = facts.REMOTE_SOURCE


def absolute_src(answers: dict[str, Any]) -> dict[str, Any]:
    """The answers with `_src_path` made absolute: Copier stores a local template path as typed
    (`.`), and a later update, run from the project, would look for the template there."""
    src = str(answers.get("_src_path", ""))
    if not src or REMOTE_SOURCE.match(src) or os.path.isabs(os.path.expanduser(src)):
        return answers
    return {**answers, "_src_path": os.path.abspath(os.path.expanduser(src))}


@pass_context
def secret_shape(ctx: Any, name: str, key: str) -> str:
    """The shape of one composite SealedSecret entry, as these answers build it (secret_settings)."""
    return secret_settings.shapes(ctx)[name][key]


@pass_context
def secret_settings_manifest(ctx: Any, name: str) -> str:
    """secrets/settings/<name>.yaml: the non-secret half of SealedSecret `name`."""
    return secret_settings.manifest(name, ctx)


@pass_context
def secret_settings_names(ctx: Any) -> list[str]:
    return sorted(secret_settings.settings(ctx))


class ValidationExtension(Extension):
    """Registers ``check`` (answer validation), the ``yaml_str``/``groovy_str`` literal filters and the
    SealedSecrets' settings (``secret_settings_*``)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["check"] = check
        environment.filters["yaml_str"] = yaml_str
        environment.filters["groovy_str"] = groovy_str
        environment.globals["facts"] = facts  # names and paths templates share with the tools
        environment.globals["images"] = images  # the images the charts render (repositories, users)
        environment.globals["jenkins_entry"] = facts.jenkins_entry
        environment.filters["absolute_src"] = absolute_src
        environment.filters["cluster_slug"] = cluster_slug
        environment.globals.update(secret_shape=secret_shape, secret_settings_manifest=secret_settings_manifest,
                                   secret_settings_names=secret_settings_names)
