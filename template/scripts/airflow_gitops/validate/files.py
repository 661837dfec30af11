"""Every YAML and JSON file of the repository parses (reported with its line and column), without
duplicate keys, and none is a plaintext Kubernetes Secret."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from airflow_gitops.build import walk
from airflow_gitops.objects import UniqueKeyLoader
from airflow_gitops.validate.report import ERROR, Issue


def check_yaml_files(repo: Path) -> list[Issue]:
    """Every YAML and JSON file parses, without duplicate keys, and none holds a plaintext Kubernetes
    Secret (a document, or a List item: what `kubectl get secret -o yaml|json` writes). Reported as
    file:line:column: kustomize would only name the ConfigMap generated from it, or fail without
    saying which file."""
    found = []
    for directory, _, files in walk(repo):
        if directory.relative_to(repo).parts[:1] == ("build",):
            continue
        for name in (f for f in files if f.endswith((".yaml", ".yml", ".json"))):
            path = directory / name
            where = str(path.relative_to(repo))
            try:
                docs = _documents(path)
            except yaml.MarkedYAMLError as exc:
                mark = exc.problem_mark
                at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
                found.append(Issue(ERROR, "", f"invalid YAML: {exc.problem or exc}").at(at))
                continue
            except json.JSONDecodeError as exc:
                found.append(Issue(ERROR, "", f"invalid JSON: {exc.msg}").at(f"{where}:{exc.lineno}:{exc.colno}"))
                continue
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                found.append(Issue(ERROR, "", f"invalid YAML: {exc}").at(where))
                continue
            found += [Issue(ERROR, ref, "a plaintext Kubernetes Secret: seal it (make seal) and delete "
                                    "this file; Git history keeps it, so rotate the values it held").at(where)
                      for ref in _plaintext_secrets(docs)]
    return found


def _documents(path: Path) -> list:
    text = path.read_text()
    return [json.loads(text)] if path.suffix == ".json" else list(yaml.load_all(text, Loader=UniqueKeyLoader))


def _plaintext_secrets(docs: list) -> list[str]:
    found = []
    for doc in docs:
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("kind") == "Secret" and str(item.get("apiVersion", "v1")) == "v1":
                meta = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
                found.append(f"Secret/{meta.get('name', '?')}")
    return found
