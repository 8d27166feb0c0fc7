"""JSON API: list and read approval records, and vote on one with an Airflow login.

The endpoints are plain `def` functions: FastAPI runs them in its thread pool, so the synchronous
store and Slack calls never block the API server's event loop.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from incident_ops.api.body import BodyTooLarge, declared_too_large, parse_json, read_limited
from incident_ops.api.schemas import (
    ApprovalCollection,
    ApprovalResponse,
    DecisionBody,
    ErrorResponse,
)
from incident_ops.api.security import (
    WEB_CHANNEL,
    Caller,
    CallerDep,
    check_same_origin,
    readable_dag_ids,
    require_dag_read,
)
from incident_ops.hooks.incident_store import get_store
from include.bounded_json import MAX_JSON_DEPTH
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
# A vote is a word and a comment of 2000 characters at most: even fully \u-escaped it fits in 32 KiB.
MAX_DECISION_BODY_BYTES = 32 * 1024


@router.get("", response_model=ApprovalCollection, responses={401: {"model": ErrorResponse}})
def list_approvals(
    caller: CallerDep,
    state: ApprovalState | Literal[""] | None = Query(None, description="Only records in this state"),
    dag_run_id: str | None = Query(None, max_length=250, description="Only records of this DAG run"),
    limit: int = Query(100, ge=1, le=500),
) -> dict:
    """List approval records, newest first, of the DAGs the caller may read."""
    records = get_store().approvals.find(state=state or None, run_id=dag_run_id or None, limit=limit)
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
        record = get_store().approvals.get(approval_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no approval record {approval_id}") from None
    require_dag_read(caller, record.dag_id)
    return record.to_json()


@router.post(
    "/{approval_id}/decisions",
    response_model=ApprovalResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DecisionBody.model_json_schema()}},
        }
    },
    responses={
        401: {"model": ErrorResponse, "description": "No valid Airflow login"},
        403: {"model": ErrorResponse, "description": "Not an allowed approver (the attempt is audited)"},
        404: {"model": ErrorResponse, "description": "No such record"},
        409: {"model": ErrorResponse, "description": "Already decided, expired, or a second vote (audited)"},
        413: {"model": ErrorResponse, "description": f"Body over {MAX_DECISION_BODY_BYTES} bytes"},
        422: {"model": ErrorResponse, "description": "Not a JSON decision"},
        429: {"model": ErrorResponse, "description": "Too many refused attempts (no longer audited)"},
    },
)
async def decide(caller: CallerDep, request: Request, approval_id: str = RecordId) -> Any:
    """Approve or reject; answers the record as it stands after the vote.

    The login is checked first; the body is then read up to its limit and parsed only once it is
    known to be small (FastAPI would read and parse a declared body before any dependency runs).
    """
    if caller.channel == WEB_CHANNEL:
        check_same_origin(request)
    if declared_too_large(request.headers, MAX_DECISION_BODY_BYTES):
        return _too_large()
    try:
        raw = await read_limited(request.receive, MAX_DECISION_BODY_BYTES)
    except BodyTooLarge:
        return _too_large()
    body = _decision_body(request.headers.get("content-type", ""), raw)
    return await run_in_threadpool(_decide, caller, approval_id, body)


def _too_large() -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        content={"detail": f"the request body is over the limit of {MAX_DECISION_BODY_BYTES} bytes"},
    )


def _decision_body(content_type: str, raw: bytes) -> DecisionBody:
    """Parse the vote; 422 unless it is a JSON object a DecisionBody accepts (never a form)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the body must be JSON")
    try:
        return DecisionBody.model_validate(parse_json(raw, max_depth=MAX_JSON_DEPTH))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"not valid JSON: {exc}") from None


def _decide(caller: Caller, approval_id: str, body: DecisionBody) -> Any:
    """Count the vote (store and Slack calls are synchronous: run in the thread pool)."""
    from incident_ops import approval_lifecycle

    store = get_store()
    try:
        # Only users who may read the DAG's runs may vote at all: anyone else is not even audited.
        require_dag_read(caller, store.approvals.get(approval_id).dag_id)
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
