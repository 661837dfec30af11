#!/usr/bin/env python3
"""Seal this repository's secrets offline, the way the sealed-secrets controller expects.

    make seal ENV=dev [SECRET=airflow-db] [CERT=cert.pem] [SCOPE=strict]
    make rotate-fernet ENV=dev

Values come from environment variables or a hidden prompt, never from arguments
(arguments end up in shell history and `ps`). Generated values (fernet key; webserver
secret key, or API secret key and JWT secret) are created here and never shown, and once sealed
they are kept: a new fernet key would make every stored connection and variable unreadable, a
new webserver or API key signs everyone out, a new JWT secret fails running tasks. Only
`make rotate-fernet`, an explicit value (AIRFLOW_FERNET_KEY, ...) or
`--regenerate` (REGENERATE=1) replace them. Every value is checked before anything is
written; only the named SealedSecret entries are rewritten; comments and key order are kept.

Format (sealed-secrets pkg/crypto HybridEncrypt): a random 32-byte session key is
encrypted with RSA-OAEP(SHA-256) labelled with the scope, the value with AES-256-GCM
(zero nonce, the key is single-use), output = uint16 len(rsa) || rsa || aes, base64.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import getpass
import hashlib
import io
import os
import re
import secrets
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_gitops import (
    facts,  # scripts/ is on sys.path: this file's own directory
    stamps,
)
from airflow_gitops.secret_settings import SETTINGS_DIR

SCOPES = ("strict", "namespace-wide", "cluster-wide")
SCOPE_ANNOTATIONS = {
    "namespace-wide": "sealedsecrets.bitnami.com/namespace-wide",
    "cluster-wide": "sealedsecrets.bitnami.com/cluster-wide",
}
CERT_ENV = "SEALED_SECRETS_CERT"
PLACEHOLDER_PREFIX = facts.PLACEHOLDER_PREFIX


class SealError(Exception):
    """A problem the user can fix; printed without a traceback."""


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


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SealError("sealing needs the Python package 'cryptography': `make tools` installs it here; "
                        "for copier copy run `pipx inject copier cryptography`") from exc
    return x509, hashes, padding, rsa, AESGCM


def load_certificate(pem: bytes, *, now: dt.datetime | None = None):
    """The controller's public key from its certificate (`kubeseal --fetch-cert`), checked."""
    x509, _, _, rsa, _ = _crypto()
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise SealError("not an X.509 certificate PEM (expected '-----BEGIN CERTIFICATE-----'; "
                        "get it with `kubeseal --fetch-cert`)")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SealError(f"unreadable certificate: {exc}") from exc
    now = now or dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        raise SealError(f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}: fetch the current one")
    if now < cert.not_valid_before_utc:
        raise SealError(f"certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SealError("certificate key is not RSA: not a sealed-secrets controller certificate")
    return key


def read_certificate(path: str | os.PathLike[str]):
    try:
        pem = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise SealError(f"cannot read certificate {path}: {exc.strerror}") from exc
    return load_certificate(pem)


def scope_label(scope: str, namespace: str, name: str) -> bytes:
    """OAEP label binding the ciphertext to where it may be decrypted."""
    if scope == "strict":
        return f"{namespace}/{name}".encode()
    if scope == "namespace-wide":
        return namespace.encode()
    if scope == "cluster-wide":
        return b""
    raise SealError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")


def seal_value(public_key, value: bytes, *, namespace: str, name: str, scope: str = "strict") -> str:
    _, hashes, padding, _, AESGCM = _crypto()
    label = scope_label(scope, namespace, name)
    session_key = secrets.token_bytes(32)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=label or None)
    wrapped = public_key.encrypt(session_key, oaep)
    sealed = AESGCM(session_key).encrypt(b"\0" * 12, value, None)
    return base64.b64encode(struct.pack(">H", len(wrapped)) + wrapped + sealed).decode()


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
            raise SealError(f"{source.env}: {problem}")
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
            raise SealError(problem)
    hint = ("; it is sealed already: to re-seal only what changed, name it: SECRET=<name>"
            if sealed else "")
    raise SealError(f"no value for {name}/{key}: set {source.env} (values are never taken from arguments){hint}")


# A Fernet key (cryptography.fernet, Airflow's [core] fernet_key): 32 random bytes, URL-safe base64.
FERNET_RULE = ("a Fernet key is 32 random bytes as URL-safe base64: 44 characters ending in '=', "
               "e.g. from python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'")
# sha256 of the chart's public default airflow.fernetKey (the key itself must not appear in the repo).
CHART_DEFAULT_FERNET_SHA256 = (
    "b2f118c40ef943640d2d20929e4ed51cb40d731041d3c819b90f5160a8b45de5"  # pragma: allowlist secret
)


def _fernet_bytes(value: str) -> bytes | None:
    """The 32 key bytes, decoded strictly (also accepts standard base64, as Fernet does), or None."""
    try:
        raw = base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError
        return None
    return raw if len(raw) == 32 else None


def _is_encoded_fernet(value: str) -> bool:
    """The Secret's `.data.value` as kubectl prints it: base64 of a key (or of '<new>,<old>')."""
    try:
        text = base64.b64decode(value.encode("ascii"), validate=True).decode("ascii").strip()
    except (ValueError, binascii.Error):
        return False
    return bool(text) and all(_fernet_bytes(part) for part in text.split(","))


def fernet_key_problem(value: str, *, new: bool = True) -> str:
    """Why `value` is not one Fernet key Airflow can use, or "". With `new`, also refuse keys
    that decrypt but must not be sealed as the key (public, not random); an old key being
    rotated away from may be either."""
    if value != value.strip() or "\n" in value or "\r" in value:
        return "has leading/trailing whitespace or a newline (`echo` adds one: use printf '%s')"
    if "," in value:
        return (f"holds {value.count(',') + 1} comma-separated keys, not one (a rotation's '<new>,<old>' is "
                "sealed by make rotate-fernet; to finish a rotation seal the first key alone: `| cut -d, -f1`)")
    raw = _fernet_bytes(value)
    if raw is None:
        if _is_encoded_fernet(value):
            return ("is still base64-encoded (the Secret's .data.value as kubectl prints it): "
                    "decode it with `| base64 -d`")
        return f"is not a Fernet key ({len(value)} characters, does not decode to 32 bytes): {FERNET_RULE}"
    if new and hashlib.sha256(value.encode()).hexdigest() == CHART_DEFAULT_FERNET_SHA256:
        return ("is the chart's public default fernet key (printed in its values.yaml): never seal it; "
                "if your deployment uses it now, rotate away from it: AIRFLOW_FERNET_KEY_OLD=<it> make rotate-fernet")
    if new and len(set(raw)) < 16:
        return f"is not random ({len(set(raw))} distinct bytes of 32): {FERNET_RULE}"
    return ""


# The chart hands both passwords to Airflow through `bash -c 'eval "$..._CMD"'` pipelines that
# quote them with urllib.parse.quote(), which leaves '/' as is (the Celery worker then cannot parse
# its result-backend URL). Airflow's KubernetesExecutor config (conf.as_dict) also expands the
# environment into those commands before shlex-splitting them: a quote, backslash, backtick or '$'
# in a password then breaks the command or is eaten by the shell. And the chart's pgbouncer writes
# its auth_file with an unquoted expansion (whitespace splits the password). Found by the runtime
# harness (tests/test_runtime.py) against the real chart and Airflow.
UNSAFE_IN_CHART = " \"'/\\`$"
# ElastiCache AUTH tokens: 16-128 characters, the only non-alphanumerics ! & # $ ^ < > - (AWS
# CreateReplicationGroup AuthToken), minus '$' (above).
ELASTICACHE_TOKEN = re.compile(r"[A-Za-z0-9!&#^<>-]{16,128}")
ELASTICACHE_TOKEN_RULE = ("an ElastiCache AUTH token is 16-128 characters: letters, digits and only ! & # ^ < > - "
                          "(AWS also allows '$', which the chart's broker URL command would expand)")
DB_PASSWORD = re.compile("[%s]{8,128}" % "".join(re.escape(chr(c)) for c in range(0x21, 0x7F)  # noqa: UP031
                                                  if chr(c) not in UNSAFE_IN_CHART))
DB_PASSWORD_RULE = ("the RDS password is 8-128 printable ASCII characters without spaces or any of "
                    "\" ' / \\ ` $ (the chart's connection commands and pgbouncer script mangle them)")
# Flask signs sessions with it: long and random (the generated one is 64 URL-safe characters);
# this also refuses the chart's public default, which is short and has spaces.
WEBSERVER_KEY = re.compile(r"[!-~]{32,}")
WEBSERVER_KEY_RULE = "the webserver secret key is at least 32 printable characters without spaces (a random token)"
VALUE_RULES = {("airflow-redis", "password"): (ELASTICACHE_TOKEN, ELASTICACHE_TOKEN_RULE),
               ("airflow-db", "password"): (DB_PASSWORD, DB_PASSWORD_RULE),
               ("airflow-webserver-secret-key", "value"): (WEBSERVER_KEY, WEBSERVER_KEY_RULE),
               ("airflow-api-secret-key", "api-secret-key"): (WEBSERVER_KEY, WEBSERVER_KEY_RULE.replace(
                   "webserver secret key", "API secret key")),
               ("airflow-jwt-secret", "jwt-secret"): (WEBSERVER_KEY, WEBSERVER_KEY_RULE.replace(
                   "webserver secret key", "JWT secret"))}


def check_plaintext(name: str, key: str, value: str) -> str:
    """Refuse values that would silently break a login (a trailing newline from `echo`), and
    values the service itself refuses."""
    if not value:
        return f"{name}/{key} is empty"
    if value != value.strip() or "\n" in value or "\r" in value:
        return (f"{name}/{key} has leading/trailing whitespace or a newline "
                "(`echo` adds one: use printf '%s')")
    if name == "airflow-fernet-key" and key in facts.FERNET_KEYS and (problem := fernet_key_problem(value)):
        return f"{name}/{key} {problem}"
    pattern, rule = VALUE_RULES.get((name, key), (None, ""))
    if pattern is not None and not pattern.fullmatch(value):
        return f"{name}/{key} breaks a rule: {rule}"
    return ""


def compose_value(name: str, key: str, shape: str, given: Any) -> str:
    """A composite entry's plaintext: `shape` (its compose annotation) with each ${ENV} reference
    replaced by that secret's value: given(entry), else its environment variable."""
    comp = facts.composite(name, key)
    if comp is None:
        raise SealError(f"{name}/{key} has a {facts.COMPOSE_ANNOTATION}{key} annotation, but it is not a value this "
                        "template builds (known: " + ", ".join(f"{c.secret}/{c.key}" for c in facts.COMPOSITES) + ")")
    values: dict[str, str] = {}
    for ref in facts.compose_refs(shape):
        entry = facts.entry_for_env(ref)
        if entry is None or entry.generate:
            known = ", ".join(e.env for e in facts.SECRETS if not e.generate)
            raise SealError(f"{name}/{key}: its shape names ${{{ref}}}, which is not a secret make seal asks for "
                            f"(known: {known})")
        value = given(entry) or os.environ.get(entry.env, "")
        if not value:
            raise SealError(f"no value for {ref} ({entry.prompt}), which {name}/{key} holds: set {ref} "
                            "(values are never taken from arguments)")
        if problem := check_plaintext(entry.secret, entry.key, value):
            raise SealError(f"{ref}: {problem}")
        values[ref] = value
    return facts.compose(shape, comp.quoting, values)


def shape_of(meta: dict, key: str) -> str | None:
    """The compose annotation of one encryptedData key: it is a composite entry."""
    value = (meta.get("annotations") or {}).get(facts.COMPOSE_ANNOTATION + key)
    return None if value is None else str(value)


def settings_of(path: Path) -> dict:
    """The settings file of the SealedSecret in `path` (secrets/settings/<name>.yaml: the non-secret
    half, which follows the answers), or {} for a repository from before it."""
    settings = path.parent / SETTINGS_DIR / path.name
    doc = _yaml().load(settings.read_text()) if settings.is_file() else None
    return doc if isinstance(doc, dict) else {}


def wanted_shape(path: Path, meta: dict, key: str) -> str | None:
    """The shape the answers want (the settings file's), else the one the file was sealed from."""
    wanted = shape_of(settings_of(path).get("metadata") or {}, key)
    return wanted if wanted is not None else shape_of(meta, key)


def _composite(name: str, key: str, shape: str, *, state: str, interactive: bool,
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
    return f"{PLACEHOLDER_PREFIX}: run make seal ENV={env} SECRET={name}"


# ---------------------------------------------------------------- file editing (make seal)

def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and quoting survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # ciphertext stays on one line
    return yaml


def entry_state(value: Any) -> str:
    """"placeholder" (nothing sealed: empty or UNSEALED: ...), "sealed" (a ciphertext in the
    controller's format) or "unknown"."""
    if value is None or not str(value).strip() or str(value).startswith(PLACEHOLDER_PREFIX):
        return "placeholder"
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        return "unknown"
    if len(raw) < 2:
        return "unknown"
    (size,) = struct.unpack(">H", raw[:2])
    return "sealed" if size >= 128 and len(raw) >= 2 + size + 16 else "unknown"  # RSA block, then AES-GCM tag


def file_scope(meta: dict) -> str:
    annotations = meta.get("annotations") or {}
    for scope, annotation in SCOPE_ANNOTATIONS.items():
        if str(annotations.get(annotation, "")).lower() == "true":
            return scope
    return "strict"


@dataclass
class FilePlan:
    """What sealing one SealedSecret file will do; nothing is written until `write()`."""

    path: Path
    name: str
    sealed: dict[str, str] = field(default_factory=dict)  # key -> note on where the value came from
    kept: dict[str, str] = field(default_factory=dict)  # key -> why the sealed ciphertext stays
    renamed: tuple[str, str] | None = None  # (old key, new key): the fernet key moved to its chart's name
    content: str | None = None  # the new file text; None: the file stays byte-identical

    def write(self) -> None:
        if self.content is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.content)
        os.replace(tmp, self.path)  # never a half-written manifest


def plan_file(path: Path, public_key, *, scope: str, interactive: bool,
              values: dict[str, str] | None = None, regenerate: bool = False,
              parts: dict[str, str | None] | None = None, flavor: str | None = None) -> FilePlan:
    """Seal the encryptedData entries of one SealedSecret file, in memory.

    `values` are given plaintexts (rotate-fernet); `flavor` gives airflow-fernet-key its chart's
    key. A generated entry (fernet key, webserver, API or JWT key) that is sealed already is kept
    unless its variable gives a value or `regenerate`."""
    yaml = _yaml()
    doc = yaml.load(path.read_text())
    if not doc or doc.get("kind") != "SealedSecret":
        raise SealError(f"{path} is not a SealedSecret")
    meta, spec = doc["metadata"], doc["spec"]
    name, namespace = meta["name"], meta.get("namespace")
    template_meta = spec.get("template", {}).get("metadata", {}) or {}
    bound = (template_meta.get("name", name), template_meta.get("namespace", namespace))
    if not namespace or bound != (name, namespace):
        raise SealError(f"{path}: metadata and spec.template.metadata must agree on name and namespace "
                        "(the ciphertext is bound to them)")
    plan = FilePlan(path, name)
    if flavor and name == "airflow-fernet-key":
        plan.renamed = rename_fernet_key(spec["encryptedData"], facts.FERNET_KEY_OF[flavor])
    new: dict[str, str] = {}
    parts = {} if parts is None else parts
    for key in list(spec["encryptedData"]):
        source = source_for(name, key)
        state = entry_state(spec["encryptedData"][key])
        if (shape := wanted_shape(path, meta, key)) is not None:
            if state == "sealed" and shape != shape_of(meta, key):
                state = "stale"  # sealed from another shape (an answer moved): it must be sealed again
            try:
                got = _composite(name, key, shape, state=state, interactive=interactive, parts=parts)
            except SealError as exc:
                if state != "stale":
                    raise
                raise SealError(f"{path}: {name}/{key} was sealed for {shape_of(meta, key)!r}, but the answers "
                                f"now give {shape!r} ({SETTINGS_DIR}/{path.name}): it must be sealed again: "
                                f"{exc}") from None
            if got is None:
                plan.kept[key] = "sealed already, kept (empty answer)"
                continue
            value, note = got, "built from " + ", ".join(facts.compose_refs(shape)) if facts.compose_refs(shape) else ""
            if state == "stale":
                note += f" (sealed for an old {facts.COMPOSE_ANNOTATION}{key})"
            meta.setdefault("annotations", {})[facts.COMPOSE_ANNOTATION + key] = shape  # what it is sealed from
        elif (values or {}).get(key):
            value, note = values[key], ""
        elif source.generate and not os.environ.get(source.env):
            if state != "placeholder" and not regenerate:
                if state == "unknown":
                    raise SealError(f"{path}: {name}/{key} is neither a placeholder nor a sealed value, so it is "
                                    f"not regenerated: set {source.env} to the value in use, or REGENERATE=1")
                plan.kept[key] = (f"sealed already, not regenerated: {source.keep} "
                                  f"(to replace it: {source.env}=<value> or REGENERATE=1)")
                continue
            value = generate(source.generate)
            note = "generated" if state == "placeholder" else "REGENERATE=1: a new value replaces the sealed one"
        else:
            got = plaintext(name, key, interactive=interactive, sealed=state == "sealed")
            if got is None:
                plan.kept[key] = "sealed already, kept (empty answer)"
                continue
            value = got
            note = f"from {source.env}" if os.environ.get(source.env) else ""
            if source.generate and state != "placeholder":
                note += ", replaces the sealed one"
        new[key] = seal_value(public_key, value.encode(), namespace=namespace, name=name, scope=scope)
        plan.sealed[key] = note
    current = file_scope(meta)
    if plan.kept and current != scope:  # a kept ciphertext cannot be re-encrypted: its label is the scope
        envs = ", ".join(source_for(name, k).env for k in plan.kept)
        raise SealError(f"{path}: {', '.join(plan.kept)} stays sealed {current} (kept), so {name} cannot be "
                        f"sealed {scope}: give the value in use ({envs}; kubectl get secret {name} ... | base64 -d), "
                        f"or keep SCOPE={current}")
    dropped = _drop_settled_data(path, spec)
    if not new and not plan.renamed and not dropped:
        return plan  # everything kept: the file stays byte-identical
    spec["encryptedData"].update(new)
    annotations = meta.get("annotations") or {}
    for other in SCOPE_ANNOTATIONS.values():
        annotations.pop(other, None)
    if scope != "strict":
        annotations[SCOPE_ANNOTATIONS[scope]] = "true"
    if annotations:
        meta["annotations"] = annotations
    elif "annotations" in meta:
        del meta["annotations"]
    out = io.StringIO()
    yaml.dump(doc, out)
    plan.content = out.getvalue()
    return plan


def _drop_settled_data(path: Path, spec: Any) -> list[str]:
    """Remove from the sealed file the template.data entries its settings file now holds with the
    same value (repositories from before settings/ carried them here); a different value is kept,
    and make validate says to move it."""
    settled = ((settings_of(path).get("spec") or {}).get("template") or {}).get("data") or {}
    data = (spec.get("template") or {}).get("data")
    dropped = [k for k in list(data or {}) if k in settled and str(data[k]) == str(settled[k])]
    for key in dropped:
        del data[key]
    if dropped and not data:
        del spec["template"]["data"]
    return dropped


def rename_fernet_key(entries: Any, want: str) -> tuple[str, str] | None:
    """Give airflow-fernet-key the key its chart reads (a repo moved to the other chart flavor keeps
    the other one: sealed files are never overwritten by copier update). The ciphertext moves as is:
    the controller binds it to the Secret's name and namespace, not to the key, so the fernet key in
    use, and every connection it encrypted, survives the move."""
    others = [k for k in entries if k in facts.FERNET_KEYS and k != want]
    if want in entries or len(others) != 1:
        return None
    old = others[0]
    entries.insert(list(entries).index(old), want, entries.pop(old))
    return old, want


def repo_flavor(repo: Path) -> str:
    """The repository's airflow_chart answer; an answers file from before the question: community."""
    answers = _yaml().load((repo / facts.ANSWERS_FILE).read_text()) if (repo / facts.ANSWERS_FILE).exists() else {}
    return str((answers or {}).get("airflow_chart") or facts.LEGACY_FLAVOR)


def seal_file(path: Path, public_key, *, scope: str, interactive: bool,
              values: dict[str, str] | None = None, regenerate: bool = False) -> list[str]:
    """Seal one SealedSecret file in place; returns the keys sealed."""
    plan = plan_file(path, public_key, scope=scope, interactive=interactive, values=values, regenerate=regenerate)
    plan.write()
    return sorted(plan.sealed)


def is_sealed_secret(path: Path) -> bool:
    """A SealedSecret manifest (the folder also holds its kustomization.yaml and the Namespace)."""
    try:
        doc = _yaml().load(path.read_text())
    except Exception as exc:  # ruamel's parser errors share no useful base class
        raise SealError(f"{path}: not readable YAML: {exc}") from exc
    return isinstance(doc, dict) and doc.get("kind") == "SealedSecret"


def secret_files(repo: Path, env: str, secret: str | None) -> list[Path]:
    folder = repo / "deploy" / "overlays" / env / "secrets"
    if not folder.is_dir():
        raise SealError(f"no environment {env!r}: {folder} does not exist")
    files = [f for f in sorted(folder.glob("*.yaml")) if is_sealed_secret(f)]
    if secret:
        have = ", ".join(f.stem for f in files)
        files = [f for f in files if f.stem == secret]
        if not files:
            raise SealError(f"no SealedSecret {secret!r} in {folder} (have: {have})")
    return files


def _refs(path: Path) -> set[str]:
    doc = _yaml().load(path.read_text())
    meta = doc.get("metadata") or {}
    return {ref for key in (doc.get("spec") or {}).get("encryptedData") or {}
            if (shape := wanted_shape(path, meta, key)) for ref in facts.compose_refs(shape)}


def with_shared_parts(chosen: list[Path], every: list[Path]) -> list[Path]:
    """`chosen`, plus every file whose composite entries hold a secret a chosen one holds: sealing
    one connection URL with a new password must seal the others with it too."""
    refs = set().union(*(_refs(p) for p in chosen)) if chosen else set()
    extra = [p for p in every if p not in chosen and refs & _refs(p)]
    for p in extra:
        print(f"also   {p.name}: holds {', '.join(sorted(refs & _refs(p)))} too")
    return chosen + extra


def find_cert(repo: Path, env: str, given: str | None) -> str:
    explicit = given or os.environ.get(CERT_ENV)
    if explicit:
        if not Path(explicit).expanduser().is_file():
            raise SealError(f"certificate {explicit} does not exist")
        return explicit
    default = repo / "deploy/overlays" / env / "sealed-secrets-cert.pem"
    if default.is_file():
        return str(default)
    raise SealError(f"no certificate: pass CERT=path (from `kubeseal --fetch-cert`), set {CERT_ENV}, "
                    f"or save it as deploy/overlays/{env}/sealed-secrets-cert.pem")


def cmd_seal(args: argparse.Namespace) -> int:
    key = read_certificate(find_cert(args.repo, args.env, args.cert))
    interactive = sys.stdin.isatty()
    # Every value first (prompts, checks): an error leaves every file as it was. A password held by
    # several composite entries is asked once and sealed into all of them.
    parts: dict[str, str | None] = {}
    flavor = repo_flavor(args.repo)
    plans = [plan_file(path, key, scope=args.scope, interactive=interactive, regenerate=args.regenerate,
                       parts=parts, flavor=flavor)
             for path in with_shared_parts(secret_files(args.repo, args.env, args.secret),
                                           secret_files(args.repo, args.env, None))]
    for plan in plans:
        plan.write()
    stamp(args.repo, args.env)
    for plan in plans:
        where = plan.path.relative_to(args.repo)
        if plan.renamed:
            print(f"renamed {where}: {plan.renamed[0]} -> {plan.renamed[1]} (the key the {facts.CHART_FLAVORS[flavor]} "
                  "chart reads; the sealed fernet key is kept: its ciphertext is bound to the Secret, not the key)")
        if plan.sealed:
            entries = ", ".join(f"{k} ({note})" if note else k for k, note in sorted(plan.sealed.items()))
            print(f"sealed {where}: {entries} ({args.scope})")
        for k, why in sorted(plan.kept.items()):
            print(f"kept   {where}: {k} {why}")
    return 0


def stamp(repo: Path, env: str) -> list[str]:
    """Write the revision stamps (airflow_gitops.stamps) into deploy/overlays/<env>/secrets-revision.yaml,
    so the pods that read a changed Secret restart; returns the values paths it changed. The file is
    the tools' own: written whole, for the chart the repository is on now (a switched chart keeps no
    stamp of the other's)."""
    import yaml as pyyaml

    overlay = repo / "deploy" / "overlays" / env
    path = overlay / stamps.REVISION_FILE
    before = (pyyaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    flavor = repo_flavor(repo)
    want = stamps.revisions(overlay, flavor)
    values: dict = {}
    for keys, (group, annotation) in stamps.stamp_paths(flavor).items():
        node = values
        for key in keys:
            node = node.setdefault(key, {})
        node[annotation] = want[group]
    changed = stamps.stale(before, overlay, flavor)
    if values != before:
        header = "".join(line + "\n" for line in (path.read_text().splitlines() if path.is_file() else [])
                         if line.startswith("#"))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(header + pyyaml.safe_dump(values, sort_keys=False))
        os.replace(tmp, path)
        print(f"stamped deploy/overlays/{env}/{stamps.REVISION_FILE}: {', '.join(changed) or 'rewritten'} "
              "(the pods reading them restart)")
    return changed


def cmd_stamp(args: argparse.Namespace) -> int:
    stamp(args.repo, args.env)
    return 0


ROTATE_OLD_ENV = "AIRFLOW_FERNET_KEY_OLD"


def fernet_entry_key(path: Path) -> str:
    """airflow-fernet-key's encryptedData key: `value` (community chart) or `fernet-key` (official)."""
    keys = [k for k in (_yaml().load(path.read_text())["spec"].get("encryptedData") or {}) if k in facts.FERNET_KEYS]
    if len(keys) != 1:
        raise SealError(f"{path}: expected one of {', '.join(facts.FERNET_KEYS)} in encryptedData")
    return keys[0]


def cmd_rotate_fernet(args: argparse.Namespace) -> int:
    """Step 1 of a fernet rotation: seal "new,old" so Airflow decrypts with both."""
    key = read_certificate(find_cert(args.repo, args.env, args.cert))
    (path,) = secret_files(args.repo, args.env, "airflow-fernet-key")
    if os.environ.get("AIRFLOW_FERNET_KEY"):
        raise SealError("AIRFLOW_FERNET_KEY is set: rotate-fernet generates the new key itself and takes the key "
                        f"in use from {ROTATE_OLD_ENV}; unset AIRFLOW_FERNET_KEY (it is for step 3, make seal)")
    old = os.environ.get(ROTATE_OLD_ENV) or (
        getpass.getpass(f"current fernet key ({ROTATE_OLD_ENV}): ") if sys.stdin.isatty() else "")
    if not old:
        raise SealError(f"set {ROTATE_OLD_ENV} to the key in use, e.g. from "
                        "`kubectl get secret airflow-fernet-key -o jsonpath='{.data.value}' | base64 -d`")
    if "," in old:
        raise SealError(f"{ROTATE_OLD_ENV} holds several keys: finish the previous rotation first (step 3: seal "
                        "the first key alone), then rotate from that key")
    if problem := fernet_key_problem(old, new=False):
        raise SealError(f"{ROTATE_OLD_ENV} {problem}; nothing written")
    new = generate("fernet")
    if new == old or fernet_key_problem(new):  # pragma: no cover - a broken random source
        raise SealError("the generated key is unusable: nothing written")
    entry_key = fernet_entry_key(path)
    seal_file(path, key, scope=args.scope, interactive=False, values={entry_key: f"{new},{old}"})
    print(f"sealed {path.relative_to(args.repo)}: value = <new key>,<old key> ({args.scope})")
    if weak := fernet_key_problem(old):  # decrypts, but public or not random: all the more reason to rotate
        print(f"note: the old key {weak.split(':')[0]}: finish all three steps to stop using it")
    stamp(args.repo, args.env)
    print("next: commit and let the GitOps engine roll out; then in a scheduler pod run `airflow rotate-fernet-key`;")
    print("then re-seal the new key alone: AIRFLOW_FERNET_KEY=<first key of the Secret> "
          f"make seal ENV={args.env} SECRET=airflow-fernet-key")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, helptext in (("seal", cmd_seal, "seal SealedSecret entries of an environment"),
                                 ("rotate-fernet", cmd_rotate_fernet, "seal '<new>,<old>' fernet keys")):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=func)
        p.add_argument("--env", required=True, help="environment (deploy/overlays/<env>)")
        p.add_argument("--cert", help=f"controller certificate PEM (default: ${CERT_ENV}, "
                       "then deploy/overlays/<env>/sealed-secrets-cert.pem)")
        p.add_argument("--scope", choices=SCOPES, default="strict")
        p.add_argument("--repo", type=Path, default=Path.cwd())
        if name == "seal":
            p.add_argument("--secret", help="only this SealedSecret (file name without .yaml)")
            p.add_argument("--regenerate", action="store_true",
                           help="replace sealed generated keys (fernet, webserver, API, JWT) with new ones: "
                                "before go-live only, a new fernet key makes stored connections and variables "
                                "unreadable")
    p = sub.add_parser("stamp", help="stamp the values so pods reading changed Secrets or settings restart")
    p.set_defaults(func=cmd_stamp)
    p.add_argument("--env", required=True, help="environment (deploy/overlays/<env>)")
    p.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SealError as exc:
        print(f"seal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
