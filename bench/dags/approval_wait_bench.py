"""Benchmark DAGs: one approval wait each, deferrable or in reschedule mode; nothing else.

Used by bench/bench_waiting.py, which creates the approval records itself and passes each run its
record's id in the conf, so a run is only the wait: the cheapest DAG that shows what many incidents
waiting for approval at once cost. Both DAGs allow every run and task to be active at once, so the
waits are limited by the executor's slots alone. A third, `approval_wait_then_fix`, is the deferrable
wait followed by a real task named like incident_response's (bench/bench_celery_waiting.py times
a bulk approval until every `execute_fix` has started).
"""

from __future__ import annotations

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from incident_ops.sensors.approval import ApprovalSensor

DEFERRABLE_DAG_ID = "approval_wait_deferrable"
RESCHEDULE_DAG_ID = "approval_wait_reschedule"
THEN_FIX_DAG_ID = "approval_wait_then_fix"
# A classic sensor's default is a poke a minute; 5 s keeps the reschedule side's pick-up comparable.
RESCHEDULE_POKE_SECONDS = 5
APPROVAL_ID = "{{ dag_run.conf['approval_id'] }}"

for dag_id, deferrable in ((DEFERRABLE_DAG_ID, True), (RESCHEDULE_DAG_ID, False)):
    with DAG(
        dag_id=dag_id,
        description="Benchmark: wait for one approval record "
        + ("(deferrable)" if deferrable else "(reschedule)"),
        schedule=None,
        catchup=False,
        max_active_runs=512,
        max_active_tasks=512,
        is_paused_upon_creation=False,
        tags=["bench"],
    ):
        if deferrable:
            ApprovalSensor(task_id="wait", approval_id=APPROVAL_ID)
        else:
            ApprovalSensor(
                task_id="wait",
                approval_id=APPROVAL_ID,
                deferrable=False,
                mode="reschedule",
                poke_interval=RESCHEDULE_POKE_SECONDS,
            )


def _fix() -> str:
    """Stand in for the fix that runs once approved."""
    return "fixed"


with DAG(
    dag_id=THEN_FIX_DAG_ID,
    description="Benchmark: wait for one approval record (deferrable), then a fix task",
    schedule=None,
    catchup=False,
    max_active_runs=2000,
    max_active_tasks=2000,
    is_paused_upon_creation=False,
    tags=["bench"],
):
    ApprovalSensor(task_id="wait_for_approval", approval_id=APPROVAL_ID) >> PythonOperator(
        task_id="execute_fix", python_callable=_fix
    )
