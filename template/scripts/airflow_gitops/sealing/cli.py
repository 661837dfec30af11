"""Seal this repository's secrets offline, the way the sealed-secrets controller expects.

    make seal ENV=dev [SECRET=airflow-db] [CERT=cert.pem] [SCOPE=strict]
    make rotate-fernet ENV=dev
    make stamp ENV=dev

Values come from environment variables or a hidden prompt, never from arguments
(arguments end up in shell history and `ps`). Generated values (fernet key; webserver
secret key, or API secret key and JWT secret) are created here and never shown, and once sealed
they are kept: a new fernet key would make every stored connection and variable unreadable, a
new webserver or API key signs everyone out, a new JWT secret fails running tasks. Only
`make rotate-fernet`, an explicit value (AIRFLOW_FERNET_KEY, ...) or
`--regenerate` (REGENERATE=1) replace them. Every value is checked before anything is
written; only the named SealedSecret entries are rewritten; comments and key order are kept.
After sealing, the revision stamps (airflow_gitops.stamps) restart the pods that read a changed Secret.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from airflow_gitops import facts, stamps
from airflow_gitops.errors import UserError, report
from airflow_gitops.sealing.crypto import SCOPES, read_certificate
from airflow_gitops.sealing.files import (
    fernet_entry_key,
    plan_file,
    repo_flavor,
    seal_file,
    secret_files,
    with_shared_parts,
)
from airflow_gitops.sealing.plaintext import generate
from airflow_gitops.sealing.rules import fernet_key_problem

CERT_ENV = "SEALED_SECRETS_CERT"


def find_cert(repo: Path, env: str, given: str | None) -> str:
    explicit = given or os.environ.get(CERT_ENV)
    if explicit:
        if not Path(explicit).expanduser().is_file():
            raise UserError(f"certificate {explicit} does not exist")
        return explicit
    default = repo / "deploy/overlays" / env / "sealed-secrets-cert.pem"
    if default.is_file():
        return str(default)
    raise UserError(f"no certificate: pass CERT=path (from `kubeseal --fetch-cert`), set {CERT_ENV}, "
                    f"or save it as deploy/overlays/{env}/sealed-secrets-cert.pem")


def cmd_seal(args: argparse.Namespace) -> int:
    key = read_certificate(find_cert(args.repo, args.env, args.cert))
    interactive = sys.stdin.isatty()
    # Every value first (prompts, checks): an error leaves every file as it was. A password held by
    # several composite entries is asked once and sealed into all of them.
    parts: dict[str, str | None] = {}
    flavor = repo_flavor(args.repo)
    plans = [plan_file(path, key, scope=args.scope, interactive=interactive, regenerate=args.regenerate,
                       parts=parts, flavor=flavor)
             for path in with_shared_parts(secret_files(args.repo, args.env, args.secret),
                                           secret_files(args.repo, args.env, None))]
    for plan in plans:
        plan.write()
    stamp(args.repo, args.env)
    for plan in plans:
        where = plan.path.relative_to(args.repo)
        if plan.renamed:
            print(f"renamed {where}: {plan.renamed[0]} -> {plan.renamed[1]} (the key the {facts.CHART_FLAVORS[flavor]} "
                  "chart reads; the sealed fernet key is kept: its ciphertext is bound to the Secret, not the key)")
        if plan.sealed:
            entries = ", ".join(f"{k} ({note})" if note else k for k, note in sorted(plan.sealed.items()))
            print(f"sealed {where}: {entries} ({args.scope})")
        for k, why in sorted(plan.kept.items()):
            print(f"kept   {where}: {k} {why}")
    return 0


def stamp(repo: Path, env: str) -> list[str]:
    """Write the revision stamps (airflow_gitops.stamps) into deploy/overlays/<env>/secrets-revision.yaml,
    so the pods that read a changed Secret restart; returns the values paths it changed. The file is
    the tools' own: written whole, for the chart the repository is on now (a switched chart keeps no
    stamp of the other's)."""
    import yaml as pyyaml

    overlay = repo / "deploy" / "overlays" / env
    path = overlay / stamps.REVISION_FILE
    before = (pyyaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    flavor = repo_flavor(repo)
    want = stamps.revisions(overlay, flavor)
    values: dict = {}
    for keys, (group, annotation) in stamps.stamp_paths(flavor).items():
        node = values
        for key in keys:
            node = node.setdefault(key, {})
        node[annotation] = want[group]
    changed = stamps.stale(before, overlay, flavor)
    if values != before:
        header = "".join(line + "\n" for line in (path.read_text().splitlines() if path.is_file() else [])
                         if line.startswith("#"))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(header + pyyaml.safe_dump(values, sort_keys=False))
        os.replace(tmp, path)
        print(f"stamped deploy/overlays/{env}/{stamps.REVISION_FILE}: {', '.join(changed) or 'rewritten'} "
              "(the pods reading them restart)")
    return changed


def cmd_stamp(args: argparse.Namespace) -> int:
    stamp(args.repo, args.env)
    return 0


ROTATE_OLD_ENV = "AIRFLOW_FERNET_KEY_OLD"


def cmd_rotate_fernet(args: argparse.Namespace) -> int:
    """Step 1 of a fernet rotation: seal "new,old" so Airflow decrypts with both."""
    key = read_certificate(find_cert(args.repo, args.env, args.cert))
    (path,) = secret_files(args.repo, args.env, "airflow-fernet-key")
    if os.environ.get("AIRFLOW_FERNET_KEY"):
        raise UserError("AIRFLOW_FERNET_KEY is set: rotate-fernet generates the new key itself and takes the key "
                        f"in use from {ROTATE_OLD_ENV}; unset AIRFLOW_FERNET_KEY (it is for step 3, make seal)")
    old = os.environ.get(ROTATE_OLD_ENV) or (
        getpass.getpass(f"current fernet key ({ROTATE_OLD_ENV}): ") if sys.stdin.isatty() else "")
    if not old:
        raise UserError(f"set {ROTATE_OLD_ENV} to the key in use, e.g. from "
                        "`kubectl get secret airflow-fernet-key -o jsonpath='{.data.value}' | base64 -d`")
    if "," in old:
        raise UserError(f"{ROTATE_OLD_ENV} holds several keys: finish the previous rotation first (step 3: seal "
                        "the first key alone), then rotate from that key")
    if problem := fernet_key_problem(old, new=False):
        raise UserError(f"{ROTATE_OLD_ENV} {problem}; nothing written")
    new = generate("fernet")
    if new == old or fernet_key_problem(new):  # pragma: no cover - a broken random source
        raise UserError("the generated key is unusable: nothing written")
    entry_key = fernet_entry_key(path)
    seal_file(path, key, scope=args.scope, interactive=False, values={entry_key: f"{new},{old}"})
    print(f"sealed {path.relative_to(args.repo)}: value = <new key>,<old key> ({args.scope})")
    if weak := fernet_key_problem(old):  # decrypts, but public or not random: all the more reason to rotate
        print(f"note: the old key {weak.split(':')[0]}: finish all three steps to stop using it")
    stamp(args.repo, args.env)
    print("next: commit and let the GitOps engine roll out; then in a scheduler pod run `airflow rotate-fernet-key`;")
    print("then re-seal the new key alone: AIRFLOW_FERNET_KEY=<first key of the Secret> "
          f"make seal ENV={args.env} SECRET=airflow-fernet-key")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, helptext in (("seal", cmd_seal, "seal SealedSecret entries of an environment"),
                                 ("rotate-fernet", cmd_rotate_fernet, "seal '<new>,<old>' fernet keys")):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=func)
        p.add_argument("--env", required=True, help="environment (deploy/overlays/<env>)")
        p.add_argument("--cert", help=f"controller certificate PEM (default: ${CERT_ENV}, "
                       "then deploy/overlays/<env>/sealed-secrets-cert.pem)")
        p.add_argument("--scope", choices=SCOPES, default="strict")
        p.add_argument("--repo", type=Path, default=Path.cwd())
        if name == "seal":
            p.add_argument("--secret", help="only this SealedSecret (file name without .yaml)")
            p.add_argument("--regenerate", action="store_true",
                           help="replace sealed generated keys (fernet, webserver, API, JWT) with new ones: "
                                "before go-live only, a new fernet key makes stored connections and variables "
                                "unreadable")
    p = sub.add_parser("stamp", help="stamp the values so pods reading changed Secrets or settings restart")
    p.set_defaults(func=cmd_stamp)
    p.add_argument("--env", required=True, help="environment (deploy/overlays/<env>)")
    p.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        return report("seal: error", exc)
