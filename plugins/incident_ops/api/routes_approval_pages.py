"""HTML pages: the list of approval requests and one record's page with its Approve / Reject form.

Only logged-in Airflow users see records (they describe incidents and devices); anyone else gets a
short page with a link to Airflow's login that comes back here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from incident_ops.api import rendering
from incident_ops.api.security import Caller, OptionalCallerDep, login_url, readable_dag_ids
from incident_ops.hooks.incident_store import get_store
from incident_ops.links import run_url_for
from include.store import Incident, NotFound
from include.vocabulary import ApprovalState

router = APIRouter(include_in_schema=False)
RECENT_LIMIT = 50


def _prefix(request: Request) -> str:
    # Where the API server mounted this app (with any base_url path), e.g. "/incident-response".
    return request.scope.get("root_path", "").rstrip("/")


def _login_page(request: Request) -> HTMLResponse:
    return rendering.message_page(
        title="Log in to see approval requests",
        text="Approval requests are shown to logged-in Airflow users only. "
        "Log in, and you will come back here.",
        status_code=status.HTTP_401_UNAUTHORIZED,
        link=login_url(request.url.path),
        link_text="Log in to Airflow",
    )


def _incident(store, incident_id: str, cache: dict[str, Any]) -> Incident | None:
    if incident_id not in cache:
        try:
            cache[incident_id] = store.incidents.get(incident_id)
        except NotFound:
            cache[incident_id] = None
    return cache[incident_id]


@router.get("/")
def root(request: Request) -> RedirectResponse:
    """Send visitors of the app's root to the list of approval requests."""
    return RedirectResponse(f"{_prefix(request)}/approvals", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/approvals", response_class=HTMLResponse)
def approvals_page(request: Request, caller: OptionalCallerDep) -> HTMLResponse:
    """List pending requests and recent decisions."""
    if caller is None:
        return _login_page(request)
    store, prefix = get_store(), _prefix(request)
    incidents: dict[str, Any] = {}
    pending = store.approvals.find(state=ApprovalState.PENDING, limit=200)
    recent = [r for r in store.approvals.find(limit=RECENT_LIMIT + len(pending)) if r.decided][:RECENT_LIMIT]
    readable = readable_dag_ids(caller, {r.dag_id for r in pending + recent})

    def rows(records):
        return [
            {
                "record": r,
                "url": f"{prefix}/approvals/{r.id}",
                "approvals": r.approval_count,
                "device_id": getattr(_incident(store, r.incident_id, incidents), "device_id", None),
            }
            for r in records
            if r.dag_id in readable
        ]

    return rendering.render(
        "approvals.html", username=caller.username, pending=rows(pending), recent=rows(recent)
    )


@router.get("/approvals/{approval_id}", response_class=HTMLResponse)
def approval_page(approval_id: str, request: Request, caller: OptionalCallerDep) -> HTMLResponse:
    """Show one record: the incident, the diagnosis, the votes, and the form for an allowed approver."""
    if caller is None:
        return _login_page(request)
    prefix = _prefix(request)
    store = get_store()
    try:
        record = store.approvals.get(approval_id)
    except NotFound:
        return rendering.message_page(
            title="No such approval request",
            text=f"There is no approval request {approval_id}.",
            status_code=status.HTTP_404_NOT_FOUND,
            list_url=f"{prefix}/approvals",
        )
    if record.dag_id not in readable_dag_ids(caller, {record.dag_id}):
        return rendering.message_page(
            title="Not allowed",
            text=f"You may not see runs of DAG {record.dag_id}.",
            status_code=status.HTTP_403_FORBIDDEN,
            list_url=f"{prefix}/approvals",
        )
    return _record_page(record, _incident(store, record.incident_id, {}), caller, prefix)


def _record_page(record, incident, caller: Caller, prefix: str) -> HTMLResponse:
    return rendering.render(
        "approval.html",
        **rendering.record_context(record, incident),
        username=caller.username,
        cannot_vote=rendering.why_caller_cannot_vote(record, caller),
        api_url=f"{prefix}/api/approvals/{record.id}/decisions",
        list_url=f"{prefix}/approvals",
        run_url=run_url_for(record.dag_id, record.run_id),
    )
