"""AWS identity as code (IAM files, IRSA, EKS Pod Identity), the image mirror (ECR pull-through cache),
node autoscalers and the AWS Load Balancer Controller."""

from __future__ import annotations

import re


# ---------------------------------------------------------------- AWS identity as code
def aws_partition(region: str) -> str:
    """The ARN partition of a region: IAM, S3 and KMS ARNs must name it (aws-us-gov, aws-cn, aws)."""
    return "aws-us-gov" if region.startswith("us-gov-") else "aws-cn" if region.startswith("cn-") else "aws"



IAM_DIR = "iam"  # deploy/overlays/<env>/iam/: the IRSA role's policies, as JSON for the aws CLI or Terraform
S3_LOGS_POLICY = "s3-logs-policy.json"  # permissions policy: the env's task-log prefix only
IRSA_TRUST_POLICY = "irsa-trust-policy.json"  # trust policy: the chart's ServiceAccount via the cluster's OIDC
POD_IDENTITY_TRUST_POLICY = "pod-identity-trust-policy.json"  # trust policy: EKS Pod Identity, scoped by tags
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
# EKS Pod Identity: one association per (namespace, ServiceAccount), each a CreatePodIdentityAssociation
# request (aws eks create-pod-identity-association --cli-input-json); a list, one per ServiceAccount.
POD_IDENTITY_ASSOCIATIONS = "pod-identity-associations.json"
# The log policy's ListBucket grant: S3 answers a GET/HEAD of a missing key 404 only if the caller may
# ListBucket for that request (else 403), and a HEAD has no s3:prefix, which IfExists lets through.
S3_LIST_PREFIX_OPERATOR = "StringLikeIfExists"
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"  # on the chart's ServiceAccount: EKS injects the role
AWS_IDENTITIES = ("irsa", "pod-identity")  # the aws_identity answer


# ---------------------------------------------------------------- image mirror (answer image_mirror)
# An ECR pull-through cache serves each upstream registry under a repository prefix of its rule:
# <account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<upstream repository>. These are the prefixes
# the generated README tells you to create the rules with (one per upstream the charts pull from).
MIRROR_PREFIXES = {"docker.io": "docker-hub", "quay.io": "quay", "ghcr.io": "github"}
IMAGE_MIRROR = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+(:[0-9]{1,5})?$")


def upstream(repository: str) -> tuple[str, str]:
    """(registry, path) of an image repository as the charts write it (Docker Hub without a host)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", repository


def mirrored(repository: str, mirror: str) -> str:
    """`repository` pulled through the mirror (unchanged without one, or from a registry it has no rule for)."""
    registry, path = upstream(repository)
    if not mirror or registry not in MIRROR_PREFIXES:
        return repository
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"  # a Docker Hub official image: ECR's cache names it docker-hub/library/<name>
    return f"{mirror}/{MIRROR_PREFIXES[registry]}/{path}"


def unmirrored(repository: str) -> str:
    """The upstream repository a mirrored one stands for (as the charts write it); others as they are."""
    host, _, rest = repository.partition("/")
    prefix, _, path = rest.partition("/")
    by_prefix = {v: k for k, v in MIRROR_PREFIXES.items()}
    if "." not in host or prefix not in by_prefix or not path:
        return repository
    if by_prefix[prefix] == "docker.io":
        return path.removeprefix("library/")
    return f"{by_prefix[prefix]}/{path}"


# ---------------------------------------------------------------- node autoscalers
# Pods that run tasks (Celery workers, KubernetesExecutor task pods) must not be moved by a node
# consolidation in the middle of a task: the annotation each autoscaler honours.
DO_NOT_DISRUPT = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "karpenter.sh/do-not-disrupt": "true"}
# AWS Load Balancer Controller, target-type ip: pods of a namespace with this label get a readiness
# gate, so a rollout waits until the ALB has registered the new pod (no 502s while old ones go).
ALB_READINESS_GATE_LABEL = ("elbv2.k8s.aws/pod-readiness-gate-inject", "enabled")
# An ALB group name (alb.ingress.kubernetes.io/group.name): Ingresses with the same one share an ALB.
ALB_GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


def alb_annotations(certificate_arn: str, health_path: str, group: str = "") -> dict[str, str]:
    """The web Ingress' annotations for the AWS Load Balancer Controller: an internal ALB sending to
    pod IPs, HTTPS on 443 with the ACM certificate, plain HTTP only redirecting."""
    annotations = {
        "alb.ingress.kubernetes.io/scheme": "internal",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/healthcheck-path": health_path,
        "alb.ingress.kubernetes.io/certificate-arn": certificate_arn,
        "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
        "alb.ingress.kubernetes.io/ssl-redirect": "443",
        "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }
    return {**annotations, "alb.ingress.kubernetes.io/group.name": group} if group else annotations
