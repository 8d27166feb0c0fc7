"""Wait asynchronously, in the triggerer, until an approval record leaves `pending` or its deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from airflow.triggers.base import BaseTrigger, TriggerEvent

from include.names import STORE_CONN_ID
from include.vocabulary import ApprovalState, WaitState


class WaitEvent(TypedDict):
    """What the trigger hands back to the sensor when the sensor itself must act."""

    approval_id: str
    state: WaitState
    reason: NotRequired[str]


class ApprovalTrigger(BaseTrigger):
    """Wait for a decision on one approval record, read by the store's shared poll.

    It only reads: it may run more than once (triggerer restarts, HA), and expiry is left to the
    sensor to record. A decision made through the plugin's routes usually ends the sensor before
    this notices (`approval_outcome.end_waiting_tasks`); this is the path for every other case (a
    decision written while the metadata database was out of reach, or by another deployment's API
    server). A decision ends the sensor's task from the triggerer itself (the same TaskSuccessEvent
    the API server would submit); expiry, reminders and errors resume the sensor with a
    :class:`WaitEvent`. Its kwargs hold ids and a conn id, never secrets.

    :param approval_id: The record to watch.
    :param expires_at: The record's deadline (ISO 8601, UTC); at it the trigger reports `expired`.
    :param store_conn_id: Airflow connection of the incident store.
    :param poll_interval: Seconds between two reads of the waiting records (one shared read per
        store and triggerer process, see `approval_watch`).
    :param remind_at: When to report `reminder` if the record is still pending (ISO 8601), or None.
    """

    def __init__(
        self,
        *,
        approval_id: str,
        expires_at: str,
        store_conn_id: str = STORE_CONN_ID,
        poll_interval: float = 0.25,
        remind_at: str | None = None,
    ) -> None:
        super().__init__()
        self.approval_id = approval_id
        self.expires_at = expires_at
        self.store_conn_id = store_conn_id
        self.poll_interval = poll_interval
        self.remind_at = remind_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and kwargs the triggerer rebuilds this trigger from."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "approval_id": self.approval_id,
                "expires_at": self.expires_at,
                "store_conn_id": self.store_conn_id,
                "poll_interval": self.poll_interval,
                "remind_at": self.remind_at,
            },
        )

    def _event(self, state: WaitState, **extra: str) -> TriggerEvent:
        payload: WaitEvent = {"approval_id": self.approval_id, "state": state, **extra}  # type: ignore[typeddict-item]
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield one event: the decided outcome, `reminder`, `expired`, or `error`."""
        from incident_ops.hooks.incident_store import IncidentStoreHook
        from incident_ops.triggers.approval_outcome import finished_wait_event
        from incident_ops.triggers.approval_watch import watcher_for
        from include.store import NotFound

        deadline = datetime.fromisoformat(self.expires_at)
        remind_at = datetime.fromisoformat(self.remind_at) if self.remind_at else None
        # The connection is looked up once; the record is then read by the store's shared poll.
        store = await IncidentStoreHook(self.store_conn_id).aget_conn()
        watcher = watcher_for(store)
        while True:
            now = datetime.now(UTC)
            wake_at = min(deadline, remind_at) if remind_at else deadline
            try:
                state = await watcher.wait(
                    self.approval_id, timeout=(wake_at - now).total_seconds(), interval=self.poll_interval
                )
            except NotFound:
                yield self._event(WaitState.ERROR, reason="not_found")
                return
            if state is ApprovalState.EXPIRED:
                yield self._event(WaitState.EXPIRED)  # the sensor records and announces expiry itself
                return
            if state is not None:
                record = await asyncio.to_thread(store.approvals.get, self.approval_id)
                yield finished_wait_event(record)
                return
            now = datetime.now(UTC)
            if now >= deadline:
                yield self._event(WaitState.EXPIRED)
                return
            if remind_at and now >= remind_at:
                yield self._event(WaitState.REMINDER)
                return
