"""Slack Block Kit messages (the button contract, escaping, Slack's limits) and the final report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.models import Alert, Analysis
from include.reports import diagnostic_text, final_report_text, outcome_of
from include.runbooks import get_runbook
from include.slack_blocks import (
    approval_blocks,
    decided_blocks,
    incident_header,
    page_blocks,
    text_blocks,
    ticket_blocks,
)
from include.store import Incident, IncidentStore, TimelineEntry
from include.vocabulary import Severity
from tests.factories import incident_record

SLACK_TEXT_LIMIT = 3000
RECORD_URL = "http://localhost:8080/incident-response/approvals/apr-0123456789ab"
NASTY = "<!channel> & <https://evil.example|click me> <@U999>"


def _alert(**overrides) -> Alert:
    return Alert.model_validate({"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", **overrides})


def _analysis(**overrides) -> Analysis:
    return Analysis.model_validate(
        {
            "severity": "critical",
            "summary": "PRESSURE_SPIKE_DETECTED on pump PUMP-07B at Plant North",
            "diagnosis": "Pressure spike: pressure_bar 9.4 > 8.",
            "recommended_action": "isolate_pump",
            "confidence": 0.9,
            "analyzer": "rules",
            "runbook": "pressure_spike",
            **overrides,
        }
    )


def _approval_blocks(alert: Alert | None = None, analysis: Analysis | None = None, **overrides) -> list[dict]:
    args: dict[str, Any] = {
        "approval_id": "apr-0123456789ab",
        "alert": alert or _alert(),
        "analysis": analysis or _analysis(),
        "risk": "high",
        "reasons": ["action isolate_pump is high risk"],
        "quorum": 1,
        "expires_at": "2024-05-01 10:30 UTC",
        "record_url": RECORD_URL,
        **overrides,
    }
    return approval_blocks(**args)


def _texts(blocks: list[dict]) -> Iterator[str]:
    """Yield every mrkdwn / plain text in the blocks."""
    for block in blocks:
        if "text" in block:
            yield block["text"]["text"]
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                yield element["text"]
            elif "text" in element:
                yield element["text"]["text"]


def _all_text(blocks: list[dict]) -> str:
    return "\n".join(_texts(blocks))


def _buttons(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"]


# -- approval request -----------------------------------------------------------------------------


def test_approval_buttons_carry_the_contract() -> None:
    blocks = _approval_blocks()
    buttons = {b["action_id"]: b for b in _buttons(blocks)}
    assert {"approve", "reject"} <= set(buttons)
    for action_id in ("approve", "reject"):
        assert buttons[action_id]["value"] == "apr-0123456789ab"
        assert "url" not in buttons[action_id]  # a url would make Slack open a link instead of posting to us
    assert buttons["approve"]["text"]["text"] == "Approve"
    assert buttons["reject"]["text"]["text"] == "Reject"
    assert buttons["approve"]["style"] == "primary" and buttons["reject"]["style"] == "danger"


def test_approval_message_links_to_the_record_page() -> None:
    links = [b for b in _buttons(_approval_blocks()) if "url" in b]
    assert [link["url"] for link in links] == [RECORD_URL]
    assert links[0]["action_id"] not in ("approve", "reject")


def test_approval_message_says_what_why_and_how_many() -> None:
    text = _all_text(_approval_blocks(quorum=2))
    assert "isolate_pump" in text and "PUMP-07B" in text
    assert "action isolate_pump is high risk" in text
    assert "2 approvals from different people" in text
    assert "2024-05-01 10:30 UTC" in text
    assert "one approval" in _all_text(_approval_blocks(quorum=1))


def test_approval_block_ids_are_unique_per_record() -> None:
    a = [b.get("block_id") for b in _approval_blocks(approval_id="apr-a") if b.get("block_id")]
    b = [b.get("block_id") for b in _approval_blocks(approval_id="apr-b") if b.get("block_id")]
    assert a and b and set(a).isdisjoint(b)


def test_user_text_is_escaped_in_the_approval_request() -> None:
    blocks = _approval_blocks(
        alert=_alert(device_id="PUMP<&>", message=NASTY),
        analysis=_analysis(summary=f"Summary: {NASTY}"),
        reasons=[f"reason {NASTY}"],
    )
    text = _all_text(blocks)
    assert "<!channel>" not in text and "<https://evil" not in text and "<@U999>" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click me&gt;" in text
    assert "PUMP&lt;&amp;&gt;" in text


@pytest.mark.parametrize(
    "render",
    [
        lambda a, n: page_blocks(a, n, run_url="http://localhost:8080/dags/incident_response/runs/r1"),
        lambda a, n: ticket_blocks(a, n, ticket_id="TCK-<1>"),
        lambda a, n: _approval_blocks(alert=a, analysis=n),
        lambda a, n: text_blocks(f"Title {NASTY}", n.summary),
    ],
    ids=["page", "ticket", "approval", "text"],
)
def test_every_message_escapes_what_users_wrote(render) -> None:
    alert = _alert(device_id="PUMP<7>", message=NASTY)
    analysis = _analysis(summary=f"S {NASTY}", diagnosis=f"D {NASTY}")
    text = _all_text(render(alert, analysis))
    assert "<!channel>" not in text
    assert "<https://evil" not in text
    assert "<@U999>" not in text
    assert "&lt;!channel&gt;" in text


def test_page_keeps_its_own_link_to_the_run() -> None:
    url = "http://localhost:8080/dags/incident_response/runs/r1"
    text = _all_text(page_blocks(_alert(), _analysis(), run_url=url))
    assert f"<{url}|" in text


@pytest.mark.parametrize(
    "render",
    [
        lambda a, n: page_blocks(a, n),
        lambda a, n: ticket_blocks(a, n, ticket_id="T-1"),
        lambda a, n: _approval_blocks(alert=a, analysis=n, reasons=["&" * 4000]),
        lambda a, n: text_blocks("&" * 5000, "<" * 20000),
    ],
    ids=["page", "ticket", "approval", "text"],
)
def test_texts_stay_under_slacks_limit_for_huge_messages(render) -> None:
    # Every & grows five-fold when escaped: the limit must hold after escaping.
    alert = _alert(device_id="D" * 128, message="&" * 4000)
    analysis = _analysis(summary="&" * 2000, diagnosis="<" * 4000)
    texts = list(_texts(render(alert, analysis)))
    assert texts
    assert all(len(t) < SLACK_TEXT_LIMIT for t in texts), [len(t) for t in texts]


# -- decided message ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["approved", "rejected"])
def test_decided_message_shows_outcome_and_who_and_no_buttons(state: str) -> None:
    blocks = decided_blocks(
        action="isolate_pump",
        device_id="PUMP-07B",
        state=state,
        deciders=["slack:U123", "alice"],
        when="2024-05-01 10:02:30 UTC",
        record_url=RECORD_URL,
    )
    text = _all_text(blocks)
    assert state in text and "isolate_pump" in text and "PUMP-07B" in text
    assert "<@U123>" in text  # a Slack user is mentioned, so Slack shows their name
    assert "alice" in text
    assert "2024-05-01 10:02:30 UTC" in text
    assert f"<{RECORD_URL}|" in text
    assert not any(b["type"] == "actions" for b in blocks)
    assert _buttons(blocks) == []


def test_expired_message_says_nobody_decided() -> None:
    text = _all_text(
        decided_blocks(
            action="isolate_pump",
            device_id="PUMP-07B",
            state="expired",
            deciders=[],
            when="",
            record_url=RECORD_URL,
        )
    )
    assert "expired" in text and "nobody" in text


def test_decided_message_escapes_names() -> None:
    text = _all_text(
        decided_blocks(
            action="isolate_pump",
            device_id="PUMP<1>",
            state="approved",
            deciders=["eve<!channel>"],
            when="now",
            record_url=RECORD_URL,
        )
    )
    assert "<!channel>" not in text and "eve&lt;!channel&gt;" in text and "PUMP&lt;1&gt;" in text


# -- reports --------------------------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def _incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "id": "inc-abc",
        "error": "PRESSURE_SPIKE_DETECTED",
        "device_id": "PUMP-07B",
        "outcome": "fixed",
        "severity": Severity.CRITICAL,
        "analysis": {
            "analyzer": "rules",
            "confidence": 0.9,
            "diagnosis": "Pressure spike: pressure_bar 9.4 > 8.",
        },
        "ticket_id": None,
        "created_at": T0,
        "resolved_at": T0 + timedelta(minutes=10),
    }
    return incident_record(**{**fields, **overrides})


def _record(state: str, votes: list[tuple[str, str, str, bool]], decided_after: timedelta | None) -> dict:
    return {
        "id": "apr-1",
        "action": "isolate_pump",
        "state": state,
        "decided_at": (T0 + decided_after).isoformat() if decided_after is not None else None,
        "votes": [
            {
                "identity": who,
                "channel": channel,
                "decision": decision,
                "accepted": accepted,
                # Votes land at the decision (a record's to_json() carries each vote's time).
                "at": (T0 + (decided_after or timedelta())).isoformat(),
            }
            for who, channel, decision, accepted in votes
        ],
    }


def test_final_report_has_decision_who_actions_and_times() -> None:
    report = final_report_text(
        # The store acknowledges an incident at the first counted vote on its approval.
        incident=_incident(acknowledged_at=T0 + timedelta(minutes=2.5)),
        timeline=[
            TimelineEntry(at=T0, kind="opened", detail={}),
            TimelineEntry(at=T0 + timedelta(minutes=10), kind="resolved", detail={}),
        ],
        actions=[
            {
                "action": "open_bypass_valve",
                "target": "PUMP-07B",
                "state": "done",
                "result": {"mode": "simulated"},
            },
            {"action": "isolate_pump", "target": "PUMP-07B", "state": "done", "result": {"mode": "live"}},
        ],
        approvals=[
            _record(
                "approved",
                [
                    ("slack:U123", "slack", "approve", True),
                    ("mallory", "web", "approve", False),  # refused attempts are not "who decided"
                    ("alice", "web", "approve", True),
                ],
                timedelta(minutes=2, seconds=30),
            )
        ],
    )
    assert "inc-abc" in report and "PRESSURE_SPIKE_DETECTED" in report and "PUMP-07B" in report
    assert "fixed" in report and "critical" in report and "90%" in report
    assert (
        "Approval apr-1 for isolate_pump: approved by slack:U123 (slack, approve), alice (web, approve)"
        in report
    )
    assert "mallory" not in report
    assert "Action open_bypass_valve on PUMP-07B: done (simulated)" in report
    assert "Action isolate_pump on PUMP-07B: done (live)" in report
    assert "Time to acknowledge: 2.5 min" in report
    assert "time to resolve: 10.0 min" in report
    assert "10:00:00 opened" in report and "10:10:00 resolved" in report


def test_final_report_for_a_rejection_in_seconds() -> None:
    report = final_report_text(
        incident=_incident(
            outcome="escalated_rejected",
            acknowledged_at=T0 + timedelta(seconds=42),
            resolved_at=T0 + timedelta(seconds=50),
            ticket_id="TCK-9",
        ),
        timeline=[],
        actions=[],
        approvals=[_record("rejected", [("bob", "api", "reject", True)], timedelta(seconds=42))],
    )
    assert "escalated_rejected" in report
    assert "rejected by bob (api, reject)" in report
    assert "Ticket: TCK-9" in report
    assert "Time to acknowledge: 42 s" in report and "time to resolve: 50 s" in report


def test_final_report_of_an_open_incident_without_approval() -> None:
    report = final_report_text(
        incident=_incident(outcome=None, resolved_at=None, analysis=None, severity=None),
        timeline=[],
        actions=[],
        approvals=[],
    )
    assert "- open" in report
    assert "Time to acknowledge: n/a; time to resolve: n/a" in report


def test_an_expired_approval_is_not_an_acknowledgement() -> None:
    report = final_report_text(
        incident=_incident(outcome="escalated_expired"),
        timeline=[],
        actions=[],
        approvals=[_record("expired", [], timedelta(minutes=30))],
    )
    assert "Time to acknowledge: n/a" in report


def test_final_report_from_a_real_store(tmp_path: Path) -> None:
    # The report reads exactly what the store returns (aware datetimes, to_json records).
    store = IncidentStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        alert = _alert()
        incident_id = store.incidents.open(
            dag_id="incident_response", run_id="r1", incident_key=alert.incident_key, alert=alert.to_xcom()
        )
        store.incidents.update(incident_id, severity="critical", analysis=_analysis().to_xcom())
        record = store.approvals.create(
            incident_id=incident_id,
            dag_id="incident_response",
            run_id="r1",
            action="isolate_pump",
            risk="high",
            reasons=["risky"],
            quorum=1,
            approvers=["slack:U7"],
            deadline=timedelta(minutes=30),
        )
        store.approvals.cast_vote(record.id, identity="slack:U7", channel="slack", decision="approve")
        store.actions.begin(
            key="k", incident_id=incident_id, action="isolate_pump", target="PUMP-07B", dry_run=True
        )
        store.actions.finish("k", state="done", result={"mode": "dry_run"})
        store.incidents.resolve(incident_id, outcome="fixed")
        report = final_report_text(
            incident=store.incidents.get(incident_id),
            timeline=store.incidents.timeline(incident_id),
            actions=store.actions.for_incident(incident_id),
            approvals=[a.to_json() for a in store.approvals.find(run_id="r1")],
        )
    finally:
        store.engine.dispose()
    assert "approved by slack:U7 (slack, approve)" in report
    assert "Action isolate_pump on PUMP-07B: done (dry_run)" in report
    assert "Time to acknowledge: " in report and "Time to acknowledge: n/a" not in report
    assert "time to resolve: n/a" not in report
    kinds = [
        line.split()[-1] for line in report.split("Timeline:\n")[1].splitlines() if line.startswith("  ")
    ]
    assert kinds == [
        "opened",
        "approval_requested",
        "vote",
        "acknowledged",  # the vote answered the incident
        "approval_approved",
        "action_done",
        "resolved",
    ]


def test_diagnostic_text_names_the_next_step() -> None:
    book = get_runbook("sensor_fault")
    analysis = _analysis(
        severity="warning", recommended_action="recalibrate_sensor", runbook="sensor_fault", confidence=0.75
    )
    text = diagnostic_text(_alert(error="SENSOR_FAULT"), analysis, book)
    assert "recalibrate_sensor (low risk)" in text
    assert "75%" in text
    assert book.title in text


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"severity": "critical", "fixed": True, "escalated": False, "approval_state": "approved"}, "fixed"),
        (
            {"severity": "critical", "fixed": False, "escalated": True, "approval_state": "rejected"},
            "escalated_rejected",
        ),
        (
            {"severity": "critical", "fixed": False, "escalated": True, "approval_state": "expired"},
            "escalated_expired",
        ),
        (
            {"severity": "critical", "fixed": False, "escalated": False, "approval_state": "cancelled"},
            "cancelled",
        ),
        ({"severity": "critical", "fixed": False, "escalated": False, "approval_state": None}, "contained"),
        ({"severity": "warning", "fixed": False, "escalated": False, "approval_state": None}, "ticketed"),
        ({"severity": "info", "fixed": False, "escalated": False, "approval_state": None}, "logged"),
    ],
)
def test_outcome_of(kwargs: dict, expected: str) -> None:
    assert outcome_of(**kwargs) == expected


# -- redaction of what leaves ---------------------------------------------------------------------

LEAKY_ERROR = "AUTH_FAILED password=hunter2"
LEAKY_SUMMARY = "Scraper failed with Authorization: Basic c2NyYXBlcjpzM2NyM3Q= on redis://:pw-9@cache:6379"
LEAKY_DIAGNOSIS = 'The collector logs {"api_key": "k-93f1c0a2d4"} and token xoxb-1234567890-abcdefghijkl.'
SECRETS = ("hunter2", "c2NyYXBlcjpzM2NyM3Q=", "pw-9", "k-93f1c0a2d4", "xoxb-1234567890-abcdefghijkl")


@pytest.mark.parametrize(
    "render",
    [
        lambda a, n: page_blocks(a, n),
        lambda a, n: ticket_blocks(a, n, ticket_id="T-1"),
        lambda a, n: _approval_blocks(alert=a, analysis=n, reasons=[f"the model said {n.diagnosis}"]),
        lambda a, n: text_blocks(f"Report for {a.error}", n.diagnosis),
        lambda a, n: decided_blocks(
            action="isolate_pump",
            device_id=a.device_id,
            state="approved",
            deciders=["alice"],
            when="now",
            record_url=RECORD_URL,
        ),
    ],
    ids=["page", "ticket", "approval", "text", "decided"],
)
def test_slack_messages_carry_no_secret_from_the_alert(render) -> None:
    alert = _alert(device_id="PUMP-07B token=t0k3n-77", error=LEAKY_ERROR)
    analysis = _analysis(summary=LEAKY_SUMMARY, diagnosis=LEAKY_DIAGNOSIS)

    text = _all_text(render(alert, analysis)) + incident_header(alert, analysis)

    for secret in (*SECRETS, "t0k3n-77"):
        assert secret not in text
    assert "PUMP-07B" in text and "[REDACTED:" in text


def test_reports_carry_no_secret_from_the_alert_but_keep_who_decided() -> None:
    analysis = _analysis(summary=LEAKY_SUMMARY, diagnosis=LEAKY_DIAGNOSIS, severity="warning")
    diagnostic = diagnostic_text(_alert(error=LEAKY_ERROR), analysis, get_runbook("pressure_spike"))
    incident = _incident(
        error=LEAKY_ERROR, analysis={**(_incident().analysis or {}), "diagnosis": LEAKY_DIAGNOSIS}
    )
    final = final_report_text(
        incident=incident,
        timeline=[],
        actions=[{"action": "isolate_pump", "target": "PUMP-07B", "state": "done", "result": {}}],
        approvals=[
            _record("approved", [("alice@example.com", "web", "approve", True)], timedelta(minutes=1))
        ],
    )

    for report in (diagnostic, final):
        for secret in SECRETS:
            assert secret not in report
    assert "alice@example.com (web, approve)" in final
    # The caller's incident (the store's copy) is not touched.
    assert incident.error == LEAKY_ERROR
