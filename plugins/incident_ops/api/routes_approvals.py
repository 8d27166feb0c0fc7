"""JSON API: list and read approval records, and vote on one with an Airflow login.

The endpoints are plain `def` functions: FastAPI runs them in its thread pool, so the synchronous
store and Slack calls never block the API server's event loop.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse

from incident_ops.api.schemas import (
    ApprovalCollection,
    ApprovalResponse,
    DecisionBody,
    ErrorResponse,
)
from incident_ops.api.security import (
    WEB_CHANNEL,
    CallerDep,
    check_same_origin,
    readable_dag_ids,
    require_dag_read,
)
from incident_ops.hooks.incident_store import get_store
from include.errors import Refused
from include.store import NotFound
from include.vocabulary import ApprovalState, RefusalCode

router = APIRouter(prefix="/api/approvals", tags=["approvals"])

RecordId = Path(min_length=1, max_length=64, description="The approval record id, e.g. apr-0123456789ab")
REFUSAL_STATUS = {
    RefusalCode.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    RefusalCode.CONFLICT: status.HTTP_409_CONFLICT,
    RefusalCode.TOO_MANY: status.HTTP_429_TOO_MANY_REQUESTS,
}


@router.get("", response_model=ApprovalCollection, responses={401: {"model": ErrorResponse}})
def list_approvals(
    caller: CallerDep,
    state: ApprovalState | Literal[""] | None = Query(None, description="Only records in this state"),
    dag_run_id: str | None = Query(None, max_length=250, description="Only records of this DAG run"),
    limit: int = Query(100, ge=1, le=500),
) -> dict:
    """List approval records, newest first, of the DAGs the caller may read."""
    records = get_store().list_approvals(state=state or None, run_id=dag_run_id or None, limit=limit)
    readable = readable_dag_ids(caller, {r.dag_id for r in records})
    items = [r.to_json() for r in records if r.dag_id in readable]
    return {"approvals": items, "total_entries": len(items)}


@router.get(
    "/{approval_id}",
    response_model=ApprovalResponse,
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
def get_approval(caller: CallerDep, approval_id: str = RecordId) -> dict:
    """Return one approval record with its votes and refused attempts."""
    try:
        record = get_store().get_approval(approval_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no approval record {approval_id}") from None
    require_dag_read(caller, record.dag_id)
    return record.to_json()


@router.post(
    "/{approval_id}/decisions",
    response_model=ApprovalResponse,
    responses={
        401: {"model": ErrorResponse, "description": "No valid Airflow login"},
        403: {"model": ErrorResponse, "description": "Not an allowed approver (the attempt is audited)"},
        404: {"model": ErrorResponse, "description": "No such record"},
        409: {"model": ErrorResponse, "description": "Already decided, expired, or a second vote (audited)"},
        429: {"model": ErrorResponse, "description": "Too many refused attempts (no longer audited)"},
    },
)
def decide(caller: CallerDep, body: DecisionBody, request: Request, approval_id: str = RecordId):
    """Approve or reject; answers the record as it stands after the vote."""
    from incident_ops import approval_lifecycle

    if caller.channel == WEB_CHANNEL:
        check_same_origin(request)
    store = get_store()
    try:
        # Only users who may read the DAG's runs may vote at all: anyone else is not even audited.
        require_dag_read(caller, store.get_approval(approval_id).dag_id)
        record = approval_lifecycle.decide(
            store,
            approval_id,
            identity=caller.username,
            channel=caller.channel,
            decision=body.decision,
            comment=body.comment,
            role=caller.role,
        )
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no approval record {approval_id}") from None
    except Refused as refused:
        return JSONResponse(
            status_code=REFUSAL_STATUS.get(refused.code, status.HTTP_409_CONFLICT),
            content={"detail": refused.reason, "code": refused.code},
        )
    return record.to_json()
