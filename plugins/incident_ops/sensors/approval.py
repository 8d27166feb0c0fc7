"""A deferrable sensor that waits for the decision on an approval record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from include.names import STORE_CONN_ID
from include.vocabulary import WaitState

if TYPE_CHECKING:
    from airflow.sdk import Context

    from incident_ops.triggers.approval import WaitEvent
    from include.store import Approval, IncidentStore


class ApprovalError(Exception):
    """The approval record could not be waited on (it vanished, or the event was malformed)."""


class ApprovalSensor(BaseSensorOperator):
    """Wait until an approval record is approved, rejected, expired or cancelled.

    Deferrable (the default): it checks the record once and, if it is still pending, defers to
    :class:`ApprovalTrigger`, holding no worker slot; the record's deadline is the deferral's
    timeout. At half time it posts a reminder in the incident's thread and defers again. With
    ``deferrable=False`` it is a classic sensor (``mode="reschedule"`` frees the slot between
    pokes), for comparison and for deployments without a triggerer. Either way, expiry is recorded
    here as the record's decision and returned like any other outcome, so it never fails the task.

    :param approval_id: The record to wait for (templated; usually pulled from `request_approval`).
    :param store_conn_id: Airflow connection of the incident store.
    :param poll_interval: Seconds between the trigger's reads of the record.
    :param grace: Extra time allowed past the deadline before Airflow's own deferral timeout.
    :param deferrable: Wait in the triggerer (True) or by poking (False).
    """

    template_fields = ("approval_id",)
    ui_color = "#fde2c4"

    def __init__(
        self,
        *,
        approval_id: str,
        store_conn_id: str = STORE_CONN_ID,
        poll_interval: float = 0.25,
        grace: timedelta = timedelta(minutes=1),
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.approval_id = approval_id
        self.store_conn_id = store_conn_id
        self.poll_interval = poll_interval
        self.grace = grace
        self.deferrable = deferrable

    def _store(self) -> IncidentStore:
        from incident_ops.hooks.incident_store import get_store

        return get_store(self.store_conn_id)

    def execute(self, context: Context) -> Any:
        """Return at once if the record is decided (or past its deadline); otherwise wait for it."""
        if not self.deferrable:
            return super().execute(context)
        record = self._store().approvals.get(self.approval_id)
        if record.decided:
            return self._outcome(record)
        if datetime.now(UTC) >= record.expires_at:
            return self._expire()
        half_time = record.created_at + (record.expires_at - record.created_at) / 2
        self._defer(record, remind_at=half_time if datetime.now(UTC) < half_time else None)
        return None  # unreachable: defer() raises

    def poke(self, context: Context) -> PokeReturnValue:
        """Return the outcome once the record is decided or its deadline passed (non-deferrable mode)."""
        record = self._store().approvals.get(self.approval_id)
        if record.decided:
            return PokeReturnValue(is_done=True, xcom_value=self._outcome(record))
        if datetime.now(UTC) >= record.expires_at:
            return PokeReturnValue(is_done=True, xcom_value=self._expire())
        return PokeReturnValue(is_done=False)

    def _defer(self, record: Approval, *, remind_at: datetime | None) -> None:
        from incident_ops.triggers.approval import ApprovalTrigger

        self.log.info("Approval %s pending; waiting deferred until %s", record.id, record.expires_at)
        self.defer(
            trigger=ApprovalTrigger(
                approval_id=record.id,
                expires_at=record.expires_at.isoformat(),
                store_conn_id=self.store_conn_id,
                poll_interval=self.poll_interval,
                remind_at=remind_at.isoformat() if remind_at else None,
            ),
            method_name="execute_complete",
            timeout=record.expires_at - datetime.now(UTC) + self.grace,
        )

    def execute_complete(self, context: Context, event: WaitEvent | str | None = None) -> dict[str, Any]:
        """Act on what the trigger could not do itself: expiry, the reminder, an unreadable record."""
        if event == "success":
            # dag.test() resumes the task with a TaskSuccessEvent's state instead of ending it.
            return self._outcome(self._store().approvals.get(self.approval_id))
        state = event.get("state") if isinstance(event, dict) else None
        if state == WaitState.ERROR:
            reason = event.get("reason") if isinstance(event, dict) else None
            raise ApprovalError(f"approval record {self.approval_id} cannot be read: {reason}")
        if state == WaitState.EXPIRED:
            return self._expire()
        if state != WaitState.REMINDER:
            raise ApprovalError(f"unexpected event from the approval trigger: {event!r}")
        record = self._store().approvals.get(self.approval_id)
        if not record.decided:
            self._remind(record)
            self._defer(record, remind_at=None)
        return self._outcome(record)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context):
        """Treat Airflow's deferral timeout as the deadline passing, not as a failure."""
        from airflow.sdk.exceptions import AirflowSensorTimeout

        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout:
            self.log.warning("Deferral timed out for approval %s; recording it as expired", self.approval_id)
            return self._expire()

    def _remind(self, record: Approval) -> None:
        """Post the half-time reminder in the incident's thread (once per record)."""
        from incident_ops import config
        from incident_ops.links import record_url
        from incident_ops.messaging import deliver

        left = max(0, int((record.expires_at - datetime.now(UTC)).total_seconds() // 60))
        progress = f"{record.approval_count} of {record.quorum}"
        text = (
            f"Reminder: `{record.action}` still waits for approval ({progress}); "
            f"it expires in about {left} min and then escalates. {record_url(record.id)}"
        )
        deliver(
            self._store(),
            incident_id=record.incident_id,
            key=f"{record.run_id}:reminder:{record.id}",
            channel=config.channel_for("approvals"),
            text=text,
        )

    def _expire(self) -> dict[str, Any]:
        from incident_ops.approval_lifecycle import expire

        return self._outcome(expire(self._store(), self.approval_id))

    def _outcome(self, record: Approval) -> dict[str, Any]:
        from incident_ops.triggers.approval_outcome import outcome_for

        self.log.info("Approval %s is %s", record.id, record.state)
        return outcome_for(record)
