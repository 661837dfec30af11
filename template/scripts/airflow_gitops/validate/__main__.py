"""`python -m airflow_gitops.validate` (from scripts/): the same as `python scripts/validate.py`."""

import sys

from airflow_gitops.validate.cli import main

sys.exit(main())
