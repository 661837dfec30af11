"""Story: after go-live a platform engineer changes an answer the sealed secrets depend on: a new RDS
host, a new ElastiCache host, RDS certificate verification turned on or off. `copier update` never
re-renders a sealed file, so what is not secret (pgbouncer.ini, the URLs' shapes) lives beside it in
secrets/settings/ and follows the answers; a connection URL sealed for the old host makes `make
validate` fail, naming it, until `make seal` seals it again; and the render is never half old, half
new (pgbouncer's TLS mode and its CA volume move together)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from airflow_gitops import facts
from airflow_gitops.stamps import PGBOUNCER_STAMP, STAMP
from helpers.copying import change_answers, commit_all
from helpers.make import install_rds_ca, run_make, run_validate
from helpers.paths import chart_tgz
from helpers.secrets import PASSWORDS, environ
from standins.controller import make_cert, make_key, unseal_object

pytestmark = pytest.mark.slow  # copier copy + update, make seal, validate and render with the real chart

NEW_RDS = "airflow-moved.zyxwvutsrqpo.eu-west-1.rds.amazonaws.com"
NEW_REDIS = "airflow-moved.fedcba.ng.0001.euw1.cache.amazonaws.com"
SECRETS = Path("deploy/overlays/dev/secrets")


@pytest.fixture(scope="module")
def controller_key():
    return make_key(2048)


def sealed_repo(tmp: Path, copy_project, answers: dict[str, Any], key) -> Path:
    """An official-chart repo with every secret sealed at copy time, committed."""
    cert = make_cert(key, tmp / "cert.pem")
    with environ(PASSWORDS):
        repo = copy_project(tmp / "repo", {**answers, "sealed_secrets_cert": str(cert)})
    if (repo / "deploy/overlays/dev" / facts.RDS_CA_BUNDLE).exists():
        install_rds_ca(repo, cert.read_bytes())
    commit_all(repo, "sealed")
    return repo


def built(repo: Path) -> dict[tuple[str, str], dict]:
    """(kind, name) -> the SealedSecrets and Deployments `make render` writes (what the cluster gets)."""
    out = run_make(repo, "render", "ENV=dev", f"CHART={chart_tgz()}")
    assert out.returncode == 0, out.stdout + out.stderr
    docs = [yaml.safe_load(p.read_text()) for p in (repo / "build/render/dev").glob("*/*.yaml")]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d and d["kind"] in ("SealedSecret", "Deployment")}


def pgbouncer_ini(objs: dict[tuple[str, str], dict]) -> str:
    return objs["SealedSecret", "airflow-pgbouncer"]["spec"]["template"]["data"]["pgbouncer.ini"]


def ca_mounted(objs: dict[tuple[str, str], dict]) -> bool:
    volumes = objs["Deployment", f"{facts_release(objs)}-pgbouncer"]["spec"]["template"]["spec"]["volumes"]
    return any((v.get("secret") or {}).get("secretName") == "rds-ca-bundle" for v in volumes)


def facts_release(objs: dict[tuple[str, str], dict]) -> str:
    return next(name.removesuffix("-pgbouncer") for kind, name in objs if kind == "Deployment"
                and name.endswith("-pgbouncer"))


def test_new_hosts_and_tls_reach_the_render_and_stale_urls_fail_until_resealed(tmp_path, copy_project,
                                                                               official_answers,
                                                                               controller_key) -> None:
    repo = sealed_repo(tmp_path, copy_project, {**official_answers, "rds_tls_verify": False}, controller_key)
    assert run_validate(repo, strict=True).returncode == 0
    before = (repo / SECRETS / "airflow-broker-url.yaml").read_text()

    changed = change_answers(repo, rds_host=NEW_RDS, redis_host=NEW_REDIS, rds_tls_verify=True)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert (repo / SECRETS / "airflow-broker-url.yaml").read_text() == before  # the ciphertext is never re-rendered
    install_rds_ca(repo, (tmp_path / "cert.pem").read_bytes())

    # What is not secret follows at once: pgbouncer talks to the new host, verified, with its CA mounted.
    objs = built(repo)
    ini = pgbouncer_ini(objs)
    assert f"host={NEW_RDS} " in ini and "server_tls_sslmode = verify-full" in ini, ini
    assert f"server_tls_ca_file = {facts.PGBOUNCER_RDS_CA_DIR}/root.crt" in ini and ca_mounted(objs)
    # The broker URL was sealed with the old ElastiCache host: validate names it and the way out.
    result = run_validate(repo, strict=True)
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert result.returncode != 0 and len(errors) == 1, result.stdout
    assert "airflow-broker-url" in errors[0] and NEW_REDIS in errors[0] and "make seal ENV=dev" in errors[0]

    # make seal seals it again (the AUTH token once more), and nothing else changes.
    others = {p.name: p.read_text() for p in (repo / SECRETS).glob("*.yaml") if p.name != "airflow-broker-url.yaml"}
    env = dict(os.environ, SEALED_SECRETS_CERT=str(tmp_path / "cert.pem"),
               AIRFLOW_REDIS_PASSWORD=PASSWORDS["AIRFLOW_REDIS_PASSWORD"])
    resealed = run_make(repo, "seal", "ENV=dev", "SECRET=airflow-broker-url", env=env)
    assert resealed.returncode == 0, resealed.stdout + resealed.stderr
    assert {p.name: p.read_text() for p in (repo / SECRETS).glob("*.yaml")
            if p.name != "airflow-broker-url.yaml"} == others
    assert run_validate(repo, strict=True).returncode == 0
    url = unseal_object(controller_key, built(repo)["SealedSecret", "airflow-broker-url"])["connection"]
    assert urlsplit(url).hostname == NEW_REDIS

    # And back: verification off takes the CA volume and verify-full away together.
    commit_all(repo, "moved")
    assert change_answers(repo, rds_tls_verify=False).returncode == 0
    objs = built(repo)
    assert "server_tls_sslmode = require" in pgbouncer_ini(objs) and "root.crt" not in pgbouncer_ini(objs)
    assert not ca_mounted(objs)
    # No URL holds the TLS mode of RDS, so nothing is re-sealed; but pgbouncer must restart to read
    # its new pgbouncer.ini (a subPath mount never updates): validate says so until `make stamp`.
    result = run_validate(repo, strict=True)
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "pgbouncer.podAnnotations" in errors[0] and "airflowPodAnnotations" not in errors[0] \
        and "make stamp ENV=dev" in errors[0], result.stdout
    revision = repo / "deploy/overlays/dev/secrets-revision.yaml"
    before = yaml.safe_load(revision.read_text())
    assert run_make(repo, "stamp", "ENV=dev").returncode == 0
    after = yaml.safe_load(revision.read_text())
    assert after["pgbouncer"] != before["pgbouncer"]  # pgbouncer restarts, the Airflow pods do not
    assert after["airflowPodAnnotations"] == before["airflowPodAnnotations"]
    assert run_validate(repo, strict=True).returncode == 0
    # The stamp is in the pod templates the release applies: a new one rolls the pods.
    objs = built(repo)
    release = facts_release(objs)
    for workload, group, stamp in ((f"{release}-pgbouncer", "pgbouncer", PGBOUNCER_STAMP),
                                   (f"{release}-scheduler", "airflowPodAnnotations", STAMP)):
        annotations = objs["Deployment", workload]["spec"]["template"]["metadata"]["annotations"]
        want = after[group]["podAnnotations"] if group == "pgbouncer" else after[group]
        assert annotations[stamp] == want[stamp], workload


def test_an_edit_left_in_an_old_sealed_file_is_named_not_lost(tmp_path, copy_project, official_answers,
                                                              controller_key) -> None:
    """A repository from before settings/ carried pgbouncer.ini in the sealed file, where its README
    said to edit it: once the settings file takes over, a differing copy fails validate (move the
    edit), an identical one warns, and `make seal` removes the identical one."""
    repo = sealed_repo(tmp_path, copy_project, official_answers, controller_key)
    path = repo / SECRETS / "airflow-pgbouncer.yaml"
    settings = yaml.safe_load((repo / SECRETS / "settings/airflow-pgbouncer.yaml").read_text())
    ini = settings["spec"]["template"]["data"]["pgbouncer.ini"]
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["template"]["data"] = {"pgbouncer.ini": ini.replace("max_client_conn = 100", "max_client_conn = 500")}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run_validate(repo)
    assert result.returncode != 0 and "spec.template.data.pgbouncer.ini is also in settings/airflow-pgbouncer.yaml" \
        in result.stdout and "move any edit of yours there" in result.stdout, result.stdout

    doc["spec"]["template"]["data"] = {"pgbouncer.ini": ini}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = run_validate(repo)
    assert result.returncode == 0 and "`make seal` removes this copy" in result.stdout, result.stdout
    env = dict(os.environ, SEALED_SECRETS_CERT=str(tmp_path / "cert.pem"), **PASSWORDS)
    assert run_make(repo, "seal", "ENV=dev", "SECRET=airflow-pgbouncer", env=env).returncode == 0
    assert "data" not in yaml.safe_load(path.read_text())["spec"]["template"]
    assert "removes this copy" not in run_validate(repo).stdout
