"""An incident's Slack conversation, against a loopback server that speaks the Slack Web API."""

from __future__ import annotations

import pytest

from incident_ops import approval_lifecycle
from tests.fakes.json_service import FakeJsonService

pytestmark = pytest.mark.scenario

CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}


def _approve(store, approval_id):
    approval_lifecycle.decide(
        store, approval_id, identity="admin", channel="web", decision="approve", role="admin"
    )


def _posted(slack_server):
    return [call.body for call in slack_server.calls("chat.postMessage") if call.status == 200]


def test_one_thread_per_incident_with_buttons_and_outcome(run_incident, slack_server, slack_connection):
    slack_server.rate_limit_next(1, retry_after=1)  # the page meets a 429 first

    outcome = run_incident(CRITICAL, decide=_approve)

    assert outcome.state == "success" and not outcome.decider_errors
    # The 429 was waited out and retried: two requests, one page.
    page_attempts = [c for c in slack_server.calls("chat.postMessage") if "thread_ts" not in c.body]
    assert [c.status for c in page_attempts] == [429, 200]
    posts = _posted(slack_server)
    assert len(posts) == 4  # page, approval request, fix, final report
    page, request, fix, report = posts
    root = slack_server.messages()[0]
    assert page["channel"] == "#incidents" and "PRESSURE_SPIKE_DETECTED" in page["text"]
    assert all(p["thread_ts"] == root["ts"] for p in (request, fix, report))
    assert "Incident report" in str(report["blocks"])

    [record] = outcome.approvals()
    buttons = next(b for b in request["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b.get("value")) for b in buttons[:2]] == [
        ("approve", record.id),
        ("reject", record.id),
    ]
    assert buttons[2]["url"].endswith(f"/incident-response/approvals/{record.id}")

    # Once decided, the request is replaced by its outcome: who, and no buttons left.
    # (Two updates are fine: the vote and request_approval may both see the decision first.)
    updates = [c.body for c in slack_server.calls("chat.update")]
    assert 1 <= len(updates) <= 2 and {u["ts"] for u in updates} == {record.slack_ts}
    update = updates[-1]
    updated = slack_server.message(update["channel"], record.slack_ts)
    assert all(b["type"] != "actions" for b in updated["blocks"])
    assert "approved" in str(updated["blocks"]) and "admin" in str(updated["blocks"])

    messages = outcome.store.outbox.for_incident(outcome.incident.id)
    assert {m["state"] for m in messages} == {"sent"}
    assert outcome.incident.slack_ts == root["ts"]


def test_failed_task_alerts_the_thread_and_the_record(
    run_incident, slack_server, slack_connection, monkeypatch
):
    with FakeJsonService() as devices:
        monkeypatch.setenv("AIRFLOW_CONN_DEVICE_CONTROL_API", devices.connection_json())
        devices.answer_next(400)  # the device API refuses the containment: final, no retries

        outcome = run_incident(
            {"device_id": "COMP-03", "error": "OVERHEATING", "metrics": {"temperature_c": 97}},
            decide=_approve,
        )

    assert outcome.tasks["automated_containment"] == "failed"
    assert outcome.state == "failed"
    assert len([c for c in devices.calls if c["body"]["action"] == "reduce_load"]) == 1
    assert all(c["headers"].get("Idempotency-Key") for c in devices.calls)
    alerts = [p for p in _posted(slack_server) if "automated_containment" in p["text"]]
    assert len(alerts) == 1 and "failed" in alerts[0]["text"]
    timeline = outcome.store.incidents.timeline(outcome.incident.id)
    failures = [e.detail for e in timeline if e.kind == "task_failed"]
    assert failures == [
        {"task_id": "automated_containment", "try_number": 1, "error": "ServiceRejectedError"}
    ]
    [action] = [
        a for a in outcome.store.actions.for_incident(outcome.incident.id) if a["action"] == "reduce_load"
    ]
    assert action["state"] == "failed"
