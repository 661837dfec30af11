"""Environments side by side: each overlay owns one namespace, no two environments on one cluster
share a namespace or an S3 log folder, cluster-scoped objects built twice are identical, and every
object belongs to the repo's one GitOps engine."""

from __future__ import annotations

from pathlib import Path

from airflow_gitops.facts import ANSWERS_FILE, GITOPS_ENGINES
from airflow_gitops.objects import CLUSTER_SCOPED, dig, engine_of, ns_of, ref
from airflow_gitops.validate.report import ERROR, Issue
from airflow_gitops.values import release_values, remote_log_folder


def check_namespace(objs: list[dict]) -> list[Issue]:
    """An env overlay owns exactly one Namespace, the one all its objects live in."""
    used = sorted({str(ns_of(o)) for o in objs if o.get("kind") not in CLUSTER_SCOPED})
    declared = [dig(o, "metadata.name") for o in objs if o.get("kind") == "Namespace"]
    if len(used) != 1:
        return [Issue(ERROR, "", f"namespaced objects span {len(used)} namespaces ({', '.join(used)}); expected one")]
    if declared != used:
        return [Issue(ERROR, "", f"expected exactly one Namespace {used[0]!r}, found {declared or 'none'}")]
    return []


def clusters_of(repo: Path | None, builds: dict[str, list[dict]]) -> dict[str, str]:
    """env -> cluster directory, from the layout clusters/<cluster>/<env>/ (under Flux an env dir has
    no kustomization.yaml, so it is no build of its own), else from the builds' names."""
    found = {parts[2]: parts[1] for name in builds if len(parts := Path(name).parts) >= 3 and parts[0] == "clusters"}
    for env_dir in sorted(repo.glob("clusters/*/*/")) if repo else []:
        if env_dir.is_dir() and (repo / "deploy/overlays" / env_dir.name).is_dir():
            found[env_dir.name] = env_dir.parent.name
    return found


def check_environments(builds: dict[str, list[dict]], repo: Path | None = None) -> list[Issue]:
    """Environments on one cluster (clusters/<cluster>/<env>/) must not share a namespace: they would
    share the Helm release, the DAG volume and the Secrets. Nor may two share an S3 log folder."""
    cluster_of = clusters_of(repo, builds)
    seen_ns: dict[tuple[str, str], str] = {}
    seen_logs: dict[str, str] = {}
    found = []
    for name, objs in sorted(builds.items()):
        parts = Path(name).parts
        if len(parts) != 3 or parts[:2] != ("deploy", "overlays"):
            continue
        env = parts[2]
        for ns in sorted({ns_of(o) for o in objs if ns_of(o)}):
            key = (cluster_of.get(env, "?"), ns)
            if key in seen_ns:
                found.append(Issue(ERROR, "", f"namespace {ns!r} is also environment {seen_ns[key]!r}'s on "
                              f"cluster {key[0]!r}: the two would share the release, the DAG volume and the "
                              "Secrets").at(name))
            seen_ns.setdefault(key, env)
        folder = remote_log_folder(release_values(objs) or {})
        if folder:
            found += [issue.at(name) for issue in _log_folder_overlaps(str(folder).rstrip("/"), seen_logs)]
            seen_logs[str(folder).rstrip("/")] = env
    return found


def _log_folder_overlaps(folder: str, seen: dict[str, str]) -> list[Issue]:
    return [Issue(ERROR, "", f"remote log folder {folder} overlaps environment {other!r}'s {other_folder}: "
                  "their task logs would mix")
            for other_folder, other in seen.items()
            if folder == other_folder or folder.startswith(other_folder + "/") or other_folder.startswith(folder + "/")]


def check_cluster_scoped(builds: dict[str, list[dict]], repo: Path | None = None) -> list[Issue]:
    """The same cluster-scoped object from two builds must be identical, or two envs
    sharing a cluster would overwrite (and prune) each other's copy. Environments on different
    clusters never meet; a build of no environment (infrastructure/) goes to every cluster."""
    cluster_of = clusters_of(repo, builds)
    seen: dict[tuple[str, str, str], tuple[str, dict]] = {}
    issues: list[Issue] = []
    for build, objs in builds.items():
        parts = Path(build).parts
        env = parts[2] if len(parts) >= 3 and parts[:2] == ("deploy", "overlays") else None
        cluster = cluster_of.get(env, "?") if env else "*"
        for obj in (o for o in objs if o.get("kind") in CLUSTER_SCOPED):
            key = (cluster, str(obj.get("kind")), str(dig(obj, "metadata.name")))
            first = seen.setdefault(key, (build, obj))
            if first[0] != build and first[1] != obj:
                issues.append(Issue(ERROR, ref(obj), f"cluster-scoped object differs from the one "
                                            f"built by {first[0]} (two envs would fight over it)").at(build))
    return issues


def check_engine_purity(builds: dict[str, list[dict]], engine: str | None) -> list[Issue]:
    """One engine per repo: the other engine's objects would never reconcile without its controllers
    and CRDs (Argo CD can apply a HelmRelease, https://argo-cd.readthedocs.io/en/stable/operator-manual/health/,
    but only helm-controller installs it)."""
    if engine is None:
        return []
    if engine not in GITOPS_ENGINES:
        known = " nor ".join(GITOPS_ENGINES)
        return [Issue(ERROR, "", f"gitops_engine {engine!r} is neither {known}").at(ANSWERS_FILE)]
    return [Issue(ERROR, ref(obj), f"{GITOPS_ENGINES[other]} object in a gitops_engine: {engine} repo "
                          f"(nothing reconciles it without the {GITOPS_ENGINES[other]} controllers)").at(build)
            for build, objs in builds.items() for obj in objs if (other := engine_of(obj)) not in (None, engine)]
