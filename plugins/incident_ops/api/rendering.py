"""HTML rendering of the approval pages: Jinja2 with autoescaping, so every stored string is escaped."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi.responses import HTMLResponse

from include.approval_policy import vote_refusal
from include.redaction import redact_value
from include.store import utcnow
from include.vocabulary import ApprovalState

if TYPE_CHECKING:
    import jinja2

    from incident_ops.api.security import Caller
    from include.store import Approval, Incident

TEMPLATES = Path(__file__).parent / "templates"
STATE_LABELS = {state: state.value.capitalize() for state in ApprovalState}


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    return env


def when(value: datetime | None) -> str:
    """Format a timestamp for people: UTC, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with a strict Content-Security-Policy (inline script and style by nonce only)."""
    nonce = secrets.token_urlsafe(16)
    html = _environment().get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": (
                f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
                # The nav link shows the page inside the Airflow UI (same origin); nobody else may frame it.
                "frame-ancestors 'self'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
        },
    )


def message_page(
    *,
    title: str,
    text: str,
    status_code: int,
    link: str | None = None,
    link_text: str | None = None,
    list_url: str | None = None,
) -> HTMLResponse:
    """Render a short page that says one thing (log in, not found, not allowed)."""
    return render(
        "message.html",
        status_code=status_code,
        title=title,
        text=text,
        link=link,
        link_text=link_text,
        list_url=list_url,
    )


def why_caller_cannot_vote(record: Approval, caller: Caller) -> str | None:
    """Return why the page shows no form to this caller, or None when it may vote."""
    if record.decided:
        return f"This request was {record.state}; it takes no more votes."
    refused = vote_refusal(
        record, identity=caller.username, channel=caller.channel, role=caller.role, now=utcnow()
    )
    if refused is None:
        return None
    if refused.expired:
        return "The deadline has passed; the request is expiring."
    return f"You cannot vote on this request: {refused.reason}."


def record_context(record: Approval, found: Incident | None) -> dict[str, Any]:
    """Return what the record page shows about the incident, its diagnosis and the votes."""
    # The store keeps the alert as sent (audit); the page shows it redacted, like everything that leaves.
    incident = redact_value(dataclasses.asdict(found)) if found is not None else None
    alert = (incident or {}).get("alert") or {}
    analysis = (incident or {}).get("analysis") or {}
    confidence = analysis.get("confidence")
    return {
        "record": record,
        "state_label": STATE_LABELS.get(record.state, record.state),
        "approvals": record.approval_count,
        "incident": incident,
        "alert": alert,
        "analysis": analysis,
        "confidence": f"{confidence:.0%}" if isinstance(confidence, int | float) else None,
        "device_id": (incident or {}).get("device_id") or alert.get("device_id"),
    }
