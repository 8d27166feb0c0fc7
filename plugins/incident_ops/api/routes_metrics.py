"""`GET /incident-response/metrics`: the Prometheus metrics, for a scraper holding the metrics token.

The token is the password of connection `incident_metrics`, else INCIDENT_METRICS_TOKEN: 401 without
it, 503 while neither is configured. The values are read from the incident store at scrape time.
"""

from __future__ import annotations

import hmac
import logging
import os

from fastapi import APIRouter, Request, status
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from include.names import METRICS_CONN_ID, METRICS_TOKEN_ENV

log = logging.getLogger(__name__)
router = APIRouter(tags=["metrics"])

UNAUTHORIZED = (
    f"send the metrics token as `Authorization: Bearer <token>` (the password of connection "
    f"{METRICS_CONN_ID!r} or {METRICS_TOKEN_ENV})"
)


def configured_token() -> str | None:
    """Return the metrics token: connection `incident_metrics`'s password, else INCIDENT_METRICS_TOKEN."""
    from incident_ops.connections import optional_connection

    conn = optional_connection(METRICS_CONN_ID)
    return (conn.password if conn else None) or os.environ.get(METRICS_TOKEN_ENV) or None


def _bearer(request: Request) -> str | None:
    scheme, _, value = (request.headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text exposition format"},
        401: {"description": "No valid metrics token"},
        503: {"description": "No metrics token configured, or the store cannot be read"},
    },
)
def metrics(request: Request) -> Response:
    """Return every incident_response_* metric in the Prometheus text format."""
    token = configured_token()
    if not token:
        return PlainTextResponse(
            f"metrics are disabled: no token is configured. Set the password of connection "
            f"{METRICS_CONN_ID!r} or the {METRICS_TOKEN_ENV} environment variable.\n",
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    presented = _bearer(request)
    if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
        return PlainTextResponse(
            UNAUTHORIZED + "\n",
            status_code=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    from incident_ops.api.request_counts import flush_counts
    from incident_ops.hooks.incident_store import get_store
    from include.metrics import exposition

    try:
        flush_counts()  # this process's webhook answers so far
        body = exposition(get_store())
    except Exception as exc:
        log.error("Could not read the metrics from the incident store: %s", type(exc).__name__)
        return PlainTextResponse(
            "the incident store cannot be read; try again later\n",
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
