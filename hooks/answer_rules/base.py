"""The building blocks of the answer rules: required, a pattern, a DNS label, a port, a boolean.

A rule returns "" when the answer is fine, otherwise a message naming the field and the rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from airflow_gitops import facts

DNS_LABEL, DNS_NAME = facts.DNS1123_LABEL, facts.DNS1123_SUBDOMAIN


def required(field: str, value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"{field} is required (no default: it identifies your own infrastructure)"
    return ""


def matches(field: str, value: Any, pattern: str, rule: str, *, optional: bool = False) -> str:
    if optional and (value is None or value == ""):
        return ""
    missing = required(field, value)
    if missing:
        return missing
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        return f"{field} {value!r} is invalid: {rule}"
    return ""


def dns_label(field: str, max_len: int = 63) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        err = matches(field, value, DNS_LABEL.pattern,
                      "must be a DNS-1123 label (lowercase letters, digits, '-')")
        if not err and len(value) > max_len:
            err = f"{field} must be at most {max_len} characters (got {len(value)})"
        return err
    return rule


def port(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            return f"{field} {value!r} is invalid: must be an integer port between 1 and 65535"
        return ""
    return rule


def boolean(field: str) -> Callable[..., str]:
    def rule(value: Any, *_: Any) -> str:
        if not isinstance(value, bool):
            return f"{field} {value!r} is invalid: answer true or false"
        return ""
    return rule


def pg_identifier(field: str) -> Callable[[Any], str]:
    def rule(value: Any) -> str:
        err = matches(field, value, r"[a-z_][a-z0-9_]{0,62}",
                      "must be a PostgreSQL identifier: lowercase letters, digits, '_' (max 63)")
        if not err and value in ("postgres", "rdsadmin"):
            err = f"{field} must not be {value!r}: use a dedicated Airflow database user, not the master user"
        return err
    return rule


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
