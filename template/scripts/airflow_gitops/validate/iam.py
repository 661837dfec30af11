"""Each environment's AWS identity files (deploy/overlays/<env>/iam/) against what it deploys.

The permissions policy is linted with parliament (https://github.com/duo-labs/parliament: unknown
actions, bad resources, malformed statements) and must name only the environment's own log
bucket and prefix, and its s3:ListBucket grant must also match a request that names no prefix
(S3 answers a HEAD of a missing key 404 only to such a caller, else 403, and Airflow gives up on
the 403 before a new log's first upload); the trust policy must admit exactly the chart's
ServiceAccounts through the cluster's OIDC issuer, for the account of the role the ServiceAccounts
are annotated with. With EKS Pod Identity, the associations file holds one request per
ServiceAccount, each valid for the EKS API (botocore's model of CreatePodIdentityAssociation) and
naming the trust policy's cluster, namespace and ServiceAccounts and one role.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import warnings
from pathlib import Path
from typing import Any

from airflow_gitops.facts import (
    IAM_DIR,
    IRSA_ROLE_ANNOTATION,
    IRSA_TRUST_POLICY,
    KMS_KEY_ARN,
    POD_IDENTITY_ASSOCIATIONS,
    POD_IDENTITY_PRINCIPAL,
    POD_IDENTITY_TRUST_POLICY,
    S3_LIST_PREFIX_OPERATOR,
    S3_LOGS_POLICY,
    aws_partition,
)
from airflow_gitops.objects import dig
from airflow_gitops.validate.report import ERROR, INFO, WARN, Issue
from airflow_gitops.values import Deployed

S3_URL = re.compile(r"^s3://([^/]+)/?(.*?)/?$")
ROLE_ACCOUNT = re.compile(r"^arn:aws[a-zA-Z-]*:iam::([0-9]{12}):role/")
LIST_REQUEST_KEYS = ("s3:prefix", "s3:delimiter", "s3:max-keys")  # in a ListObjects request only when it sends them
TAG = "aws:RequestTag/"  # the session tags EKS Pod Identity passes, as the trust policy names them


def check_iam(repo: Path, deployed: dict[str, Deployed]) -> list[Issue]:
    found: list[Issue] = []
    roles: dict[str, str] = {}
    for env, release in sorted(deployed.items()):
        role = release.irsa_role
        if role and role in roles:
            found.append(Issue(ERROR, "", f"IRSA role {role} is also environment "
                          f"{roles[role]!r}'s: one role has one trust policy and one log policy, so creating "
                          "this environment's would replace the other's (give each environment its own role)",
                               f"deploy/overlays/{env}"))
        if role:
            roles.setdefault(role, env)
        if len(set(release.irsa_roles)) > 1:
            pairs = ", ".join(f"{sa}: {r or 'none'}"
                              for sa, r in zip(release.service_accounts, release.irsa_roles, strict=True))
            found.append(Issue(ERROR, "", f"the ServiceAccounts that use the log role "
                          f"must carry the same {IRSA_ROLE_ANNOTATION} ({pairs})").at(f"deploy/overlays/{env}"))
        folder = repo / "deploy/overlays" / env / IAM_DIR
        where = str(folder.relative_to(repo))
        policy = _load(folder / S3_LOGS_POLICY, found, where)
        if policy is not None:
            found += [i.at(where) for i in _check_policy(policy, release)]
        pod_identity = _load(folder / POD_IDENTITY_TRUST_POLICY, found, where, optional=True)
        trust = _load(folder / IRSA_TRUST_POLICY, found, where, optional=True)
        if pod_identity is not None:
            found += [i.at(where) for i in _check_pod_identity(pod_identity, release)]
            associations = _load(folder / POD_IDENTITY_ASSOCIATIONS, found, where, optional=True)
            if associations is None and not (folder / POD_IDENTITY_ASSOCIATIONS).is_file():
                found.append(Issue(INFO, POD_IDENTITY_ASSOCIATIONS, "not in the repo: the role's Pod "
                                           "Identity associations are not checked (managed elsewhere?)").at(where))
            elif associations is not None:
                issues, role = _check_associations(associations, pod_identity, release)
                found += [i.at(where) for i in issues]
                if role in roles:
                    found.append(Issue(ERROR, POD_IDENTITY_ASSOCIATIONS, f"role {role} is also "
                                  f"environment {roles[role]!r}'s: one role has one trust policy and one log "
                                  "policy (give each environment its own role)").at(where))
                elif role:
                    roles[role] = env
        if trust is not None:
            found += [i.at(where) for i in _check_trust(trust, release)]
        elif pod_identity is None and policy is not None and not (folder / IRSA_TRUST_POLICY).is_file():
            found.append(Issue(INFO, IRSA_TRUST_POLICY, "not generated: answer eks_oidc_issuer to get "
                                       "the IRSA trust policy for this environment's role").at(where))
    return found


def _load(path: Path, found: list[Issue], where: str, optional: bool = False) -> Any:
    if not path.is_file():
        if not optional:
            found.append(Issue(INFO, path.name, "not in the repo: the IRSA role's permissions are not "
                                       "checked (managed elsewhere?)").at(where))
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        found.append(Issue(ERROR, path.name, f"not valid JSON: {exc}").at(where))
        return None


def _check_policy(policy: Any, release: Deployed) -> list[Issue]:
    issues = [Issue(ERROR, S3_LOGS_POLICY, message) for message in lint(policy)]
    folder = release.log_folder
    match = S3_URL.match(folder)
    if not match:
        return [*issues, Issue(WARN, S3_LOGS_POLICY, f"no s3:// remote log folder in the values ({folder!r}): "
                               "cannot check the policy's resources")]
    bucket, prefix = match.group(1), match.group(2)
    s3 = f"arn:{aws_partition(release.region)}:s3:::"
    allowed = {f"{s3}{bucket}", f"{s3}{bucket}/{prefix + '/' if prefix else ''}*"}
    for statement in _statements(policy):
        actions = _as_list(statement.get("Action"))
        if any(a in ("*", "s3:*", "kms:*") for a in actions):
            issues.append(Issue(ERROR, S3_LOGS_POLICY, f"grants {actions}: list the actions task logs need"))
        kms_only = bool(actions) and all(str(a).startswith("kms:") for a in actions)
        for resource in _as_list(statement.get("Resource")):
            if kms_only:  # SSE-KMS: the bucket's key, by ARN
                if not KMS_KEY_ARN.match(str(resource)):
                    issues.append(Issue(ERROR, S3_LOGS_POLICY, f"kms resource {resource!r} must be the log "
                                        "bucket's key ARN (arn:aws:kms:<region>:<account>:key/<id>)"))
            elif resource not in allowed:
                issues.append(Issue(ERROR, S3_LOGS_POLICY, f"resource {resource!r} is outside this environment's "
                                    f"log folder {folder} (allowed: {', '.join(sorted(allowed))})"))
    return issues + [Issue(ERROR, S3_LOGS_POLICY, m) for m in _check_listing(policy, prefix)]


def _check_listing(policy: Any, prefix: str) -> list[str]:
    """s3:ListBucket: a listing that names a prefix stays under the environment's, and some grant
    matches a request that names none. S3 answers a GET/HEAD of a missing key 404 only to a caller
    allowed ListBucket for that request, else 403 (S3 API reference, HeadObject "Permissions"); the
    HEAD Airflow sends before a new log's first upload has no s3:prefix, and a condition on a key
    the request lacks is false except with ...IfExists, Null and the negated operators (IAM User
    Guide, "Condition operators"). A 403 there and Airflow drops the log."""
    grants = [s for s in _statements(policy) if s.get("Effect") == "Allow"
              and any(fnmatch.fnmatchcase("s3:listbucket", str(a).lower()) for a in _as_list(s.get("Action")))
              and any(":s3:::" in str(r) and "/" not in str(r) for r in _as_list(s.get("Resource")))]
    if not grants:
        return ["no statement allows s3:ListBucket on the bucket: S3 then answers 403, not 404, for a log "
                "key that does not exist yet, and Airflow never uploads a task's first log"]
    messages = []
    want = f"{S3_LIST_PREFIX_OPERATOR} {{'s3:prefix': ['{prefix}/*']}}"
    for grant in grants:
        blocks = grant.get("Condition") if isinstance(grant.get("Condition"), dict) else {}
        on_prefix = [(op, values) for op, block in blocks.items() if isinstance(block, dict)
                     for key, values in block.items() if key.lower() == "s3:prefix"]
        limits = [(op, values) for op, values in on_prefix if op != "Null"]
        no_prefix_only = any(op == "Null" and str(v).lower() == "true" for op, v in on_prefix)
        if prefix and not limits and not no_prefix_only:
            messages.append(f"statement {grant.get('Sid', '')!r} allows s3:ListBucket under any prefix: "
                            f"other environments' logs too (condition it: {want})")
        for op, values in limits:
            outside = [v for v in _as_list(values) if not str(v).startswith(f"{prefix}/")] if prefix else []
            if op.startswith(("StringNot", "ForAllValues", "ForAnyValue")) or outside:
                messages.append(f"statement {grant.get('Sid', '')!r}: {op} on s3:prefix {values!r} lists outside "
                                f"this environment's prefix {prefix + '/'!r} (use {want})")
    if not any(_matches_without_listing_keys(g.get("Condition")) for g in grants):
        messages.append("s3:ListBucket is allowed only for requests that name an s3:prefix: a HEAD of a log key "
                        "that does not exist yet names none, so S3 answers 403 instead of 404 and Airflow never "
                        f"uploads a task's first log (use {S3_LIST_PREFIX_OPERATOR} on s3:prefix)")
    return messages


def _matches_without_listing_keys(condition: Any) -> bool:
    """Whether a Condition block can hold for a request without s3:prefix, s3:delimiter, s3:max-keys."""
    for op, block in (condition or {}).items() if isinstance(condition, dict) else []:
        for key in (block or {}) if isinstance(block, dict) else []:
            if key.lower() not in LIST_REQUEST_KEYS:
                continue  # present or not alike in a HEAD: not this check's business
            if op == "Null":
                if str(block[key]).lower() != "true":
                    return False
            elif not (op.endswith("IfExists") or re.match(r"^(String|Numeric|Arn)Not", op)):
                return False
    return True


def _check_trust(trust: Any, release: Deployed) -> list[Issue]:
    issues: list[Issue] = []
    subjects = sorted(f"system:serviceaccount:{release.namespace}:{sa}" for sa in release.service_accounts)
    role = release.irsa_role
    account = ROLE_ACCOUNT.match(role)
    for statement in _statements(trust):
        federated = str(dig(statement, "Principal.Federated", ""))
        if account and f":iam::{account.group(1)}:oidc-provider/" not in federated:
            issues.append(Issue(ERROR, IRSA_TRUST_POLICY, f"Principal.Federated {federated!r} is not an OIDC "
                                f"provider of account {account.group(1)} ({role})"))
        issuer = federated.split(":oidc-provider/", 1)[-1]
        conditions = dig(statement, "Condition.StringEquals", {}) or {}
        if sorted(_as_list(conditions.get(f"{issuer}:sub"))) != subjects:
            like = (dig(statement, "Condition.StringLike", {}) or {}).get(f"{issuer}:sub")
            shown = f"StringLike {like!r}" if like else repr(conditions.get(f"{issuer}:sub"))
            want = subjects[0] if len(subjects) == 1 else subjects
            issues.append(Issue(ERROR, IRSA_TRUST_POLICY, f"{issuer}:sub must be exactly {want!r} under "
                                f"StringEquals (the chart's ServiceAccounts that use the role), found {shown}"))
        if conditions.get(f"{issuer}:aud") != "sts.amazonaws.com":
            issues.append(Issue(ERROR, IRSA_TRUST_POLICY, f"{issuer}:aud must be 'sts.amazonaws.com'"))
    return issues


def _check_pod_identity(trust: Any, release: Deployed) -> list[Issue]:
    """EKS Pod Identity: the EKS service assumes the role with session tags; the trust policy must
    pin them to this environment's namespace and the chart's ServiceAccount, and the ServiceAccount
    must not also carry an IRSA role (the SDKs would use that one first)."""
    issues: list[Issue] = []
    wanted = {"aws:RequestTag/kubernetes-namespace": [release.namespace],
              "aws:RequestTag/kubernetes-service-account": sorted(release.service_accounts)}
    for statement in _statements(trust):
        if dig(statement, "Principal.Service") != POD_IDENTITY_PRINCIPAL:
            issues.append(Issue(ERROR, POD_IDENTITY_TRUST_POLICY, f"Principal.Service must be "
                                f"{POD_IDENTITY_PRINCIPAL!r}, found {dig(statement, 'Principal.Service')!r}"))
        if not {"sts:AssumeRole", "sts:TagSession"} <= set(_as_list(statement.get("Action"))):
            issues.append(Issue(ERROR, POD_IDENTITY_TRUST_POLICY, "Action must allow sts:AssumeRole and "
                                "sts:TagSession (Pod Identity passes session tags)"))
        conditions = dig(statement, "Condition.StringEquals", {}) or {}
        for key, value in wanted.items():
            if sorted(_as_list(conditions.get(key))) != value:
                shown = value[0] if len(value) == 1 else value
                issues.append(Issue(ERROR, POD_IDENTITY_TRUST_POLICY, f"{key} must be exactly {shown!r}, "
                                    f"found {conditions.get(key)!r}: any association could assume the role"))
    if release.irsa_role:
        issues.append(Issue(WARN, POD_IDENTITY_TRUST_POLICY, f"the ServiceAccount also has {IRSA_ROLE_ANNOTATION}: "
                            "the SDKs use IRSA before Pod Identity"))
    return issues


def _check_associations(requests: Any, trust: Any, release: Deployed) -> tuple[list[Issue], str]:
    """One CreatePodIdentityAssociation request per ServiceAccount the trust policy admits, each valid
    for the EKS API and naming its cluster and namespace; all of them one role. (issues, that role)"""
    name = POD_IDENTITY_ASSOCIATIONS
    if not isinstance(requests, list) or not all(isinstance(r, dict) for r in requests):
        return [Issue(ERROR, name, "must be a JSON list of CreatePodIdentityAssociation requests "
                      "(clusterName, namespace, serviceAccount, roleArn), one per ServiceAccount")], ""
    issues = [Issue(ERROR, name, f"request {i} ({r.get('serviceAccount')!r}): {message}")
              for i, r in enumerate(requests) for message in api_errors(r)]
    tags = {k: _as_list(v) for statement in _statements(trust)
            for k, v in (dig(statement, "Condition.StringEquals", {}) or {}).items()}
    accounts = sorted(str(a) for a in tags.get(f"{TAG}kubernetes-service-account") or release.service_accounts)
    wanted = {"namespace": tags.get(f"{TAG}kubernetes-namespace") or [release.namespace],
              "clusterName": tags.get(f"{TAG}eks-cluster-name")}
    named = sorted(str(r.get("serviceAccount")) for r in requests)
    if named != accounts:
        issues.append(Issue(ERROR, name, f"serviceAccount must be each of {accounts} exactly once (the "
                            f"ServiceAccounts {POD_IDENTITY_TRUST_POLICY} admits; EKS binds one per "
                            f"association), found {named}"))
    for r in requests:
        for field, values in wanted.items():
            if values and r.get(field) not in values:
                issues.append(Issue(ERROR, name, f"{r.get('serviceAccount')!r}: {field} {r.get(field)!r} is not "
                                    f"{values[0] if len(values) == 1 else values!r}, which "
                                    f"{POD_IDENTITY_TRUST_POLICY} admits: EKS's session tags would not match"))
        if r.get("disableSessionTags") is True:
            issues.append(Issue(ERROR, name, f"{r.get('serviceAccount')!r}: disableSessionTags is true, but the "
                                "trust policy admits the role only with EKS's session tags"))
    roles = sorted({str(r["roleArn"]) for r in requests if "roleArn" in r})
    if not roles:  # botocore reported it missing
        return issues, ""
    if len(roles) > 1:
        issues.append(Issue(ERROR, name, f"the associations name several roles {roles}: the log role is one"))
    elif not ROLE_ACCOUNT.match(roles[0]):
        issues.append(Issue(ERROR, name, f"roleArn {roles[0]!r} is not an IAM role ARN "
                            "(arn:aws:iam::<account>:role/<name>)"))
    return issues, roles[0] if len(roles) == 1 else ""


@functools.lru_cache(maxsize=1)
def _create_association_shape() -> Any:
    import botocore.session  # type: ignore[import-untyped]

    model = botocore.session.get_session().get_service_model("eks")
    return model.operation_model("CreatePodIdentityAssociation").input_shape


def api_errors(request: Any) -> list[str]:
    """botocore's own check of a CreatePodIdentityAssociation request against the EKS API model it
    ships (what `aws eks create-pod-identity-association --cli-input-json` checks first)."""
    try:
        from botocore.validate import ParamValidator  # type: ignore[import-untyped]

        shape = _create_association_shape()
    except ImportError:
        return ["botocore is not installed: run `make tools` (requirements-tools.txt)"]
    report = ParamValidator().validate(request, shape)
    return [line.strip() for line in report.generate_report().splitlines() if line.strip()]


def lint(policy: Any) -> list[str]:
    """parliament's findings on an identity policy (or why it could not run)."""
    try:
        with warnings.catch_warnings():  # parliament 1.6.4 imports pkg_resources, deprecated but pinned
            warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
            from parliament import analyze_policy_string  # type: ignore[import-untyped]
    except ImportError as exc:
        if exc.name == "parliament":
            return ["parliament is not installed: run `make tools` (requirements-tools.txt)"]
        return [f"parliament cannot be imported ({exc}): run `make tools` (requirements-tools.txt pins "
                "setuptools for its pkg_resources)"]
    findings = analyze_policy_string(json.dumps(policy)).findings
    return [f"parliament: {f.issue}: {f.detail}" for f in findings]


def _statements(policy: Any) -> list[dict]:
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    return [s for s in _as_list(statements) if isinstance(s, dict)]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]
