"""Benchmark DAG: six EmptyOperators in a chain, the depth of incident_response up to page_oncall.

The anchor of bench/bench_alert_to_page.py: what the same Airflow takes to walk a run through six
tasks that do nothing (the scheduler marks EmptyOperators done without starting a worker).
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, chain

DAG_ID = "empty_chain_bench"
DEPTH = 6

with DAG(
    dag_id=DAG_ID,
    description="Benchmark: six EmptyOperators in a chain",
    schedule=None,
    catchup=False,
    max_active_runs=16,
    is_paused_upon_creation=False,
    tags=["bench"],
):
    chain(*[EmptyOperator(task_id=f"step_{index + 1}") for index in range(DEPTH)])
