"""Slack Block Kit messages for an incident: page, ticket notice, approval request, outcomes, report.

Text that comes from an alert or an analysis (device, error, summary, diagnosis, reasons, reports)
is redacted with include.redaction before it is escaped; every other string is escaped too, so a
mention (``<!channel>``, ``<@U…>``) or a link can only come from this module's own templates.
"""

from __future__ import annotations

import re
from typing import Any

from include.models import Alert, Analysis
from include.redaction import redact_value
from include.vocabulary import ApprovalState, IncidentState, Severity

# Slack's emoji for our severities and decided approvals.
SEVERITY_EMOJI = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
DECIDED_EMOJI: dict[str, str] = {
    ApprovalState.APPROVED: ":white_check_mark:",
    ApprovalState.REJECTED: ":x:",
    ApprovalState.EXPIRED: ":hourglass:",
    ApprovalState.CANCELLED: ":heavy_minus_sign:",
}
# Slack rejects section texts over 3000 characters.
_MAX_TEXT = 2900
# A Slack user id, as Slack writes them: the only identity we turn into a mention.
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean(text: str) -> str:
    """Return alert-derived text redacted, then escaped for mrkdwn."""
    return mrkdwn_escape(redact_value(text))


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_MAX_TEXT]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:_MAX_TEXT]}]}


def incident_header(alert: Alert, analysis: Analysis) -> str:
    """Return the one-line fallback text for an incident (redacted, not escaped)."""
    return redact_value(f"{analysis.severity.upper()} {alert.error} on {alert.device_id}")


def page_blocks(
    alert: Alert,
    analysis: Analysis,
    *,
    run_url: str | None = None,
    incident_id: str | None = None,
    state: IncidentState = IncidentState.OPEN,
    acknowledged_by: str | None = None,
    escalated_by: str | None = None,
    resolved_by: str | None = None,
) -> list[dict[str, Any]]:
    """Render the on-call page for a critical incident, with the buttons its state still allows.

    With an `incident_id`, the page carries Acknowledge, Escalate and Resolve (action ids of the same
    names, value the incident id); once acknowledged it says by whom and drops Acknowledge, once
    escalated it drops Escalate, and once resolved it says by whom and has no buttons left.
    """
    emoji = SEVERITY_EMOJI.get(analysis.severity, "")
    blocks = [
        _section(f"{emoji} *{mrkdwn_escape(incident_header(alert, analysis))}*\n{_clean(analysis.summary)}"),
        _section(
            f"*Diagnosis* ({analysis.analyzer}, confidence {analysis.confidence:.0%})\n"
            f"{_clean(analysis.diagnosis)}"
        ),
        _context(
            f"Recommended action: `{mrkdwn_escape(analysis.recommended_action)}` · runbook "
            f"`{mrkdwn_escape(analysis.runbook)}` · source {mrkdwn_escape(alert.source)}"
        ),
    ]
    status = _page_status(state, acknowledged_by, escalated_by, resolved_by)
    if status:
        blocks.append(_context(status))
    if run_url:
        blocks.append(_context(f"<{run_url}|Open the DAG run in Airflow>"))
    if incident_id and state != IncidentState.RESOLVED:
        buttons = [
            _button("acknowledge", "Acknowledge", incident_id, style="primary")
            if state == IncidentState.OPEN
            else None,
            _button("escalate", "Escalate", incident_id) if not escalated_by else None,
            _button("resolve", "Resolve", incident_id, style="danger"),
        ]
        blocks.append(
            {"type": "actions", "block_id": f"incident:{incident_id}", "elements": [b for b in buttons if b]}
        )
    return blocks


def _page_status(
    state: str, acknowledged_by: str | None, escalated_by: str | None, resolved_by: str | None
) -> str:
    parts = []
    if acknowledged_by:
        parts.append(f":eyes: Acknowledged by {_mention(acknowledged_by)}")
    if escalated_by:
        parts.append(f":mega: Escalated by {_mention(escalated_by)}")
    if state == IncidentState.RESOLVED:
        parts.append(f":white_check_mark: Resolved by {_mention(resolved_by) if resolved_by else 'the run'}")
    return " · ".join(parts)


def _button(action_id: str, label: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": label},
    }
    if style:
        button["style"] = style
    return button


def ticket_blocks(alert: Alert, analysis: Analysis, *, ticket_id: str) -> list[dict[str, Any]]:
    """Render the notice that a ticket was opened for a warning."""
    return [
        _section(
            f"{SEVERITY_EMOJI[Severity.WARNING]} *{mrkdwn_escape(incident_header(alert, analysis))}*\n"
            f"{_clean(analysis.summary)}"
        ),
        _context(
            f"Ticket `{mrkdwn_escape(ticket_id)}` opened · suggested action "
            f"`{mrkdwn_escape(analysis.recommended_action)}`"
        ),
    ]


def approval_blocks(
    *,
    approval_id: str,
    alert: Alert,
    analysis: Analysis,
    risk: str,
    reasons: list[str],
    quorum: int,
    expires_at: str,
    record_url: str,
) -> list[dict[str, Any]]:
    """Render the approval request with Approve and Reject buttons (action ids `approve` / `reject`)."""
    needs = "one approval" if quorum == 1 else f"{quorum} approvals from different people"
    return [
        _section(
            f":raised_hand: *Approval needed: `{mrkdwn_escape(analysis.recommended_action)}` on "
            f"{_clean(alert.device_id)}*"
            f"\n{_clean(analysis.summary)}"
        ),
        _context(
            f"Risk {mrkdwn_escape(risk)} · needs {needs} · why: {_clean('; '.join(reasons))}"
            f" · expires {mrkdwn_escape(expires_at)}"
        ),
        {
            "type": "actions",
            "block_id": f"approval:{approval_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "value": approval_id,
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Approve"},
                },
                {
                    "type": "button",
                    "action_id": "reject",
                    "value": approval_id,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Reject"},
                },
                {
                    "type": "button",
                    "action_id": "open_record",
                    "url": record_url,
                    "text": {"type": "plain_text", "text": "Open record"},
                },
            ],
        },
    ]


def decided_blocks(
    *, action: str, device_id: str, state: str, deciders: list[str], when: str, record_url: str
) -> list[dict[str, Any]]:
    """Render the approval message once decided: the outcome instead of the buttons."""
    who = ", ".join(_mention(d) for d in deciders) or "nobody (deadline passed)"
    icon = DECIDED_EMOJI.get(state, "")
    return [
        _section(f"{icon} *`{mrkdwn_escape(action)}` on {_clean(device_id)}: {mrkdwn_escape(state)}*"),
        _context(f"By {who} at {mrkdwn_escape(when)} · <{record_url}|approval record>"),
    ]


def escalation_blocks(*, by: str, device_id: str, error: str) -> list[dict[str, Any]]:
    """Render the thread message of an escalation by hand, mentioning who escalated."""
    return [
        _section(
            f":mega: *Escalated to the secondary on-call* by {_mention(by)}\n"
            f"{_clean(error)} on {_clean(device_id)} needs the secondary on-call now."
        )
    ]


def text_blocks(title: str, body: str) -> list[dict[str, Any]]:
    """Render a plain titled message (notices, escalations, reports), both parts redacted."""
    return [_section(f"*{_clean(title)}*\n{_clean(body)}")]


def _mention(identity: str) -> str:
    user = identity.removeprefix("slack:")
    if identity.startswith("slack:") and _SLACK_USER_ID.match(user):
        return f"<@{user}>"
    return mrkdwn_escape(identity)
