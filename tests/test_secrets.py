"""Story: secrets are sealed offline (at copy time or with `make seal`) and never written in clear."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow_gitops.sealing import crypto, plaintext
from cryptography.exceptions import InvalidTag
from helpers.copying import assert_nothing_written, commit_all
from helpers.make import run_validate
from helpers.paths import load_module
from helpers.secrets import PASSWORDS, built_sealed_secrets, read_until
from standins.controller import label_for, make_cert, make_key, unseal, unseal_object

FERNET = re.compile(r"^[A-Za-z0-9_-]{43}=$")


@pytest.fixture(scope="session")
def controller_key():
    return make_key(4096)  # the controller's default key size


@pytest.fixture
def cert(controller_key, tmp_path: Path) -> Path:
    return make_cert(controller_key, tmp_path / "cert.pem")


@pytest.fixture
def sealed_repo(tmp_path: Path, copy_project, demo_answers, cert, monkeypatch) -> Path:
    for name, value in PASSWORDS.items():
        monkeypatch.setenv(name, value)
    return copy_project(tmp_path / "repo", {**demo_answers, "sealed_secrets_cert": str(cert)})


@pytest.mark.parametrize("scope", crypto.SCOPES)
def test_round_trip_per_scope(controller_key, cert, scope) -> None:
    public = crypto.read_certificate(cert)
    ciphertext = crypto.seal_value(public, b"s3cr3t", namespace="airflow-dev", name="airflow-db", scope=scope)
    assert ciphertext.startswith("Ag"), "4096-bit keys give Ag... like kubeseal"
    obj = {"metadata": {"name": "airflow-db", "namespace": "airflow-dev", "annotations": {}}}
    if scope != "strict":
        obj["metadata"]["annotations"][crypto.SCOPE_ANNOTATIONS[scope]] = "true"
    assert unseal(controller_key, ciphertext, label_for(obj)) == b"s3cr3t"
    if scope != "cluster-wide":
        with pytest.raises(ValueError):
            unseal(controller_key, ciphertext, b"other-ns/airflow-db" if scope == "strict" else b"other-ns")


def test_tampering_is_detected(controller_key, cert) -> None:
    ciphertext = crypto.seal_value(crypto.read_certificate(cert), b"value", namespace="ns", name="n")
    raw = bytearray(base64.b64decode(ciphertext))
    raw[-1] ^= 0x01
    with pytest.raises(InvalidTag):
        unseal(controller_key, base64.b64encode(bytes(raw)).decode(), b"ns/n")


def test_copy_with_certificate_seals_everything(sealed_repo: Path, controller_key) -> None:
    objects = built_sealed_secrets(sealed_repo)
    assert set(objects) == {"airflow-db", "airflow-redis", "airflow-admin-user", "airflow-fernet-key",
                            "airflow-webserver-secret-key"}
    plain = {name: unseal_object(controller_key, obj) for name, obj in objects.items()}
    assert plain["airflow-db"] == {"password": PASSWORDS["AIRFLOW_DB_PASSWORD"]}
    assert plain["airflow-redis"] == {"password": PASSWORDS["AIRFLOW_REDIS_PASSWORD"]}
    assert plain["airflow-admin-user"] == {"password": PASSWORDS["AIRFLOW_ADMIN_PASSWORD"]}
    assert FERNET.match(plain["airflow-fernet-key"]["value"])
    assert len(plain["airflow-webserver-secret-key"]["value"]) >= 32
    # Strict scope: the same ciphertext moved to another name does not decrypt.
    moved = {**objects["airflow-db"], "metadata": {**objects["airflow-db"]["metadata"], "name": "renamed"}}
    with pytest.raises(ValueError):
        unseal_object(controller_key, moved)
    strict = run_validate(sealed_repo, strict=True)  # also checks keys against what the values reference
    assert strict.returncode == 0, strict.stdout + strict.stderr


def test_plaintext_never_written(sealed_repo: Path, controller_key) -> None:
    commit_all(sealed_repo, "generated")
    history = subprocess.run(["git", "-C", str(sealed_repo), "log", "-p", "--all"], capture_output=True,
                             text=True, check=True).stdout
    fernet = unseal_object(controller_key, built_sealed_secrets(sealed_repo)["airflow-fernet-key"])["value"]
    files = "\n".join(p.read_text(errors="replace") for p in sealed_repo.rglob("*") if p.is_file()
                      and ".git" not in p.parts)
    answers = (sealed_repo / ".copier-answers.yml").read_text()
    for value in [*PASSWORDS.values(), fernet]:
        assert value not in files and value not in history
    assert "password" not in answers and "sealed_secrets_cert" not in answers


def test_make_seal_rewrites_only_the_named_secret(tmp_path, copy_project, demo_answers, cert, controller_key):
    repo = copy_project(tmp_path / "repo", demo_answers)
    before = {p.name: p.read_text() for p in (repo / "deploy/overlays/dev/secrets").glob("*.yaml")}
    env = dict(os.environ, AIRFLOW_DB_PASSWORD="n3w-db-pw", SEALED_SECRETS_CERT=str(cert))
    subprocess.run(["make", "-s", "-C", str(repo), "seal", "ENV=dev", "SECRET=airflow-db",
                    f"TOOLS_PYTHON={sys.executable}"],
                   check=True, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    after = {p.name: p.read_text() for p in (repo / "deploy/overlays/dev/secrets").glob("*.yaml")}
    assert {n for n in before if before[n] != after[n]} == {"airflow-db.yaml"}
    assert after["airflow-db.yaml"].splitlines()[:3] == before["airflow-db.yaml"].splitlines()[:3]  # comments kept
    obj = built_sealed_secrets(repo)["airflow-db"]
    assert unseal_object(controller_key, obj) == {"password": "n3w-db-pw"}
    assert obj["spec"]["template"]["data"] == {"username": "airflow"}


def test_make_seal_all_then_strict_validate(tmp_path, copy_project, demo_answers, cert, controller_key) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    env = dict(os.environ, SEALED_SECRETS_CERT=str(cert), **PASSWORDS)
    subprocess.run(["make", "-s", "-C", str(repo), "seal", "ENV=dev", f"TOOLS_PYTHON={sys.executable}"],
                   check=True, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    assert run_validate(repo, strict=True).returncode == 0
    plain = unseal_object(controller_key, built_sealed_secrets(repo)["airflow-fernet-key"])
    assert FERNET.match(plain["value"])


@pytest.mark.parametrize("scope", ["namespace-wide", "cluster-wide"])
def test_make_seal_with_wider_scope_annotates(tmp_path, copy_project, demo_answers, cert, controller_key, scope):
    repo = copy_project(tmp_path / "repo", demo_answers)
    env = dict(os.environ, SEALED_SECRETS_CERT=str(cert), AIRFLOW_ADMIN_PASSWORD="adm1n-pw")
    subprocess.run(["make", "-s", "-C", str(repo), "seal", "ENV=dev", "SECRET=airflow-admin-user", f"SCOPE={scope}",
                    f"TOOLS_PYTHON={sys.executable}"], check=True, env=env, capture_output=True,
                   stdin=subprocess.DEVNULL)
    obj = built_sealed_secrets(repo)["airflow-admin-user"]
    assert obj["metadata"]["annotations"] == {f"sealedsecrets.bitnami.com/{scope}": "true"}
    assert unseal_object(controller_key, obj) == {"password": "adm1n-pw"}


def test_rotate_fernet_seals_new_then_old(tmp_path, copy_project, demo_answers, cert, controller_key) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    old = plaintext.generate("fernet")
    env = dict(os.environ, SEALED_SECRETS_CERT=str(cert), AIRFLOW_FERNET_KEY_OLD=old)
    out = subprocess.run(["make", "-s", "-C", str(repo), "rotate-fernet", "ENV=dev", f"TOOLS_PYTHON={sys.executable}"],
                         check=True, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    new, previous = unseal_object(controller_key, built_sealed_secrets(repo)["airflow-fernet-key"])["value"].split(",")
    assert previous == old and FERNET.match(new) and new != old
    assert new not in out and "airflow rotate-fernet-key" in out


def test_seal_errors_are_clear_and_change_nothing(tmp_path, copy_project, demo_answers, cert, controller_key) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    secrets_dir = repo / "deploy/overlays/dev/secrets"
    before = {p.name: p.read_text() for p in secrets_dir.glob("*.yaml")}
    expired = make_cert(controller_key, tmp_path / "expired.pem", days=1, offset_days=-30)
    not_cert = tmp_path / "key.pem"
    not_cert.write_text("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")}
    cases = [
        ({"SEALED_SECRETS_CERT": str(expired)}, [], "certificate expired"),
        ({"SEALED_SECRETS_CERT": str(not_cert)}, [], "not an X.509 certificate"),
        ({"SEALED_SECRETS_CERT": str(tmp_path / "missing.pem")}, [], "does not exist"),
        ({"SEALED_SECRETS_CERT": str(cert)}, ["SECRET=airflow-db"], "set AIRFLOW_DB_PASSWORD"),
        ({"SEALED_SECRETS_CERT": str(cert), "AIRFLOW_DB_PASSWORD": "pw\n"}, ["SECRET=airflow-db"], "newline"),
        ({"SEALED_SECRETS_CERT": str(cert)}, ["SECRET=nope"], "no SealedSecret 'nope'"),
    ]
    for extra_env, args, message in cases:
        cmd = ["make", "-s", "-C", str(repo), "seal", "ENV=dev", *args, f"TOOLS_PYTHON={sys.executable}"]
        result = subprocess.run(cmd,
                                env={**env, **extra_env}, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    assert {p.name: p.read_text() for p in secrets_dir.glob("*.yaml")} == before


@pytest.mark.parametrize(("extra", "message"), [
    ({"sealed_secrets_cert": "/nonexistent/cert.pem"}, "cannot read certificate"),
    ({"sealed_secrets_cert": "EXPIRED"}, "certificate expired"),
    ({"sealed_secrets_cert": "CERT"}, "set AIRFLOW_DB_PASSWORD"),
])
def test_copy_time_errors_write_nothing(tmp_path, copy_project, demo_answers, controller_key, cert, monkeypatch,
                                         extra, message) -> None:
    for name in PASSWORDS:
        monkeypatch.delenv(name, raising=False)
    paths = {"EXPIRED": str(make_cert(controller_key, tmp_path / "old.pem", days=1, offset_days=-30)),
             "CERT": str(cert)}
    answers = {**demo_answers, **{k: paths.get(v, v) for k, v in extra.items()}}
    dst = tmp_path / "dst"
    with pytest.raises(ValueError, match=message):
        copy_project(dst, answers)
    assert_nothing_written(dst)


def test_a_copy_into_an_existing_directory_stops_before_writing(tmp_path, copy_project, demo_answers, cert,
                                                                 monkeypatch) -> None:
    """A fresh `git init` with a README: the copy is refused before any file is written, and says why
    (a conflict Copier cannot ask about without a terminal; passwords --defaults will not ask for)."""
    for name in PASSWORDS:
        monkeypatch.delenv(name, raising=False)
    dst = tmp_path / "existing"
    dst.mkdir()
    commit_all(dst, "init")
    (dst / "README.md").write_text("# ours\n")
    with pytest.raises(ValueError, match=r"already has README\.md, which this template writes"):
        copy_project(dst, demo_answers)
    with pytest.raises(ValueError, match="needs db_password, redis_password, admin_password"):
        copy_project(dst, {**demo_answers, "sealed_secrets_cert": str(cert)}, overwrite=True)
    assert sorted(p.name for p in dst.iterdir()) == [".git", "README.md"]
    assert (dst / "README.md").read_text() == "# ours\n"


def test_a_copy_stopped_while_rendering_removes_what_it_wrote(tmp_path) -> None:
    """The last line of defence (a refusal only the render can find): what the copy wrote into a
    directory that existed is removed, what was there is kept, an overwritten file is named."""
    sealing = load_module("hooks/sealing.py", "refusal_sealing")
    dst = tmp_path / "existing"
    (dst / "dags").mkdir(parents=True)
    (dst / "README.md").write_text("# ours\n")
    (dst / "dags/mine.py").write_text("x = 1\n")
    ctx = {"_copier_conf": {"dst_path": dst}, "sealed_secrets_cert": "cert.pem", "executor": "KubernetesExecutor",
           "db_password": PASSWORDS["AIRFLOW_DB_PASSWORD"], "admin_password": PASSWORDS["AIRFLOW_ADMIN_PASSWORD"]}
    assert sealing.before_render(ctx) == ""  # what copier.yml's _exclude renders before the first file
    (dst / "dags/example.py").write_text("y = 2\n")  # written by the copy
    (dst / "deploy/base").mkdir(parents=True)
    (dst / "deploy/base/values.yaml").write_text("a: 1\n")
    (dst / "README.md").write_text("# the template's, longer\n")  # overwritten by the copy (--overwrite)
    error = sealing.refused(ctx, "sealing needs x")
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == ["README.md", "dags", "dags/mine.py"]
    assert str(error) == ("sealing needs x; removed the 4 paths this copy had written; it had already overwritten "
                          "README.md (restore them from git)")


def detect_secrets(repo: Path) -> dict:
    result = subprocess.run([sys.executable, "-m", "detect_secrets", "scan", "--all-files", str(repo)],
                            capture_output=True, text=True, check=True, cwd=repo)
    return yaml.safe_load(result.stdout)["results"]


@pytest.mark.slow
def test_detect_secrets_finds_nothing_once_sealed(sealed_repo: Path) -> None:
    assert detect_secrets(sealed_repo) == {}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["CeleryExecutor", "KubernetesExecutor", "CeleryKubernetesExecutor"])
def test_detect_secrets_finds_nothing(tmp_path, copy_project, demo_answers, executor) -> None:
    repo = copy_project(tmp_path / "repo", {**demo_answers, "executor": executor})
    findings = detect_secrets(repo)
    assert findings == {}, findings


def test_a_name_prefix_that_would_break_sealing_fails_validation(tmp_path, copy_project, demo_answers) -> None:
    """SealedSecret names must survive the build: a namePrefix in the overlay is caught."""
    repo = copy_project(tmp_path / "repo", demo_answers)
    secrets = repo / "deploy/overlays/dev/secrets/kustomization.yaml"  # where the SealedSecrets are built
    secrets.write_text(secrets.read_text() + "namePrefix: team-\n")
    result = run_validate(repo)
    assert result.returncode != 0
    assert "SealedSecret/airflow-dev/team-airflow-db: built name 'team-airflow-db'" in result.stdout


def test_make_seal_prompts_hidden_when_no_variable(tmp_path, copy_project, demo_answers, cert, controller_key) -> None:
    """On a terminal, a missing value is asked with a hidden prompt (never echoed, never an argument)."""
    import pty

    repo = copy_project(tmp_path / "repo", demo_answers)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_")}
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI on a pseudo-terminal
        os.chdir(repo)
        os.execve(sys.executable, [sys.executable, "scripts/seal.py", "seal", "--env", "dev", "--secret",
                                   "airflow-db", "--cert", str(cert)], env)
    output = read_until(fd, b"RDS password")
    os.write(fd, b"typed-Pa55word\n")
    output += read_until(fd, None)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert b"typed-Pa55word" not in output, "the prompt must not echo the value"
    assert unseal_object(controller_key, built_sealed_secrets(repo)["airflow-db"]) == {"password": "typed-Pa55word"}
