"""Argo CD AppProjects and what they let an Application do: source repos, destinations, and the
kinds its path sources deploy (https://argo-cd.readthedocs.io/en/stable/user-guide/projects/).
Patterns are Argo CD's globs; repo URLs are compared normalized, like Argo CD's NormalizeGitURL
(https://github.com/argoproj/argo-cd/blob/master/util/git/git.go)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from airflow_gitops.objects import CLUSTER_SCOPED, dig, find, ns_of, ref
from airflow_gitops.validate.report import ERROR, WARN, Issue, about

SCP_URL = re.compile(r"^([\w.-]+@[\w.-]+):(?!//)(.*)$")  # git@host:org/repo


def _glob(pattern: str, value: str, sep: str = "") -> bool:
    """Argo CD's glob: a lone `*` matches everything; with `sep`, `*` stops at it and `**` does not."""
    if pattern == "*":
        return True
    if not sep:
        return fnmatch.fnmatchcase(value, pattern)
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    rx = "".join({"**": ".*", "*": f"[^{sep}]*", "?": f"[^{sep}]"}.get(p, re.escape(p)) for p in parts)
    return re.fullmatch(rx, value) is not None


def _permitted(value: str, patterns: list, sep: str = "") -> bool:
    """Some pattern matches and no `!pattern` does."""
    allowed = False
    for pattern in (str(p) for p in patterns):
        if pattern.startswith("!"):
            if _glob(pattern[1:], value, sep):
                return False
        elif _glob(pattern, value, sep):
            allowed = True
    return allowed


def _norm_url(url: str) -> str:
    """Like Argo CD's NormalizeGitURL: lower case, scp-like to ssh://, no .git or trailing /."""
    url = SCP_URL.sub(r"ssh://\1/\2", url.strip().lower())
    return url.removesuffix("/").removesuffix(".git").removesuffix("/")


def _destination_permitted(dest: dict, namespace: str, destinations: list) -> bool:
    for item in (d for d in destinations if isinstance(d, dict)):
        server = bool(dest.get("server")) and _glob(str(item.get("server") or ""), str(dest["server"]))
        name = bool(dest.get("name")) and _glob(str(item.get("name") or ""), str(dest["name"]))
        if (server or name) and _glob(str(item.get("namespace") or ""), namespace):
            return True
    return False


def _kind_permitted(group: str, kind: str, spec: dict, cluster_scoped: bool) -> bool:
    """AppProject resource lists: no clusterResourceWhitelist denies every cluster-scoped kind,
    no namespaceResourceWhitelist allows every namespaced one; blacklists always win."""
    def listed(entries: Any) -> bool:
        return any(_glob(str(e.get("group", "")), group) and _glob(str(e.get("kind", "")), kind)
                   for e in entries or [] if isinstance(e, dict))

    scope = "cluster" if cluster_scoped else "namespace"
    allow = spec.get(f"{scope}ResourceWhitelist")
    allowed = listed(allow) if cluster_scoped or allow is not None else True
    return allowed and not listed(spec.get(f"{scope}ResourceBlacklist"))


def _dest_str(dest: dict, namespace: str) -> str:
    target = f"server {dest['server']}" if dest.get("server") else f"cluster {dest.get('name')}"
    return f"{target} namespace {namespace or '(none: cluster-scoped only)'!r}"


def check_app_project(proj: dict) -> list[Issue]:
    """There is no AppProject schema: its load-bearing fields are checked here."""
    spec = proj.get("spec") or {}
    issues = [Issue(ERROR, ref(proj), f"spec.{key} must be a non-empty list (Argo CD denies everything "
                    "without it)") for key in ("sourceRepos", "destinations")
              if not isinstance(spec.get(key), list) or not spec[key]]
    for i, dest in enumerate(spec.get("destinations") or []):
        if not isinstance(dest, dict) or not (dest.get("server") or dest.get("name")):
            issues.append(Issue(ERROR, ref(proj), f"spec.destinations[{i}] needs server or name"))
    return issues


def check_project_limits(app: dict, sources: list[tuple[str, dict]], objs: list[dict],
                         deployed: list[tuple[str, list[dict] | None]]) -> list[Issue]:
    """The Application against its AppProject (found in `objs`); `deployed`: (path, its build objects
    or None if not built) of every git source with a path."""
    name = dig(app, "spec.project")
    if not name:
        return []  # required by the Application schema
    project = find(objs, "AppProject", str(name), ns_of(app))
    if project is None and name == "default":
        return [Issue(WARN, ref(app), "spec.project 'default' allows every source, destination and "
                      "cluster-scoped kind: use a dedicated AppProject")]
    if project is None:
        return [Issue(ERROR, ref(app), f"spec.project {name!r}: no AppProject {name} in namespace "
                      f"{ns_of(app)} in this build")]
    pspec = project.get("spec") or {}
    issues = about(_source_and_destination_rules(app, sources, str(name), pspec), ref(app))
    namespace = str(dig(app, "spec.destination.namespace") or "")
    for path, objects in deployed:
        issues += _deployed_rules(app, path, objects or [], pspec, namespace)
    return issues


def _source_and_destination_rules(app: dict, sources: list[tuple[str, dict]], name: str,
                                  pspec: dict) -> list[Issue]:
    found = []
    repos = [str(p) for p in pspec.get("sourceRepos") or []]
    normalized = [("!" if p.startswith("!") else "") + _norm_url(p.removeprefix("!")) for p in repos]
    for label, src in sources:
        if not _permitted(_norm_url(str(src.get("repoURL", ""))), normalized, "/"):
            found.append(Issue(ERROR, "", f"{label}: repoURL {src.get('repoURL')!r} is not in AppProject {name} "
                               f"sourceRepos "
                          f"({', '.join(repos) or 'none'})"))
    dest = dig(app, "spec.destination") or {}
    namespace = str(dest.get("namespace") or "")
    if not _destination_permitted(dest, namespace, pspec.get("destinations") or []):
        found.append(Issue(ERROR, "", f"destination {_dest_str(dest, namespace)} is not allowed by AppProject {name} "
                      "destinations"))
    whitelist = pspec.get("clusterResourceWhitelist") or []
    if any(s.get("chart") == "airflow" for _, s in sources) and any(
            isinstance(e, dict) and e.get("kind") == "*" for e in whitelist):
        found.append(Issue(WARN, "", f"AppProject {name} clusterResourceWhitelist allows every cluster-scoped "
                                     "kind (`*`) "
                      "for the airflow chart: list only what it deploys (Namespace, PersistentVolume)"))
    return found


def _deployed_rules(app: dict, path: str, objs: list[dict], pspec: dict, namespace: str) -> list[Issue]:
    """What a path source applies must fit the project: namespaces (one line each, the destination's
    own is reported above) and kinds (one line each)."""
    project = dig(app, "spec.project")
    dest = dig(app, "spec.destination") or {}
    kinds: set[tuple[str, str, bool]] = set()
    namespaces: set[str] = set()
    for obj in objs:
        cluster_scoped = obj.get("kind") in CLUSTER_SCOPED
        kinds.add((str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind")), cluster_scoped))
        if not cluster_scoped:
            namespaces.add(str(ns_of(obj) or namespace))
    issues = []
    for group, kind, cluster_scoped in sorted(kinds):
        if not _kind_permitted(group, kind, pspec, cluster_scoped):
            scope = "clusterResource" if cluster_scoped else "namespaceResource"
            issues.append(Issue(ERROR, ref(app), f"{path} deploys {kind} ({group or 'core'}), not permitted by "
                                f"AppProject {project} {scope}Whitelist/Blacklist"))
    for ns in sorted(namespaces - {namespace}):
        if not ns:
            issues.append(Issue(ERROR, ref(app), f"{path} deploys namespaced objects without a namespace and "
                                "the destination has none"))
        elif not _destination_permitted(dest, ns, pspec.get("destinations") or []):
            issues.append(Issue(ERROR, ref(app), f"{path} deploys into namespace {ns!r}, not allowed by "
                                f"AppProject {project} destinations"))
    return issues
