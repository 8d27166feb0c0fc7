"""Build the incident-response FastAPI app that the plugin mounts at /incident-response."""

from __future__ import annotations

from fastapi import FastAPI

from incident_ops.api import (
    routes_alerts,
    routes_approval_pages,
    routes_approvals,
    routes_incident_pages,
    routes_incidents,
    routes_metrics,
    routes_slack,
    routes_slack_commands,
)


def create_app() -> FastAPI:
    """Create the app: HTML pages, the JSON approvals and incidents APIs, Slack, webhooks and metrics."""
    app = FastAPI(
        title="Incident response",
        description=(
            "Approval records of the incident_response DAG. Authenticate with Airflow's own login: a JWT "
            "from `POST /auth/token` as a Bearer token, or the Airflow UI's session cookie."
        ),
        version="1",
        # Swagger UI would load scripts from a CDN; the schema itself stays available.
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(routes_approval_pages.router)
    app.include_router(routes_incident_pages.router)
    app.include_router(routes_approvals.router)
    app.include_router(routes_incidents.router)
    app.include_router(routes_slack.router)
    app.include_router(routes_slack_commands.router)
    app.include_router(routes_alerts.router)
    app.include_router(routes_metrics.router)
    return app
