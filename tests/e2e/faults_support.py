"""What the fault tests share: fakes in a stack, votes, and the "nothing lost or done twice" check."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from include.names import (
    APPROVERS_VARIABLE,
    DAG_ID,
    DEVICE_CONTROL_CONN_ID,
    LLM_CONN_ID,
    SLACK_CONN_ID,
    STORE_CONN_ID,
)
from include.store import IncidentStore, incident_id_for
from scripts.local_airflow import TERMINAL_RUN_STATES, LocalAirflow, poll
from tests.e2e.test_slack_approval_e2e import task_instances
from tests.fakes.device_api import FakeDeviceApi
from tests.fakes.llm_server import FakeLlmServer
from tests.fakes.slack_server import FakeSlackServer, metadata_key

T = TypeVar("T")

CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}
APPROVERS = {"default": ["admin"]}
RUN_TIMEOUT = 300.0
# Slack answers later than this are timeouts for the product's Slack client.
SLACK_TIMEOUT = 3
DEVICE_TIMEOUT = 2.0
BRANCH = {"approve": ("execute_fix", "escalate"), "reject": ("escalate", "execute_fix")}
# A killed scheduler's or triggerer's work is taken over once its last heartbeat is this old;
# Airflow's defaults (30 s, orphans looked for every 300 s) would only make the tests wait.
RECOVERY_ENV = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
}


def conn_env(conn_id: str) -> str:
    """Return the environment variable that defines an Airflow connection."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def stack_env(
    slack: FakeSlackServer,
    *,
    llm: FakeLlmServer | None = None,
    device: FakeDeviceApi | None = None,
    store_connection: str | None = None,
) -> dict[str, str]:
    """Return the environment pointing a stack's connections at the fakes."""
    slack_connection = json.loads(slack.connection_json())
    slack_connection["extra"]["timeout"] = SLACK_TIMEOUT
    env = {
        conn_env(SLACK_CONN_ID): json.dumps(slack_connection),
        f"AIRFLOW_VAR_{APPROVERS_VARIABLE.upper()}": json.dumps(APPROVERS),
        **RECOVERY_ENV,
    }
    if llm is not None:
        env[conn_env(LLM_CONN_ID)] = llm.connection_json()
    if device is not None:
        env[conn_env(DEVICE_CONTROL_CONN_ID)] = device.connection_json(timeout=DEVICE_TIMEOUT)
    if store_connection is not None:
        env[conn_env(STORE_CONN_ID)] = store_connection
    return env


def patiently(check: Callable[[], T | None]) -> Callable[[], T | None]:
    """Wrap a poll check so that one API call timing out (a loaded machine) only means "not yet"."""

    def checked() -> T | None:
        try:
            return check()
        except TimeoutError:
            return None

    return checked


def wait_finished(stack: LocalAirflow, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """Wait until the run has ended (whatever its state) and return it."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"

    def ended() -> dict[str, Any] | None:
        stack.check_alive()
        status, run = stack.api("GET", path)
        return run if status == 200 and run["state"] in TERMINAL_RUN_STATES else None

    return poll(patiently(ended), timeout, f"run {run_id} to end", interval=1.0)


def wait_all_deferred(stack: LocalAirflow, run_ids: list[str], timeout: float = RUN_TIMEOUT) -> None:
    """Wait until every run's wait_for_approval is deferred; fail early on a failed task."""

    def all_deferred() -> bool:
        stack.check_alive()
        for run_id in run_ids:
            states = stack.task_states(DAG_ID, run_id)
            failed = {t: s for t, s in states.items() if s in ("failed", "upstream_failed")}
            assert not failed, f"{run_id}: tasks failed before the approval: {failed}"
            if states.get("wait_for_approval") != "deferred":
                return False
        return True

    poll(patiently(all_deferred), timeout, f"wait_for_approval of {len(run_ids)} runs to defer", interval=1.0)


def decide(stack: LocalAirflow, record_id: str, decision: str) -> None:
    """Vote as admin through the product's API."""
    status, body = stack.api(
        "POST", f"/incident-response/api/approvals/{record_id}/decisions", {"decision": decision}
    )
    assert status == 200, body
    assert body["state"] == ("approved" if decision == "approve" else "rejected"), body


def finished(stack: LocalAirflow, run_id: str, decision: str) -> dict[str, dict[str, Any]]:
    """Wait for the run to succeed on the decision's branch (retries allowed, no failure); return its TIs."""
    taken, skipped = BRANCH[decision]
    run = wait_finished(stack, run_id)
    tis = task_instances(stack, run_id)
    states = {task: ti["state"] for task, ti in tis.items()}
    assert run["state"] == "success", states
    assert states[taken] == "success" and states[skipped] == "skipped", states
    assert not {t for t, s in states.items() if s in ("failed", "upstream_failed")}, states
    return tis


def finished_all(stack: LocalAirflow, decisions: dict[str, str]) -> None:
    """Wait for every run (run id -> decision) to finish on its branch."""
    deadline = time.monotonic() + RUN_TIMEOUT
    for run_id in decisions:
        wait_finished(stack, run_id, timeout=max(1.0, deadline - time.monotonic()))
    for run_id, decision in decisions.items():
        finished(stack, run_id, decision)


def assert_nothing_twice(
    store: IncidentStore,
    slack: FakeSlackServer,
    run_ids: list[str],
    device: FakeDeviceApi | None = None,
) -> None:
    """Assert every run's messages were posted exactly once and its actions applied exactly once."""
    posted = Counter(metadata_key(r.body) for r in slack.posts())
    twice = {key: n for key, n in posted.items() if n > 1}
    assert not twice, f"messages posted more than once: {twice}"
    for run_id in run_ids:
        incident_id = incident_id_for(DAG_ID, run_id)
        incident = store.incidents.get(incident_id)
        messages = store.outbox.for_incident(incident_id)
        assert messages, f"{run_id}: no messages"
        unsent = {m["key"]: m["state"] for m in messages if m["state"] != "sent"}
        assert not unsent, f"{run_id}: messages not delivered: {unsent}"
        for message in messages:
            assert posted[message["key"]] == 1, (
                f"{message['key']} reached Slack {posted[message['key']]} times"
            )
            # One thread per incident: the starter is the incident's thread, the rest reply in it.
            assert message["slack_ts"] == incident.slack_ts or message["thread_ts"] == incident.slack_ts
        actions = store.actions.for_incident(incident_id)
        assert all(a["state"] == "done" for a in actions), actions
        assert len({a["idempotency_key"] for a in actions}) == len(actions)
        if device is not None:
            for action in actions:
                applied = device.applied[action["idempotency_key"]]
                assert applied == 1, f"{action['idempotency_key']} applied {applied} times"
