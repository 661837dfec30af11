"""A Kubernetes API stand-in for the Kubernetes-flavoured executors: it is NOT a cluster.

There is no kube-apiserver on any registry this machine reaches, and a scheduler running the
KubernetesExecutor (alone or inside CeleryKubernetesExecutor) stops when the API does not
answer. This server answers the few reads the executor makes (version, discovery, an empty pod
list, pod watches that stay quiet) and records every pod the executor creates, so a test can
check the task pod the real executor builds from the rendered pod template. No pod ever runs:
there is no kubelet, so a KubernetesExecutor task never finishes here.

Served over TLS on the in-cluster address (KUBERNETES_SERVICE_HOST) with a certificate from the
harness CA, which the pods trust through their service-account ca.crt.

    python kubeapi.py ADDRESS PORT CERT KEY RECORD_DIR      (run inside the sandbox)
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.5", "platform": "linux/amd64"}
CORE_RESOURCES = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
     "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}]}
WATCH_SECONDS = 30  # a quiet watch, closed like the API server's timeout closes it


class Handler(BaseHTTPRequestHandler):
    record_dir: Path
    counter = iter(range(1, 1_000_000))
    lock = threading.Lock()

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"kubeapi: {self.command} {fmt % args}\n")

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/version":
            return self._send(200, VERSION)
        if url.path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if url.path == "/apis":
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if url.path == "/api/v1":
            return self._send(200, CORE_RESOURCES)
        if url.path.endswith("/pods") and query.get("watch", ["false"])[0].lower() in ("true", "1"):
            return self._quiet_watch()
        if url.path.endswith("/pods"):
            return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"},
                                    "items": []})
        return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                "reason": "NotFound", "message": f"the stand-in does not serve {url.path}"})

    def _quiet_watch(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(WATCH_SECONDS)
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if not urlparse(self.path).path.endswith("/pods"):
            return self._send(404, {"kind": "Status", "code": 404, "message": "not served"})
        with self.lock:
            number = next(self.counter)
        (self.record_dir / f"pod-{number:03d}.json").write_text(json.dumps(body, indent=2))
        meta = body.setdefault("metadata", {})
        meta.update(uid=f"00000000-0000-0000-0000-{number:012d}", resourceVersion=str(number + 1))
        body["status"] = {"phase": "Pending"}
        return self._send(201, body)

    def do_DELETE(self) -> None:
        return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


def main(address: str, port: str, cert: str, key: str, record_dir: str) -> None:
    Handler.record_dir = Path(record_dir)
    server = ThreadingHTTPServer((address, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"kubeapi: serving https://{address}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:6])
