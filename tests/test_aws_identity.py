"""Story: Airflow reaches S3 with the pod's own AWS identity (answer aws_identity), never a key.

Real Airflow 2.8.4 and its Amazon provider (the versions `make runtime` installs, as in the image)
build the rendered `aws_default` connection (no keys) and must come back with the credentials of
the environment's role:
- IRSA: EKS's webhook injects AWS_ROLE_ARN (from the ServiceAccount annotation the real chart
  renders) and a token file; botocore calls STS AssumeRoleWithWebIdentity. STS is a stand-in on
  127.0.0.1 (AWS_ENDPOINT_URL_STS) that checks the role and the token.
- EKS Pod Identity: the webhook injects AWS_CONTAINER_CREDENTIALS_FULL_URI and a token file;
  botocore asks the Pod Identity agent. The agent is a stand-in on 127.0.0.1 that checks the token.
The IAM files in deploy/overlays/<env>/iam/ must admit exactly the identity that asked.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_gitops.facts import IAM_DIR, IRSA_TRUST_POLICY, POD_IDENTITY_TRUST_POLICY
from conftest import airflow_python, merged_values, render_dev

pytestmark = pytest.mark.slow
TOKEN = "eyJhbGciOiJSUzI1NiJ9.service-account-token.signature"  # what the kubelet projects
PROBE = """
import json
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
hook = S3Hook(aws_conn_id="aws_default")
creds = hook.get_session().get_credentials().get_frozen_credentials()
print(json.dumps({"key": creds.access_key, "token": creds.token, "region": hook.conn_region_name}))
"""
STS_RESPONSE = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAIRSAEXAMPLE</AccessKeyId>
<SecretAccessKey>irsa-secret</SecretAccessKey><SessionToken>irsa-session</SessionToken>
<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<SubjectFromWebIdentityToken>{subject}</SubjectFromWebIdentityToken>
<AssumedRoleUser><Arn>{role}/airflow</Arn><AssumedRoleId>AROAEXAMPLE:airflow</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""


class StandIn(http.server.BaseHTTPRequestHandler):
    """STS (POST, form body) or the Pod Identity agent (GET with Authorization), on loopback."""

    seen: list[dict[str, Any]]
    reply: tuple[str, str]  # content type, body

    def do_GET(self) -> None:
        self._answer({"path": self.path, "authorization": self.headers.get("Authorization")})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self._answer({k: v[0] for k, v in urllib.parse.parse_qs(body).items()})

    def _answer(self, request: dict[str, Any]) -> None:
        self.seen.append(request)
        content_type, body = self.reply
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[tuple[str, type[StandIn]]]:
    handler = type("Handler", (StandIn,), {"seen": [], "reply": ("text/plain", "")})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def aws_default(repo: Path) -> str:
    """The rendered connection, as Airflow reads it from an environment variable."""
    (conn,) = [c for c in merged_values(repo, "dev")["airflow"]["connections"] if c["id"] == "aws_default"]
    assert not {"login", "password"} & conn.keys()  # no keys, by design
    return json.dumps({"conn_type": conn["type"], "extra": json.loads(conn["extra"])})


def probe(tmp_path: Path, repo: Path, env: dict[str, str]) -> dict[str, Any]:
    python = airflow_python("2.8.4")
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW_CONN_AWS_DEFAULT": aws_default(repo), "AWS_EC2_METADATA_DISABLED": "true"}
    result = subprocess.run([str(python), "-c", PROBE], env={**base, **env}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_irsa_gives_airflow_the_role_of_its_service_account(tmp_path, copy_project, demo_answers, stand_in) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "aws_identity": "irsa"})
    role = merged_values(repo, "dev")["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    trust = json.loads((repo / "deploy/overlays/dev" / IAM_DIR / IRSA_TRUST_POLICY).read_text())
    subject = next(v for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items() if k.endswith(":sub"))
    url, handler = stand_in
    handler.reply = ("text/xml", STS_RESPONSE.format(subject=subject, role=role.replace(":iam::", ":sts::")))
    token = tmp_path / "token"
    token.write_text(TOKEN)
    got = probe(tmp_path, repo, {"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
                                 "AWS_ENDPOINT_URL_STS": url, "AWS_REGION": demo_answers["aws_region"]})
    assert got == {"key": "ASIAIRSAEXAMPLE", "token": "irsa-session", "region": demo_answers["aws_region"]}
    (call,) = handler.seen
    assert (call["Action"], call["RoleArn"], call["WebIdentityToken"]) == ("AssumeRoleWithWebIdentity", role, TOKEN)
    assert subject == "system:serviceaccount:airflow-dev:airflow"


def test_pod_identity_gives_airflow_the_associated_role(tmp_path, copy_project, demo_answers, stand_in) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "aws_identity": "pod-identity"})
    values = merged_values(repo, "dev")
    assert "eks.amazonaws.com/role-arn" not in (values.get("serviceAccount") or {}).get("annotations", {})
    iam = repo / "deploy/overlays/dev" / IAM_DIR
    assert not (iam / IRSA_TRUST_POLICY).exists()
    tags = json.loads((iam / POD_IDENTITY_TRUST_POLICY).read_text())["Statement"][0]["Condition"]["StringEquals"]
    assert tags["aws:RequestTag/kubernetes-namespace"] == "airflow-dev"
    assert tags["aws:RequestTag/kubernetes-service-account"] == "airflow"  # the chart's ServiceAccount
    url, handler = stand_in
    handler.reply = ("application/json", json.dumps({"AccessKeyId": "ASIAPODIDENTITY", "SecretAccessKey": "s",
                                                     "Token": "pod-session", "Expiration": "2099-01-01T00:00:00Z"}))
    token = tmp_path / "eks-pod-identity-token"
    token.write_text(TOKEN)
    got = probe(tmp_path, repo, {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{url}/v1/credentials",
                                 "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token)})
    assert got["key"] == "ASIAPODIDENTITY" and got["token"] == "pod-session"
    assert handler.seen and all(call == {"path": "/v1/credentials", "authorization": TOKEN} for call in handler.seen)


def test_the_chart_renders_the_service_account_the_trust_policies_name(tmp_path, copy_project, demo_answers) -> None:
    """Both trust policies name `airflow`: it is the ServiceAccount every chart pod runs as."""
    repo = copy_project(tmp_path / "repo", {**demo_answers, "aws_identity": "pod-identity"})
    result = render_dev(repo)
    assert result.returncode == 0, result.stderr
    out = repo / "build/render/dev/chart"
    names = {yaml.safe_load(p.read_text())["spec"]["template"]["spec"]["serviceAccountName"]
             for p in out.glob("*.yaml") if p.name.startswith(("deployment-", "statefulset-"))}
    assert names == {"airflow"}
