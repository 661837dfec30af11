"""The AWS services the release talks to, as real Debian servers inside a sandbox.

- RDS for PostgreSQL 15: `password_encryption = scram-sha-256`, SSL on, TCP clients only over
  SSL with SCRAM (pg_hba `hostssl ... scram-sha-256`, no `host` line), like `rds.force_ssl=1`.
- ElastiCache: redis-server with TLS only (`--port 0 --tls-port`) and `requirepass` when AUTH
  is on; plain TCP only when the scenario says in-transit encryption is off.
Both listen on 127.0.0.1 of the sandbox, on the port the answers name, with certificates for
the endpoint's real host name from the harness CA.
"""

from __future__ import annotations

import shutil
import subprocess

from .install import POSTGRES_BIN
from .sandbox import HarnessError, Process, Sandbox, wait_for
from .tls import CertificateAuthority

AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


class Postgres:
    def __init__(self, sandbox: Sandbox, ca: CertificateAuthority, host: str, port: int) -> None:
        self.sandbox, self.host, self.port = sandbox, host, port
        self.dir = sandbox.workdir / "postgres"
        self.data, self.sockets = self.dir / "data", self.dir / "sockets"
        for path in (self.dir, self.sockets):
            path.mkdir(parents=True, exist_ok=True)
            shutil.chown(path, "postgres", "postgres")
        self._initdb(ca.issue("rds", [host, "127.0.0.1"]))
        self.process: Process = sandbox.spawn("rds-postgres", [*AS_POSTGRES, f"{POSTGRES_BIN}/postgres",
                                                               "-D", str(self.data)])
        wait_for("PostgreSQL accepting connections", self._ready, 60, evidence=self.process.tail,
                 fail_fast=lambda: None if self.process.alive() else "postgres exited")

    def _initdb(self, cert) -> None:
        subprocess.run([*AS_POSTGRES, f"{POSTGRES_BIN}/initdb", "-D", str(self.data), "-U", "postgres",
                        "--auth-local=peer", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True)
        for src, name in ((cert.cert, "server.crt"), (cert.key, "server.key")):
            shutil.copyfile(src, self.data / name)
            shutil.chown(self.data / name, "postgres", "postgres")
            (self.data / name).chmod(0o600)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.sockets}'\nssl = on\n"
                       "password_encryption = 'scram-sha-256'\n"
                       # a throwaway database: durability off for speed
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        (self.data / "pg_hba.conf").write_text("local all postgres peer\n"
                                               "hostssl all all 127.0.0.1/32 scram-sha-256\n")

    def _ready(self) -> bool:
        return subprocess.run([*AS_POSTGRES, f"{POSTGRES_BIN}/pg_isready", "-q", "-h", str(self.sockets),
                               "-p", str(self.port)]).returncode == 0

    def psql(self, sql: str, db: str = "postgres", **variables: str) -> str:
        """Run SQL as the superuser over the local socket; `:'name'` quotes a variable."""
        argv = [*AS_POSTGRES, "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.sockets),
                "-p", str(self.port), "-U", "postgres", "-d", db]
        for key, value in variables.items():
            argv += ["-v", f"{key}={value}"]
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"psql failed: {proc.stderr.strip()}\n{sql}")
        return proc.stdout.strip()

    def create_login(self, user: str, password: str, database: str) -> None:
        self.psql("CREATE ROLE :\"user\" LOGIN PASSWORD :'password';\n"
                  "CREATE DATABASE :\"dbname\" OWNER :\"user\";\n", user=user, password=password, dbname=database)


class Redis:
    def __init__(self, sandbox: Sandbox, ca: CertificateAuthority, host: str, port: int, *, tls: bool,
                 password: str | None) -> None:
        self.sandbox, self.host, self.port, self.tls, self.password = sandbox, host, port, tls, password
        self.ca = ca
        workdir = sandbox.workdir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
        if tls:
            cert = ca.issue("elasticache", [host, "127.0.0.1"])
            argv += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert.cert),
                     "--tls-key-file", str(cert.key), "--tls-ca-cert-file", str(ca.bundle), "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(port)]
        if password:
            argv += ["--requirepass", password]
        self.process = sandbox.spawn("elasticache-redis", argv)
        wait_for("redis-server listening", lambda: "Ready to accept connections" in self.process.text(), 30,
                 evidence=self.process.tail, fail_fast=lambda: None if self.process.alive() else "redis exited")

    def cli(self, *command: str) -> str:
        argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if self.tls:
            argv += ["--tls", "--cacert", str(self.ca.bundle)]
        if self.password:
            argv += ["-a", self.password]
        proc = self.sandbox.run([*argv, *command], timeout=30)
        if proc.returncode != 0:
            raise HarnessError(f"redis-cli {' '.join(command)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def stat(self, name: str) -> int:
        """A counter from INFO stats, e.g. total_connections_received."""
        for line in self.cli("INFO", "stats").splitlines():
            key, _, value = line.partition(":")
            if key == name:
                return int(value)
        raise HarnessError(f"redis INFO stats has no {name}")


