"""End a deferred wait on an approval record from the API server, the moment the record is decided.

Airflow's own human-in-the-loop route does the same for its operators: rather than leaving the
news to the triggerer's next poll and event loop (about a second), the request that records the
decision hands the outcome straight to the waiting task instance, in Airflow's metadata database.
The trigger keeps polling and stays the fallback: when nothing is deferred yet (the sensor then
reads the record itself), when the metadata database is out of reach, or when the decision was
written by something other than this API server, the trigger still ends the wait.
"""

from __future__ import annotations

import logging

from incident_ops.hooks.incident_store import STORE_CONN_ID
from include.store import Approval

log = logging.getLogger(__name__)


def end_waiting_sensors(record: Approval, *, store_conn_id: str = STORE_CONN_ID) -> list[str]:
    """Mark the sensors deferred on `record` successful, with its outcome; return their task ids.

    Never raises: a failure here only means the trigger ends the wait a moment later.
    """
    if not record.decided:
        return []
    try:
        return _end(record, store_conn_id)
    except Exception:
        log.exception("Could not end the wait on approval %s at once; its trigger will", record.id)
        return []


def _end(record: Approval, store_conn_id: str) -> list[str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger, handle_event_submit
    from airflow.triggers.base import TaskSuccessEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from incident_ops.triggers.approval import ApprovalTrigger, approval_outcome

    classpath = f"{ApprovalTrigger.__module__}.{ApprovalTrigger.__qualname__}"
    ended = []
    with create_session() as session:
        # Locking the task instances (as Airflow's HITL route does) keeps a concurrent clear or
        # the triggerer's own event from interleaving with this change.
        waiting = session.execute(
            select(TaskInstance, Trigger)
            .join(Trigger, TaskInstance.trigger_id == Trigger.id)
            .where(
                TaskInstance.dag_id == record.dag_id,
                TaskInstance.run_id == record.run_id,
                TaskInstance.state == TaskInstanceState.DEFERRED,
                Trigger.classpath == classpath,
            )
            .with_for_update(of=TaskInstance)
        ).all()
        for ti, trigger in waiting:
            kwargs = trigger.kwargs
            if kwargs.get("approval_id") != record.id or kwargs.get("store_conn_id") != store_conn_id:
                continue
            # The same event the trigger would yield: the task ends here, its XCom is the outcome.
            event = TaskSuccessEvent(xcoms={"return_value": approval_outcome(record)})
            handle_event_submit(event, task_instance=ti, session=session)
            ended.append(ti.task_id)
    if ended:
        log.info("Approval %s is %s: ended %s of run %s", record.id, record.state, ended, record.run_id)
    return ended
