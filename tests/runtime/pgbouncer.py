"""The pgbouncer of a chart's image, stood in for by the harness's newer build of pgbouncer.

Each chart's pgbouncer image names its pgbouncer version in its tag (IMAGE_TAGS: chart 1.20.0's
`apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1` is 1.23.1, community 8.9.0's
`ghcr.io/airflow-helm/pgbouncer:1.22.1-patch.0` is 1.22.1); the version is read from the rendered
image ref, nowhere else. Debian has neither, so `make runtime` builds a newer one (install.py:
PGBOUNCER) and this launcher, run as the container's `pgbouncer`, makes it behave as the image's
version wherever a pgbouncer.ini can tell them apart. Rules it enforces (from pgbouncer's NEWS.md,
for images from OLDEST_IMAGE on):

- A setting whose default changed after the image's release (DEFAULT_CHANGES) gets the image's
  default unless the rendered file sets it, and the launcher logs which value applies and why.
  So `max_prepared_statements` is 0 for a 1.23.1 image when pgbouncer.ini does not set it (1.24.0
  made it 200): protocol-level named prepared statements fail in transaction mode once the client
  meets another server connection (`prepared statement "..." does not exist`).
- A setting, or a [databases] / [users] parameter, newer than the image (ADDED) is refused as that
  pgbouncer refuses it at start: `unknown parameter: pgbouncer/<name>` (or `unrecognized connection
  parameter` / `unrecognized user parameter`), `FATAL cannot load config file`, exit 1.
- An image older than OLDEST_IMAGE, or newer than the build, is refused: its rules are not here.

Not enforced: changes no setting names (1.23.0's SIGTERM waits for clients to leave; 1.24.0's
`default_pool_size = 0` means unlimited), and a `%include` inside the rendered file is not read.

The rendered file is never changed: when a default must be set, the launcher writes a copy with the
image's defaults under its [pgbouncer] header in the container's own /tmp and execs the build with
that copy in place of the rendered path (so a reload, SIGHUP, re-reads the copy); otherwise the
build gets the rendered file. Stdlib only, run by /usr/bin/python3: its directory (bound over the
container's /usr/local/sbin, see stand_in) holds IMAGE_FILE and the build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# The tag grammar of each pgbouncer image repository: the pgbouncer version it ships.
IMAGE_TAGS = {
    # The official chart's images.pgbouncer: airflow-pgbouncer-<build date>-<pgbouncer version>.
    "apache/airflow": re.compile(r"^airflow-pgbouncer-\d{4}\.\d{2}\.\d{2}-(?P<version>\d+\.\d+\.\d+)$"),
    # The community chart's pgbouncer.image: <pgbouncer version>-patch.<n>.
    "ghcr.io/airflow-helm/pgbouncer": re.compile(r"^(?P<version>\d+\.\d+\.\d+)-patch\.\d+$"),
}
OLDEST_IMAGE = "1.22.1"  # the tables below hold every change after it
# setting -> ((release, default from that release on), ...), oldest first.
DEFAULT_CHANGES = {
    "max_prepared_statements": (("1.21.0", "0"), ("1.24.0", "200")),  # #1144: on by default
}
# (section, name) -> the release that added it.
ADDED = {
    ("pgbouncer", "auth_ident_file"): "1.23.0",  # user name maps (#996)
    ("pgbouncer", "max_user_client_connections"): "1.24.0",  # #1137
    ("pgbouncer", "max_db_client_connections"): "1.24.0",  # #1138
    ("databases", "server_lifetime"): "1.23.0",  # #1057
    ("databases", "max_db_client_connections"): "1.24.0",  # #1138
    ("databases", "load_balance_hosts"): "1.24.0",  # #736
    ("databases", "reserve_pool_size"): "1.24.0",  # the new name of reserve_pool (#1232)
    ("users", "pool_size"): "1.23.0",  # #1049
    ("users", "max_user_client_connections"): "1.24.0",  # #1137
    ("users", "client_idle_timeout"): "1.24.0",  # #1189
    ("users", "query_timeout"): "1.24.0",  # #1180
    ("users", "reserve_pool_size"): "1.24.0",  # #1228
}
REFUSALS = {"pgbouncer": "unknown parameter: pgbouncer/{name}",
            "databases": "unrecognized connection parameter: {name}",
            "users": "unrecognized user parameter: {name}"}
IMAGE_FILE = "pgbouncer-image.json"
CONTAINER_DIR = "/usr/local/sbin"  # first on the container's system PATH; empty on Debian
LAUNCHER = "pgbouncer"


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def image_version(ref: str) -> str:
    """The pgbouncer version an image ref names (`repository:tag`, as the chart renders it)."""
    repository, _, tag = ref.rpartition(":")
    if "/" in tag or not repository:
        raise ValueError(f"pgbouncer image {ref!r} has no tag: its pgbouncer version is unknown")
    grammar = IMAGE_TAGS.get(repository)
    match = grammar.match(tag) if grammar else None
    if not match:
        raise ValueError(f"pgbouncer image {ref!r}: no known tag grammar names its pgbouncer version "
                         f"(tests/runtime/pgbouncer.py IMAGE_TAGS: {', '.join(IMAGE_TAGS)})")
    return match["version"]


def default_at(setting: str, release: str) -> str | None:
    """The default of `setting` in `release` (None: older than the tables know)."""
    found = None
    for since, value in DEFAULT_CHANGES[setting]:
        if version(since) <= version(release):
            found = value
    return found


def read_ini(text: str) -> dict[str, dict[str, str]]:
    """pgbouncer's ini grammar: `;`/`#` comment lines, [section], key = value (later wins)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = sections.setdefault("", {})
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in ";#" or line.startswith("%include"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line[1:line.index("]")].strip(), {})
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def connection_keys(value: str) -> list[str]:
    """The parameter names of a [databases]/[users] entry (`host=x dbname='a b' pool_size=10`)."""
    return re.findall(r"([A-Za-z_]+)\s*=\s*(?:'(?:[^']|'')*'|\S*)", value)


@dataclass
class Plan:
    """What the build needs to behave as the image: defaults to put first, or why it must refuse."""

    defaults: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def plan(ini: str, image: str, build: str) -> Plan:
    """The rules of the module docstring for a rendered pgbouncer.ini, an image version and a build version."""
    if version(image) < version(OLDEST_IMAGE) or version(image) > version(build):
        raise ValueError(f"cannot stand in for pgbouncer {image} with the {build} build: the rules here "
                         f"cover {OLDEST_IMAGE} to {build}")
    sections, out = read_ini(ini), Plan()
    for (section, name), since in ADDED.items():
        if version(since) <= version(image):
            continue
        entries = sections.get(section, {})
        if section == "pgbouncer":
            used = name in entries
        else:
            used = any(name in connection_keys(value) for value in entries.values())
        if used:
            out.refused.append(f"{REFUSALS[section].format(name=name)} (pgbouncer {image} has none: added in {since})")
    for setting in DEFAULT_CHANGES:
        theirs, ours = default_at(setting, image), default_at(setting, build)
        rendered = sections.get("pgbouncer", {}).get(setting)
        if rendered is not None:
            out.notes.append(f"{setting} = {rendered} (set by the rendered file)")
        elif theirs is not None and theirs != ours:
            out.defaults[setting] = theirs
            out.notes.append(f"{setting} = {theirs} (pgbouncer {image}'s default; {build}'s is {ours}; "
                             "the rendered file does not set it)")
    return out


def with_defaults(ini: str, defaults: dict[str, str], image: str) -> str | None:
    """The rendered file with `defaults` first in its [pgbouncer] section (None: it has none). Not
    an `%include` of it: every [pgbouncer] header resets that section's settings to the build's
    defaults (libusual cfparser's fill_defaults), so they must sit under the file's own header."""
    lines, out = ini.splitlines(keepends=True), []
    for i, line in enumerate(lines):
        out.append(line if line.endswith("\n") else line + "\n")
        if line.strip() == "[pgbouncer]":
            out.append(f"; the harness's stand-in for pgbouncer {image}: its defaults where the build's differ\n")
            out += [f"{key} = {value}\n" for key, value in defaults.items()]
            return "".join(out + lines[i + 1:])
    return None


def config_argument(args: list[str]) -> int | None:
    """Index of pgbouncer's config-file argument (`pgbouncer [-d] [-R] [-q] [-v] [-u user] FILE`)."""
    positional, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in ("-u", "--user"):
            skip = True
        elif not arg.startswith("-"):
            positional.append(i)
    return positional[0] if len(positional) == 1 else None


def launch(here: Path, args: list[str]) -> int:
    """The container's `pgbouncer`: apply plan() to the config argument, then exec the build."""
    image = json.loads((here / IMAGE_FILE).read_text())
    binary = str(here / image["binary"])
    where = config_argument(args)
    if where is None or any(a in ("-V", "--version", "-h", "--help") for a in args):
        os.execv(binary, [binary, *args])
    config = args[where]
    try:
        text = Path(config).read_text()
    except OSError:  # pgbouncer says it its own way
        os.execv(binary, [binary, *args])
    steps = plan(text, image["version"], image["build_version"])
    say = f"harness: pgbouncer {image['build_version']} standing in for {image['ref']} (pgbouncer {image['version']})"
    if steps.refused:
        for reason in steps.refused:
            print(f"ERROR {reason}", file=sys.stderr)
        print(f"FATAL cannot load config file ({say})", file=sys.stderr, flush=True)
        return 1
    print(f"{say}: {'; '.join(steps.notes) or 'no setting differs'}", file=sys.stderr, flush=True)
    effective = with_defaults(text, steps.defaults, image["version"]) if steps.defaults else None
    if effective is None:
        os.execv(binary, [binary, *args])
    own = Path(tempfile.mkdtemp(prefix="pgbouncer-image-")) / Path(config).name
    own.write_text(effective)
    os.execv(binary, [binary, *args[:where], str(own), *args[where + 1:]])
    return 127


def build_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]  # "PgBouncer 1.24.1"


def stand_in(ref: str, dest: Path, binary: Path) -> Path:
    """A directory standing in for the image's pgbouncer: the launcher, the build and the image's
    facts, to bind over the container's CONTAINER_DIR (read-only)."""
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    built = build_version(binary)
    facts = {"ref": ref, "version": image_version(ref), "build_version": built, "binary": f"pgbouncer-{built}"}
    shutil.copy2(binary, dest / facts["binary"])
    plan("", facts["version"], facts["build_version"])  # refuses an image the rules do not cover
    (dest / IMAGE_FILE).write_text(json.dumps(facts))
    launcher = dest / LAUNCHER
    launcher.write_text("#!/usr/bin/python3\n" + Path(__file__).read_text())
    launcher.chmod(0o755)
    (dest / IMAGE_FILE).chmod(0o644)
    return dest


def admin_show(argv: list[str], socket_dir: Path, port: int, what: str = "CONFIG",
               timeout: float = 10) -> tuple[int | None, str, dict[str, str]]:
    """Start `argv` (a pgbouncer taking a config whose admin console is on `socket_dir`, port
    `port`, user `admin`, auth_type trust) as nobody, `SHOW <what>` there, stop it. Returns
    (exit code if it did not start, its output, name -> value of the first two columns)."""
    proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    socket, deadline = socket_dir / f".s.PGSQL.{port}", time.monotonic() + timeout
    while not socket.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if proc.poll() is not None:
            return proc.returncode, proc.stdout.read() if proc.stdout else "", {}
        shown = subprocess.run(["psql", "-X", "-At", "-F", "\t", "-h", str(socket_dir), "-p", str(port), "-U", "admin",
                                "-d", "pgbouncer", "-c", f"SHOW {what}"], capture_output=True, text=True,
                               timeout=timeout, check=True).stdout
        rows = dict(line.split("\t")[:2] for line in shown.splitlines() if "\t" in line)
    finally:
        proc.terminate()
        proc.wait(timeout)
    return None, proc.stdout.read() if proc.stdout else "", rows


if __name__ == "__main__":
    sys.exit(launch(Path(os.path.realpath(__file__)).parent, sys.argv[1:]))
