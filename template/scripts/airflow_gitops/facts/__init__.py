"""Every fact more than one file relies on, defined once, in a module per subject; this package
re-exports them all, so `facts.X` and `from airflow_gitops.facts import X` name any of them.

Imported by the generated repository's tools (scripts/), by the Copier template's hooks (through a
sys.path context, see hooks/validation.py) and by the template's tests. Standard library only: the
hooks run inside Copier's own interpreter, and the tools before their venv exists.
"""

# Star imports: every public name of each subject module, each defined there once.
# ruff: noqa: F403
from airflow_gitops.facts.aws import *
from airflow_gitops.facts.charts import *
from airflow_gitops.facts.cluster import *
from airflow_gitops.facts.jenkins import *
from airflow_gitops.facts.layout import *
from airflow_gitops.facts.repository import *
from airflow_gitops.facts.secrets import *
