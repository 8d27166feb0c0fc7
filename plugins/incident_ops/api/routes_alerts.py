"""Alert webhooks: Alertmanager, Grafana, PagerDuty (Events API v2) and generic senders start incidents.

`POST /incident-response/api/alerts/{source}` authenticates the sender with a shared bearer token,
normalises the body (`include.alert_sources`), and per alert:

* firing: starts one `incident_response` run per incident, through Airflow's own trigger path, under
  a run id derived from the incident key and the alert's start time, so repeats (Alertmanager re-sends
  every group_interval / repeat_interval, and retries) and concurrent twins find the same run;
* resolved (or PagerDuty `resolve`): cancels the run's pending approval records, so the run goes on
  to `resolve_incident` without the fix, and records the resolution;
* acknowledged (PagerDuty): noted on the incident's timeline.

The work is synchronous (the incident store, Airflow's metadata DB): it runs in the thread pool, never
on the API server's event loop. Bad input is a 4xx with the reason, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from include.alert_sources import (
    ACKNOWLEDGED,
    FIRING,
    RESOLVED,
    WEBHOOK_SOURCES,
    Batch,
    Notification,
    PayloadError,
    normalise,
    run_id_for,
)
from include.store import incident_id_for

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/alerts", tags=["alerts"])

DAG_ID = "incident_response"
WEBHOOK_CONN_ID = "incident_webhook"
TOKEN_ENV = "INCIDENT_WEBHOOK_TOKEN"
MAX_BODY_BYTES = 1024 * 1024
# JSON nested deeper than any sender's payload is refused before the parser recurses into it.
MAX_JSON_DEPTH = 64


class IncidentResult(BaseModel):
    """What happened to one alert of the notification."""

    status: Literal["firing", "resolved", "acknowledged"]
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


class IntakeError(Exception):
    """A refusal with its HTTP status, raised from the worker thread."""

    def __init__(self, status_code: int, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field


class RunExists(Exception):
    """Airflow already has a run with this id (a concurrent twin or an earlier notification)."""


def _error(status_code: int, detail: str, *, field: str | None = None, **headers: str) -> JSONResponse:
    content: dict[str, Any] = {"detail": detail}
    if field:
        content["field"] = field
    return JSONResponse(status_code=status_code, content=content, headers=headers or None)


# -- authentication --------------------------------------------------------------------------------


def configured_token() -> str | None:
    """Return the webhook token: connection `incident_webhook`'s password, else INCIDENT_WEBHOOK_TOKEN."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk.bases.hook import BaseHook

    try:
        password = BaseHook.get_connection(WEBHOOK_CONN_ID).password
    except AirflowNotFoundException:
        password = None
    return password or os.environ.get(TOKEN_ENV) or None


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
    f"{WEBHOOK_CONN_ID!r} or {TOKEN_ENV})"
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
        413: {"model": WebhookError, "description": f"Body over {MAX_BODY_BYTES} bytes"},
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
            f"{WEBHOOK_CONN_ID!r} or the {TOKEN_ENV} environment variable.",
        )
    authorization = request.headers.get("authorization")
    presented = _presented_secret(authorization)
    # PagerDuty senders authenticate with the event's routing_key: checked once the body is parsed.
    if presented is None and not (source == "pagerduty" and authorization is None):
        return _error(401, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})
    if presented is not None and not _matches(presented, token):
        return _error(401, UNAUTHORIZED, **{"WWW-Authenticate": "Bearer"})

    raw = await _read_body(request)
    if isinstance(raw, JSONResponse):
        return raw
    options = {
        k: v for k, v in (("require_approval", require_approval), ("dry_run", dry_run)) if v is not None
    }
    try:
        batch, results = await run_in_threadpool(
            handle, source, raw, options=options, routing_key_token=None if presented else token
        )
    except IntakeError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        return _error(exc.status_code, exc.detail, field=exc.field, **headers)
    return JSONResponse(
        status_code=status.HTTP_202_ACCEPTED,
        content=IntakeResponse(
            source=source,
            incidents=results,
            truncated_alerts=batch.truncated,
            ignored_fields=batch.ignored_fields,
        ).model_dump(mode="json"),
    )


async def _read_body(request: Request) -> bytes | JSONResponse:
    """Read the body, refusing one over MAX_BODY_BYTES before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            return _error(400, "Content-Length is not a number")
        if size > MAX_BODY_BYTES:
            return _error(413, f"the body is {size} bytes; the limit is {MAX_BODY_BYTES}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            return _error(413, f"the body is over the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ValueError("the body is empty")
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    except ValueError as exc:  # also UnicodeDecodeError: not UTF-8
        raise ValueError(str(exc)[:200]) from None


# -- intake (runs in a worker thread) --------------------------------------------------------------


def _store():
    from incident_ops.hooks.incident_store import get_store

    return get_store()


def handle(
    source: str, raw: bytes, *, options: dict[str, bool], routing_key_token: str | None
) -> tuple[Batch, list[dict[str, Any]]]:
    """Parse, authenticate by routing_key when asked, normalise and process; IntakeError to refuse."""
    try:
        body = _parse_json(raw)
    except ValueError as exc:
        raise IntakeError(400, f"the body is not valid JSON: {exc}") from None
    if routing_key_token is not None:
        routing_key = body.get("routing_key") if isinstance(body, dict) else None
        if not _matches(routing_key, routing_key_token):
            raise IntakeError(401, UNAUTHORIZED + " or as the event's routing_key")
    try:
        batch = normalise(source, body, options=options)
    except PayloadError as exc:
        raise IntakeError(422, str(exc), field=exc.where) from None
    return batch, process(batch)


def process(batch: Batch) -> list[dict[str, Any]]:
    """Handle every alert of a notification, in order; raise IntakeError to refuse the request."""
    from sqlalchemy.exc import OperationalError

    try:
        store = _store()
        results = []
        for notification in batch.notifications:
            if notification.status == FIRING:
                results.append(_fire(store, notification))
            elif notification.status == RESOLVED:
                results.append(_resolve(store, notification))
            else:
                results.append(_acknowledge(store, notification))
        return results
    except OperationalError:
        log.exception("The incident store is unavailable")
        raise IntakeError(503, "the incident store is unavailable; try again later") from None


def _result(notification: Notification, run_id: str | None, **values: Any) -> dict[str, Any]:
    return {
        "status": notification.status,
        "incident_id": incident_id_for(DAG_ID, run_id) if run_id else None,
        "dag_run_id": run_id,
        "deduplicated": False,
        "fingerprint": notification.alert.fingerprint,
        "device_id": notification.alert.device_id,
        "error": notification.alert.error,
        **values,
    }


def _fire(store, notification: Notification) -> dict[str, Any]:
    """Start the alert's run, unless a run already handles this incident."""
    key = notification.incident_key
    # One incident per key while it is open, whichever episode or entry point opened it.
    active = store.active_alert_run(key, dag_id=DAG_ID)
    if active is not None:
        return _result(notification, active["run_id"], deduplicated=True)
    # Without a start time (PagerDuty) the episode is the number of runs started before: the same
    # until this one is resolved, so a repeat or a concurrent twin computes the same run id.
    episode = notification.episode or f"gen:{store.alert_generation(key, dag_id=DAG_ID)}"
    run_id = run_id_for(notification.source, key, episode)
    claimed = store.claim_alert_run(
        run_id=run_id,
        dag_id=DAG_ID,
        incident_key=key,
        source=notification.source,
        fingerprint=notification.alert.fingerprint,
        episode=episode,
    )
    if not claimed:
        return _result(notification, run_id, deduplicated=True)
    try:
        paused = _trigger(run_id, notification)
    except RunExists:
        return _result(notification, run_id, deduplicated=True)
    except BaseException:
        # Let the sender's retry start it: Alertmanager and Grafana retry on a 5xx.
        store.release_alert_run(run_id)
        raise
    log.info("Alert %s from %s started run %s", key, notification.source, run_id)
    return _result(notification, run_id, dag_paused=paused)


def _trigger(run_id: str, notification: Notification) -> bool:
    """Create the DAG run through Airflow's own trigger path; return whether the DAG is paused."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    with create_session() as session:
        dag = session.execute(
            select(DagModel.is_stale, DagModel.has_import_errors, DagModel.is_paused).where(
                DagModel.dag_id == DAG_ID
            )
        ).first()
    if dag is None or dag.is_stale:
        raise IntakeError(503, f"DAG {DAG_ID} is not available yet: the DAG processor has not parsed it")
    if dag.has_import_errors:
        raise IntakeError(503, f"DAG {DAG_ID} has import errors and cannot be triggered; see the Airflow UI")
    try:
        # Like `POST /api/v2/dags/{id}/dagRuns`: a queued manual run, conf validated by the DAG's
        # Params, whether or not the DAG is paused (a paused DAG keeps it queued).
        trigger_dag(
            DAG_ID,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=f"webhook:{notification.source}",
            run_id=run_id,
            conf=notification.conf,
            logical_date=None,
        )
    except (DagRunAlreadyExists, IntegrityError):
        raise RunExists(run_id) from None
    except DagNotFound:
        raise IntakeError(
            503, f"DAG {DAG_ID} is not available yet: the DAG processor has not parsed it"
        ) from None
    except ValueError as exc:  # ParamValidationError is one: the DAG's Params refused the alert
        raise IntakeError(422, f"the DAG refused the alert: {exc}") from None
    return bool(dag.is_paused)


def _run_for(store, notification: Notification) -> tuple[str | None, dict[str, Any] | None]:
    """Find the run a resolve or acknowledge refers to: its episode's run, else the key's latest."""
    key = notification.incident_key
    if notification.episode:
        row = store.get_alert_run(run_id_for(notification.source, key, notification.episode))
        if row is not None:
            return row["run_id"], row
    row = store.latest_alert_run(key, dag_id=DAG_ID, state="firing")
    if row is not None:
        return row["run_id"], row
    # An incident opened through the REST API or the UI with the same fingerprint.
    active = store.active_alert_run(key, dag_id=DAG_ID)
    if active is not None:
        return active["run_id"], None
    return None, None


def _resolve(store, notification: Notification) -> dict[str, Any]:
    """Close the alert's incident: cancel its pending approvals and record the resolution."""
    from incident_ops.decisions import announce_decision

    run_id, row = _run_for(store, notification)
    if run_id is None:
        # Nothing to close (never seen, or already resolved): idempotent, not an error for the sender.
        latest = store.latest_alert_run(notification.incident_key, dag_id=DAG_ID)
        found = latest["run_id"] if latest else None
        return _result(notification, found, deduplicated=found is not None, resolved=found is not None)
    if row is not None:
        first = store.resolve_alert_run(run_id, source=notification.source)
    else:
        first = True  # an open incident started outside the webhook: nothing to mark but its timeline
        store.add_event(incident_id_for(DAG_ID, run_id), "alert_resolved", {"source": notification.source})
    cancelled = []
    for record in store.list_approvals(run_id=run_id, state="pending"):
        closed = store.close_approval(record.id, state="cancelled")
        if closed.state == "cancelled":
            cancelled.append(record.id)
            announce_decision(store, closed)
    log.info(
        "Alert %s resolved by %s: run %s, cancelled %s",
        notification.incident_key,
        notification.source,
        run_id,
        cancelled or "nothing",
    )
    return _result(notification, run_id, deduplicated=not first, resolved=True, cancelled_approvals=cancelled)


def _acknowledge(store, notification: Notification) -> dict[str, Any]:
    """Note the sender's acknowledgement on the incident's timeline."""
    from include.store import NotFound

    run_id, _ = _run_for(store, notification)
    if run_id is not None and notification.status == ACKNOWLEDGED:
        incident_id = incident_id_for(DAG_ID, run_id)
        try:
            store.get_incident(incident_id)
        except NotFound:
            pass  # the run has not opened it yet; the acknowledgement changes nothing for the workflow
        else:
            store.add_event(incident_id, "alert_acknowledged", {"source": notification.source})
    return _result(notification, run_id)
