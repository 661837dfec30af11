"""What `make seal` and `make rds-ca` still have to fill in, and SealedSecrets a build would break:
strict scope seals the name and namespace, so a kustomize rename makes them undecryptable
(https://github.com/bitnami-labs/sealed-secrets#scopes)."""

from __future__ import annotations

from pathlib import Path

import yaml

from airflow_gitops import stamps
from airflow_gitops.facts import COMPOSE_ANNOTATION, PLACEHOLDER_PREFIX, RDS_CA_BUNDLE, SEALED_SCOPE_ANNOTATIONS
from airflow_gitops.objects import dig, ns_of, ref
from airflow_gitops.secret_settings import SETTINGS_DIR
from airflow_gitops.validate.report import ERROR, WARN, Issue


def check_sealed_secrets(objs: list[dict], env: str, strict: bool = False) -> list[Issue]:
    issues: list[Issue] = []
    for obj in (o for o in objs if o.get("kind") == "SealedSecret"):
        name = dig(obj, "metadata.name")
        issues += _sealed_binding(obj)
        for key, val in sorted((dig(obj, "spec.encryptedData") or {}).items()):
            if str(val).startswith(PLACEHOLDER_PREFIX):
                issues.append(Issue(ERROR if strict else WARN, ref(obj),
                                    f"encryptedData.{key} is a placeholder: run `make seal ENV={env} SECRET={name}`"))
    return issues


def _sealed_binding(obj: dict) -> list[Issue]:
    """A build that renames a SealedSecret (namePrefix, nameSuffix, namespace) breaks it.

    The template metadata is not rewritten by kustomize, so a mismatch after the build means
    a transform moved the object. Strict scope binds name and namespace, namespace-wide the
    namespace: the controller then fails with "no key could decrypt secret".
    """
    annotations = dig(obj, "metadata.annotations") or {}
    cluster_wide = annotations.get(SEALED_SCOPE_ANNOTATIONS["cluster-wide"]) == "true"
    namespace_wide = annotations.get(SEALED_SCOPE_ANNOTATIONS["namespace-wide"]) == "true"
    name, namespace = dig(obj, "metadata.name"), ns_of(obj)
    tpl_name, tpl_ns = dig(obj, "spec.template.metadata.name"), dig(obj, "spec.template.metadata.namespace")
    issues = []
    if tpl_name and tpl_name != name:
        level = WARN if cluster_wide or namespace_wide else ERROR
        issues.append(Issue(level, ref(obj), f"built name {name!r} != spec.template.metadata.name {tpl_name!r}: "
                            "a namePrefix/nameSuffix renamed it, and strict scope seals the name"))
    if tpl_ns and tpl_ns != namespace:
        level = WARN if cluster_wide else ERROR
        issues.append(Issue(level, ref(obj), f"built namespace {namespace!r} != spec.template.metadata.namespace "
                            f"{tpl_ns!r}: the sealed scope binds the namespace"))
    return issues


def check_ca_bundles(repo: Path, strict: bool) -> list[Issue]:
    """deploy/overlays/<env>/rds-ca-bundle.pem must hold AWS's bundle before pgbouncer verifies RDS."""
    found = []
    for path in sorted(repo.glob(f"deploy/overlays/*/{RDS_CA_BUNDLE}")):
        env = path.parent.name
        if "-----BEGIN CERTIFICATE-----" not in path.read_text(errors="replace"):
            found.append(Issue(ERROR if strict else WARN, "",
                          f"placeholder: pgbouncer cannot verify RDS until you run `make rds-ca ENV={env}`",
                               str(path.relative_to(repo))))
    return found


def check_sealed_settings(repo: Path) -> list[Issue]:
    """Each SealedSecret against its settings file (secrets/settings/<name>.yaml, which follows the
    answers): a composite entry sealed from another shape than the one the answers now give holds
    an old host, user or TLS mode (ERROR until `make seal`); template.data the sealed file still
    carries is overridden by the settings (ERROR if it differs: an edit that would be lost)."""
    found = []
    for settings in sorted(repo.glob(f"deploy/overlays/*/secrets/{SETTINGS_DIR}/*.yaml")):
        env, sealed = settings.parents[2].name, settings.parents[1] / settings.name
        where = str(sealed.relative_to(repo))
        if not sealed.is_file():
            found.append(Issue(ERROR, "", f"no {sealed.name} beside it to merge over", str(settings.relative_to(repo))))
            continue
        want, have = yaml.safe_load(settings.read_text()) or {}, yaml.safe_load(sealed.read_text()) or {}
        name = dig(have, "metadata.name")
        ref_ = f"SealedSecret/{dig(have, 'metadata.namespace')}/{name}"
        wanted = dig(want, "metadata.annotations") or {}
        recorded = dig(have, "metadata.annotations") or {}
        for key, value in sorted((dig(have, "spec.encryptedData") or {}).items()):
            shape = COMPOSE_ANNOTATION + key
            if str(value).startswith(PLACEHOLDER_PREFIX) or shape not in wanted or recorded.get(shape) == wanted[shape]:
                continue
            found.append(Issue(ERROR, ref_, f"encryptedData.{key} was sealed for {recorded.get(shape)!r}, "
                                       f"but {SETTINGS_DIR}/{settings.name} (the answers) now gives {wanted[shape]!r}: "
                                       f"run `make seal ENV={env} SECRET={name}`").at(where))
        settled = dig(want, "spec.template.data") or {}
        for key, value in sorted((dig(have, "spec.template.data") or {}).items()):
            if key not in settled:
                continue
            same = str(value) == str(settled[key])
            found.append(Issue(WARN if same else ERROR, ref_,
                          f"spec.template.data.{key} is also in {SETTINGS_DIR}/{settings.name}, which the build uses"
                          + (": `make seal` removes this copy" if same else
                             f" (it differs: move any edit of yours there), then delete it from {sealed.name}"),
                                where))
    return found


def check_stamps(repo: Path, flavor: str, strict: bool) -> list[Issue]:
    """Each environment's values carry the revision of the Secrets and settings its pods read
    (airflow_gitops.stamps): a stale one means pods keep the old password or pgbouncer.ini."""
    found = []
    for overlay in sorted(p.parent for p in repo.glob("deploy/overlays/*/secrets")):
        values_file = overlay / stamps.REVISION_FILE
        if not values_file.is_file():
            continue  # a repository from before it (copier update adds it)
        if any(PLACEHOLDER_PREFIX in p.read_text() for p in (overlay / "secrets").glob("*.yaml")):
            continue  # not sealed yet: nothing runs on these Secrets (the placeholders are reported)
        values = yaml.safe_load(values_file.read_text()) or {}
        if stale := stamps.stale(values, overlay, flavor):
            found.append(Issue(
                ERROR if strict else WARN, "", f"{', '.join(stale)}: the revision stamp is not that of the "
                f"secrets/ and settings/ files, so the pods reading them would not restart and keep the old values: "
                f"run `make stamp ENV={overlay.name}` (make seal does it too) and commit",
                str(values_file.relative_to(repo))))
    return found
