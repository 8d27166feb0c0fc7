"""Count the alert webhook's answers in the store, by source and HTTP status, for the metrics.

Counted in memory and written to the store at most once a second, in one transaction, by a
background thread: a write per request was a quarter of a deduplicated webhook's cost. A scrape of
this process writes what is pending first; other api-server processes' counts are at most
FLUSH_SECONDS behind. What is pending when a process is killed is lost (about a second of counts).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from include.alert_sources import WEBHOOK_SOURCES

log = logging.getLogger(__name__)
# Any other path segment is counted under one label: label values stay few whatever senders post.
OTHER_SOURCE = "other"
FLUSH_SECONDS = 1.0

_pending: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()
_flusher: threading.Thread | None = None


def _record(source: str, status: int) -> None:
    global _flusher
    with _lock:
        _pending[(source, str(status))] += 1
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_forever, name="webhook-request-counts", daemon=True)
            _flusher.start()


def flush_counts() -> None:
    """Write the pending counts to the store (kept for the next try when the store fails)."""
    from incident_ops.hooks.incident_store import get_store

    with _lock:
        batch = dict(_pending)
        _pending.clear()
    if not batch:
        return
    try:
        get_store().stats.count_webhook_requests(batch)
    except Exception as exc:
        # A metric must never cost an alert its answer: keep the counts and try again later.
        log.warning("Could not write the webhook request counts: %s", type(exc).__name__)
        with _lock:
            _pending.update(batch)


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush_counts()


def _forget_in_child() -> None:
    # A forked child starts without the thread, and must not write its parent's counts again.
    global _flusher
    _flusher = None
    _pending.clear()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(flush_counts)


def counted_by_source(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a webhook endpoint (with a `source` parameter) so each answer it gives is counted."""

    @functools.wraps(endpoint)
    async def counting(*args: Any, **kwargs: Any) -> Any:
        raw = kwargs.get("source")
        source = raw if raw in WEBHOOK_SOURCES else OTHER_SOURCE
        try:
            response = await endpoint(*args, **kwargs)
        except Exception:
            _record(source, 500)
            raise
        _record(source, getattr(response, "status_code", 200))
        return response

    return counting
