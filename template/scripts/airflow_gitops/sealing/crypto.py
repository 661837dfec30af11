"""The sealed-secrets controller's encryption, offline: the certificate, the scopes, the format.

Format (sealed-secrets pkg/crypto HybridEncrypt): a random 32-byte session key is
encrypted with RSA-OAEP(SHA-256) labelled with the scope, the value with AES-256-GCM
(zero nonce, the key is single-use), output = uint16 len(rsa) || rsa || aes, base64.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import secrets
import struct
from pathlib import Path
from typing import Any

from airflow_gitops import facts
from airflow_gitops.errors import UserError

SCOPES = ("strict", "namespace-wide", "cluster-wide")
SCOPE_ANNOTATIONS = facts.SEALED_SCOPE_ANNOTATIONS  # the scopes other than strict, as annotations
PLACEHOLDER_PREFIX = facts.PLACEHOLDER_PREFIX


def _crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UserError("sealing needs the Python package 'cryptography': `make tools` installs it here; "
                        "for copier copy run `pipx inject copier cryptography`") from exc
    return x509, hashes, padding, rsa, AESGCM


def load_certificate(pem: bytes, *, now: dt.datetime | None = None):
    """The controller's public key from its certificate (`kubeseal --fetch-cert`), checked."""
    x509, _, _, rsa, _ = _crypto()
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise UserError("not an X.509 certificate PEM (expected '-----BEGIN CERTIFICATE-----'; "
                        "get it with `kubeseal --fetch-cert`)")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise UserError(f"unreadable certificate: {exc}") from exc
    now = now or dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        raise UserError(f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}: fetch the current one")
    if now < cert.not_valid_before_utc:
        raise UserError(f"certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise UserError("certificate key is not RSA: not a sealed-secrets controller certificate")
    return key


def read_certificate(path: str | os.PathLike[str]):
    try:
        pem = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read certificate {path}: {exc.strerror}") from exc
    return load_certificate(pem)


def scope_label(scope: str, namespace: str, name: str) -> bytes:
    """OAEP label binding the ciphertext to where it may be decrypted."""
    if scope == "strict":
        return f"{namespace}/{name}".encode()
    if scope == "namespace-wide":
        return namespace.encode()
    if scope == "cluster-wide":
        return b""
    raise UserError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")


def seal_value(public_key, value: bytes, *, namespace: str, name: str, scope: str = "strict") -> str:
    _, hashes, padding, _, AESGCM = _crypto()
    label = scope_label(scope, namespace, name)
    session_key = secrets.token_bytes(32)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=label or None)
    wrapped = public_key.encrypt(session_key, oaep)
    sealed = AESGCM(session_key).encrypt(b"\0" * 12, value, None)
    return base64.b64encode(struct.pack(">H", len(wrapped)) + wrapped + sealed).decode()


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
