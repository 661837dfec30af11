"""What a secret's plaintext must be before it is sealed: the rules of Airflow, the chart and AWS.

Each check returns "" or why the value is refused, so that copier's validators (hooks/sealing.py)
and `make seal` say the same thing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from airflow_gitops import facts

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
