"""Each environment's AWS identity files (deploy/overlays/<env>/iam/) against what it deploys.

The permissions policy is linted with parliament (https://github.com/duo-labs/parliament: unknown
actions, bad resources, malformed statements) and must name only the environment's own log
bucket and prefix; the trust policy must admit exactly the chart's ServiceAccount through the
cluster's OIDC issuer, for the account of the role the ServiceAccount is annotated with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from airflow_gitops.facts import (
    IAM_DIR,
    IRSA_ROLE_ANNOTATION,
    IRSA_TRUST_POLICY,
    KMS_KEY_ARN,
    POD_IDENTITY_PRINCIPAL,
    POD_IDENTITY_TRUST_POLICY,
    S3_LOGS_POLICY,
    aws_partition,
)
from airflow_gitops.validate.objects import dig
from airflow_gitops.validate.report import Issue
from airflow_gitops.validate.values import Deployed

S3_URL = re.compile(r"^s3://([^/]+)/?(.*?)/?$")
ROLE_ACCOUNT = re.compile(r"^arn:aws[a-zA-Z-]*:iam::([0-9]{12}):role/")


def check_iam(repo: Path, deployed: dict[str, Deployed]) -> list[tuple[str, Issue]]:
    found: list[tuple[str, Issue]] = []
    roles: dict[str, str] = {}
    for env, release in sorted(deployed.items()):
        role = release.irsa_role
        if role and role in roles:
            found.append((f"deploy/overlays/{env}", Issue("ERROR", "", f"IRSA role {role} is also environment "
                          f"{roles[role]!r}'s: one role has one trust policy and one log policy, so creating "
                          "this environment's would replace the other's (give each environment its own role)")))
        if role:
            roles.setdefault(role, env)
        if len(set(release.irsa_roles)) > 1:
            pairs = ", ".join(f"{sa}: {r or 'none'}"
                              for sa, r in zip(release.service_accounts, release.irsa_roles, strict=True))
            found.append((f"deploy/overlays/{env}", Issue("ERROR", "", f"the ServiceAccounts that use the log role "
                          f"must carry the same {IRSA_ROLE_ANNOTATION} ({pairs})")))
        folder = repo / "deploy/overlays" / env / IAM_DIR
        where = str(folder.relative_to(repo))
        policy = _load(folder / S3_LOGS_POLICY, found, where)
        if policy is not None:
            found += [(where, i) for i in _check_policy(policy, release)]
        pod_identity = _load(folder / POD_IDENTITY_TRUST_POLICY, found, where, optional=True)
        trust = _load(folder / IRSA_TRUST_POLICY, found, where, optional=True)
        if pod_identity is not None:
            found += [(where, i) for i in _check_pod_identity(pod_identity, release)]
        if trust is not None:
            found += [(where, i) for i in _check_trust(trust, release)]
        elif pod_identity is None and policy is not None and not (folder / IRSA_TRUST_POLICY).is_file():
            found.append((where, Issue("INFO", IRSA_TRUST_POLICY, "not generated: answer eks_oidc_issuer to get "
                                       "the IRSA trust policy for this environment's role")))
    return found


def _load(path: Path, found: list[tuple[str, Issue]], where: str, optional: bool = False) -> Any:
    if not path.is_file():
        if not optional:
            found.append((where, Issue("INFO", path.name, "not in the repo: the IRSA role's permissions are not "
                                       "checked (managed elsewhere?)")))
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        found.append((where, Issue("ERROR", path.name, f"not valid JSON: {exc}")))
        return None


def _check_policy(policy: Any, release: Deployed) -> list[Issue]:
    issues = [Issue("ERROR", S3_LOGS_POLICY, message) for message in lint(policy)]
    folder = release.log_folder
    match = S3_URL.match(folder)
    if not match:
        return [*issues, Issue("WARN", S3_LOGS_POLICY, f"no s3:// remote log folder in the values ({folder!r}): "
                               "cannot check the policy's resources")]
    bucket, prefix = match.group(1), match.group(2)
    s3 = f"arn:{aws_partition(release.region)}:s3:::"
    allowed = {f"{s3}{bucket}", f"{s3}{bucket}/{prefix + '/' if prefix else ''}*"}
    for statement in _statements(policy):
        actions = _as_list(statement.get("Action"))
        if any(a in ("*", "s3:*", "kms:*") for a in actions):
            issues.append(Issue("ERROR", S3_LOGS_POLICY, f"grants {actions}: list the actions task logs need"))
        kms_only = bool(actions) and all(str(a).startswith("kms:") for a in actions)
        for resource in _as_list(statement.get("Resource")):
            if kms_only:  # SSE-KMS: the bucket's key, by ARN
                if not KMS_KEY_ARN.match(str(resource)):
                    issues.append(Issue("ERROR", S3_LOGS_POLICY, f"kms resource {resource!r} must be the log "
                                        "bucket's key ARN (arn:aws:kms:<region>:<account>:key/<id>)"))
            elif resource not in allowed:
                issues.append(Issue("ERROR", S3_LOGS_POLICY, f"resource {resource!r} is outside this environment's "
                                    f"log folder {folder} (allowed: {', '.join(sorted(allowed))})"))
    return issues


def _check_trust(trust: Any, release: Deployed) -> list[Issue]:
    issues: list[Issue] = []
    subjects = sorted(f"system:serviceaccount:{release.namespace}:{sa}" for sa in release.service_accounts)
    role = release.irsa_role
    account = ROLE_ACCOUNT.match(role)
    for statement in _statements(trust):
        federated = str(dig(statement, "Principal.Federated", ""))
        if account and f":iam::{account.group(1)}:oidc-provider/" not in federated:
            issues.append(Issue("ERROR", IRSA_TRUST_POLICY, f"Principal.Federated {federated!r} is not an OIDC "
                                f"provider of account {account.group(1)} ({role})"))
        issuer = federated.split(":oidc-provider/", 1)[-1]
        conditions = dig(statement, "Condition.StringEquals", {}) or {}
        if sorted(_as_list(conditions.get(f"{issuer}:sub"))) != subjects:
            like = (dig(statement, "Condition.StringLike", {}) or {}).get(f"{issuer}:sub")
            shown = f"StringLike {like!r}" if like else repr(conditions.get(f"{issuer}:sub"))
            want = subjects[0] if len(subjects) == 1 else subjects
            issues.append(Issue("ERROR", IRSA_TRUST_POLICY, f"{issuer}:sub must be exactly {want!r} under "
                                f"StringEquals (the chart's ServiceAccounts that use the role), found {shown}"))
        if conditions.get(f"{issuer}:aud") != "sts.amazonaws.com":
            issues.append(Issue("ERROR", IRSA_TRUST_POLICY, f"{issuer}:aud must be 'sts.amazonaws.com'"))
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
            issues.append(Issue("ERROR", POD_IDENTITY_TRUST_POLICY, f"Principal.Service must be "
                                f"{POD_IDENTITY_PRINCIPAL!r}, found {dig(statement, 'Principal.Service')!r}"))
        if not {"sts:AssumeRole", "sts:TagSession"} <= set(_as_list(statement.get("Action"))):
            issues.append(Issue("ERROR", POD_IDENTITY_TRUST_POLICY, "Action must allow sts:AssumeRole and "
                                "sts:TagSession (Pod Identity passes session tags)"))
        conditions = dig(statement, "Condition.StringEquals", {}) or {}
        for key, value in wanted.items():
            if sorted(_as_list(conditions.get(key))) != value:
                shown = value[0] if len(value) == 1 else value
                issues.append(Issue("ERROR", POD_IDENTITY_TRUST_POLICY, f"{key} must be exactly {shown!r}, "
                                    f"found {conditions.get(key)!r}: any association could assume the role"))
    if release.irsa_role:
        issues.append(Issue("WARN", POD_IDENTITY_TRUST_POLICY, f"the ServiceAccount also has {IRSA_ROLE_ANNOTATION}: "
                            "the SDKs use IRSA before Pod Identity"))
    return issues


def lint(policy: Any) -> list[str]:
    """parliament's findings on an identity policy (or why it could not run)."""
    try:
        from parliament import analyze_policy_string  # type: ignore[import-untyped]
    except ImportError:
        return ["parliament is not installed: run `make tools` (requirements-tools.txt)"]
    findings = analyze_policy_string(json.dumps(policy)).findings
    return [f"parliament: {f.issue}: {f.detail}" for f in findings]


def _statements(policy: Any) -> list[dict]:
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    return [s for s in _as_list(statements) if isinstance(s, dict)]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]
