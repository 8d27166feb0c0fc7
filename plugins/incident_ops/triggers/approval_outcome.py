"""How a finished approval wait is handed on: the outcome the waiting task returns, the event that
ends it, and ending it from the API server in Airflow's metadata database.

These live beside `ApprovalTrigger` because they speak its language: the same `TaskSuccessEvent` the
trigger yields is what the API server submits, and `read_outcome` is the one reader of the XCom it
leaves, however the wait ended.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.triggers.base import TaskSuccessEvent

    from include.models import ApprovalOutcome
    from include.store import Approval

log = logging.getLogger(__name__)


def end_waiting_tasks(record: Approval) -> list[str]:
    """End the tasks deferred on `record` with its outcome, from the API server; return their task ids.

    Rather than leaving the news to the trigger's next poll and the triggerer's event loop (about a
    second), the request that records the decision hands the outcome straight to the waiting task
    instance. The trigger stays the fallback: when nothing is deferred yet (the sensor then reads the
    record itself), or the metadata database is out of reach, it ends the wait. Never raises.
    """
    if not record.decided:
        return []
    try:
        return _end_waiting_tasks(record)
    except Exception:
        log.exception("Could not end the wait on approval %s at once; its trigger will", record.id)
        return []


def _end_waiting_tasks(record: Approval) -> list[str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger, handle_event_submit
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from incident_ops.hooks.incident_store import IncidentStoreHook
    from incident_ops.triggers.approval import ApprovalTrigger

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
            if kwargs.get("approval_id") != record.id or (
                kwargs.get("store_conn_id") != IncidentStoreHook.default_conn_name
            ):
                continue
            handle_event_submit(finished_wait_event(record), task_instance=ti, session=session)
            ended.append(ti.task_id)
    if ended:
        log.info("Approval %s is %s: ended %s of run %s", record.id, record.state, ended, record.run_id)
    return ended


def outcome_for(record: Approval) -> dict[str, Any]:
    """Return what `wait_for_approval` hands to `approval_decision` for a record (its XCom)."""
    from include.models import ApprovalOutcome

    return ApprovalOutcome(approval_id=record.id, state=record.state, decided_by=record.deciders).to_xcom()


def finished_wait_event(record: Approval) -> TaskSuccessEvent:
    """Return the event that ends the waiting task with the record's outcome as its XCom."""
    from airflow.triggers.base import TaskSuccessEvent

    return TaskSuccessEvent(xcoms={"return_value": outcome_for(record)})


def read_outcome(value: Any) -> ApprovalOutcome:
    """Turn `wait_for_approval`'s XCom into the outcome: the one reader, however the wait ended."""
    from include.models import ApprovalOutcome

    # Ended by a TaskSuccessEvent (the trigger, or the API server), the XCom arrives JSON-encoded;
    # returned by the sensor itself, it is the dict.
    if isinstance(value, str):
        value = json.loads(value)
    return ApprovalOutcome.from_xcom(value)
