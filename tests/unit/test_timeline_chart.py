"""The timeline chart's geometry, the daily chart, and the postmortem draft, from an incident document."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from include.daily_chart import daily_chart
from include.incident_stats import DayCount
from include.postmortem import md, postmortem_markdown
from include.timeline_chart import AI, APPROVAL, LANES, RESOLUTION, RESPONDERS, layout, timeline_points

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _document(**overrides):
    document = {
        "incident_id": "inc-0123456789ab",
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "source": "grafana",
        "severity": "critical",
        "state": "resolved",
        "outcome": "fixed",
        "started_at": _at(-60),
        "opened_at": _at(0),
        "acknowledged_at": _at(120),
        "acknowledged_by": "alice",
        "resolved_at": _at(600),
        "resolved_by": None,
        "time_to_acknowledge_seconds": 180.0,
        "time_to_resolve_seconds": 660.0,
        "ticket_id": None,
        "analysis": {
            "diagnosis": "Valve stuck.",
            "analyzer": "llm",
            "confidence": 0.9,
            "runbook": "pressure_spike",
        },
        "approvals": [
            {
                "id": "apr-1",
                "action": "restart_pump",
                "risk": "high",
                "state": "approved",
                "created_at": _at(100),
                "votes": [
                    {
                        "person": "alice",
                        "decision": "approve",
                        "channel": "slack",
                        "at": _at(130),
                        "accepted": True,
                    }
                ],
            }
        ],
        "actions": [
            {
                "action": "restart_pump",
                "target": "PUMP-07B",
                "state": "done",
                "dry_run": True,
                "finished_at": _at(300),
            }
        ],
        "timeline": [
            {"at": _at(0), "kind": "opened", "actor": None, "detail": {}},
            {
                "at": _at(40),
                "kind": "llm_call",
                "actor": None,
                "detail": {"step": "diagnose", "analyzer": "llm", "latency_ms": 30000},
            },
            {"at": _at(120), "kind": "acknowledged", "actor": "alice", "detail": {"by": "alice"}},
            {
                "at": _at(130),
                "kind": "vote",
                "actor": None,
                "detail": {"identity": "alice", "decision": "approve"},
            },
            {"at": _at(131), "kind": "approval_approved", "actor": None, "detail": {}},
            {"at": _at(300), "kind": "action_done", "actor": None, "detail": {"action": "restart_pump"}},
            {"at": _at(600), "kind": "resolved", "actor": None, "detail": {"outcome": "fixed"}},
            {"at": _at(601), "kind": "something_new", "actor": None, "detail": {}},
        ],
    }
    return {**document, **overrides}


def test_points_cover_alert_to_resolution_on_their_lanes():
    # The store hands out the outbox's times as SQLite keeps them: naive, in UTC.
    sent = (T0 + timedelta(seconds=5)).replace(tzinfo=None)
    messages = [{"key": "manual__x:page", "sent_at": sent}, {"key": "manual__x:fix"}]
    points = timeline_points(_document(), messages)

    assert [p.label for p in points][:2] == ["Alert started", "Incident opened"]
    by_label = {p.label: p for p in points}
    assert by_label["On-call paged"].lane == RESPONDERS
    assert by_label["Acknowledged by alice"].lane == RESPONDERS
    assert by_label["diagnose (model, 30 s)"].lane == AI and by_label["diagnose (model, 30 s)"].seconds == 30
    assert by_label["Approval requested: restart_pump"].lane == APPROVAL
    assert by_label["approve by alice"].lane == APPROVAL
    assert by_label["Resolved: fixed"].lane == RESOLUTION
    assert [p.at for p in points] == sorted(p.at for p in points)
    assert "something_new" not in " ".join(p.label for p in points)  # left to the table


def test_a_logged_approval_request_is_drawn_once():
    entry = {"at": _at(101), "kind": "approval_requested", "detail": {"action": "restart_pump"}}
    document = _document()
    document["timeline"].append(entry)
    labels = [p.label for p in timeline_points(document)]
    assert labels.count("Approval requested: restart_pump") == 1


def test_layout_scales_time_from_first_to_last_and_draws_ai_latency():
    points = timeline_points(_document())
    chart = layout(points, now=T0 + timedelta(days=1), resolved=True)

    xs = [m.x for m in chart.marks]
    assert min(xs) == chart.left and max(xs) == chart.right
    assert chart.start == T0 - timedelta(seconds=60) and not chart.ongoing
    (span,) = chart.spans
    ai = next(m for m in chart.marks if m.kind == "ai")
    assert span.x + span.width == pytest.approx(ai.x)
    assert span.width == pytest.approx((chart.right - chart.left) * 30 / 660, abs=0.2)  # 30 s of 660 s
    assert len(chart.lanes) == len(LANES) and chart.ticks[0].label == "11:59:00 UTC"


def test_an_open_incident_runs_to_now():
    now = T0 + timedelta(hours=1)
    document = _document(
        state="open", timeline=[{"at": _at(0), "kind": "opened", "detail": {}}], approvals=[]
    )
    chart = layout(timeline_points(document), now=now, resolved=False)
    assert chart.ongoing and chart.end == now and chart.marks[-1].x < chart.right


def test_long_labels_are_shortened_for_the_chart():
    document = _document(
        timeline=[{"at": _at(0), "kind": "acknowledged", "detail": {"by": "x" * 80}}], approvals=[]
    )
    (mark,) = [m for m in layout(timeline_points(document), now=T0, resolved=True).marks if m.kind == "ack"]
    assert len(mark.label) <= 26 and mark.title.endswith("x" * 80)


def test_daily_chart_stacks_severities_scaled_to_the_busiest_day():
    days = [
        DayCount(date(2026, 3, 1), {"critical": 2, "info": 2}),
        DayCount(date(2026, 3, 2), {"warning": 1}),
        DayCount(date(2026, 3, 3)),
    ]
    chart = daily_chart(days)
    assert chart.peak == 4 and len(chart.bars) == 3
    first = [b for b in chart.bars if b.x == chart.bars[0].x]
    assert sum(b.height for b in first) == chart.baseline - 4
    assert [label for _, label in chart.labels] == ["03-01", "03-02", "03-03"]


def test_postmortem_has_every_section_and_the_facts():
    text = postmortem_markdown(
        _document(), narrative=None, written_by="the product", run_url="http://x/run", now=T0
    )
    for heading in (
        "Summary",
        "Impact",
        "Timeline",
        "Root cause",
        "Actions taken",
        "Decisions",
        "Response times",
        "Open follow-ups",
    ):
        assert f"\n## {heading}\n" in text
    assert "- Duration: 11.0 min" in text
    assert "- Confirmed by: alice" in text
    assert "approve by alice (slack, " in text
    assert "- Time to acknowledge (MTTA): 3.0 min" in text
    assert "- [ ] `restart\\_pump` ran as a dry run" in text
    assert "Incident inc-0123456789ab: PRESSURE\\_SPIKE\\_DETECTED on PUMP-07B" in text


def test_the_model_narrative_replaces_only_the_summary():
    text = postmortem_markdown(
        _document(), narrative="It **broke**.", written_by="the model (m)", run_url="u", now=T0
    )
    summary = text.split("## Summary")[1].split("## Impact")[0]
    assert "It \\*\\*broke\\*\\*." in summary and "the model (m)" in summary
    assert "| restart\\_pump" not in summary and "## Timeline" in text


def test_markdown_text_is_inert():
    assert md("<b>|x|</b>\n# y") == "\\<b\\>\\|x\\|\\</b\\> \\# y"
