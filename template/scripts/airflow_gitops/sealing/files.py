"""`make seal`'s edits of the SealedSecret files: only the named encryptedData entries are
rewritten, comments and key order are kept, and nothing is written until every value is known.

Round-trip YAML (ruamel): a sealed file is the user's, and copier update never re-renders it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_gitops import facts
from airflow_gitops.errors import UserError
from airflow_gitops.sealing.crypto import SCOPE_ANNOTATIONS, entry_state, seal_value
from airflow_gitops.sealing.plaintext import composite_plaintext, generate, plaintext, source_for
from airflow_gitops.secret_settings import SETTINGS_DIR


def shape_of(meta: dict, key: str) -> str | None:
    """The compose annotation of one encryptedData key: it is a composite entry."""
    value = (meta.get("annotations") or {}).get(facts.COMPOSE_ANNOTATION + key)
    return None if value is None else str(value)


def settings_of(path: Path) -> dict:
    """The settings file of the SealedSecret in `path` (secrets/settings/<name>.yaml: the non-secret
    half, which follows the answers), or {} for a repository from before it."""
    settings = path.parent / SETTINGS_DIR / path.name
    doc = _yaml().load(settings.read_text()) if settings.is_file() else None
    return doc if isinstance(doc, dict) else {}


def wanted_shape(path: Path, meta: dict, key: str) -> str | None:
    """The shape the answers want (the settings file's), else the one the file was sealed from."""
    wanted = shape_of(settings_of(path).get("metadata") or {}, key)
    return wanted if wanted is not None else shape_of(meta, key)


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and quoting survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # ciphertext stays on one line
    return yaml


def file_scope(meta: dict) -> str:
    annotations = meta.get("annotations") or {}
    for scope, annotation in SCOPE_ANNOTATIONS.items():
        if str(annotations.get(annotation, "")).lower() == "true":
            return scope
    return "strict"


@dataclass
class FilePlan:
    """What sealing one SealedSecret file will do; nothing is written until `write()`."""

    path: Path
    name: str
    sealed: dict[str, str] = field(default_factory=dict)  # key -> note on where the value came from
    kept: dict[str, str] = field(default_factory=dict)  # key -> why the sealed ciphertext stays
    renamed: tuple[str, str] | None = None  # (old key, new key): the fernet key moved to its chart's name
    content: str | None = None  # the new file text; None: the file stays byte-identical

    def write(self) -> None:
        if self.content is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.content)
        os.replace(tmp, self.path)  # never a half-written manifest


def plan_file(path: Path, public_key, *, scope: str, interactive: bool,
              values: dict[str, str] | None = None, regenerate: bool = False,
              parts: dict[str, str | None] | None = None, flavor: str | None = None) -> FilePlan:
    """Seal the encryptedData entries of one SealedSecret file, in memory.

    `values` are given plaintexts (rotate-fernet); `flavor` gives airflow-fernet-key its chart's
    key. A generated entry (fernet key, webserver, API or JWT key) that is sealed already is kept
    unless its variable gives a value or `regenerate`."""
    yaml = _yaml()
    doc = yaml.load(path.read_text())
    if not doc or doc.get("kind") != "SealedSecret":
        raise UserError(f"{path} is not a SealedSecret")
    meta, spec = doc["metadata"], doc["spec"]
    name, namespace = meta["name"], meta.get("namespace")
    template_meta = spec.get("template", {}).get("metadata", {}) or {}
    bound = (template_meta.get("name", name), template_meta.get("namespace", namespace))
    if not namespace or bound != (name, namespace):
        raise UserError(f"{path}: metadata and spec.template.metadata must agree on name and namespace "
                        "(the ciphertext is bound to them)")
    plan = FilePlan(path, name)
    if flavor and name == "airflow-fernet-key":
        plan.renamed = rename_fernet_key(spec["encryptedData"], facts.FERNET_KEY_OF[flavor])
    new: dict[str, str] = {}
    parts = {} if parts is None else parts
    for key in list(spec["encryptedData"]):
        source = source_for(name, key)
        state = entry_state(spec["encryptedData"][key])
        if (shape := wanted_shape(path, meta, key)) is not None:
            if state == "sealed" and shape != shape_of(meta, key):
                state = "stale"  # sealed from another shape (an answer moved): it must be sealed again
            try:
                got = composite_plaintext(name, key, shape, state=state, interactive=interactive, parts=parts)
            except UserError as exc:
                if state != "stale":
                    raise
                raise UserError(f"{path}: {name}/{key} was sealed for {shape_of(meta, key)!r}, but the answers "
                                f"now give {shape!r} ({SETTINGS_DIR}/{path.name}): it must be sealed again: "
                                f"{exc}") from None
            if got is None:
                plan.kept[key] = "sealed already, kept (empty answer)"
                continue
            value, note = got, "built from " + ", ".join(facts.compose_refs(shape)) if facts.compose_refs(shape) else ""
            if state == "stale":
                note += f" (sealed for an old {facts.COMPOSE_ANNOTATION}{key})"
            meta.setdefault("annotations", {})[facts.COMPOSE_ANNOTATION + key] = shape  # what it is sealed from
        elif (values or {}).get(key):
            value, note = values[key], ""
        elif source.generate and not os.environ.get(source.env):
            if state != "placeholder" and not regenerate:
                if state == "unknown":
                    raise UserError(f"{path}: {name}/{key} is neither a placeholder nor a sealed value, so it is "
                                    f"not regenerated: set {source.env} to the value in use, or REGENERATE=1")
                plan.kept[key] = (f"sealed already, not regenerated: {source.keep} "
                                  f"(to replace it: {source.env}=<value> or REGENERATE=1)")
                continue
            value = generate(source.generate)
            note = "generated" if state == "placeholder" else "REGENERATE=1: a new value replaces the sealed one"
        else:
            got = plaintext(name, key, interactive=interactive, sealed=state == "sealed")
            if got is None:
                plan.kept[key] = "sealed already, kept (empty answer)"
                continue
            value = got
            note = f"from {source.env}" if os.environ.get(source.env) else ""
            if source.generate and state != "placeholder":
                note += ", replaces the sealed one"
        new[key] = seal_value(public_key, value.encode(), namespace=namespace, name=name, scope=scope)
        plan.sealed[key] = note
    current = file_scope(meta)
    if plan.kept and current != scope:  # a kept ciphertext cannot be re-encrypted: its label is the scope
        envs = ", ".join(source_for(name, k).env for k in plan.kept)
        raise UserError(f"{path}: {', '.join(plan.kept)} stays sealed {current} (kept), so {name} cannot be "
                        f"sealed {scope}: give the value in use ({envs}; kubectl get secret {name} ... | base64 -d), "
                        f"or keep SCOPE={current}")
    dropped = _drop_settled_data(path, spec)
    if not new and not plan.renamed and not dropped:
        return plan  # everything kept: the file stays byte-identical
    spec["encryptedData"].update(new)
    annotations = meta.get("annotations") or {}
    for other in SCOPE_ANNOTATIONS.values():
        annotations.pop(other, None)
    if scope != "strict":
        annotations[SCOPE_ANNOTATIONS[scope]] = "true"
    if annotations:
        meta["annotations"] = annotations
    elif "annotations" in meta:
        del meta["annotations"]
    out = io.StringIO()
    yaml.dump(doc, out)
    plan.content = out.getvalue()
    return plan


def _drop_settled_data(path: Path, spec: Any) -> list[str]:
    """Remove from the sealed file the template.data entries its settings file now holds with the
    same value (repositories from before settings/ carried them here); a different value is kept,
    and make validate says to move it."""
    settled = ((settings_of(path).get("spec") or {}).get("template") or {}).get("data") or {}
    data = (spec.get("template") or {}).get("data")
    dropped = [k for k in list(data or {}) if k in settled and str(data[k]) == str(settled[k])]
    for key in dropped:
        del data[key]
    if dropped and not data:
        del spec["template"]["data"]
    return dropped


def rename_fernet_key(entries: Any, want: str) -> tuple[str, str] | None:
    """Give airflow-fernet-key the key its chart reads (a repo moved to the other chart flavor keeps
    the other one: sealed files are never overwritten by copier update). The ciphertext moves as is:
    the controller binds it to the Secret's name and namespace, not to the key, so the fernet key in
    use, and every connection it encrypted, survives the move."""
    others = [k for k in entries if k in facts.FERNET_KEYS and k != want]
    if want in entries or len(others) != 1:
        return None
    old = others[0]
    entries.insert(list(entries).index(old), want, entries.pop(old))
    return old, want


def repo_flavor(repo: Path) -> str:
    """The repository's airflow_chart answer; an answers file from before the question: community."""
    answers = _yaml().load((repo / facts.ANSWERS_FILE).read_text()) if (repo / facts.ANSWERS_FILE).exists() else {}
    return str((answers or {}).get("airflow_chart") or facts.LEGACY_FLAVOR)


def seal_file(path: Path, public_key, *, scope: str, interactive: bool,
              values: dict[str, str] | None = None, regenerate: bool = False) -> list[str]:
    """Seal one SealedSecret file in place; returns the keys sealed."""
    plan = plan_file(path, public_key, scope=scope, interactive=interactive, values=values, regenerate=regenerate)
    plan.write()
    return sorted(plan.sealed)


def is_sealed_secret(path: Path) -> bool:
    """A SealedSecret manifest (the folder also holds its kustomization.yaml and the Namespace)."""
    try:
        doc = _yaml().load(path.read_text())
    except Exception as exc:  # ruamel's parser errors share no useful base class
        raise UserError(f"{path}: not readable YAML: {exc}") from exc
    return isinstance(doc, dict) and doc.get("kind") == "SealedSecret"


def secret_files(repo: Path, env: str, secret: str | None) -> list[Path]:
    folder = repo / "deploy" / "overlays" / env / "secrets"
    if not folder.is_dir():
        raise UserError(f"no environment {env!r}: {folder} does not exist")
    files = [f for f in sorted(folder.glob("*.yaml")) if is_sealed_secret(f)]
    if secret:
        have = ", ".join(f.stem for f in files)
        files = [f for f in files if f.stem == secret]
        if not files:
            raise UserError(f"no SealedSecret {secret!r} in {folder} (have: {have})")
    return files


def _refs(path: Path) -> set[str]:
    doc = _yaml().load(path.read_text())
    meta = doc.get("metadata") or {}
    return {ref for key in (doc.get("spec") or {}).get("encryptedData") or {}
            if (shape := wanted_shape(path, meta, key)) for ref in facts.compose_refs(shape)}


def with_shared_parts(chosen: list[Path], every: list[Path]) -> list[Path]:
    """`chosen`, plus every file whose composite entries hold a secret a chosen one holds: sealing
    one connection URL with a new password must seal the others with it too."""
    refs = set().union(*(_refs(p) for p in chosen)) if chosen else set()
    extra = [p for p in every if p not in chosen and refs & _refs(p)]
    for p in extra:
        print(f"also   {p.name}: holds {', '.join(sorted(refs & _refs(p)))} too")
    return chosen + extra


def fernet_entry_key(path: Path) -> str:
    """airflow-fernet-key's encryptedData key: `value` (community chart) or `fernet-key` (official)."""
    keys = [k for k in (_yaml().load(path.read_text())["spec"].get("encryptedData") or {}) if k in facts.FERNET_KEYS]
    if len(keys) != 1:
        raise UserError(f"{path}: expected one of {', '.join(facts.FERNET_KEYS)} in encryptedData")
    return keys[0]
