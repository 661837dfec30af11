"""A read-only Kubernetes API stand-in serving recorded objects to the real kubectl: it is NOT a cluster.

`make preflight` asks a cluster, through the user's kubectl, for its version, CRDs, controllers and
namespaces. No kube-apiserver can be had here (tests/runtime/kubeapi.py says why), so this serves
hand-made objects in the shapes the API returns (tests/fixtures/cluster/, see its README) over HTTPS
on 127.0.0.1, and a kubeconfig points the real kubectl (.tools/bin/kubectl) at it. kubeapi.py serves
a different client (the KubernetesExecutor inside the sandbox: pod writes and watches), so the two
share only the harness CA (tls.py), not a handler.

Rules it enforces, as the API server does:
- a request without the kubeconfig's bearer token gets 401 Unauthorized;
- only GET (and HEAD): any other verb gets 405 MethodNotAllowed (it is read-only, and so is preflight);
- a named object that is not recorded gets 404 with a Status object, reason NotFound, details
  {name, group, kind} and the message `<resource>.<group> "<name>" not found`, as the API's;
- a path that is no resource gets 404 NotFound "the server could not find the requested resource";
- a collection (.../deployments) lists the namespace's objects; a namespace that does not exist
  lists nothing, as the API does;
- /version, /api, /apis and the group-version discovery documents for what is recorded.
Every request is recorded (method, path) so a test can see what kubectl asked.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from runtime.tls import CertificateAuthority

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cluster"
# kind -> (resource, namespaced): the REST mapping of every kind the fixtures hold.
RESOURCES = {
    "Namespace": ("namespaces", False), "ServiceAccount": ("serviceaccounts", True),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "Deployment": ("deployments", True), "DaemonSet": ("daemonsets", True), "StatefulSet": ("statefulsets", True),
    "CSIDriver": ("csidrivers", False), "IngressClass": ("ingressclasses", False),
}


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details or {}, "code": code}


class Objects:
    """The recorded cluster: /version and objects by their API path."""

    def __init__(self, version: dict, items: list[dict]) -> None:
        self.version = version
        self.items = items

    @classmethod
    def recorded(cls, name: str = "good") -> Objects:
        """A fixture set: <name>.json (a v1 List, as `kubectl get -o json` prints) and version.json."""
        items = json.loads((FIXTURES / f"{name}.json").read_text())["items"]
        return cls(json.loads((FIXTURES / "version.json").read_text()), items)

    def copy(self) -> Objects:
        return Objects(copy.deepcopy(self.version), copy.deepcopy(self.items))

    def find(self, kind: str, name: str, namespace: str = "") -> dict:
        return next(o for o in self.items if o["kind"] == kind and o["metadata"]["name"] == name
                    and o["metadata"].get("namespace", "") == namespace)

    def remove(self, kind: str, name: str, namespace: str = "") -> Objects:
        self.items.remove(self.find(kind, name, namespace))
        return self

    def answer(self, path: str) -> tuple[int, dict]:
        if path == "/version":
            return 200, self.version
        found = self.discovery(path)
        if found is not None:
            return 200, found
        route = self.route(path)
        if route is None:
            return 404, status(404, "NotFound", "the server could not find the requested resource")
        api_version, resource, namespace, name = route
        kind = next(k for k, (r, _) in RESOURCES.items() if r == resource)
        matching = [o for o in self.items if o["kind"] == kind and o["apiVersion"] == api_version
                    and (namespace is None or o["metadata"].get("namespace", "") == namespace)]
        if name is None:
            return 200, {"kind": f"{kind}List", "apiVersion": api_version, "metadata": {"resourceVersion": "1000"},
                         "items": matching}
        obj = next((o for o in matching if o["metadata"]["name"] == name), None)
        if obj is not None:
            return 200, obj
        group = api_version.rpartition("/")[0]
        return 404, status(404, "NotFound", f'{resource}.{group} "{name}" not found' if group else
                           f'{resource} "{name}" not found', {"name": name, "group": group, "kind": resource})

    @staticmethod
    def route(path: str) -> tuple[str, str, str | None, str | None] | None:
        """(apiVersion, resource, namespace, name) of a resource path; None for any other path."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            api_version, rest = "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"] and len(rest) == 2:
            pass  # a Namespace itself: /api/v1/namespaces/<name>
        known = {r: namespaced for r, namespaced in RESOURCES.values()}
        if not rest or rest[0] not in known or len(rest) > 2 or (namespace is not None and not known[rest[0]]):
            return None
        if known[rest[0]] and namespace is None and len(rest) == 2:
            return None  # a namespaced object needs its namespace in the path
        return api_version, rest[0], namespace, rest[1] if len(rest) == 2 else None

    def discovery(self, path: str) -> dict | None:
        versions = sorted({o["apiVersion"] for o in self.items} | {"apps/v1"})
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = sorted({v.rpartition("/")[0] for v in versions if "/" in v})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": v, "version": v.rpartition("/")[2]}
                                         for v in versions if v.startswith(g + "/")],
                 "preferredVersion": {"groupVersion": next(v for v in versions if v.startswith(g + "/")),
                                      "version": next(v for v in versions if v.startswith(g + "/")).rpartition("/")[2]}}
                for g in groups]}
        group_version = "v1" if path == "/api/v1" else path.removeprefix("/apis/")
        if group_version not in versions:
            return None
        kinds = sorted({o["kind"] for o in self.items if o["apiVersion"] == group_version})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": [
            {"name": RESOURCES[k][0], "singularName": k.lower(), "namespaced": RESOURCES[k][1], "kind": k,
             "verbs": ["get", "list", "watch"]} for k in kinds]}


class ClusterAPI:
    """The stand-in on 127.0.0.1 (HTTPS, a port of its own) and a kubeconfig for it."""

    def __init__(self, objects: Objects, workdir: Path, token: str = "preflight-test-token") -> None:
        self.objects = objects
        self.workdir = workdir
        self.token = token
        self.requests: list[tuple[str, str]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:  # quiet: requests are recorded instead
                pass

            def _send(self, code: int, body: dict[str, Any], head: bool = False) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)

            def _answer(self, head: bool = False) -> None:
                api.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._send(401, status(401, "Unauthorized", "Unauthorized"), head)
                self._send(*api.objects.answer(urlparse(self.path).path), head=head)

            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def _refuse(self) -> None:
                api.requests.append((self.command, self.path))
                self._send(405, status(405, "MethodNotAllowed", f"{self.command} is not allowed: read-only stand-in"))

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        return Handler

    @contextmanager
    def serving(self) -> Iterator[ClusterAPI]:
        ca = CertificateAuthority(self.workdir / "ca")
        cert = ca.issue("clusterapi", ["127.0.0.1"])
        server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert.cert, cert.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        self.ca_bundle = ca.bundle
        self.kubeconfig = kubeconfig(self.workdir / "kubeconfig", self.url, ca.bundle, self.token)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def kubeconfig(path: Path, server: str, ca_bundle: Path | None, token: str, context: str = "stand-in") -> Path:
    """A kubeconfig with one cluster, one token user and one current context."""
    cluster: dict[str, Any] = {"server": server}
    if ca_bundle is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_bundle.read_bytes()).decode()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": "preflight", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "preflight"}}]}))
    path.chmod(0o600)
    return path
