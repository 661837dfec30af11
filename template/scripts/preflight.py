#!/usr/bin/env python3
"""`make preflight [ENV=<env>]`: check the cluster kubectl points at before the first deploy (`--help`).

The checks live in scripts/airflow_gitops/preflight.py, the minimums in airflow_gitops/facts/cluster.py.
"""

import sys

from airflow_gitops.preflight import main

if __name__ == "__main__":
    sys.exit(main())
