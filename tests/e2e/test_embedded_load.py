"""A small team's burst on the embedded default (SQLite + LocalExecutor) while runs execute: no 5xx, no loss.

20 REST triggers of incident_response and 100 Alertmanager webhook posts (10 distinct alerts, each
re-sent) from 16 concurrent clients, each request on its own connection and never retried
(scripts/embedded_load.py), once two other runs have started their tasks. The load is sent once per
module; each test checks one promise.

    .venv/bin/pytest -m load
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from scripts import embedded_load
from scripts.embedded_load import Load
from scripts.local_airflow import LocalAirflow

pytestmark = pytest.mark.load

TOKEN = "e2e-load-token-" + uuid.uuid4().hex
TRIGGERS, POSTS, DISTINCT, CLIENTS = 20, 100, 10, 16
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def airflow_extra_env() -> dict[str, str]:
    """Give the stack a webhook token."""
    return {"INCIDENT_WEBHOOK_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def load(airflow_stack: LocalAirflow) -> Load:
    """Send the burst once two runs execute, to the stack with incident_response unpaused."""
    airflow_stack.wait_for_dag(embedded_load.DAG_ID, timeout=120)
    airflow_stack.unpause(embedded_load.DAG_ID)
    embedded_load.warm_up(airflow_stack, runs=2, timeout=120)
    jobs = embedded_load.plan(TRIGGERS, POSTS, DISTINCT, uuid.uuid4().hex[:8])
    return embedded_load.send(airflow_stack, jobs, TOKEN, CLIENTS)


def test_no_answer_is_a_5xx_or_a_reset(load: Load) -> None:
    assert len(load.answers) == TRIGGERS + POSTS
    assert [a.error for a in load.server_errors] == []
    assert [a.error for a in load.resets] == []
    assert [a.error for a in load.failures] == []


def test_every_accepted_alert_has_its_run(airflow_stack: LocalAirflow, load: Load) -> None:
    accepted = load.accepted_alerts()
    assert set(accepted) == load.alerts_sent() and len(accepted) == DISTINCT
    runs = embedded_load.run_states(airflow_stack)
    assert {fingerprint for fingerprint, run_id in accepted.items() if run_id not in runs} == set()
    # A re-sent alert finds its first run: one run per alert, not one per post.
    fingerprints = (run["conf"].get("fingerprint") for run in runs.values())
    assert Counter(f for f in fingerprints if f in accepted) == dict.fromkeys(accepted, 1)
    assert len(load.triggered_runs()) == TRIGGERS and load.triggered_runs() <= set(runs)


def test_every_component_survives(airflow_stack: LocalAirflow, load: Load) -> None:
    assert embedded_load.components_alive(airflow_stack) == dict.fromkeys(airflow_stack.components, True)
    status, health = airflow_stack.api("GET", "/api/v2/monitor/health")
    assert status == 200
    assert {health[key]["status"] for key in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "healthy"
    }


def test_the_triggered_runs_finish(airflow_stack: LocalAirflow, load: Load) -> None:
    states = embedded_load.wait_for_runs(airflow_stack, load.triggered_runs(), RUN_TIMEOUT)
    assert set(states.values()) == {"success"}, states
