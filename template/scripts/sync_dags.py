#!/usr/bin/env python3
"""Publish a DAG tree atomically onto the shared EFS volume that Airflow reads.

    python sync_dags.py check --source DIR [--ignore-syntax regexp|glob] [--plugins DIR]
    python sync_dags.py publish --source DIR --root /opt/efs/dags [--check] [--verify] [--stats] [--keep-last N]
    python sync_dags.py prune --root /opt/efs/dags [--keep-last 5] [--keep-for 86400] [--grace 360] [--keep ID]
    python sync_dags.py rollback --root /opt/efs/dags
    python sync_dags.py status --root /opt/efs/dags [--json]

The code is in airflow_gitops/dagsync/ (its __init__ says how a publish works, and which module does what).
Python 3.9+ standard library only: it runs inside the Airflow image, from the checkout.
"""

import os
import sys

# The package next to this file, however it is started (python scripts/sync_dags.py puts scripts/ on sys.path;
# a test or a tool loading this file by its path does not).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from airflow_gitops.dagsync.cli import main  # after the path

if __name__ == "__main__":
    sys.exit(main())
