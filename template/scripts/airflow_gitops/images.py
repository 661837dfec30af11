"""The container images the charts render, as their Dockerfiles build them.

What the kubelet and the container runtime take from an image when the pod does not say: the
user (Dockerfile USER), the command (ENTRYPOINT, CMD), the working directory (WORKDIR) and the
passwd entries that name the user's group and home. kubelet.py checks runAsNonRoot against USER;
the runtime harness (tests/runtime) runs its stand-ins with these facts. Each image cites the
Dockerfile they were read from, and says what could not be checked against the exact tag.

An image not listed here is unknown: `make render` reports it wherever its USER decides whether
the kubelet starts the container (runAsNonRoot without runAsUser). Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .facts import AIRFLOW_GID, AIRFLOW_UID, NOBODY_UID, unmirrored


@dataclass(frozen=True)
class User:
    """One /etc/passwd entry of an image (only the entries that matter here)."""

    name: str
    uid: int
    gid: int
    home: str

    def passwd_line(self) -> str:
        return f"{self.name}:x:{self.uid}:{self.gid}:{self.name}:{self.home}:/sbin/nologin"


@dataclass(frozen=True)
class Image:
    name: str  # what messages call it
    repository: str  # as the charts write it (Docker Hub without docker.io/)
    tag: str  # regular expression of the tags these facts hold for
    user: str  # USER as written ("name", "uid" or "uid:gid"); "" when the Dockerfile has none: root
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    workdir: str  # WORKDIR of the final stage; "/" without one
    env: tuple[tuple[str, str], ...]  # ENV of the final stage that the processes read
    passwd: tuple[User, ...]
    source: str  # the Dockerfile read

    def matches(self, ref: str) -> bool:
        repository, tag = split_ref(ref)
        return repository == self.repository and re.fullmatch(self.tag, tag) is not None

    def entry(self, *, uid: int | None = None, name: str | None = None) -> User | None:
        return next((u for u in self.passwd if (uid is not None and u.uid == uid) or u.name == name), None)


def split_ref(ref: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; Docker Hub's implicit prefixes dropped."""
    ref = ref.split("@", 1)[0]
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return unmirrored(name), tag  # through an ECR pull-through cache (image_mirror): the same image


ROOT = User("root", 0, 0, "/root")
# Alpine's nobody, as its images print /etc/passwd (alpine-baselayout's own file was not read).
ALPINE_NOBODY = User("nobody", NOBODY_UID, NOBODY_UID, "/")

# apache/airflow: USER ${AIRFLOW_UID} (ARG AIRFLOW_UID="50000"); the user `airflow` is added with
# --uid 50000 --gid 0 --home /home/airflow; WORKDIR ${AIRFLOW_HOME} (/opt/airflow);
# ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"], CMD [].
# Read: https://github.com/apache/airflow/blob/eb6506ec3d0763c795fb0fd46a20b5241758c760/Dockerfile
# (2.10.2's). Not read at the 2.8.4 and 3.1.8 release tags themselves; these lines are the same in
# the Dockerfile before and after them (the chart's uid/gid 50000/0 and its docs say so too). Not read
# at 3.2.2 and 3.3.2 either: chart 1.21.0 (Airflow 3.2) keeps uid 50000 and gid 0.
AIRFLOW = Image(
    "apache/airflow", "apache/airflow", r"(slim-)?\d+\.\d+\.\d+(-python3\.\d+)?",
    str(AIRFLOW_UID), ("/usr/bin/dumb-init", "--", "/entrypoint"), (), "/opt/airflow",
    (("AIRFLOW_HOME", "/opt/airflow"), ("AIRFLOW_USER_HOME_DIR", "/home/airflow"), ("AIRFLOW_UID", str(AIRFLOW_UID)),
     ("LANG", "C.UTF-8"), ("LC_ALL", "C.UTF-8"), ("DUMB_INIT_SETSID", "1"), ("PYTHONUNBUFFERED", "1")),
    (ROOT, User("airflow", AIRFLOW_UID, AIRFLOW_GID, "/home/airflow"),
     User("nobody", NOBODY_UID, NOBODY_UID, "/nonexistent")),  # Debian's nobody
    "https://github.com/apache/airflow/blob/eb6506ec3d0763c795fb0fd46a20b5241758c760/Dockerfile")

# The official chart's pgbouncer (values images.pgbouncer: apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1):
# alpine, `USER nobody`, no WORKDIR in the final stage,
# ENTRYPOINT ["/usr/bin/pgbouncer", "-u", "nobody", "/etc/pgbouncer/pgbouncer.ini"].
# Read: https://github.com/apache/airflow/blob/d8e93b3a2e639bfc7b19ac9b733c9ce68ef4bae3/chart/dockerfiles/pgbouncer/Dockerfile
# Its build_and_push.sh names AIRFLOW_PGBOUNCER_VERSION="2025.03.05" with pgbouncer 1.23.1; which commit of
# the Dockerfile built that tag was not verified. Older builds had no USER (root, dropping to nobody with
# -u): under runAsNonRoot without runAsUser the kubelet refuses either.
OFFICIAL_PGBOUNCER = Image(
    "the official chart's pgbouncer", "apache/airflow", r"airflow-pgbouncer-\d{4}\.\d{2}\.\d{2}-\d+\.\d+\.\d+",
    "nobody", ("/usr/bin/pgbouncer", "-u", "nobody", "/etc/pgbouncer/pgbouncer.ini"), (), "/", (),
    (ROOT, ALPINE_NOBODY),
    "https://github.com/apache/airflow/blob/d8e93b3a2e639bfc7b19ac9b733c9ce68ef4bae3/chart/dockerfiles/pgbouncer/Dockerfile")

# Its metrics exporter sidecar (images.pgbouncerExporter: apache/airflow:airflow-pgbouncer-exporter-2025.03.05-0.18.0):
# alpine, `USER nobody`, ENTRYPOINT ["/bin/pgbouncer_exporter"], CMD ["server"], no WORKDIR in the final stage.
# Read: https://github.com/apache/airflow/blob/f88aa8e978c8903abcc29d540c748a43fb10da0b/chart/dockerfiles/pgbouncer-exporter/Dockerfile
# Which commit built the 2025.03.05 tag was not verified (as for pgbouncer).
OFFICIAL_PGBOUNCER_EXPORTER = Image(
    "the official chart's pgbouncer-exporter", "apache/airflow",
    r"airflow-pgbouncer-exporter-\d{4}\.\d{2}\.\d{2}-\d+\.\d+\.\d+",
    "nobody", ("/bin/pgbouncer_exporter",), ("server",), "/", (), (ROOT, ALPINE_NOBODY),
    "https://github.com/apache/airflow/blob/f88aa8e978c8903abcc29d540c748a43fb10da0b/chart/dockerfiles/pgbouncer-exporter/Dockerfile")

# Prometheus' statsd-exporter (images.statsd: quay.io/prometheus/statsd-exporter:v0.29.0): FROM
# quay.io/prometheus/busybox, `USER nobody`, ENTRYPOINT ["/bin/statsd_exporter"], no WORKDIR.
# Read: https://github.com/prometheus/statsd_exporter/blob/d55b42eabbd4cc4c00b229a15ffe2d599bed5501/Dockerfile
# The busybox base's passwd (nobody = 65534, its home) was not read; the values give runAsUser by number.
STATSD_EXPORTER = Image(
    "statsd-exporter", "quay.io/prometheus/statsd-exporter", r"v\d+\.\d+\.\d+",
    "nobody", ("/bin/statsd_exporter",), (), "/", (), (ROOT, User("nobody", NOBODY_UID, NOBODY_UID, "/home")),
    "https://github.com/prometheus/statsd_exporter/blob/d55b42eabbd4cc4c00b229a15ffe2d599bed5501/Dockerfile")

# The community chart's pgbouncer (pgbouncer.image: ghcr.io/airflow-helm/pgbouncer:1.22.1-patch.0): alpine,
# user pgbouncer added with -u 1001 -G pgbouncer (gid 1001) -h /home/pgbouncer, USER ${PGBOUNCER_UID}:${PGBOUNCER_GID},
# WORKDIR ${PGBOUNCER_HOME}, ENTRYPOINT ["/usr/bin/dumb-init", "--"], CMD ["pgbouncer", "./pgbouncer.ini"].
# Read: https://github.com/airflow-helm/charts/blob/720fa4e53a807a6e2d50c14784e2a62f9a6d3e91/images/pgbouncer/Dockerfile
# (1.18.0-patch.1). The 1.22.1-patch.0 Dockerfile itself was not read: its CHANGELOG entry only updates
# pgbouncer and Alpine, and the fork's later 1.25.2-patch.0 Dockerfile has the same USER/WORKDIR/ENTRYPOINT.
COMMUNITY_PGBOUNCER = Image(
    "the community chart's pgbouncer", "ghcr.io/airflow-helm/pgbouncer", r"\d+\.\d+\.\d+-patch\.\d+",
    "1001:1001", ("/usr/bin/dumb-init", "--"), ("pgbouncer", "./pgbouncer.ini"), "/home/pgbouncer", (),
    (ROOT, User("pgbouncer", 1001, 1001, "/home/pgbouncer"), ALPINE_NOBODY),
    "https://github.com/airflow-helm/charts/blob/720fa4e53a807a6e2d50c14784e2a62f9a6d3e91/images/pgbouncer/Dockerfile")

IMAGES = (AIRFLOW, OFFICIAL_PGBOUNCER, OFFICIAL_PGBOUNCER_EXPORTER, STATSD_EXPORTER, COMMUNITY_PGBOUNCER)


def lookup(ref: str) -> Image | None:
    """The facts of the image `ref` names, or None for an image this module does not know."""
    return next((image for image in IMAGES if image.matches(ref)), None)
