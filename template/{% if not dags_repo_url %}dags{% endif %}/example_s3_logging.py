"""Example DAG: proves the deployment end to end (DAGs from EFS, tasks run, logs land in S3).

Replace or delete it once your own DAGs are published. It uses only Airflow core, so it
imports in any supported image.
"""

from __future__ import annotations

import datetime as dt

from airflow import DAG
from airflow.operators.python import PythonOperator


def _hello() -> str:
    print("Hello from a DAG published to EFS; this log line is uploaded to S3 when the task ends.")
    return "ok"


with DAG(
    dag_id="example_s3_logging",
    start_date=dt.datetime(2024, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "airflow-eks-gitops"],
) as dag:
    PythonOperator(task_id="hello", python_callable=_hello)
