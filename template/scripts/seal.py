#!/usr/bin/env python3
"""`make seal`, `make rotate-fernet`, `make stamp`: seal this repository's secrets offline.

    make seal ENV=dev [SECRET=airflow-db] [CERT=cert.pem] [SCOPE=strict]
    make rotate-fernet ENV=dev

The code is in airflow_gitops/sealing/ (cli.py: the commands, and what they keep and replace).
"""

import sys

from airflow_gitops.sealing.cli import main  # scripts/ is on sys.path: this file's own directory

if __name__ == "__main__":
    sys.exit(main())
