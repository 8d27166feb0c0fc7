"""One shared poll per store and event loop: waiting approvals cost one query an interval, however many.

Every waiting ApprovalTrigger of a triggerer process registers its record with the watcher of its
store; the watcher's single task reads the states of all registered records in one query
(`store.approvals.states`) each interval and wakes the triggers whose record left `pending`.
A record is watched from the moment its trigger registers until the trigger stops waiting, so a
decision written at any time (by this deployment's API server, another one's, or straight into the
store) is seen at the next read: no decision is lost, and 1,000 waiting approvals cost what one does.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field

from include.store import IncidentStore, NotFound
from include.vocabulary import ApprovalState

log = logging.getLogger(__name__)


@dataclass
class _Waiter:
    """One trigger's wait: the future its outcome lands in and how often it wants the record read."""

    future: asyncio.Future[ApprovalState]
    interval: float


@dataclass
class ApprovalWatcher:
    """The shared poller of one store on one event loop.

    :param store: The incident store whose records are watched.
    """

    store: IncidentStore
    queries: int = 0  # reads made so far (the benchmark and tests count them)
    _waiters: dict[str, list[_Waiter]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    @property
    def watched(self) -> int:
        """Return how many records are being watched now."""
        return len(self._waiters)

    async def wait(self, approval_id: str, *, timeout: float, interval: float) -> ApprovalState | None:
        """Wait up to timeout seconds for the record to leave `pending`; return its state, or None.

        Raises NotFound when the record does not exist, and whatever the store raised when the
        read itself failed (as the trigger's own read would have).
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future(), interval)
        self._waiters.setdefault(approval_id, []).append(waiter)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._poll(), name=f"approval-watch-{id(self.store):x}")
        try:
            done, _ = await asyncio.wait({waiter.future}, timeout=max(0.0, timeout))
            return waiter.future.result() if done else None
        finally:
            self._forget(approval_id, waiter)

    def _forget(self, approval_id: str, waiter: _Waiter) -> None:
        """Stop watching for one trigger (done, timed out or cancelled)."""
        waiters = self._waiters.get(approval_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiters.pop(approval_id, None)
        if not waiter.future.done():
            waiter.future.cancel()

    async def _poll(self) -> None:
        """Read every watched record's state once an interval until nobody waits any more."""
        while self._waiters:
            ids = list(self._waiters)
            self.queries += 1
            try:
                # The store's drivers are synchronous; a thread keeps the triggerer's loop free.
                states = await asyncio.to_thread(self.store.approvals.states, ids)
            except Exception as err:  # every waiter learns of the failure, as its own read would have
                log.warning("Reading %d approval states failed: %s", len(ids), err)
                self._settle(ids, error=err)
                states = {}
            for approval_id in ids:
                state = states.get(approval_id)
                if state is None:
                    self._settle([approval_id], error=NotFound(f"no approval record {approval_id}"))
                elif state is not ApprovalState.PENDING:
                    self._settle([approval_id], state=state)
            interval = min((w.interval for ws in self._waiters.values() for w in ws), default=0.0)
            if interval:
                await asyncio.sleep(interval)

    def _settle(
        self, ids: list[str], *, state: ApprovalState | None = None, error: Exception | None = None
    ) -> None:
        """Hand a state (or an error) to every trigger waiting on these records."""
        for approval_id in ids:
            for waiter in self._waiters.pop(approval_id, []):
                if waiter.future.done():
                    continue
                if error is not None:
                    waiter.future.set_exception(error)
                elif state is not None:
                    waiter.future.set_result(state)


# One watcher per database and loop: the triggerer runs one loop; each test's asyncio.run makes a new one.
_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ApprovalWatcher]] = (
    weakref.WeakKeyDictionary()
)


def watcher_for(store: IncidentStore) -> ApprovalWatcher:
    """Return the running loop's watcher of the store's database, created on first use."""
    # Keyed by URL, not object: triggers starting together may each get a store object of their own.
    key = store.engine.url.render_as_string(hide_password=False)
    per_loop = _watchers.setdefault(asyncio.get_running_loop(), {})
    if key not in per_loop:
        per_loop[key] = ApprovalWatcher(store)
    return per_loop[key]
