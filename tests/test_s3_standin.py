"""The S3 stand-in (tests/standins/s3_iam.py) refuses what IAM and S3 refuse: a wrong resource, a condition
not met, an explicit Deny, and a missing key's 404 to a caller that may not list the bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from standins.s3_iam import ALLOW, DENY, IMPLICIT_DENY, S3StandIn, evaluate, s3_stand_in

BUCKET, KEY_ID = "logs-bucket", "AKIASTANDINEXAMPLE"
OBJECTS = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{BUCKET}/env/*"}


def listing(condition: dict | None = None) -> dict:
    return {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
            **({"Condition": condition} if condition else {})}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_the_evaluator_matches_actions_and_resources_as_iam_does() -> None:
    p = policy({"Effect": "Allow", "Action": "s3:get*", "Resource": "arn:aws:s3:::b/env/?.log"})
    assert evaluate(p, "s3:GetObject", "arn:aws:s3:::b/env/1.log") == ALLOW  # actions ignore case
    assert evaluate(p, "s3:PutObject", "arn:aws:s3:::b/env/1.log") == IMPLICIT_DENY
    assert evaluate(p, "s3:GetObject", "arn:aws:s3:::b/env/12.log") == IMPLICIT_DENY  # ? is one character
    assert evaluate(p, "s3:GetObject", "arn:aws:s3:::b/ENV/1.log") == IMPLICIT_DENY  # resources do not
    assert evaluate(p, "s3:GetObject", "arn:aws:s3:::b/other/1.log") == IMPLICIT_DENY


def test_an_explicit_deny_beats_any_allow() -> None:
    p = policy(OBJECTS, {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                         "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    assert evaluate(p, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/env/a", {"aws:SecureTransport": "false"}) == DENY
    assert evaluate(p, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/env/a", {"aws:SecureTransport": "true"}) == ALLOW


@pytest.mark.parametrize(("condition", "context", "allowed"), [
    ({"StringLike": {"s3:prefix": "env/*"}}, {"s3:prefix": "env/dag"}, True),
    ({"StringLike": {"s3:prefix": "env/*"}}, {"s3:prefix": "other/"}, False),  # not met
    ({"StringLike": {"s3:prefix": "env/*"}}, {}, False),  # absent key: false
    ({"StringLikeIfExists": {"s3:prefix": "env/*"}}, {}, True),  # ...IfExists: true when absent
    ({"StringLikeIfExists": {"s3:prefix": "env/*"}}, {"s3:prefix": "other/"}, False),
    ({"StringNotLike": {"s3:prefix": "secret/*"}}, {}, True),  # negated: true when absent
    ({"Null": {"s3:prefix": "true"}}, {}, True),
    ({"Null": {"s3:prefix": "true"}}, {"s3:prefix": ""}, False),  # present, even empty
    ({"StringEquals": {"S3:Prefix": ["a/", "env/"]}}, {"s3:prefix": "env/"}, True),  # key names ignore case
    ({"StringLike": {"s3:prefix": "env/*"}, "StringEquals": {"s3:delimiter": "/"}}, {"s3:prefix": "env/"}, False),
])
def test_conditions_follow_iams_rules_for_absent_keys(condition, context, allowed) -> None:
    got = evaluate(policy(listing(condition)), "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", context)
    assert got == (ALLOW if allowed else IMPLICIT_DENY)


@pytest.mark.parametrize("statement", [
    {"Effect": "Allow", "NotAction": "s3:DeleteObject", "Resource": "*"},
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"ForAnyValue:StringLike": {"k": "v"}}},
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": {"StringLike": {"k": "${aws:username}"}}},
])
def test_the_evaluator_refuses_what_it_does_not_model(statement) -> None:
    with pytest.raises(ValueError):
        evaluate(policy(statement), "s3:GetObject", "arn:aws:s3:::b/k", {"k": "v"})


@pytest.fixture
def s3(request) -> Iterator[tuple[S3StandIn, Any]]:
    with s3_stand_in(policy(*request.param), {BUCKET}, KEY_ID) as state:
        state.objects[(BUCKET, "env/old.log")] = b"old"
        state.objects[(BUCKET, "other/secret.log")] = b"secret"
        client = botocore.session.get_session().create_client(
            "s3", region_name="eu-west-1", endpoint_url=state.url, aws_access_key_id=KEY_ID,
            aws_secret_access_key="test-secret")  # pragma: allowlist secret
        yield state, client


def status(call: Any, **kwargs: Any) -> int:
    try:
        return call(**kwargs)["ResponseMetadata"]["HTTPStatusCode"]
    except ClientError as error:
        return error.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.mark.parametrize(("s3", "missing"), [
    ([OBJECTS], 403),  # no ListBucket: S3 hides whether the key exists
    ([OBJECTS, listing({"StringLike": {"s3:prefix": "env/*"}})], 403),  # a HEAD names no prefix
    ([OBJECTS, listing({"StringLikeIfExists": {"s3:prefix": "env/*"}})], 404),
    ([OBJECTS, listing()], 404),
], indirect=["s3"])
def test_a_missing_key_is_404_only_to_a_caller_that_may_list(s3, missing) -> None:
    _, client = s3
    assert status(client.head_object, Bucket=BUCKET, Key="env/new.log") == missing
    assert status(client.get_object, Bucket=BUCKET, Key="env/new.log") == missing
    assert status(client.head_object, Bucket=BUCKET, Key="env/old.log") == 200
    assert status(client.head_object, Bucket=BUCKET, Key="other/secret.log") == 403  # exists, not granted
    assert status(client.head_object, Bucket=BUCKET, Key="other/missing.log") == 403  # GetObject first


@pytest.mark.parametrize("s3", [[OBJECTS, listing({"StringLikeIfExists": {"s3:prefix": "env/*"}})]], indirect=True)
def test_objects_and_listings_outside_the_grant_are_refused(s3) -> None:
    state, client = s3
    assert status(client.put_object, Bucket=BUCKET, Key="env/new.log", Body=b"hello") == 200
    assert client.get_object(Bucket=BUCKET, Key="env/new.log")["Body"].read() == b"hello"
    assert status(client.put_object, Bucket=BUCKET, Key="other/x.log", Body=b"x") == 403
    assert (BUCKET, "other/x.log") not in state.objects
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="env/")
    assert [o["Key"] for o in listed["Contents"]] == ["env/new.log", "env/old.log"]
    assert status(client.list_objects_v2, Bucket=BUCKET, Prefix="other/") == 403
    assert status(client.delete_object, Bucket=BUCKET, Key="env/new.log") == 403  # not granted
    assert status(client.get_object_acl, Bucket=BUCKET, Key="env/old.log") == 501  # not modelled, not guessed
    # What IfExists costs: a listing with no prefix names every key in the bucket.
    assert {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]} >= {"other/secret.log"}


@pytest.mark.parametrize("s3", [[OBJECTS]], indirect=True)
def test_an_unknown_access_key_is_refused(s3) -> None:
    state, _ = s3
    other = botocore.session.get_session().create_client(
        "s3", region_name="eu-west-1", endpoint_url=state.url, aws_access_key_id="AKIAOTHER",
        aws_secret_access_key="x")  # pragma: allowlist secret
    assert status(other.head_object, Bucket=BUCKET, Key="env/old.log") == 403
