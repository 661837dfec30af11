"""Story: a task finishes and its log goes to S3 under the environment's prefix, with the role's
generated log policy (deploy/overlays/<env>/iam/s3-logs-policy.json) and nothing more.

Real Airflow from the installed runtimes runs its own S3 task handler (Airflow 3, the release new
copies get, with the official chart: S3RemoteLogIO.upload; Airflow 2.8.4 with the community chart:
S3TaskHandler.s3_write) with the rendered logging config and `aws_default` connection, against the S3 stand-in of
tests/standins/s3_iam.py, which enforces the policy as IAM and S3 do. Before its first upload of a key the
handler HEADs it to append to an existing log; S3 answers that HEAD 404 only if the role may
ListBucket for it, else 403, and the handler then drops the log ("Could not verify previous log
to append"). Credentials are static test keys: the identity is tests/test_aws_identity.py's story.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow_gitops import facts
from airflow_gitops.facts import IAM_DIR, S3_LIST_PREFIX_OPERATOR, S3_LOGS_POLICY
from helpers.render import merged_values
from helpers.tools import airflow_python
from standins.s3_iam import S3StandIn, s3_stand_in

pytestmark = pytest.mark.slow
KEY_ID = "AKIATASKLOGSEXAMPLE"
LOG = "dag_id=demo/run_id=manual__2026-01-01T00:00:00+00:00/task_id=hello/attempt=1.log"
# Each flavor's answers and the Airflow release they deploy (the official one: what new copies get).
FLAVORS = {"official": ("official_answers", facts.chart("official").default_tag),
           "community": ("demo_answers", "2.8.4")}
# Each probe uploads the task's first log, then a second part (the append path: HEAD, GET, PUT),
# writes a key outside the environment's prefix, and reads the log back as the UI would.
PROBES = {"3": """
import json, os, pathlib, sys
from airflow.configuration import conf
from airflow.providers.amazon.aws.log.s3_task_handler import S3RemoteLogIO
rel, outside = sys.argv[1:3]
base = pathlib.Path(os.environ["AIRFLOW_HOME"], "logs")
io = S3RemoteLogIO(remote_base=conf.get("logging", "remote_base_log_folder"), base_log_folder=base,
                   delete_local_copy=False)
(base / rel).parent.mkdir(parents=True)
for part in ("first part", "second part"):
    (base / rel).write_text(part)
    io.upload(rel, ti=None)  # what the task runner calls when the task ends
outside_written = io.write("x", outside, append=False)  # straight to PutObject
messages, logs = io.read(rel, ti=None)
print(json.dumps({"outside": outside_written, "read": logs}))
""", "2": """
import json, os, sys
from airflow.configuration import conf
from airflow.providers.amazon.aws.log.s3_task_handler import S3TaskHandler
rel, outside = sys.argv[1:3]
remote = conf.get("logging", "remote_base_log_folder")
handler = S3TaskHandler(base_log_folder=os.path.join(os.environ["AIRFLOW_HOME"], "logs"), s3_log_folder=remote)
for part in ("first part", "second part"):
    handler.s3_write(part, os.path.join(remote, rel))  # what close() calls when the task ends
outside_written = handler.s3_write("x", outside, append=False)  # straight to PutObject
bucket, prefix = handler.hook.parse_s3_url(os.path.join(remote, rel))
keys = handler.hook.list_keys(bucket_name=bucket, prefix=prefix)  # what _read_remote_logs lists
print(json.dumps({"outside": outside_written, "read": [handler.s3_read(f"s3://{bucket}/{k}") for k in keys] or None}))
"""}


@pytest.fixture(scope="module", params=sorted(FLAVORS))
def generated(request, tmp_path_factory, copy_project) -> tuple[str, Path, dict[str, Any]]:
    answers = request.getfixturevalue(FLAVORS[request.param][0])
    repo = copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers)
    return request.param, repo, answers


def airflow_environment(repo: Path, flavor: str) -> dict[str, str]:
    """The rendered [logging] settings and aws_default connection, as the pods' environment has them."""
    values = merged_values(repo, "dev")
    if flavor == "official":
        env = {f"AIRFLOW__LOGGING__{k.upper()}": str(v) for k, v in values["config"]["logging"].items()}
        (conn,) = [e["value"] for e in values["env"] if e["name"] == "AIRFLOW_CONN_AWS_DEFAULT"]
        return {**env, "AIRFLOW_CONN_AWS_DEFAULT": conn}
    env = {k: str(v) for k, v in values["airflow"]["config"].items() if k.startswith("AIRFLOW__LOGGING__")}
    (conn,) = [c for c in values["airflow"]["connections"] if c["id"] == "aws_default"]
    return {**env, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": conn["type"],
                                                             "extra": json.loads(conn["extra"])})}


def run_handler(tmp_path: Path, repo: Path, flavor: str, policy: dict, bucket: str) -> tuple[S3StandIn, dict, str]:
    """The flavor's Airflow runs PROBES against the stand-in: (the stand-in, the probe's answer, its logs)."""
    version = FLAVORS[flavor][1]
    env = airflow_environment(repo, flavor)
    with s3_stand_in(policy, {bucket}, KEY_ID) as s3:
        base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow"),
                "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": "test-secret",  # pragma: allowlist secret
                "AWS_ENDPOINT_URL_S3": s3.url, "AWS_EC2_METADATA_DISABLED": "true"}
        result = subprocess.run([str(airflow_python(version)), "-c", PROBES[version.split(".")[0]], LOG, f"s3://{bucket}/other/x.log"],
                                env={**base, **env}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = result.stdout + result.stderr  # Airflow 3 logs to stdout
    return s3, json.loads(result.stdout.strip().splitlines()[-1]), logged


def test_a_tasks_first_log_reaches_s3_under_the_environments_prefix(tmp_path, generated) -> None:
    flavor, repo, answers = generated
    bucket, key = answers["s3_log_bucket"], f"{answers['s3_log_prefix']}/{LOG}"
    policy = json.loads((repo / "deploy/overlays/dev" / IAM_DIR / S3_LOGS_POLICY).read_text())
    s3, got, logged = run_handler(tmp_path, repo, flavor, policy, bucket)
    assert s3.statuses("HEAD", key)[0] == 404  # the first upload's existence check
    assert s3.objects[(bucket, key)] == b"first part\nsecond part", logged[-3000:]  # appended, as Airflow does
    assert got["read"] == ["first part\nsecond part"]
    refused = s3.statuses("PUT", "other/x.log")  # the handler retries once
    assert got["outside"] is False and refused and set(refused) == {403} and (bucket, "other/x.log") not in s3.objects


def test_a_listing_grant_that_needs_a_prefix_loses_the_first_log(tmp_path, generated) -> None:
    """The 0.1.0 policy: ListBucket only with StringLike on s3:prefix, which a HEAD never matches."""
    flavor, repo, answers = generated
    bucket, key = answers["s3_log_bucket"], f"{answers['s3_log_prefix']}/{LOG}"
    text = (repo / "deploy/overlays/dev" / IAM_DIR / S3_LOGS_POLICY).read_text()
    assert f'"{S3_LIST_PREFIX_OPERATOR}"' in text
    policy = json.loads(text.replace(f'"{S3_LIST_PREFIX_OPERATOR}"', '"StringLike"'))
    s3, got, logged = run_handler(tmp_path, repo, flavor, policy, bucket)
    assert s3.statuses("HEAD", key) == [403, 403]
    assert (bucket, key) not in s3.objects and got["read"] is None
    assert "Could not verify previous log to append" in logged
