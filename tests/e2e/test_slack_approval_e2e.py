"""Approve through Slack on real Airflow processes, with a loopback fake of the Slack Web API.

The fake Slack server runs in this test process on 127.0.0.1 and is started before Airflow, which
reaches it over loopback through `AIRFLOW_CONN_SLACK_API_DEFAULT` (whose extra also holds the signing
secret). Clicks are played the way Slack sends them: the button is read from the message the bot
posted, the `block_actions` payload is form-encoded and signed with the v0 scheme
(tests/fakes/slack_signing.py), and sent to the API server's `/incident-response/slack/interactions`.

One stack serves the approve, reject and immediate-decision cases; the expiry case needs a short
deadline for every runbook (`INCIDENT_APPROVAL_DEADLINE_SECONDS`), an environment setting of the
Airflow processes, so it gets its own stack through indirect parametrization (pytest runs it last
and stops the first stack before starting the second).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

from include.store import Approval, IncidentStore
from scripts.local_airflow import LocalAirflow, poll
from tests.fakes.slack_server import FakeSlackServer, RecordedRequest
from tests.fakes.slack_signing import find_button, signed_click

DAG_ID = "incident_response"
CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"}
SIGNING_SECRET = "e2e-slack-signing-secret-5f0c2a9d41b7"
APPROVER = "U0APPROVER"
APPROVERS = {"default": ["admin", f"slack:{APPROVER}"]}
EXPIRY_SECONDS = 20
SLACK_ROUTE = "/incident-response/slack/interactions"
# Slack gives up on an interaction answered later than this (and shows the clicker an error).
SLACK_ANSWER_LIMIT_SECONDS = 3.0
RUN_TIMEOUT = 180.0

T = TypeVar("T")


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlackServer]:
    """Run the fake Slack Web API for the whole module, before (and after) Airflow."""
    with FakeSlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def airflow_extra_env(slack: FakeSlackServer) -> dict[str, str]:
    """Point Airflow's Slack connection at the fake, with the signing secret, and name the approvers."""
    connection = json.loads(slack.connection_json())
    connection["extra"]["signing_secret"] = SIGNING_SECRET
    return {
        "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(connection),
        "AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps(APPROVERS),
    }


@pytest.fixture
def store(airflow_stack: LocalAirflow) -> IncidentStore:
    """Return the stack's incident store (the default SQLite file in its AIRFLOW_HOME)."""
    return IncidentStore.from_url(f"sqlite:///{airflow_stack.home / 'incident_store.db'}")


@pytest.fixture
def stack(airflow_stack: LocalAirflow) -> LocalAirflow:
    """Return the running stack with incident_response parsed and unpaused."""
    airflow_stack.wait_for_dag(DAG_ID, timeout=RUN_TIMEOUT, fail_on_import_error=True)
    airflow_stack.unpause(DAG_ID)
    return airflow_stack


# -- helpers -----------------------------------------------------------------------------------------


def task_instances(stack: LocalAirflow, run_id: str) -> dict[str, dict[str, Any]]:
    """Return the run's task instances by task id (state, try_number, start_date, ...)."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    status, body = stack.api("GET", path)
    assert status == 200, body
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def wait_deferred(stack: LocalAirflow, run_id: str) -> float:
    """Wait until wait_for_approval is deferred; return the seconds it took."""
    started = time.monotonic()

    def deferred() -> bool:
        stack.check_alive()
        states = stack.task_states(DAG_ID, run_id)
        failed = {task: state for task, state in states.items() if state in ("failed", "upstream_failed")}
        assert not failed, f"tasks failed before the approval: {failed}"
        return states.get("wait_for_approval") == "deferred"

    poll(deferred, RUN_TIMEOUT, f"wait_for_approval of {run_id} to defer")
    return time.monotonic() - started


def only_record(store: IncidentStore, run_id: str) -> Approval:
    """Return the run's one approval record."""
    [record] = store.approvals.find(run_id=run_id)
    return record


def post_slack(stack: LocalAirflow, body: bytes, headers: dict[str, str]) -> tuple[int, Any, float]:
    """POST a Slack interaction to the API server; return (status, JSON answer, seconds to answer)."""
    request = urllib.request.Request(stack.api_url + SLACK_ROUTE, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    started = time.monotonic()
    try:
        with opener.open(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    elapsed = time.monotonic() - started
    return status, json.loads(raw) if raw else None, elapsed


def updates_of(slack: FakeSlackServer, ts: str) -> list[RecordedRequest]:
    """Return the successful chat.update calls the fake received for message `ts`."""
    return [r for r in slack.calls("chat.update") if r.status == 200 and str(r.body.get("ts")) == ts]


def blocks_of(request: RecordedRequest) -> list[dict[str, Any]]:
    """Return the blocks of a recorded call (form bodies carry them as a JSON string)."""
    blocks = request.body.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def has_buttons(blocks: list[dict[str, Any]]) -> bool:
    """Say whether any block holds interactive elements."""
    return any(block.get("type") == "actions" for block in blocks)


def wall_time(request: RecordedRequest) -> float:
    """Return when the fake received a request, as Unix time (the fake records monotonic time)."""
    return time.time() - (time.monotonic() - request.time)


def assert_no_failures(stack: LocalAirflow, run_id: str) -> dict[str, dict[str, Any]]:
    """Assert that no task of the run failed or was retried; return its task instances."""
    tis = task_instances(stack, run_id)
    failed = {t: ti["state"] for t, ti in tis.items() if ti["state"] in ("failed", "upstream_failed")}
    retried = {t: ti["try_number"] for t, ti in tis.items() if (ti.get("try_number") or 0) > 1}
    assert not failed, f"failed tasks: {failed}"
    assert not retried, f"tasks that needed more than one try: {retried}"
    return tis


def finished_through(stack: LocalAirflow, run_id: str, taken: str, skipped: str) -> dict[str, dict[str, Any]]:
    """Wait for the run to succeed through `taken`, `skipped` skipped, nothing failed; return its TIs."""
    run = stack.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success"
    tis = assert_no_failures(stack, run_id)
    assert tis["wait_for_approval"]["state"] == "success"
    assert tis[taken]["state"] == "success"
    assert tis[skipped]["state"] == "skipped"
    return tis


def seconds_between(earlier: datetime | str, later: str | None) -> float:
    """Return seconds from `earlier` (datetime or ISO string) to the ISO time `later`."""
    assert later, "no timestamp"
    start = datetime.fromisoformat(earlier) if isinstance(earlier, str) else earlier
    return (datetime.fromisoformat(later) - start).total_seconds()


# -- tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("click", "state", "taken", "skipped"),
    [
        ("approve", "approved", "execute_fix", "escalate"),
        ("reject", "rejected", "escalate", "execute_fix"),
    ],
    ids=["approve", "reject"],
)
def test_slack_click_decides_the_deferred_approval(
    stack: LocalAirflow,
    store: IncidentStore,
    slack: FakeSlackServer,
    click: str,
    state: str,
    taken: str,
    skipped: str,
) -> None:
    run_id = f"e2e-slack-{click}-{uuid.uuid4().hex[:8]}"
    triggered = time.monotonic()
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    to_deferred = wait_deferred(stack, run_id)

    record = only_record(store, run_id)
    assert record.state == "pending"
    assert record.slack_channel and record.slack_ts, "the approval request was not posted to Slack"
    message = slack.message(record.slack_channel, record.slack_ts)
    assert message is not None, "the fake Slack server holds no approval message"
    # The buttons carry the contract: action ids approve/reject, value = record id, plus the record link.
    for action_id in ("approve", "reject"):
        assert find_button(message, action_id)[1]["value"] == record.id
    link = find_button(message, "open_record")[1]["url"]
    assert link.endswith(f"/incident-response/approvals/{record.id}")

    # The approver clicks in Slack; Slack posts the signed interaction to Airflow's API server.
    response_path = f"/actions/T0FAKETEAM/{uuid.uuid4().hex[:10]}/reply"
    request = signed_click(
        SIGNING_SECRET,
        message=message,
        channel_id=record.slack_channel,
        action_id=click,
        user_id=APPROVER,
        response_url=f"http://127.0.0.1:{slack.port}{response_path}",
    )
    status, answer, answered_in = post_slack(stack, request.body, request.headers)
    assert status == 200, answer
    assert answered_in < SLACK_ANSWER_LIMIT_SECONDS
    assert answer["response_type"] == "ephemeral"
    assert f"*{state}*" in answer["text"]

    decided = store.approvals.get(record.id)
    assert decided.state == state
    [vote] = decided.votes
    assert (vote.identity, vote.channel, vote.decision, vote.accepted) == (
        f"slack:{APPROVER}",
        "slack",
        click,
        True,
    )

    # The approval message is replaced by the outcome, without buttons.
    [update] = poll(lambda: updates_of(slack, record.slack_ts), 30, "chat.update of the approval message")
    assert state in update.body["text"]
    assert not has_buttons(blocks_of(update))
    assert f"<@{APPROVER}>" in json.dumps(blocks_of(update))
    shown = slack.message(record.slack_channel, record.slack_ts)
    assert not has_buttons(shown["blocks"]) and state in shown["text"]
    # The clicker's own confirmation goes back through the interaction's response_url.
    reply = poll(
        lambda: [r for r in slack.requests if r.path == response_path], 30, "the reply to response_url"
    )[0]
    assert reply.body["response_type"] == "ephemeral" and state in reply.body["text"]

    tis = finished_through(stack, run_id, taken, skipped)
    states = {task: ti["state"] for task, ti in tis.items()}
    assert states["approval_decision"] == "success"
    assert states["resolve_incident"] == "success" and states["final_report"] == "success"
    resumed = seconds_between(decided.decided_at, tis[taken]["start_date"])
    print(
        f"\n[{click}] trigger->deferred {to_deferred:.1f}s; Slack answered in {answered_in * 1000:.0f} ms; "
        f"decision->{taken} start {resumed:.1f}s; trigger->run success {time.monotonic() - triggered:.1f}s"
    )


def test_decision_right_after_the_record_is_created_is_not_lost(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer
) -> None:
    run_id = f"e2e-immediate-{uuid.uuid4().hex[:8]}"
    triggered = time.monotonic()
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)

    # Watch the store closely and vote the moment the record exists, before the sensor can start.
    record = poll(
        lambda: next(iter(store.approvals.find(run_id=run_id)), None),
        RUN_TIMEOUT,
        "the approval record",
        interval=0.02,
    )
    seen = time.monotonic()
    status, body = stack.api(
        "POST",
        f"/incident-response/api/approvals/{record.id}/decisions",
        {"decision": "approve", "comment": "approved the moment the record appeared"},
    )
    decided_in = time.monotonic() - seen
    sensor_state = task_instances(stack, run_id).get("wait_for_approval", {}).get("state")
    assert status == 200, body
    assert body["state"] == "approved"
    # What this test is about: the vote landed before wait_for_approval ran at all.
    assert sensor_state in (None, "scheduled", "queued"), f"wait_for_approval was already {sensor_state}"

    finished_through(stack, run_id, "execute_fix", "escalate")
    final = store.approvals.get(record.id)
    assert final.state == "approved" and final.deciders == ["admin"]

    # The Slack message was posted after the decision (or just before): it still ends up showing it.
    assert final.slack_channel and final.slack_ts
    [update] = poll(lambda: updates_of(slack, final.slack_ts), 30, "chat.update of the approval message")
    assert "approved" in update.body["text"] and not has_buttons(blocks_of(update))
    print(
        f"\n[immediate] record seen, voted in {decided_in * 1000:.0f} ms (message posted then: "
        f"{record.slack_ts is not None}; wait_for_approval was {sensor_state}); "
        f"trigger->run success {time.monotonic() - triggered:.1f}s"
    )


def test_decisions_while_the_triggerer_is_down_are_not_lost(
    stack: LocalAirflow, store: IncidentStore
) -> None:
    by_api, by_store = (f"e2e-triggerer-down-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("api", "store"))
    for run_id in (by_api, by_store):
        stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    for run_id in (by_api, by_store):
        wait_deferred(stack, run_id)
    api_record, store_record = only_record(store, by_api), only_record(store, by_store)

    stack.stop_component("triggerer")
    try:
        # Decided through the API server: it ends the wait itself, no triggerer needed.
        status, body = stack.api(
            "POST", f"/incident-response/api/approvals/{api_record.id}/decisions", {"decision": "approve"}
        )
        assert status == 200 and body["state"] == "approved", body
        # Decided in the store by something other than this API server (another deployment's
        # api-server, say): only the trigger can notice, once a triggerer runs again.
        store.approvals.cast_vote(
            store_record.id, identity="admin", channel="web", decision="approve", role="admin"
        )

        finished_through(stack, by_api, "execute_fix", "escalate")
        assert task_instances(stack, by_store)["wait_for_approval"]["state"] == "deferred"
    finally:
        restarted = datetime.now(UTC)
        stack.start_component("triggerer")

    # The new triggerer takes the orphaned trigger over, reads the decision, and the run goes on.
    tis = finished_through(stack, by_store, "execute_fix", "escalate")
    assert seconds_between(restarted, tis["wait_for_approval"]["end_date"]) > 0
    assert store.approvals.get(store_record.id).state == "approved"


@pytest.mark.parametrize(
    "airflow_stack",
    [{"INCIDENT_APPROVAL_DEADLINE_SECONDS": str(EXPIRY_SECONDS)}],
    indirect=True,
    ids=[f"deadline-{EXPIRY_SECONDS}s"],
)
def test_unanswered_request_reminds_at_half_time_then_expires_and_escalates(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer
) -> None:
    run_id = f"e2e-expiry-{uuid.uuid4().hex[:8]}"
    triggered = time.monotonic()
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    wait_deferred(stack, run_id)
    record = only_record(store, run_id)
    assert record.state == "pending"
    assert (record.expires_at - record.created_at).total_seconds() == pytest.approx(EXPIRY_SECONDS, abs=1)

    tis = finished_through(stack, run_id, "escalate", "execute_fix")
    expired = store.approvals.get(record.id)
    assert expired.state == "expired" and not expired.votes

    # One reminder, in the incident's thread, after half time and before the deadline.
    incident = store.incidents.get(record.incident_id)
    posted = [r for r in slack.calls("chat.postMessage") if r.status == 200]
    reminders = [r for r in posted if str(r.body.get("text", "")).startswith("Reminder:")]
    reminders = [r for r in reminders if record.id in r.body["text"]]
    assert len(reminders) == 1, [r.body.get("text") for r in reminders]
    [reminder] = reminders
    assert reminder.body.get("thread_ts") == incident.slack_ts
    sent_after = wall_time(reminder) - record.created_at.timestamp()
    assert EXPIRY_SECONDS / 2 <= sent_after < EXPIRY_SECONDS, sent_after

    # The approval message shows the expiry instead of the buttons.
    [update] = poll(lambda: updates_of(slack, record.slack_ts), 30, "chat.update of the approval message")
    assert "expired" in update.body["text"] and not has_buttons(blocks_of(update))
    print(
        f"\n[expiry] reminder {sent_after:.1f}s after the request (half time {EXPIRY_SECONDS / 2:.0f}s); "
        f"escalate started {seconds_between(record.expires_at, tis['escalate']['start_date']):.1f}s after "
        f"the deadline; trigger->run success {time.monotonic() - triggered:.1f}s"
    )
