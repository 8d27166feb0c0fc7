"""Faults on real Airflow processes: killed components, a flaky Slack, model, store and device API.

One stack serves the module. Slack, the model and the device-control API are loopback fakes in this
process, and the incident store is a PostgreSQL server of its own (never the machine's shared one),
so that the store's restart can be tested. Every test asserts the final states, and that no message
was posted twice and no action applied twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from include.names import DAG_ID
from include.store import IncidentStore, incident_id_for
from scripts.local_airflow import LocalAirflow, poll
from tests.e2e.faults_support import (
    CRITICAL,
    DEVICE_TIMEOUT,
    RUN_TIMEOUT,
    SLACK_TIMEOUT,
    assert_nothing_twice,
    decide,
    finished,
    finished_all,
    stack_env,
    wait_all_deferred,
)
from tests.e2e.test_slack_approval_e2e import only_record
from tests.fakes import throwaway_postgres
from tests.fakes.device_api import FakeDeviceApi
from tests.fakes.llm_server import FakeLlmServer, Reply
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.throwaway_postgres import ThrowawayPostgres

# A stack's first start plus a retried run outlasts the suite's 300 s per test on a loaded machine.
pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

# The rules are confident about this one and its fix is low risk: it needs no human unless the model fails.
SENSOR_CRITICAL = {"device_id": "SENSOR-T-88", "error": "SENSOR_FAULT", "severity": "critical"}


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlackServer]:
    with FakeSlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLlmServer]:
    with FakeLlmServer(default=Reply.valid()) as server:
        yield server


@pytest.fixture(scope="module")
def device() -> Iterator[FakeDeviceApi]:
    with FakeDeviceApi() as api:
        yield api


@pytest.fixture(scope="module")
def store_server() -> Iterator[ThrowawayPostgres]:
    if not throwaway_postgres.available():
        pytest.skip("PostgreSQL binaries (/usr/lib/postgresql/*/bin) are not installed")
    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(scope="module")
def airflow_extra_env(
    slack: FakeSlackServer, llm: FakeLlmServer, device: FakeDeviceApi, store_server: ThrowawayPostgres
) -> dict[str, str]:
    return stack_env(slack, llm=llm, device=device, store_connection=store_server.connection_json())


@pytest.fixture(scope="module")
def store(store_server: ThrowawayPostgres) -> IncidentStore:
    return IncidentStore.from_url(store_server.url)


@pytest.fixture
def stack(airflow_stack: LocalAirflow, llm: FakeLlmServer) -> LocalAirflow:
    airflow_stack.wait_for_dag(DAG_ID, timeout=RUN_TIMEOUT, fail_on_import_error=True)
    airflow_stack.unpause(DAG_ID)
    llm.default = Reply.valid()
    return airflow_stack


def new_run_id(kind: str) -> str:
    return f"fault-{kind}-{uuid.uuid4().hex[:8]}"


def test_a_device_call_that_times_out_after_acting_is_retried_under_its_key_and_applied_once(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, device: FakeDeviceApi
) -> None:
    device.stall_after_applying(1, DEVICE_TIMEOUT + 3)
    run_id = new_run_id("device")
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    wait_all_deferred(stack, [run_id])
    decide(stack, only_record(store, run_id).id, "approve")
    tis = finished(stack, run_id, "approve")

    actions = store.actions.for_incident(incident_id_for(DAG_ID, run_id))
    [stalled] = [a for a in actions if len(device.sent(a["idempotency_key"])) > 1]
    sent = device.sent(stalled["idempotency_key"])
    assert len(sent) == 2 and device.applied[stalled["idempotency_key"]] == 1
    assert sent[0]["body"] == sent[1]["body"]
    task = "automated_containment" if stalled["result"]["purpose"] == "containment" else "execute_fix"
    assert tis[task]["try_number"] == 2, "the timed-out call was not retried by the task"
    assert_nothing_twice(store, slack, [run_id], device)


def test_slack_rate_limits_errors_and_timeouts_still_deliver_each_message_once_in_its_thread(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, device: FakeDeviceApi
) -> None:
    slack.rate_limit_next(1, retry_after=1)
    slack.fail_next(2, status=500)
    # The next post lands, but its answer comes after the client gave up.
    slack.answer_late(1, SLACK_TIMEOUT + 2, method="chat.postMessage")
    run_id = new_run_id("slack")
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    wait_all_deferred(stack, [run_id])
    decide(stack, only_record(store, run_id).id, "approve")
    finished(stack, run_id, "approve")

    statuses = [r.status for r in slack.requests]
    assert 429 in statuses and statuses.count(500) >= 2
    [late] = [r for r in slack.posts() if r.late]
    assert late.late > SLACK_TIMEOUT
    assert_nothing_twice(store, slack, [run_id], device)
    # In order: the thread's replies are the incident's messages in the order they were queued.
    incident = store.incidents.get(incident_id_for(DAG_ID, run_id))
    messages = [m for m in store.outbox.for_incident(incident.id) if m["slack_ts"] != incident.slack_ts]
    replies = slack.replies(incident.slack_channel, incident.slack_ts)
    assert [r["ts"] for r in replies] == [m["slack_ts"] for m in messages]
    assert [r["ts"] for r in replies] == sorted(r["ts"] for r in replies)


def test_a_model_that_times_out_then_talks_nonsense_falls_back_to_the_rules_and_asks_a_human(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, llm: FakeLlmServer
) -> None:
    llm.enqueue(Reply.no_answer(3.0), Reply.no_answer(3.0))  # the summary's two attempts time out
    llm.default = Reply.text("As a language model I feel the sensor is sad. {not json")
    run_id = new_run_id("llm")
    stack.trigger(DAG_ID, SENSOR_CRITICAL, run_id=run_id)
    wait_all_deferred(stack, [run_id])

    record = only_record(store, run_id)
    assert record.state == "pending" and any("confidence" in reason for reason in record.reasons)
    incident = store.incidents.get(record.incident_id)
    assert incident.analysis["analyzer"] == "rules"
    calls = [e.detail for e in store.incidents.timeline(record.incident_id) if e.kind == "llm_call"]
    reasons = {c["step"]: c["fallback_reason"] for c in calls}
    assert reasons.get("summarize") and reasons.get("diagnose"), calls
    decide(stack, record.id, "approve")
    finished(stack, run_id, "approve")
    assert_nothing_twice(store, slack, [run_id])


def test_the_incident_store_restarting_mid_run_is_retried_and_keeps_the_approval(
    stack: LocalAirflow,
    store: IncidentStore,
    store_server: ThrowawayPostgres,
    slack: FakeSlackServer,
    device: FakeDeviceApi,
) -> None:
    run_id = new_run_id("store")
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    poll(
        lambda: stack.task_states(DAG_ID, run_id).get("ingest") == "success",
        RUN_TIMEOUT,
        "ingest to finish",
        interval=0.5,
    )
    store_server.restart(down_for=3)  # while the analysis and paging tasks use the store
    wait_all_deferred(stack, [run_id])
    record = only_record(store, run_id)
    store_server.restart(down_for=3)  # while the trigger watches the record
    decide(stack, record.id, "approve")
    tis = finished(stack, run_id, "approve")

    kept = store.approvals.get(record.id)
    assert (kept.id, kept.run_id, kept.state, kept.action) == (record.id, run_id, "approved", record.action)
    assert [(v.identity, v.decision, v.accepted) for v in kept.votes] == [("admin", "approve", True)]
    assert tis["wait_for_approval"]["state"] == "success"
    assert_nothing_twice(store, slack, [run_id], device)


def test_a_scheduler_killed_mid_run_leaves_nothing_undone_or_done_twice(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, device: FakeDeviceApi
) -> None:
    decisions = {new_run_id("scheduler-approve"): "approve", new_run_id("scheduler-reject"): "reject"}
    for run_id in decisions:
        stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    first = next(iter(decisions))
    poll(
        lambda: "running" in stack.task_states(DAG_ID, first).values(),
        RUN_TIMEOUT,
        "a task to run",
        interval=0.2,
    )
    stack.kill_component("scheduler")  # with the task processes it forked
    stack.start_component("scheduler")

    wait_all_deferred(stack, list(decisions))
    for run_id, decision in decisions.items():
        decide(stack, only_record(store, run_id).id, decision)
    finished_all(stack, decisions)
    assert_nothing_twice(store, slack, list(decisions), device)


def test_decisions_made_while_the_triggerer_is_killed_all_finish_on_their_branch(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, device: FakeDeviceApi
) -> None:
    decisions = {new_run_id(f"triggerer-{i}"): ("approve", "reject")[i % 2] for i in range(10)}
    for run_id in decisions:
        stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    wait_all_deferred(stack, list(decisions))
    records = {run_id: only_record(store, run_id) for run_id in decisions}

    stack.kill_component("triggerer")
    for i, (run_id, decision) in enumerate(decisions.items()):
        if i < 5:
            decide(stack, records[run_id].id, decision)  # the API server ends the wait itself
        else:
            # Decided elsewhere (another API server): only a triggerer can notice.
            store.approvals.cast_vote(
                records[run_id].id, identity="admin", channel="web", decision=decision, role="admin"
            )
    stack.start_component("triggerer")

    finished_all(stack, decisions)
    for run_id, decision in decisions.items():
        assert store.approvals.get(records[run_id].id).state == (
            "approved" if decision == "approve" else "rejected"
        )
    assert_nothing_twice(store, slack, list(decisions), device)
