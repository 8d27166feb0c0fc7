"""Alert webhooks: Alertmanager, Grafana, PagerDuty (Events API v2) and generic senders start incidents.

`POST /incident-response/api/alerts/{source}`: authenticate the sender with the shared bearer token,
read the body (bounded), normalise it (`include.alert_sources`) and hand it to `incident_ops.alert_intake`,
which decides what each alert does. Bad input is a 4xx with the reason, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from typing import Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from incident_ops.alert_intake import process
from incident_ops.api.body import BodyTooLarge, declared_too_large, parse_json, read_limited
from incident_ops.api.request_counts import counted_by_source
from include.alert_sources import WEBHOOK_SOURCES, Batch, PayloadError, TooManyAlertsError, normalise
from include.errors import AlertRefused, IntakeRefused, IntakeUnavailable
from include.names import WEBHOOK_CONN_ID, WEBHOOK_TOKEN_ENV
from include.vocabulary import AlertStatus

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/alerts", tags=["alerts"])

MAX_BODY_BYTES = 1024 * 1024
# PagerDuty's own limit for one event; a sender that authenticates by routing_key gets no more.
MAX_PAGERDUTY_BODY_BYTES = 512 * 1024
# Deeper than any sender's payload: refused before the alert is looked at.
MAX_JSON_DEPTH = 64
# The routing_key of a PagerDuty event, found in the raw body so that it is checked before parsing.
_ROUTING_KEY = re.compile(rb'"routing_key"\s*:\s*"([^"\\]{1,256})"')


# The intake's refusals as HTTP: a sender's mistake is a 4xx it should not retry; what a retry may get
# past is a 503, which Alertmanager and Grafana retry.
STATUS_OF_REFUSAL: dict[type[IntakeRefused], int] = {
    AlertRefused: status.HTTP_422_UNPROCESSABLE_CONTENT,
    IntakeUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


class Refused(Exception):
    """The request is refused with this status, before the intake sees it."""

    def __init__(self, status_code: int, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field


class IncidentResult(BaseModel):
    """What happened to one alert of the notification."""

    status: AlertStatus
    incident_id: str | None = Field(description="The incident (also before the run has opened it)")
    dag_run_id: str | None = Field(description="The incident_response run handling it")
    deduplicated: bool = Field(description="True when an earlier notification already did this")
    resolved: bool = Field(default=False, description="True when this notification resolved the alert")
    fingerprint: str | None = None
    device_id: str
    error: str
    cancelled_approvals: list[str] = Field(default_factory=list)
    dag_paused: bool | None = Field(default=None, description="Set on new runs: a paused DAG queues them")


class IntakeResponse(BaseModel):
    """The incidents a notification started, found or resolved, in the sender's order."""

    source: str
    incidents: list[IncidentResult]
    truncated_alerts: int = Field(default=0, description="Alerts the sender left out (Alertmanager)")
    ignored_fields: list[str] = Field(default_factory=list)


class WebhookError(BaseModel):
    """Why a notification was refused."""

    detail: str
    field: str | None = None


def _error(status_code: int, detail: str, *, field: str | None = None, **headers: str) -> JSONResponse:
    content: dict[str, Any] = {"detail": detail}
    if field:
        content["field"] = field
    return JSONResponse(status_code=status_code, content=content, headers=headers or None)


# -- authentication --------------------------------------------------------------------------------


def configured_token() -> str | None:
    """Return the webhook token: connection `incident_webhook`'s password, else INCIDENT_WEBHOOK_TOKEN."""
    import os

    from incident_ops.connections import optional_connection

    conn = optional_connection(WEBHOOK_CONN_ID)
    return (conn.password if conn else None) or os.environ.get(WEBHOOK_TOKEN_ENV) or None


def _presented_secret(authorization: str | None) -> str | None:
    """Return the secret of `Authorization: Bearer <token>` or the password of `Basic user:token`."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _matches(presented: Any, token: str) -> bool:
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(presented.encode(), token.encode())


UNAUTHORIZED = (
    "send the webhook token as `Authorization: Bearer <token>` (the password of connection "
    f"{WEBHOOK_CONN_ID!r} or {WEBHOOK_TOKEN_ENV})"
)


# -- the route -------------------------------------------------------------------------------------


@router.post(
    "/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IntakeResponse,
    responses={
        400: {"model": WebhookError, "description": "The body is not JSON"},
        401: {"model": WebhookError, "description": "No valid webhook token"},
        404: {"model": WebhookError, "description": "Unknown source"},
        413: {"model": WebhookError, "description": f"Body over {MAX_BODY_BYTES} bytes, or too many alerts"},
        422: {"model": WebhookError, "description": "The body is not a notification of this source"},
        503: {"model": WebhookError, "description": "No token configured, DAG not parsed, store down"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The notification exactly as the sender posts it.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
@counted_by_source
async def receive_alerts(
    request: Request,
    source: str = Path(description=f"One of {', '.join(WEBHOOK_SOURCES)}", max_length=32),
    require_approval: bool | None = Query(None, description="Ask a human before any fix, for every alert"),
    dry_run: bool | None = Query(None, description="Send no action to devices, for every alert"),
):
    """Start, deduplicate or resolve incidents from an alerting system's notification."""
    if source not in WEBHOOK_SOURCES:
        return _error(404, f"unknown alert source {source!r}; use one of {', '.join(WEBHOOK_SOURCES)}")
    try:
        token = await run_in_threadpool(configured_token)
    except Exception:
        log.exception("Could not read the webhook token")
        return _error(503, "the webhook token could not be read; try again later")
    if not token:
        return _error(
            503,
            f"alert webhooks are disabled: no token is configured. Set the password of connection "
            f"{WEBHOOK_CONN_ID!r} or the {WEBHOOK_TOKEN_ENV} environment variable.",
        )
    authorization = request.headers.get("authorization")
    presented = _presented_secret(authorization)
    # PagerDuty senders authenticate with the event's routing_key: checked once the body is parsed.
    if presented is None and not (source == "pagerduty" and authorization is None):
        return _error(401, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})
    if presented is not None and not _matches(presented, token):
        return _error(401, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})

    by_routing_key = presented is None
    limit = MAX_PAGERDUTY_BODY_BYTES if by_routing_key else MAX_BODY_BYTES
    if declared_too_large(request.headers, limit):
        return _error(413, f"the body is over the limit of {limit} bytes")
    try:
        raw = await read_limited(request.receive, limit)
    except BodyTooLarge as exc:
        return _error(413, str(exc))
    if by_routing_key and not _routing_key_matches(raw, token):
        return _error(401, UNAUTHORIZED + " or as the event's routing_key", **{"WWW-Authenticate": "Bearer"})
    options = {
        k: v for k, v in (("require_approval", require_approval), ("dry_run", dry_run)) if v is not None
    }
    try:
        batch, results = await run_in_threadpool(
            handle, source, raw, options=options, routing_key=token if by_routing_key else None
        )
    except Refused as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        return _error(exc.status_code, exc.detail, field=exc.field, **headers)
    except IntakeRefused as exc:
        return _error(STATUS_OF_REFUSAL[type(exc)], exc.detail, field=exc.field)
    return JSONResponse(
        status_code=status.HTTP_202_ACCEPTED,
        content=IntakeResponse(
            source=source,
            incidents=[IncidentResult.model_validate(result) for result in results],
            truncated_alerts=batch.truncated,
            ignored_fields=batch.ignored_fields,
        ).model_dump(mode="json"),
    )


def _routing_key_matches(raw: bytes, token: str) -> bool:
    """Say whether the raw body carries the token as its routing_key, before anything parses it."""
    found = _ROUTING_KEY.findall(raw)
    return len(found) == 1 and _matches(found[0].decode("utf-8", "replace"), token)


def handle(
    source: str, raw: bytes, *, options: dict[str, bool], routing_key: str | None
) -> tuple[Batch, list[dict[str, Any]]]:
    """Parse and normalise the body, then let the intake process it; Refused to refuse it first."""
    try:
        body = parse_json(raw, max_depth=MAX_JSON_DEPTH)
    except ValueError as exc:
        raise Refused(400, f"the body is not valid JSON: {exc}") from None
    # The parsed routing_key must be the one checked on the raw body (no second, hidden key).
    if routing_key is not None and not (
        isinstance(body, dict) and _matches(body.get("routing_key"), routing_key)
    ):
        raise Refused(401, UNAUTHORIZED + " or as the event's routing_key")
    try:
        batch = normalise(source, body, options=options)
    except TooManyAlertsError as exc:
        raise Refused(413, str(exc), field=exc.where) from None
    except PayloadError as exc:
        raise Refused(422, str(exc), field=exc.where) from None
    return batch, process(batch)
