"""Tell the incident's Slack thread (or outbox) and timeline when a task has failed for good."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

from include.names import SLACK_CONN_ID
from include.vocabulary import TimelineKind

log = logging.getLogger(__name__)


class IncidentFailureNotifier(BaseNotifier):
    """Failure callback: record the failed task on the incident and alert through the Slack provider.

    :param slack_conn_id: The Slack connection to post with.
    """

    template_fields = ()

    def __init__(self, *, slack_conn_id: str = SLACK_CONN_ID) -> None:
        super().__init__()
        self.slack_conn_id = slack_conn_id

    def notify(self, context: Context) -> None:
        """Record the failure and post it; never raise, a callback error would hide the real one."""
        from incident_ops import config
        from incident_ops.hooks.incident_store import get_store
        from incident_ops.messaging import deliver
        from include.store import incident_id_for

        ti, dag_run = context["ti"], context["dag_run"]
        error = context.get("exception")
        detail = {
            "task_id": ti.task_id,
            "try_number": ti.try_number,
            "error": type(error).__name__ if error else None,
        }
        try:
            store = get_store()
            incident_id = incident_id_for(dag_run.dag_id, dag_run.run_id)
            store.incidents.add_event(incident_id, TimelineKind.TASK_FAILED, detail)
            text = (
                f":boom: Task `{ti.task_id}` failed after {ti.try_number} tries "
                f"({detail['error'] or 'unknown error'}); the incident needs a human."
            )
            deliver(
                store,
                incident_id=incident_id,
                key=f"{dag_run.run_id}:failed:{ti.task_id}:{ti.try_number}",
                channel=config.channel_for("oncall"),
                text=text,
                blocks=None,
                slack_conn_id=self.slack_conn_id,
            )
        except Exception:
            log.exception("Could not report the failure of %s", ti.task_id)
