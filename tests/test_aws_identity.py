"""Story: Airflow reaches S3 with the pod's own AWS identity (answer aws_identity), never a key.

Real Airflow 2.8.4 and its Amazon provider (the versions `make runtime` installs, as in the image)
build the rendered `aws_default` connection (no keys) and must come back with the credentials of
the environment's role:
- IRSA: EKS's webhook injects AWS_ROLE_ARN (from the ServiceAccount annotation the real chart
  renders) and a token file; botocore calls STS AssumeRoleWithWebIdentity. STS is a stand-in on
  127.0.0.1 (AWS_ENDPOINT_URL_STS) that checks the role and the token.
- EKS Pod Identity: the webhook injects AWS_CONTAINER_CREDENTIALS_FULL_URI and a token file;
  botocore asks the Pod Identity agent. The agent is a stand-in on 127.0.0.1 that checks the token.
The IAM files in deploy/overlays/<env>/iam/ must admit exactly the identity that asked, and with
Pod Identity the associations file must bind the role to each ServiceAccount the trust policy
admits: requests the EKS API accepts (botocore's own model of CreatePodIdentityAssociation).
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

import botocore.session
import pytest
import yaml
from airflow_gitops.facts import (
    IAM_DIR,
    IRSA_TRUST_POLICY,
    POD_IDENTITY_ASSOCIATIONS,
    POD_IDENTITY_TRUST_POLICY,
    S3_LIST_PREFIX_OPERATOR,
    S3_LOGS_POLICY,
    service_account_subjects,
    service_accounts,
)
from botocore.validate import ParamValidator
from helpers.copying import staging_answers
from helpers.make import render_dev, run_validate
from helpers.render import merged_values
from helpers.tools import airflow_python

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


# ---------------------------------------------------------------- Pod Identity associations as code
TAG = "aws:RequestTag/"
CREATE_ASSOCIATION = botocore.session.get_session().get_service_model("eks") \
    .operation_model("CreatePodIdentityAssociation").input_shape


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module", params=["official", "community"])
def pod_identity(request, tmp_path_factory, copy_project) -> tuple[str, Path, dict[str, Any]]:
    answers = {**request.getfixturevalue(f"{'official' if request.param == 'official' else 'demo'}_answers"),
               "aws_identity": "pod-identity"}
    return request.param, copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers), answers


def test_pod_identity_associates_the_role_with_each_service_account_it_trusts(pod_identity) -> None:
    flavor, repo, answers = pod_identity
    iam = repo / "deploy/overlays/dev" / IAM_DIR
    requests = json.loads((iam / POD_IDENTITY_ASSOCIATIONS).read_text())
    for request in requests:  # what `aws eks create-pod-identity-association --cli-input-json` validates
        report = ParamValidator().validate(request, CREATE_ASSOCIATION)
        assert not report.has_errors(), report.generate_report()
    tags = json.loads((iam / POD_IDENTITY_TRUST_POLICY).read_text())["Statement"][0]["Condition"]["StringEquals"]
    trusted = as_list(tags[f"{TAG}kubernetes-service-account"])
    assert sorted(r["serviceAccount"] for r in requests) == sorted(trusted) == sorted(
        service_accounts(flavor, answers["project_name"]))  # one association per ServiceAccount
    assert len(requests) == (3 if flavor == "official" else 1)
    assert {(r["clusterName"], r["namespace"], r["roleArn"]) for r in requests} == {
        (tags[f"{TAG}eks-cluster-name"], tags[f"{TAG}kubernetes-namespace"], answers["irsa_role_arn"])}
    readme = (repo / "README.md").read_text()
    assert f"deploy/overlays/dev/iam/{POD_IDENTITY_ASSOCIATIONS}" in readme and "--cli-input-json" in readme
    assert "--service-account" not in readme  # no one-ServiceAccount command left
    assert all(f"`{account}`" in readme for account in trusted)
    result = run_validate(repo)
    assert result.returncode == 0 and "ERROR" not in result.stdout, result.stdout


def edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


ASSOCIATION_DRIFT = {  # an edit of the associations file: what make validate must say
    "a ServiceAccount left out": (lambda d: d.pop(), "serviceAccount must be each of"),
    "another namespace": (lambda d: d[0].update(namespace="airflow-prod"), "namespace 'airflow-prod' is not "
                          "'airflow-dev'"),
    "another cluster": (lambda d: d[0].update(clusterName="other"), "clusterName 'other' is not 'demo-cluster'"),
    "two roles": (lambda d: d.append({**d[0], "roleArn": "arn:aws:iam::123456789012:role/other"}), "several roles"),
    "a field the API does not know": (lambda d: d[0].update(role=d[0].pop("roleArn")),
                                      'Missing required parameter in input: "roleArn"'),
    "no session tags": (lambda d: d[0].update(disableSessionTags=True), "disableSessionTags is true"),
}


@pytest.mark.parametrize("drift", sorted(ASSOCIATION_DRIFT))
def test_validate_catches_association_drift(pod_identity, drift) -> None:
    _, repo, _ = pod_identity
    path = repo / "deploy/overlays/dev" / IAM_DIR / POD_IDENTITY_ASSOCIATIONS
    before = path.read_text()
    change, message = ASSOCIATION_DRIFT[drift]
    try:
        edit_json(path, change)
        result = run_validate(repo)
    finally:
        path.write_text(before)
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert result.returncode != 0 and errors, result.stdout
    assert all(f"deploy/overlays/dev/{IAM_DIR}: {POD_IDENTITY_ASSOCIATIONS}:" in e for e in errors), errors
    assert any(message in e for e in errors), errors


LISTING_DRIFT = {  # an edit of the log policy's TaskLogsList statement: what make validate must say
    "a grant that needs a prefix": (lambda s: s["Condition"].update(StringLike=s["Condition"].pop(
        S3_LIST_PREFIX_OPERATOR)), "S3 answers 403 instead of 404"),
    "no condition": (lambda s: s.pop("Condition"), "allows s3:ListBucket under any prefix"),
    "another prefix": (lambda s: s["Condition"][S3_LIST_PREFIX_OPERATOR].update({"s3:prefix": ["airflow/*"]}),
                       "lists outside this environment's prefix 'airflow/dev/'"),
}


@pytest.mark.parametrize("drift", sorted(LISTING_DRIFT))
def test_validate_catches_a_listing_grant_that_breaks_or_widens_task_logs(pod_identity, drift) -> None:
    _, repo, _ = pod_identity
    path = repo / "deploy/overlays/dev" / IAM_DIR / S3_LOGS_POLICY
    before = path.read_text()
    change, message = LISTING_DRIFT[drift]
    try:
        edit_json(path, lambda p: change(next(s for s in p["Statement"] if s["Sid"] == "TaskLogsList")))
        result = run_validate(repo)
    finally:
        path.write_text(before)
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert result.returncode != 0 and any(message in e for e in errors), result.stdout


def test_the_readme_names_every_service_account_irsa_must_trust(tmp_path, copy_project, official_answers) -> None:
    """Without eks_oidc_issuer there is no trust policy file: the README says whom to trust."""
    repo = copy_project(tmp_path / "repo", {**official_answers, "eks_oidc_issuer": ""})
    readme = (repo / "README.md").read_text()
    subjects = service_account_subjects("official", official_answers["project_name"], official_answers["namespace"])
    assert len(subjects) == 3 and all(f"`{subject}`" in readme for subject in subjects)


def test_validate_refuses_two_environments_associated_with_one_role(tmp_path, copy_project, demo_answers) -> None:
    """One role has one trust policy: the second environment's would replace the first's."""
    answers = {**demo_answers, "aws_identity": "pod-identity"}
    repo = copy_project(tmp_path / "repo", answers)
    copy_project(repo, {**staging_answers(answers), "aws_identity": "pod-identity"},
                 answers_file=".copier-answers.staging.yml")
    path = repo / "deploy/overlays/staging" / IAM_DIR / POD_IDENTITY_ASSOCIATIONS
    path.write_text(path.read_text().replace("role/airflow-staging", "role/airflow-dev"))
    result = run_validate(repo)
    assert result.returncode != 0
    assert f"ERROR deploy/overlays/staging/{IAM_DIR}: {POD_IDENTITY_ASSOCIATIONS}: role " \
        "arn:aws:iam::123456789012:role/airflow-dev is also environment 'dev''s" in result.stdout, result.stdout
