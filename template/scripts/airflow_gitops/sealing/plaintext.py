"""Where each SealedSecret entry's plaintext comes from: an environment variable, a generated value,
or a hidden prompt; never an argument (arguments end up in shell history and `ps`).

A composite entry (facts.COMPOSITES: a connection URL) is built from the secrets its shape names.
"""

from __future__ import annotations

import base64
import getpass
import os
import secrets
from dataclasses import dataclass
from typing import Any

from airflow_gitops import facts
from airflow_gitops.errors import UserError
from airflow_gitops.sealing.rules import check_plaintext


@dataclass(frozen=True)
class SecretSource:
    """Where the plaintext of one SealedSecret entry comes from."""

    env: str  # environment variable holding the value
    generate: str | None = None  # "fernet" or "token": made here when the variable is unset
    prompt: str = ""
    keep: str = ""  # generated only: why a sealed value is kept rather than regenerated


# SealedSecret name -> encryptedData key -> source: facts.SECRETS, for copy time and `make seal`.
SOURCES: dict[str, dict[str, SecretSource]] = {}
for _entry in facts.SECRETS:
    SOURCES.setdefault(_entry.secret, {})[_entry.key] = SecretSource(_entry.env, _entry.generate, _entry.prompt,
                                                                      _entry.keep)


def generate(kind: str) -> str:
    if kind == "fernet":  # 32 random bytes, URL-safe base64: what Fernet.generate_key() returns
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(48)


def source_for(name: str, key: str) -> SecretSource:
    return SOURCES.get(name, {}).get(key) or SecretSource(f"SEAL_{name}_{key}".upper().replace("-", "_"))


def plaintext(name: str, key: str, *, interactive: bool, sealed: bool = False) -> str | None:
    """The value for one entry: env var, else generated, else a hidden prompt.

    With `sealed` (the entry holds a ciphertext already), an empty answer at the prompt
    returns None: keep it."""
    source = source_for(name, key)
    if os.environ.get(source.env):
        value = os.environ[source.env]
        if problem := check_plaintext(name, key, value):
            raise UserError(f"{source.env}: {problem}")
        return value
    if source.generate:
        return generate(source.generate)
    if interactive:
        keep = ", empty keeps the sealed one" if sealed else ""
        value = getpass.getpass(f"{source.prompt or name + '/' + key} ({source.env}{keep}): ")
        if not value and sealed:
            return None
        if value and not (problem := check_plaintext(name, key, value)):
            return value
        if value:
            raise UserError(problem)
    hint = ("; it is sealed already: to re-seal only what changed, name it: SECRET=<name>"
            if sealed else "")
    raise UserError(f"no value for {name}/{key}: set {source.env} (values are never taken from arguments){hint}")


def compose_value(name: str, key: str, shape: str, given: Any) -> str:
    """A composite entry's plaintext: `shape` (its compose annotation) with each ${ENV} reference
    replaced by that secret's value: given(entry), else its environment variable."""
    comp = facts.composite(name, key)
    if comp is None:
        raise UserError(f"{name}/{key} has a {facts.COMPOSE_ANNOTATION}{key} annotation, but it is not a value this "
                        "template builds (known: " + ", ".join(f"{c.secret}/{c.key}" for c in facts.COMPOSITES) + ")")
    values: dict[str, str] = {}
    for ref in facts.compose_refs(shape):
        entry = facts.entry_for_env(ref)
        if entry is None or entry.generate:
            known = ", ".join(e.env for e in facts.SECRETS if not e.generate)
            raise UserError(f"{name}/{key}: its shape names ${{{ref}}}, which is not a secret make seal asks for "
                            f"(known: {known})")
        value = given(entry) or os.environ.get(entry.env, "")
        if not value:
            raise UserError(f"no value for {ref} ({entry.prompt}), which {name}/{key} holds: set {ref} "
                            "(values are never taken from arguments)")
        if problem := check_plaintext(entry.secret, entry.key, value):
            raise UserError(f"{ref}: {problem}")
        values[ref] = value
    return facts.compose(shape, comp.quoting, values)


def composite_plaintext(name: str, key: str, shape: str, *, state: str, interactive: bool,
                        parts: dict[str, str | None]) -> str | None:
    """The plaintext of a composite entry, each part asked once per run (`parts`); None: keep it."""
    def given(entry: facts.SecretEntry) -> str:
        if entry.env not in parts:
            parts[entry.env] = plaintext(entry.secret, entry.key, interactive=interactive, sealed=state == "sealed")
        return parts[entry.env] or ""
    refs = facts.compose_refs(shape)
    for ref in refs:
        if (entry := facts.entry_for_env(ref)) is not None and not entry.generate and not given(entry) \
                and state == "sealed":
            return None  # the part was kept (empty answer): the sealed value stays
    return compose_value(name, key, shape, given)


def placeholder(env: str, name: str) -> str:
    return f"{facts.PLACEHOLDER_PREFIX}: run make seal ENV={env} SECRET={name}"
