"""Count the alert webhook's answers in the store, by source and HTTP status, for the metrics."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from include.alert_sources import WEBHOOK_SOURCES

log = logging.getLogger(__name__)
# Any other path segment is counted under one label: label values stay few whatever senders post.
OTHER_SOURCE = "other"


def _record(source: str, status: int) -> None:
    from incident_ops.hooks.incident_store import get_store

    try:
        get_store().count_webhook_request(source, status)
    except Exception as exc:
        # A metric must never cost an alert its answer.
        log.warning("Could not count a webhook request (%s %s): %s", source, status, type(exc).__name__)


def counted_by_source(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a webhook endpoint (with a `source` parameter) so each answer it gives is counted."""

    @functools.wraps(endpoint)
    async def counting(*args: Any, **kwargs: Any) -> Any:
        raw = kwargs.get("source")
        source = raw if raw in WEBHOOK_SOURCES else OTHER_SOURCE
        try:
            response = await endpoint(*args, **kwargs)
        except Exception:
            await run_in_threadpool(_record, source, 500)
            raise
        await run_in_threadpool(_record, source, getattr(response, "status_code", 200))
        return response

    return counting
