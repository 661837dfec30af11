"""What the runtime stories (tests/test_runtime*.py and the stories built on them) share."""

from __future__ import annotations

from pathlib import Path

DAG = "example_s3_logging"  # the DAG each story triggers and waits on
# A log line of a broken broker -> what the story reports instead of a timeout.
BROKER_FAILURES = {"Cannot connect to redis": "the Celery worker cannot reach the broker"}


def trust_rds(repo: Path, bundle: Path) -> None:
    """What `make rds-ca` does, with the harness CA standing in for AWS's RDS bundle."""
    target = repo / "deploy/overlays/dev/rds-ca-bundle.pem"
    if target.exists():
        target.write_text(bundle.read_text())
