"""Run a critical incident from Slack on real Airflow processes: acknowledge, escalate, resolve.

The fake Slack Web API and the fake PagerDuty Events API run in this test process on 127.0.0.1,
started before Airflow, which reaches them through `AIRFLOW_CONN_SLACK_API_DEFAULT` and
`AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT`. Each click is read from the page message as the bot posted
(and updated) it, signed as Slack signs it, and posted to the API server's interactivity endpoint.
The test prints the figures the README quotes: click → answer, click → page update, resolve → run moving.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest

from include.store import IncidentStore, incident_id_for
from scripts.local_airflow import LocalAirflow, poll
from tests.fakes.pagerduty_server import FakePagerDuty
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.slack_signing import find_button, signed_click

DAG_ID = "incident_response"
# require_approval: the run waits for a decision, which resolving by hand must end without the fix.
CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "require_approval": True}
SIGNING_SECRET = "e2e-slack-signing-secret-incident-7d2e"
ONCALL, SECONDARY = "U0ONCALL", "U0LEAD"
SLACK_ROUTE = "/incident-response/slack/interactions"
SLACK_ANSWER_LIMIT_SECONDS = 3.0
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlackServer]:
    with FakeSlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as server:
        yield server


@pytest.fixture(scope="module")
def airflow_extra_env(slack: FakeSlackServer, pagerduty: FakePagerDuty) -> dict[str, str]:
    connection = json.loads(slack.connection_json())
    connection["extra"]["signing_secret"] = SIGNING_SECRET
    return {
        "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(connection),
        "AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT": pagerduty.connection_json(),
        "AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps({"default": ["admin"]}),
        "AIRFLOW_VAR_INCIDENT_RESPONDERS": json.dumps([f"slack:{ONCALL}", f"slack:{SECONDARY}"]),
    }


@pytest.fixture
def stack(airflow_stack: LocalAirflow) -> LocalAirflow:
    airflow_stack.wait_for_dag(DAG_ID, timeout=RUN_TIMEOUT, fail_on_import_error=True)
    airflow_stack.unpause(DAG_ID)
    return airflow_stack


def post_slack(stack: LocalAirflow, body: bytes, headers: dict[str, str]) -> tuple[int, Any, float]:
    request = urllib.request.Request(stack.api_url + SLACK_ROUTE, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    started = time.monotonic()
    try:
        with opener.open(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    return status, json.loads(raw) if raw else None, time.monotonic() - started


def task_instances(stack: LocalAirflow, run_id: str) -> dict[str, dict[str, Any]]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    status, body = stack.api("GET", path)
    assert status == 200, body
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def test_acknowledge_escalate_resolve_from_slack(
    stack: LocalAirflow, slack: FakeSlackServer, pagerduty: FakePagerDuty
) -> None:
    store = IncidentStore.from_url(f"sqlite:///{stack.home / 'incident_store.db'}")
    run_id = f"e2e-incident-{uuid.uuid4().hex[:8]}"
    incident_id = incident_id_for(DAG_ID, run_id)
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)

    def waiting() -> bool:
        stack.check_alive()
        states = stack.task_states(DAG_ID, run_id)
        assert not {t: s for t, s in states.items() if s in ("failed", "upstream_failed")}, states
        return states.get("wait_for_approval") == "deferred"

    poll(waiting, RUN_TIMEOUT, "wait_for_approval to defer")
    incident = store.incidents.get(incident_id)
    channel, page_ts = incident.slack_channel, incident.slack_ts
    assert pagerduty.actions_for(incident_id) == ["trigger"]

    figures: dict[str, float] = {}

    def press(action_id: str, user: str, expect: str) -> float:
        """Click `action_id` on the page as it stands; return the Unix time of the click."""
        page = slack.message(channel, page_ts)
        assert page is not None
        assert find_button(page, action_id)[1]["value"] == incident_id
        updates_before = len([r for r in slack.calls("chat.update") if str(r.body.get("ts")) == page_ts])
        request = signed_click(
            SIGNING_SECRET, message=page, channel_id=channel, action_id=action_id, user_id=user
        )
        clicked = time.monotonic()
        status, answer, answered_in = post_slack(stack, request.body, request.headers)
        assert status == 200, answer
        assert answered_in < SLACK_ANSWER_LIMIT_SECONDS
        assert answer["response_type"] == "ephemeral" and expect in answer["text"], answer
        updates = poll(
            lambda: [r for r in slack.calls("chat.update") if str(r.body.get("ts")) == page_ts][
                updates_before:
            ],
            30,
            f"the page update after {action_id}",
        )
        figures[f"{action_id}: answer"] = answered_in
        figures[f"{action_id}: page updated"] = updates[0].time - clicked
        return time.time() - (time.monotonic() - clicked)

    press("acknowledge", ONCALL, "You acknowledged")
    page = slack.message(channel, page_ts)
    assert f"Acknowledged by <@{ONCALL}>" in json.dumps(page["blocks"])
    with pytest.raises(KeyError):
        find_button(page, "acknowledge")

    press("escalate", SECONDARY, "secondary on-call is paged")
    assert any("secondary" in m["text"] for m in slack.replies(channel, page_ts))

    resolved_at = press("resolve", ONCALL, "finishes without the fix")
    page = slack.message(channel, page_ts)
    assert not any(block["type"] == "actions" for block in page["blocks"])

    run = stack.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success"
    tis = task_instances(stack, run_id)
    assert tis["execute_fix"]["state"] == "skipped" and tis["escalate"]["state"] == "skipped"
    assert tis["resolve_incident"]["state"] == "success" and tis["final_report"]["state"] == "success"
    incident = store.incidents.get(incident_id)
    assert incident.state == "resolved" and incident.resolved_by == f"slack:{ONCALL}"
    assert incident.acknowledged_by == f"slack:{ONCALL}"
    [record] = store.approvals.find(run_id=run_id)
    assert record.state == "cancelled"
    kinds = [e.kind for e in store.incidents.timeline(incident_id)]
    assert kinds.index("acknowledged") < kinds.index("escalated") < kinds.index("resolved")

    # One dedup_key: the page's trigger, the acknowledgement, the escalation's re-trigger, one resolve.
    assert pagerduty.actions_for(incident_id) == ["trigger", "acknowledge", "trigger", "resolve"]
    assert [e["payload"]["severity"] for e in pagerduty.events if e["dedup_key"] == incident_id][
        2
    ] == "critical"

    ended = datetime.fromisoformat(tis["wait_for_approval"]["end_date"]).timestamp()
    figures["resolve: wait_for_approval ended"] = ended - resolved_at
    moved = datetime.fromisoformat(tis["approval_decision"]["start_date"]).timestamp()
    figures["resolve: approval_decision started"] = moved - resolved_at
    print("\n[incident from Slack] " + "; ".join(f"{k} {v * 1000:.0f} ms" for k, v in figures.items()))
