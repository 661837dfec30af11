"""What the cluster must run (make preflight): each component's minimum version and how to find it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from airflow_gitops.facts.layout import KEDA_NAMESPACE, PROMETHEUS_NAMESPACE
from airflow_gitops.facts.repository import POD_SECURITY_VERSION

# ---------------------------------------------------------------- what the cluster must run (make preflight)
# Each minimum is the oldest release that serves every field/API the generated repository uses,
# with the source that says so beside it. README.md's "Cluster requirements" renders them,
# scripts/airflow_gitops/preflight.py checks them against the cluster kubectl points at.
FLUX_NAMESPACE = "flux-system"  # `flux bootstrap`'s default, where clusters/<cluster>/*.yaml put the Kustomizations
ARGOCD_NAMESPACE = "argocd"  # the Applications' and AppProjects' namespace (clusters/<cluster>/)
ADDON_NAMESPACE = "kube-system"  # sealed-secrets-controller (its name kubeseal defaults to), EFS CSI, AWS LB controller
INGRESS_CLASS = "alb"  # web_hostname: the Ingress's ingressClassName, the AWS Load Balancer Controller's class


@dataclass(frozen=True)
class Workload:
    """A controller's Deployment (or DaemonSet, StatefulSet) whose image tag tells its version."""

    kind: str  # Deployment, DaemonSet or StatefulSet
    namespace: str
    name: str | None  # None: any object of that kind in the namespace running `image`
    image: str  # last path segment of the container image's repository (registries and mirrors vary)


@dataclass(frozen=True)
class Requirement:
    """One component the generated repository needs in the cluster, and how preflight finds it."""

    key: str
    name: str  # as the README and preflight's output call it
    minimum: str  # oldest version that serves what `why` names
    why: str  # the field or API of this repository that needs it
    detect: str  # how `make preflight` tells (README column)
    workloads: tuple[Workload, ...] = ()
    crds: tuple[tuple[str, str], ...] = ()  # (CRD name, version it must serve)
    objects: tuple[tuple[str, str], ...] = ()  # (kind, name) of cluster-scoped objects it must have made
    installed_here: bool = False  # this repository installs it (infrastructure/): absent before the first sync


KUBERNETES = Requirement(
    # Every environment's Namespace pins Pod Security `restricted` at POD_SECURITY_VERSION (v1.31), and
    # `make render` checks the pods against that version's rules. An older API server does not refuse the
    # label: it evaluates a version newer than its own as its `latest` (KEP-2579, kubernetes/enhancements
    # keps/sig-auth/2579-psp-replacement, "Monitoring": "evaluated as latest ... recorded as future"), i.e.
    # rules nobody checked these pods against. So 1.31, the version the pods were checked for.
    # Needed anyway: Ingress networking.k8s.io/v1 (1.19), the kubernetes.io/metadata.name label the
    # NetworkPolicies select namespaces by (1.22), HorizontalPodAutoscaler autoscaling/v2 for KEDA (1.23).
    "kubernetes", "Kubernetes", "1.31",
    f"Namespaces enforce Pod Security `restricted` pinned at {POD_SECURITY_VERSION}", "the API server's /version")
SEALED_SECRETS = Requirement(
    # SealedSecret status conditions (type Synced) are what the Flux healthCheckExprs and Argo CD's
    # SealedSecret health read: bitnami-labs/sealed-secrets#382 added them, opt-in (--update-status)
    # from v0.15.0, on by default from v0.17.0 (sealed-secrets RELEASE-NOTES.md, v0.15.0/v0.17.0;
    # redhat-cop/gitops-catalog#75). This repository installs chart 2.18.0, which is newer.
    "sealed-secrets", "Sealed Secrets controller", "0.17.0",
    "SealedSecrets Ready only once decrypted (their `Synced` status condition)",
    f"Deployment {ADDON_NAMESPACE}/sealed-secrets-controller's image tag; CRD sealedsecrets.bitnami.com v1alpha1",
    (Workload("Deployment", ADDON_NAMESPACE, "sealed-secrets-controller", "sealed-secrets-controller"),),
    (("sealedsecrets.bitnami.com", "v1alpha1"),), installed_here=True)
EFS_CSI = Requirement(
    # Access points in a static PV's volumeHandle (fs-id::fsap-id): aws-efs-csi-driver v1.0.0,
    # "Support access points on the same file system" (#185, CHANGELOG-1.x.md). The mount is the node
    # plugin's (DaemonSet efs-csi-node); the controller only provisions dynamically, which this repo does not.
    "efs-csi", "AWS EFS CSI driver", "1.0.0", "static EFS PersistentVolume with an access point in `volumeHandle`",
    f"CSIDriver efs.csi.aws.com; DaemonSet {ADDON_NAMESPACE}/efs-csi-node's image tag",
    (Workload("DaemonSet", ADDON_NAMESPACE, "efs-csi-node", "aws-efs-csi-driver"),),
    objects=(("CSIDriver", "efs.csi.aws.com"),))
FLUX = (
    Requirement(
        # HelmRepository source.toolkit.fluxcd.io/v1: GA in Flux 2.3 with source-controller v1.3.0, which
        # helm-controller v1.0.0 requires (helm-controller CHANGELOG.md, 1.0.0 "Upgrade procedure").
        "flux-source-controller", "Flux source-controller", "1.3.0", "HelmRepository source.toolkit.fluxcd.io/v1",
        f"Deployment {FLUX_NAMESPACE}/source-controller's image tag; CRDs helmrepositories, gitrepositories v1",
        (Workload("Deployment", FLUX_NAMESPACE, "source-controller", "source-controller"),),
        (("helmrepositories.source.toolkit.fluxcd.io", "v1"), ("gitrepositories.source.toolkit.fluxcd.io", "v1"))),
    Requirement(
        # Kustomization spec.healthCheckExprs (CEL): kustomize-controller v1.5.0, Flux 2.5
        # (fluxcd/kustomize-controller#1344, RFC-0009; https://fluxcd.io/blog/2025/02/flux-v2.5.0/).
        "flux-kustomize-controller", "Flux kustomize-controller", "1.5.0",
        "Kustomization `healthCheckExprs` (the secrets Kustomization waits for every SealedSecret)",
        f"Deployment {FLUX_NAMESPACE}/kustomize-controller's image tag; CRD kustomizations v1",
        (Workload("Deployment", FLUX_NAMESPACE, "kustomize-controller", "kustomize-controller"),),
        (("kustomizations.kustomize.toolkit.fluxcd.io", "v1"),)),
    Requirement(
        # HelmRelease helm.toolkit.fluxcd.io/v2: helm-controller v1.0.0 (CHANGELOG.md 1.0.0). Upgrade strategy
        # RetryOnFailure (a failed upgrade is retried, never rolled back): fluxcd/helm-controller#1281
        # (merged August 2025, after v1.3.0), shipped in v1.4.0 with Flux 2.7
        # (https://fluxcd.io/blog/2025/09/flux-v2.7.0/). But before v1.4.5 each RetryOnFailure retry grew
        # .status.history without bound until the object outgrew etcd (fluxcd/helm-controller#1359, fixed by
        # #1360, backported in #1361, Flux v2.7.5: "Fix HelmRelease history truncation when using the
        # RetryOnFailure strategy"): a failing upgrade retried every 10 minutes would get there.
        "flux-helm-controller", "Flux helm-controller", "1.4.5",
        "HelmRelease v2 with `upgrade.strategy.name: RetryOnFailure`",
        f"Deployment {FLUX_NAMESPACE}/helm-controller's image tag; CRD helmreleases v2",
        (Workload("Deployment", FLUX_NAMESPACE, "helm-controller", "helm-controller"),),
        (("helmreleases.helm.toolkit.fluxcd.io", "v2"),)),
)
ARGOCD = Requirement(
    # spec.syncPolicy.retry.refresh ("use the latest revision on retry"): argoproj/argo-cd#23038 (opened
    # 2025-05-19, closes #11494). NOT VERIFIED which release first ships it: v3.1 if it merged before
    # release-3.1 was cut (RC1 2025-06-16); argoproj-labs/argocd-operator#1989 lists `refresh` as new when
    # moving to v3.2.1. Conservatively 3.2.0. Older needs, all met by it: multi-source Applications with
    # `ref` (2.6), helm.valuesObject (2.8), ServerSideApply=true (2.5).
    "argocd", "Argo CD", "3.2.0", "multi-source Applications, `syncPolicy.retry.refresh`",
    f"StatefulSet {ARGOCD_NAMESPACE}/argocd-application-controller's and Deployment argocd-repo-server's "
    "image tags; CRDs applications, appprojects v1alpha1",
    (Workload("StatefulSet", ARGOCD_NAMESPACE, "argocd-application-controller", "argocd"),
     Workload("Deployment", ARGOCD_NAMESPACE, "argocd-repo-server", "argocd")),
    (("applications.argoproj.io", "v1alpha1"), ("appprojects.argoproj.io", "v1alpha1")))
AWS_LB_CONTROLLER = Requirement(
    # networking.k8s.io/v1 Ingress, the only one Kubernetes >= 1.22 serves: v2.4.0 is the first release
    # that watches it (its release notes: clusters before 1.19 stay on v2.3.x), and the first whose Helm
    # chart creates the IngressClass `alb`. (`ssl-redirect` itself is in the docs from v2.3.)
    "aws-lb-controller", "AWS Load Balancer Controller", "2.4.0",
    f"Ingress class `{INGRESS_CLASS}` with the `ssl-redirect`, `listen-ports`, `ssl-policy` annotations",
    f"Deployment {ADDON_NAMESPACE}/aws-load-balancer-controller's image tag; IngressClass {INGRESS_CLASS}",
    (Workload("Deployment", ADDON_NAMESPACE, "aws-load-balancer-controller", "aws-load-balancer-controller"),),
    objects=(("IngressClass", INGRESS_CLASS),))
INGRESS_CONTROLLER = "ingress.k8s.aws/alb"  # the IngressClass's spec.controller the AWS Load Balancer Controller serves
KEDA = Requirement(
    # The chart's ScaledObject (keda.sh/v1alpha1, postgresql trigger with connectionFromEnv) is KEDA 2.0's
    # shape (https://keda.sh/docs/2.0/scalers/postgresql/), but KEDA < 2.9 creates autoscaling/v2beta2
    # HPAs, which Kubernetes stopped serving in 1.26 (kedacore/keda#3606 moved to autoscaling/v2 for 2.9;
    # https://kubernetes.io/docs/reference/using-api/deprecation-guide/#horizontalpodautoscaler-v126).
    "keda", "KEDA", "2.9.0", "the chart's ScaledObject for the Celery workers (keda_autoscaling)",
    f"Deployment {KEDA_NAMESPACE}/keda-operator's image tag; CRD scaledobjects.keda.sh v1alpha1",
    (Workload("Deployment", KEDA_NAMESPACE, "keda-operator", "keda"),),
    (("scaledobjects.keda.sh", "v1alpha1"),))
PROMETHEUS_OPERATOR = Requirement(
    # PrometheusRule arrived in 0.20.0 (prometheus-operator CHANGELOG.md); from 0.39.0 the operator needs
    # Kubernetes 1.16+ and ships apiextensions.k8s.io/v1 CRDs (Documentation/compatibility.md), the only
    # ones Kubernetes 1.22+ serves. Nothing newer is used (endpoints: port, interval; rules: expr, for).
    "prometheus-operator", "Prometheus Operator", "0.39.0", "ServiceMonitor and PrometheusRule (metrics)",
    f"a Deployment in {PROMETHEUS_NAMESPACE} running the prometheus-operator image; "
    "CRDs servicemonitors, prometheusrules v1",
    (Workload("Deployment", PROMETHEUS_NAMESPACE, None, "prometheus-operator"),),
    (("servicemonitors.monitoring.coreos.com", "v1"), ("prometheusrules.monitoring.coreos.com", "v1")))


POD_IDENTITY_AGENT = Requirement(
    # aws_identity: pod-identity. Without the agent the SDKs find no credentials, and Airflow's S3 log
    # handler swallows the error (task logs silently never reach S3). Any release serves what the
    # associations need: the version is EKS's; only that the add-on runs is checked.
    "pod-identity-agent", "EKS Pod Identity Agent", "0.0.1", "aws_identity: pod-identity (the pods' AWS credentials)",
    f"DaemonSet {ADDON_NAMESPACE}/eks-pod-identity-agent (the EKS add-on)",
    (Workload("DaemonSet", ADDON_NAMESPACE, "eks-pod-identity-agent", "eks-pod-identity-agent"),))


def in_namespace(req: Requirement, default: str, namespace: str) -> Requirement:
    """`req` with its workloads (and what the README says) in the namespace the answers name."""
    if namespace == default:
        return req
    workloads = tuple(replace(w, namespace=namespace) if w.namespace == default else w for w in req.workloads)
    return replace(req, workloads=workloads, detect=req.detect.replace(default, namespace))


def cluster_requirements(engine: str, keda: bool = False, metrics: bool = False, ingress: bool = False,
                         pod_identity: bool = False, keda_namespace: str = KEDA_NAMESPACE,
                         prometheus_namespace: str = PROMETHEUS_NAMESPACE) -> list[Requirement]:
    """What one environment's answers need in its cluster, in the order preflight checks them."""
    found = [KUBERNETES, *(FLUX if engine == "flux" else (ARGOCD,)), SEALED_SECRETS, EFS_CSI]
    return found + [r for r, used in ((POD_IDENTITY_AGENT, pod_identity), (AWS_LB_CONTROLLER, ingress),
                                      (in_namespace(KEDA, KEDA_NAMESPACE, keda_namespace), keda),
                                      (in_namespace(PROMETHEUS_OPERATOR, PROMETHEUS_NAMESPACE, prometheus_namespace),
                                       metrics)) if used]
