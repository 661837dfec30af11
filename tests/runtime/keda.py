"""The KEDA operator's postgresql scaler, polling the rendered ScaledObject's query as pgx runs it.

KEDA (pkg/scalers/postgresql_scaler.go) opens the connection string of the scaled workload's
container env (`connectionFromEnv`) with pgx's database/sql driver and runs the trigger's query on
a pooled connection at each polling interval. pgx caches statements by default: the first run
sends Parse for a named statement, later runs only Bind/Execute that name. psycopg 3 with
`prepare_threshold=0` does the same (psycopg2, which the Airflow images ship, and psql do not
prepare). Through pgbouncer in transaction mode a later poll may be served by another server
connection, where that name was never prepared, unless pgbouncer tracks prepared statements.

The poll runs in the sandbox's network with the test interpreter's psycopg, to the Service name
the connection string holds; `hostaddr` resolves that name to the sandbox's loopback, as the pods'
/etc/hosts does (pods.py). `python keda.py` is that client (stdlib and psycopg only).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELD_POLLS = 3  # polls while another client holds the server connection the query was prepared on


@dataclass(frozen=True)
class Polls:
    values: list[float]  # the query's answers, one per poll that succeeded
    error: str | None  # the first failed poll's error (then no further poll)
    held_backend: int | None  # the PostgreSQL backend the held transaction ran on


def scaler(rendered: Any) -> tuple[str, str]:
    """(connectionFromEnv, query) of the rendered ScaledObject's postgresql trigger."""
    (scaled,) = rendered.kinds("ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql", trigger
    return trigger["metadata"]["connectionFromEnv"], trigger["metadata"]["query"]


def poll_across_servers(dep: Any, workload: str, container: str) -> Polls:
    """Poll as KEDA does: one poll on a fresh connection (the statement is prepared), then
    HELD_POLLS while another client holds a transaction on an idle server connection (the one
    the statement was prepared on, in a pool nobody else uses), then one after it ends."""
    env, query = scaler(dep.rendered)
    dsn = dep.pod(workload).container(container).env[env]
    proc = dep.sandbox.run([sys.executable, str(Path(__file__).resolve()), json.dumps({"dsn": dsn, "query": query})],
                           timeout=120)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"the KEDA poll client failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return Polls(**json.loads(proc.stdout.strip().splitlines()[-1]))


def client(dsn: str, query: str) -> dict[str, Any]:
    import psycopg

    values: list[float] = []
    held_backend = None
    connect = {"hostaddr": "127.0.0.1", "connect_timeout": 10}
    try:
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=0, **connect) as poller, \
                psycopg.connect(dsn, **connect) as holder:

            def poll() -> None:
                row = poller.execute(query).fetchone()
                values.append(float(row[0]) if row and row[0] is not None else 0.0)

            poll()
            held_backend = holder.execute("SELECT pg_backend_pid()").fetchone()[0]  # BEGIN: held
            for _ in range(HELD_POLLS):
                poll()
            holder.rollback()
            poll()
    except psycopg.Error as exc:
        return {"values": values, "error": f"{type(exc).__name__}: {exc}".strip(), "held_backend": held_backend}
    return {"values": values, "error": None, "held_backend": held_backend}


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(json.dumps(client(args["dsn"], args["query"])))
