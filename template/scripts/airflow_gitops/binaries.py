"""Whether a kubectl or helm binary can run on this machine.

install_tools.py's binaries come from a PyPI wheel that carries Linux x86-64 builds only: copied to a
Mac or an arm64 agent (a kept .tools/ or workspace), every command fails with `exec format error`.
The ELF header names the machine a binary is for, so it is refused with a clear reason before a run.
"""

from __future__ import annotations

import platform
from pathlib import Path

# platform.machine() spells a machine per OS (macOS: arm64, Windows: AMD64); ELF's names are Linux's.
MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
# ELF e_machine (bytes 18-19 of the header) -> the machine, as Linux's `uname -m` names it
ELF_MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm", 62: "x86_64",
                183: "aarch64", 243: "riscv64", 258: "loongarch64"}


def host() -> tuple[str, str]:
    """(system, machine) of this machine: ("Linux", "x86_64"), ("Darwin", "aarch64"), ..."""
    machine = platform.machine().lower()
    return platform.system(), MACHINE_ALIASES.get(machine, machine)


def elf_machine(path: Path) -> str | None:
    """The machine an ELF binary is built for, or None when the file is not ELF (Mach-O, a script)."""
    try:
        with path.open("rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    code = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return ELF_MACHINES.get(code, f"ELF machine {code}")


def foreign(path: Path) -> str | None:
    """Why `path` cannot run on this machine (a Linux binary of another machine, or any ELF binary
    outside Linux), or None when its header does not say so (whether it runs is then for exec to tell)."""
    machine = elf_machine(path)
    system, arch = host()
    if machine is None or (system == "Linux" and machine == arch):
        return None
    return f"{path} is a Linux {machine} binary; this machine is {system} {arch}"
