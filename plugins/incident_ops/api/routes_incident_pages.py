"""HTML pages of incidents: the list, one incident with its timeline chart, and its postmortem draft.

Auth as for the approval pages: logged-in Airflow users who may read the DAG's runs. The pages only
show; nothing here changes an incident, so a viewer sees exactly what a responder sees.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from incident_ops.api import incident_views, rendering
from incident_ops.api.security import Caller, OptionalCallerDep, login_url, readable_dag_ids
from incident_ops.hooks.incident_store import get_store
from incident_ops.links import run_url_for
from include.incident_stats import SEVERITIES
from include.store import Incident, NotFound
from include.vocabulary import IncidentState

router = APIRouter(include_in_schema=False)
STATES = tuple(str(state) for state in IncidentState)
IncidentId = Annotated[str, Path(max_length=64)]


def _prefix(request: Request) -> str:
    # Where the API server mounted this app (with any base_url path), e.g. "/incident-response".
    return request.scope.get("root_path", "").rstrip("/")


def _login_page(request: Request) -> HTMLResponse:
    return rendering.message_page(
        title="Log in to see incidents",
        text="Incidents are shown to logged-in Airflow users only. Log in, and you will come back here.",
        status_code=status.HTTP_401_UNAUTHORIZED,
        link=login_url(request.url.path),
        link_text="Log in to Airflow",
    )


def _readable_incident(request: Request, caller: Caller, incident_id: str) -> Incident | HTMLResponse:
    """Return the incident, or the page that says why the caller cannot see it."""
    list_url = f"{_prefix(request)}/incidents"
    try:
        incident = get_store().incidents.get(incident_id)
    except NotFound:
        return rendering.message_page(
            title="No such incident",
            text=f"There is no incident {incident_id}.",
            status_code=status.HTTP_404_NOT_FOUND,
            list_url=list_url,
        )
    if incident.dag_id not in readable_dag_ids(caller, {incident.dag_id}):
        return rendering.message_page(
            title="Not allowed",
            text=f"You may not see runs of DAG {incident.dag_id}.",
            status_code=status.HTTP_403_FORBIDDEN,
            list_url=list_url,
        )
    return incident


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(
    request: Request,
    caller: OptionalCallerDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    severity: Annotated[str | None, Query(max_length=16)] = None,
) -> HTMLResponse:
    """List open and recent incidents with counts, MTTA and MTTR, and incidents per day."""
    if caller is None:
        return _login_page(request)
    prefix = _prefix(request)
    state, severity = state or None, severity or None
    if state not in (None, *STATES) or severity not in (None, *SEVERITIES):
        return rendering.message_page(
            title="Unknown filter",
            text=f"Filter by state ({', '.join(STATES)}) and severity ({', '.join(SEVERITIES)}).",
            status_code=status.HTTP_400_BAD_REQUEST,
            list_url=f"{prefix}/incidents",
        )
    store = get_store()
    dag_ids = readable_dag_ids(caller, store.stats.incident_dag_ids())
    return rendering.render(
        "incidents.html",
        **incident_views.list_context(store, dag_ids=dag_ids, state=state, severity=severity),
        username=caller.username,
        prefix=prefix,
        states=STATES,
        severities=SEVERITIES,
        state=state,
        severity=severity,
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(incident_id: IncidentId, request: Request, caller: OptionalCallerDep) -> HTMLResponse:
    """Show one incident: the timeline chart and table, diagnosis, approvals, actions and report."""
    if caller is None:
        return _login_page(request)
    incident = _readable_incident(request, caller, incident_id)
    if isinstance(incident, HTMLResponse):
        return incident
    prefix = _prefix(request)
    return rendering.render(
        "incident.html",
        **incident_views.incident_context(get_store(), incident_id),
        username=caller.username,
        prefix=prefix,
        run_url=run_url_for(incident.dag_id, incident.run_id),
        postmortem_url=f"{prefix}/incidents/{incident_id}/postmortem.md",
    )


@router.get("/incidents/{incident_id}/postmortem.md")
def postmortem(incident_id: IncidentId, request: Request, caller: OptionalCallerDep) -> Response:
    """Return the postmortem draft in Markdown, as a download (narrative by the model when configured)."""
    if caller is None:
        return _login_page(request)
    incident = _readable_incident(request, caller, incident_id)
    if isinstance(incident, HTMLResponse):
        return incident
    from incident_ops.postmortem import write_postmortem

    text = write_postmortem(get_store(), incident_id, run_url=run_url_for(incident.dag_id, incident.run_id))
    return Response(
        text,
        media_type="text/markdown; charset=utf-8",
        headers={
            # The id is ours ("inc-" and hex digits), never the caller's text.
            "Content-Disposition": f'attachment; filename="postmortem-{incident.id}.md"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
