"""The sealed-secrets controller's side of the format, for tests: keys and decryption.

Mirrors pkg/crypto HybridDecrypt: base64 -> uint16 length || RSA-OAEP(SHA-256, label)
session key || AES-256-GCM (zero nonce) ciphertext. A wrong label raises ValueError,
a flipped byte InvalidTag, exactly as the controller fails to decrypt.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID


def make_key(bits: int = 4096) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_cert(key: rsa.RSAPrivateKey, path: Path, *, days: int = 3650, offset_days: int = -1) -> Path:
    """A self-signed certificate like the controller's (`kubeseal --fetch-cert`)."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sealed-secret")])
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=offset_days)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def label_for(sealed_secret: dict) -> bytes:
    """The OAEP label the controller derives from the object it receives."""
    meta = sealed_secret["metadata"]
    annotations = meta.get("annotations") or {}
    if annotations.get("sealedsecrets.bitnami.com/cluster-wide") == "true":
        return b""
    if annotations.get("sealedsecrets.bitnami.com/namespace-wide") == "true":
        return meta["namespace"].encode()
    return f"{meta['namespace']}/{meta['name']}".encode()


def unseal(key: rsa.RSAPrivateKey, ciphertext: str, label: bytes) -> bytes:
    raw = base64.b64decode(ciphertext)
    (size,) = struct.unpack(">H", raw[:2])
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=label or None)
    session_key = key.decrypt(raw[2:2 + size], oaep)
    return AESGCM(session_key).decrypt(b"\0" * 12, raw[2 + size:], None)


def unseal_object(key: rsa.RSAPrivateKey, sealed_secret: dict) -> dict[str, str]:
    label = label_for(sealed_secret)
    return {k: unseal(key, v, label).decode() for k, v in sealed_secret["spec"]["encryptedData"].items()}
