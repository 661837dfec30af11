"""Copy-time sealing for copier.yml and the SealedSecret templates.

Exposes to Jinja:
- ``check_secret(field, value)``: validator for the secret questions;
- ``sealed(name, key, answer)``: the encryptedData value for one entry, ciphertext when the
  user gave ``sealed_secrets_cert``, otherwise the ``UNSEALED: ...`` placeholder;
- ``read_pem(path)``: the certificate text, kept in the repo for later ``make seal`` runs.

The crypto and the rules live in the generated repo's ``scripts/airflow_gitops/sealing/`` (one
implementation for copy time and ``make seal``); this module imports it through a sys.path context. Plaintext
only exists in memory: the secret questions are never stored in the answers file, and only ciphertext
is rendered. Secret answers are not stored, so during ``copier update`` they are empty and
the templates render placeholders, while ``_skip_if_exists`` keeps the sealed files.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

try:  # Copier's CLI prints a UserMessageError as one red line instead of a traceback
    from copier.errors import UserMessageError
except ImportError:  # pragma: no cover - copier is always there when this runs
    class UserMessageError(Exception):  # type: ignore[no-redef]
        def __init__(self, message: str) -> None:
            self.message = message

_SCRIPTS = str(Path(__file__).resolve().parents[1] / "template" / "scripts")
sys.path.insert(0, _SCRIPTS)  # the generated repo's own modules (validation.py dropped another clone's)
try:
    from airflow_gitops import facts
    from airflow_gitops.errors import PROBLEMS, UserError
    from airflow_gitops.sealing import crypto
    from airflow_gitops.sealing.plaintext import SOURCES, compose_value, generate, placeholder
    from airflow_gitops.sealing.rules import check_plaintext
finally:
    sys.path.remove(_SCRIPTS)


class CopyRefused(UserMessageError, UserError, ValueError):  # type: ignore[misc]
    """The copy cannot seal: a UserError of the sealing rules, as Copier's CLI prints it (one red line,
    exit 1) and a ValueError for the API; its message says what was left on disk."""

    def __init__(self, message: str) -> None:
        UserError.__init__(self, message, PROBLEMS)  # Copier exits 1 on it
        self.message = message  # what UserMessageError prints


QUESTION_SOURCES = {e.question: (e.secret, e.key) for e in facts.SECRETS if e.question}  # question -> entry


@cache
def public_key(path: str) -> Any:
    return crypto.read_certificate(path)


def check_secret(field: str, value: Any) -> str:
    try:
        if field == "sealed_secrets_cert":
            if value:
                public_key(str(value))
            return ""
        name, key = QUESTION_SOURCES[field]
        env = SOURCES[name][key].env
        text = value or os.environ.get(env, "")
        if not text:
            return f"{field} is required to seal {name} now: type it (hidden, never stored) or set {env}"
        problem = check_plaintext(name, key, text)
        return f"{field}: {problem}" if problem else ""
    except UserError as exc:
        return f"{field}: {exc}"


def needed_secrets(answers: Any) -> list[str]:
    """The secret questions a copy with a certificate seals, in question order."""
    celery_auth = answers.get("executor") in facts.CELERY_EXECUTORS and answers.get("redis_auth", True) is not False
    return [q for q in QUESTION_SOURCES if q != "redis_password" or celery_auth]


def missing_secrets(ctx: Any) -> list[str]:
    """Secret answers this copy must seal but has no value for (answer or env var), in question order.
    Checked before the first SealedSecret renders, so the error names all of them at once."""
    return [q for q in needed_secrets(ctx) if not (ctx.get(q) or os.environ.get(source_env(q)))]


# dst -> {relative path: (mtime_ns, size)} of what was there before this copy (None: no directory).
_BEFORE: dict[str, dict[str, tuple[int, int]] | None] = {}


@pass_context
def before_render(ctx: Context) -> str:
    """Rendered by copier.yml's `_exclude`, which Copier renders before it writes the first file:
    remember what the destination holds (to undo a copy that stops half-way), and refuse now what
    sealing would refuse later (with --defaults the password questions are neither asked nor
    validated). Renders nothing: an empty exclusion."""
    if not ctx.get("sealed_secrets_cert"):
        return ""
    dst = Path(str(ctx["_copier_conf"]["dst_path"]))
    _BEFORE[str(dst)] = ({str(p.relative_to(dst)): (p.lstat().st_mtime_ns, p.lstat().st_size)
                          for p in dst.rglob("*") if ".git" not in p.relative_to(dst).parts}
                         if dst.is_dir() else None)
    if missing := missing_secrets(ctx):
        raise CopyRefused(f"sealing at copy time needs {', '.join(missing)}: type them (hidden, never stored), "
                          f"pass -d <question>=... or set {', '.join(source_env(q) for q in missing)}; "
                          "nothing was written")
    for question in (q for q in needed_secrets(ctx) if not ctx.get(q)):  # from the environment: unvalidated
        env = source_env(question)
        if problem := check_plaintext(*QUESTION_SOURCES[question], os.environ[env]):
            raise CopyRefused(f"Validation error for question '{question}' (from {env}): {problem}; "
                              "nothing was written")
    return ""


def refused(ctx: Context, message: str) -> CopyRefused:
    """A copy that must stop while rendering: undo what it wrote into a directory that existed before
    (Copier removes a directory it created itself), and say exactly what is left."""
    dst = Path(str(ctx["_copier_conf"]["dst_path"]))
    before = _BEFORE.get(str(dst))
    if before is None or not dst.is_dir():
        return CopyRefused(f"{message}; nothing was written")
    created = [p for p in dst.rglob("*") if ".git" not in p.relative_to(dst).parts
               and str(p.relative_to(dst)) not in before]
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    changed = sorted(rel for rel, stat in before.items() if (dst / rel).is_file()
                     and ((dst / rel).lstat().st_mtime_ns, (dst / rel).lstat().st_size) != stat)
    note = f"removed the {len(created)} paths this copy had written"
    if changed:
        note += f"; it had already overwritten {', '.join(changed)} (restore them from git)"
    return CopyRefused(f"{message}; {note}")


def source_env(question: str) -> str:
    name, key = QUESTION_SOURCES[question]
    return SOURCES[name][key].env


@pass_context
def sealed(ctx: Context, name: str, key: str, answer: str = "") -> str:
    cert = ctx.get("sealed_secrets_cert") or ""
    if not cert:
        return f'"{placeholder(ctx["environment"], name)}"'
    if missing := missing_secrets(ctx):
        envs = [source_env(q) for q in missing]
        raise refused(ctx, f"sealing at copy time needs {', '.join(missing)}: type them (hidden, never stored) "
                      f"or set {', '.join(envs)}")
    source = SOURCES[name][key]
    value = answer or os.environ.get(source.env) or (generate(source.generate) if source.generate else "")
    if not value:  # the validators make this unreachable from the prompt
        raise ValueError(f"no value to seal for {name}/{key}: set {source.env}")
    if problem := check_plaintext(name, key, value):  # an env var bypasses the prompt's validator
        question = next((q for q, src in QUESTION_SOURCES.items() if src == (name, key)), source.env)
        raise refused(ctx, f"Validation error for question '{question}': {problem}")
    return crypto.seal_value(public_key(cert), value.encode(), namespace=ctx["namespace"], name=name)


@pass_context
def composed(ctx: Context, name: str, key: str, shape: str) -> str:
    """A composite entry (facts.COMPOSITES): the shape with its secret references filled in, sealed."""
    cert = ctx.get("sealed_secrets_cert") or ""
    if not cert:
        return f'"{placeholder(ctx["environment"], name)}"'
    if missing := missing_secrets(ctx):
        envs = [source_env(q) for q in missing]
        raise refused(ctx, f"sealing at copy time needs {', '.join(missing)}: type them (hidden, never stored) "
                      f"or set {', '.join(envs)}")
    try:
        value = compose_value(name, key, shape, lambda entry: ctx.get(entry.question or "") or "")
    except UserError as exc:
        raise refused(ctx, str(exc)) from None
    return crypto.seal_value(public_key(cert), value.encode(), namespace=ctx["namespace"], name=name)


def read_pem(path: str) -> str:
    return Path(path).expanduser().read_text()


class SealingExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(check_secret=check_secret, sealed=sealed, composed=composed, read_pem=read_pem,
                                   before_render=before_render)
