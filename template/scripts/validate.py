#!/usr/bin/env python3
"""`make validate`: offline validation of this GitOps repo (`--help` for the options).

The checks live in scripts/airflow_gitops/validate/; this file keeps `python scripts/validate.py`
working for CI jobs that call it directly.
"""

import sys

from airflow_gitops.validate.cli import main

if __name__ == "__main__":
    sys.exit(main())
