"""An S3 stand-in on 127.0.0.1 that authorizes every request with an IAM identity policy, evaluated
as AWS documents it, so real boto3/Airflow code can be run against a generated log policy.

Requests (path-style: what botocore sends to an IP endpoint), their IAM action and resource:
  HEAD or GET /<bucket>/<key>      s3:GetObject     arn:<partition>:s3:::<bucket>/<key>
  PUT /<bucket>/<key>              s3:PutObject     the same (no copy, no multipart: 501)
  DELETE /<bucket>/<key>           s3:DeleteObject  the same
  GET /<bucket> (ListObjects v1/v2) and HEAD /<bucket> (HeadBucket): s3:ListBucket on
                                                    arn:<partition>:s3:::<bucket>
  any other sub-resource (?acl, ?uploads, ?versionId, ...): 501 NotImplemented, never guessed.
Request context: s3:prefix, s3:delimiter and s3:max-keys only when the ListObjects request carries
that parameter (even empty), else absent; s3:x-amz-server-side-encryption when a PUT sends the
header; aws:SecureTransport "false" (plain HTTP).

Policy evaluation (IAM User Guide, "Policy evaluation logic", for one identity-based policy and
nothing else: no SCPs, boundaries, session or bucket policies):
- An explicit Deny in a matching statement wins; else an Allow in one; else the implicit deny.
- A statement matches when an Action matches (case-insensitive; `*` and `?` wildcards), a Resource
  matches (case-sensitive; `*` and `?`) and its whole Condition holds.
- Condition (IAM User Guide, "Condition operators"): operators AND, keys AND, a key's values OR;
  key names case-insensitive. String{Equals,NotEquals,EqualsIgnoreCase,NotEqualsIgnoreCase,Like,
  NotLike} and Bool, each also as ...IfExists, and Null. A key absent from the request context
  makes a condition false, a negated one (String...Not...) true, an ...IfExists one true; Null
  "true" holds when the key is absent, "false" when present.
- Anything else (NotAction, NotResource, Principal, other operators, ForAnyValue/ForAllValues,
  policy variables) raises ValueError: the stand-in refuses rather than guesses.

Answers: 403 AccessDenied when the request is denied. A GET/HEAD of a missing key: 404 NoSuchKey
only if s3:ListBucket on the bucket is allowed for this request's context (it has no s3:prefix),
else 403 AccessDenied (S3 API reference, GetObject and HeadObject, "Permissions"). A bucket it
does not hold: 404 NoSuchBucket.
Authentication: the Authorization header must be SigV4 for the configured access key; the
signature itself is not verified (the caller's identity is not under test).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from xml.sax.saxutils import escape

ALLOW, DENY, IMPLICIT_DENY = "Allow", "Deny", "ImplicitDeny"
STATEMENT_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}
LIST_PARAMS = {"list-type", "prefix", "delimiter", "max-keys", "encoding-type", "start-after",
               "continuation-token", "fetch-owner", "marker"}
CONTEXT_PARAMS = ("prefix", "delimiter", "max-keys")  # the ListObjects parameters IAM sees as s3:<name>


def _glob(pattern: str, text: str, ignore_case: bool = False) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one; everything else literal."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


STRING_OPERATORS = {  # operator: (value matches, negated)
    "StringEquals": (lambda want, got: want == got, False),
    "StringNotEquals": (lambda want, got: want == got, True),
    "StringEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), True),
    "StringLike": (lambda want, got: _glob(want, got), False),
    "StringNotLike": (lambda want, got: _glob(want, got), True),
    "Bool": (lambda want, got: want.lower() == got.lower(), False),
}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def condition_holds(operator: str, key: str, values: Any, context: dict[str, str]) -> bool:
    present = {k.lower(): v for k, v in context.items()}
    got = present.get(key.lower())
    if any("${" in str(v) for v in _as_list(values)):
        raise ValueError(f"policy variables are not supported: {values!r}")
    if operator == "Null":
        return any((str(v).lower() == "true") == (got is None) for v in _as_list(values))
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in STRING_OPERATORS:
        raise ValueError(f"condition operator {operator!r} is not supported by the stand-in")
    matches, negated = STRING_OPERATORS[base]
    if got is None:
        return if_exists or negated
    hit = any(matches(str(v), got) for v in _as_list(values))
    return not hit if negated else hit


def statement_matches(statement: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    unknown = set(statement) - STATEMENT_KEYS
    if unknown or statement.get("Effect") not in (ALLOW, DENY):
        what = sorted(unknown) or statement.get("Effect")
        raise ValueError(f"statement {statement.get('Sid')!r}: {what} is not supported by the stand-in")
    if not any(_glob(str(a), action, ignore_case=True) for a in _as_list(statement.get("Action", []))):
        return False
    if not any(_glob(str(r), resource) for r in _as_list(statement.get("Resource", []))):
        return False
    return all(condition_holds(op, key, values, context)
               for op, block in (statement.get("Condition") or {}).items() for key, values in block.items())


def evaluate(policy: dict, action: str, resource: str, context: dict[str, str] | None = None) -> str:
    """ALLOW, DENY (an explicit Deny matched) or IMPLICIT_DENY (no Allow matched)."""
    matched = [s["Effect"] for s in _as_list(policy["Statement"])
               if statement_matches(s, action, resource, context or {})]
    return DENY if DENY in matched else ALLOW if ALLOW in matched else IMPLICIT_DENY


@dataclass
class S3StandIn:
    """The server's state: the policy it enforces, its buckets and objects, and what it answered."""

    policy: dict
    buckets: set[str]
    access_key: str
    partition: str = "aws"
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    seen: list[tuple[str, str, str, int]] = field(default_factory=list)  # method, action, resource, status
    url: str = ""

    def allowed(self, action: str, resource: str, context: dict[str, str]) -> bool:
        return evaluate(self.policy, action, resource, {"aws:SecureTransport": "false", **context}) == ALLOW

    def statuses(self, method: str, key: str = "") -> list[int]:
        """The status codes answered to `method` requests for a resource ending in `key`."""
        return [status for m, _, resource, status in self.seen if m == method and resource.endswith(key)]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # botocore sends `Expect: 100-continue` with a PUT
    state: S3StandIn

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        body = self._body()
        split = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        bucket, _, key = urllib.parse.unquote(split.path).lstrip("/").partition("/")
        state, arn = self.state, f"arn:{self.state.partition}:s3:::{bucket}"
        credential = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/", self.headers.get("Authorization", ""))
        if not credential or credential.group(1) != state.access_key:
            return self._error(method, "", arn, 403, "AccessDenied", "anonymous or unknown access key")
        if key:
            action, resource = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject",
                                "DELETE": "s3:DeleteObject"}[method], f"{arn}/{key}"
            unsupported = set(query) - {"x-id"} or (method == "PUT" and "x-amz-copy-source" in self.headers)
        else:
            action, resource = "s3:ListBucket", arn
            unsupported = method not in ("GET", "HEAD") or set(query) - LIST_PARAMS or (method == "HEAD" and query)
        if unsupported:
            return self._error(method, action, resource, 501, "NotImplemented", f"not modelled: {method} {self.path}")
        context = {f"s3:{p}": query[p][0] for p in CONTEXT_PARAMS if p in query}
        if method == "PUT" and "x-amz-server-side-encryption" in self.headers:
            context["s3:x-amz-server-side-encryption"] = self.headers["x-amz-server-side-encryption"]
        if bucket not in state.buckets:
            return self._error(method, action, resource, 404, "NoSuchBucket", bucket)
        if not state.allowed(action, resource, context):
            return self._error(method, action, resource, 403, "AccessDenied", f"{action} on {resource}")
        if not key:
            return self._list(method, action, resource, bucket, query)
        if method == "PUT":
            state.objects[(bucket, key)] = body
            return self._reply(method, action, resource, 200, b"", {"ETag": _etag(body)})
        if method == "DELETE":
            state.objects.pop((bucket, key), None)
            return self._reply(method, action, resource, 204, b"")
        if (bucket, key) not in state.objects:  # 404 only to a caller that may list the bucket
            if state.allowed("s3:ListBucket", arn, context):
                return self._error(method, action, resource, 404, "NoSuchKey", key)
            return self._error(method, action, resource, 403, "AccessDenied", f"{action} on {resource}")
        data = state.objects[(bucket, key)]
        headers = {"ETag": _etag(data), "Last-Modified": formatdate(usegmt=True), "Content-Type": "text/plain"}
        self._reply(method, action, resource, 200, data, headers)

    def _list(self, method: str, action: str, resource: str, bucket: str, query: dict[str, list[str]]) -> None:
        if method == "HEAD":
            return self._reply(method, action, resource, 200, b"")
        prefix, delimiter = query.get("prefix", [""])[0], query.get("delimiter", [""])[0]
        keys, folders = [], set()
        for b, key in sorted(self.state.objects):
            if b != bucket or not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                folders.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                keys.append(key)
        contents = "".join(f"<Contents><Key>{escape(k)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                           f"<ETag>{escape(_etag(self.state.objects[(bucket, k)]))}</ETag>"
                           f"<Size>{len(self.state.objects[(bucket, k)])}</Size><StorageClass>STANDARD</StorageClass>"
                           "</Contents>" for k in keys)
        common = "".join(f"<CommonPrefixes><Prefix>{escape(f)}</Prefix></CommonPrefixes>" for f in sorted(folders))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
               f'2006-03-01/"><Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>'
               f"<KeyCount>{len(keys) + len(folders)}</KeyCount><MaxKeys>1000</MaxKeys>"
               f"<IsTruncated>false</IsTruncated>{contents}{common}</ListBucketResult>")
        self._reply(method, action, resource, 200, xml.encode(), {"Content-Type": "application/xml"})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _error(self, method: str, action: str, resource: str, status: int, code: str, message: str) -> None:
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{escape(message)}'
               "</Message><RequestId>standin</RequestId></Error>")
        self._reply(method, action, resource, status, xml.encode(), {"Content-Type": "application/xml"})

    def _reply(self, method: str, action: str, resource: str, status: int, body: bytes,
               headers: dict[str, str] | None = None) -> None:
        self.state.seen.append((method, action, resource, status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'  # S3's ETag of a single-part object


@contextmanager
def s3_stand_in(policy: dict, buckets: set[str], access_key: str, partition: str = "aws") -> Iterator[S3StandIn]:
    """Serve S3StandIn on 127.0.0.1 (a free port) while the block runs."""
    state = S3StandIn(policy, buckets, access_key, partition)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Bound", (Handler,), {"state": state}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
