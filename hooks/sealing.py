"""Copy-time sealing for copier.yml and the SealedSecret templates.

Exposes to Jinja:
- ``check_secret(field, value)``: validator for the secret questions;
- ``sealed(name, key, answer)``: the encryptedData value for one entry, ciphertext when the
  user gave ``sealed_secrets_cert``, otherwise the ``UNSEALED: ...`` placeholder;
- ``read_pem(path)``: the certificate text, kept in the repo for later ``make seal`` runs.

The crypto lives in the generated repo's ``scripts/seal.py`` (one implementation for
copy time and ``make seal``); this module imports it through a sys.path context. Plaintext only exists in
memory: the secret questions are never stored in the answers file, and only ciphertext
is rendered. Secret answers are not stored, so during ``copier update`` they are empty and
the templates render placeholders, while ``_skip_if_exists`` keeps the sealed files.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

try:  # Copier's CLI prints a UserMessageError as one red line instead of a traceback
    from copier.errors import UserMessageError
except ImportError:  # pragma: no cover - copier is always there when this runs
    UserMessageError = Exception  # type: ignore[misc,assignment]


class CopyRefused(UserMessageError, ValueError):  # type: ignore[misc]
    """The copy cannot seal: raised before any file is written; a ValueError for the API."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_SCRIPTS = str(Path(__file__).resolve().parents[1] / "template" / "scripts")
sys.path.insert(0, _SCRIPTS)  # the generated repo's own seal.py (validation.py already loaded its facts)
try:
    if not str(getattr(sys.modules.get("seal"), "__file__", "")).startswith(_SCRIPTS):
        sys.modules.pop("seal", None)  # another clone's: copier update loads two template versions
    import seal
    from airflow_gitops import facts
finally:
    sys.path.remove(_SCRIPTS)

QUESTION_SOURCES = {e.question: (e.secret, e.key) for e in facts.SECRETS if e.question}  # question -> entry


def seal_module() -> ModuleType:
    return seal


@cache
def public_key(path: str) -> Any:
    return seal_module().read_certificate(path)


def check_secret(field: str, value: Any) -> str:
    seal = seal_module()
    try:
        if field == "sealed_secrets_cert":
            if value:
                public_key(str(value))
            return ""
        name, key = QUESTION_SOURCES[field]
        env = seal.SOURCES[name][key].env
        text = value or os.environ.get(env, "")
        if not text:
            return f"{field} is required to seal {name} now: type it (hidden, never stored) or set {env}"
        problem = seal.check_plaintext(name, key, text)
        return f"{field}: {problem}" if problem else ""
    except seal.SealError as exc:
        return f"{field}: {exc}"


def missing_secrets(ctx: Context) -> list[str]:
    """Secret answers this copy must seal but has no value for (answer or env var), in question order.
    Checked before the first SealedSecret renders, so the error names all of them at once."""
    celery_auth = ctx.get("executor") in facts.CELERY_EXECUTORS and ctx.get("redis_auth", True)
    needed = [q for q in QUESTION_SOURCES if q != "redis_password" or celery_auth]
    return [q for q in needed if not (ctx.get(q) or os.environ.get(source_env(q)))]


def source_env(question: str) -> str:
    name, key = QUESTION_SOURCES[question]
    return seal_module().SOURCES[name][key].env


@pass_context
def sealed(ctx: Context, name: str, key: str, answer: str = "") -> str:
    seal = seal_module()
    cert = ctx.get("sealed_secrets_cert") or ""
    if not cert:
        return f'"{seal.placeholder(ctx["environment"], name)}"'
    if missing := missing_secrets(ctx):
        envs = [source_env(q) for q in missing]
        raise CopyRefused(f"sealing at copy time needs {', '.join(missing)}: type them (hidden, never stored) "
                         f"or set {', '.join(envs)}; nothing was written")
    source = seal.SOURCES[name][key]
    value = answer or os.environ.get(source.env) or (seal.generate(source.generate) if source.generate else "")
    if not value:  # the validators make this unreachable from the prompt
        raise ValueError(f"no value to seal for {name}/{key}: set {source.env}")
    if problem := seal.check_plaintext(name, key, value):  # an env var bypasses the prompt's validator
        question = next((q for q, src in QUESTION_SOURCES.items() if src == (name, key)), source.env)
        raise CopyRefused(f"Validation error for question '{question}': {problem}; nothing was written")
    return seal.seal_value(public_key(cert), value.encode(), namespace=ctx["namespace"], name=name)


@pass_context
def composed(ctx: Context, name: str, key: str, shape: str) -> str:
    """A composite entry (facts.COMPOSITES): the shape with its secret references filled in, sealed."""
    seal = seal_module()
    cert = ctx.get("sealed_secrets_cert") or ""
    if not cert:
        return f'"{seal.placeholder(ctx["environment"], name)}"'
    if missing := missing_secrets(ctx):
        envs = [source_env(q) for q in missing]
        raise CopyRefused(f"sealing at copy time needs {', '.join(missing)}: type them (hidden, never stored) "
                         f"or set {', '.join(envs)}; nothing was written")
    try:
        value = seal.compose_value(name, key, shape, lambda entry: ctx.get(entry.question or "") or "")
    except seal.SealError as exc:
        raise CopyRefused(f"{exc}; nothing was written") from None
    return seal.seal_value(public_key(cert), value.encode(), namespace=ctx["namespace"], name=name)


def read_pem(path: str) -> str:
    return Path(path).expanduser().read_text()


class SealingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(check_secret=check_secret, sealed=sealed, composed=composed, read_pem=read_pem)
