"""Benchmark DAG: Airflow's built-in ApprovalOperator, then one downstream task.

Used by bench/bench_approval_latency.py to compare how soon work resumes after a human answers:
the built-in HITL operator (answered through Airflow's REST API) against the incident_response DAG's
approval record (answered through the plugin's API). The downstream task is a PythonOperator, like
`execute_fix`, so both sides pay for starting a real task.
"""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

DAG_ID = "approval_operator_bench"


def _after_approval() -> str:
    """Stand in for the fix that runs once approved."""
    return "fixed"


with DAG(
    dag_id=DAG_ID,
    description="Benchmark: built-in ApprovalOperator followed by one task",
    schedule=None,
    catchup=False,
    max_active_runs=16,
    is_paused_upon_creation=False,
    tags=["bench"],
):
    approve = ApprovalOperator(
        task_id="approve",
        subject="Run restart_pump on PUMP-07B?",
        body="Benchmark request: answer Approve through the REST API.",
    )
    after_approval = PythonOperator(task_id="after_approval", python_callable=_after_approval)
    approve >> after_approval
