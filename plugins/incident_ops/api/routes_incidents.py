"""JSON API: list and read incidents, and acknowledge, escalate or resolve one with an Airflow login.

The same rules as the on-call page's buttons (`incident_lifecycle.act`): 403 for someone who is not
a responder (kept on the timeline), 409 for an action that changes nothing. Every document leaves
redacted, as the pages show it (the store keeps the alert as sent, for the audit).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse

from incident_ops.api.routes_approvals import REFUSAL_STATUS
from incident_ops.api.schemas import ErrorResponse
from incident_ops.api.security import (
    WEB_CHANNEL,
    CallerDep,
    check_same_origin,
    readable_dag_ids,
    require_dag_read,
)
from incident_ops.hooks.incident_store import get_store
from include.errors import Refused
from include.redaction import redact_value
from include.store import NotFound
from include.vocabulary import IncidentState

router = APIRouter(prefix="/api/incidents", tags=["incidents"])


IncidentId = Path(pattern=r"^inc-[0-9a-f]{12}$", description="The incident id, e.g. inc-0123456789ab")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No valid Airflow login"},
    403: {"model": ErrorResponse, "description": "May not read the DAG's runs, or not a responder"},
    404: {"model": ErrorResponse, "description": "No such incident"},
}


@router.get("", responses={401: ERRORS[401]})
def list_incidents(
    caller: CallerDep,
    state: IncidentState | Literal[""] | None = Query(None, description="Only incidents in this state"),
    limit: int = Query(100, ge=1, le=500),
) -> dict[str, Any]:
    """List incidents, newest first, of the DAGs the caller may read."""
    store = get_store()
    documents = [store.incident_document(i) for i in store.incidents.ids(state=state or None, limit=limit)]
    readable = readable_dag_ids(caller, {d["dag_id"] for d in documents})
    items = [redact_value(d) for d in documents if d["dag_id"] in readable]
    return {"incidents": items, "total_entries": len(items)}


def _document(caller: Any, incident_id: str) -> dict[str, Any]:
    try:
        document = get_store().incident_document(incident_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no incident {incident_id}") from None
    require_dag_read(caller, document["dag_id"])
    return document


@router.get("/{incident_id}", responses=ERRORS)
def get_incident(caller: CallerDep, incident_id: str = IncidentId) -> dict[str, Any]:
    """Return one incident: state, who and when, MTTA and MTTR, approvals, actions and timeline."""
    return redact_value(_document(caller, incident_id))


@router.post(
    "/{incident_id}/{action}",
    responses={
        **ERRORS,
        409: {"model": ErrorResponse, "description": "The action changes nothing"},
        429: {"model": ErrorResponse, "description": "Too many refused attempts (no longer recorded)"},
        503: {"model": ErrorResponse, "description": "The responders or approvers Variable is malformed"},
    },
)
def act(
    caller: CallerDep,
    request: Request,
    action: Literal["acknowledge", "escalate", "resolve"],
    incident_id: str = IncidentId,
):
    """Acknowledge, escalate or resolve the incident; answers its document after the action."""
    from incident_ops import incident_lifecycle

    if caller.channel == WEB_CHANNEL:
        check_same_origin(request)
    # Only users who may read the DAG's runs may act at all: anyone else is not even recorded.
    _document(caller, incident_id)
    try:
        document = incident_lifecycle.act(
            get_store(),
            incident_id,
            action,
            identity=caller.username,
            channel=caller.channel,
            role=caller.role,
        )
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no incident {incident_id}") from None
    except Refused as refused:
        code = REFUSAL_STATUS[refused.code]
        return JSONResponse(status_code=code, content={"detail": refused.reason, "code": refused.code})
    except ValueError as exc:  # a malformed incident_responders / incident_approvers Variable
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"invalid configuration: {exc}"
        ) from None
    return redact_value(document)
