"""`/incident` as Slack posts it, and the JSON incident API with Airflow logins."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlencode

import pytest

from tests.api.fixtures import sync_dags_to_db
from tests.api.helpers import PREFIX, bearer, make_record, signed

COMMANDS = f"{PREFIX}/slack/commands"
API = f"{PREFIX}/api/incidents"


@pytest.fixture(scope="module", autouse=True)
def dags_in_db(airflow_app):
    sync_dags_to_db()


def command(client, text: str, *, user: str = "U0ALICE", **fields):
    form = {
        "token": "legacy",
        "team_id": "T0FAKETEAM",
        "channel_id": "C0ONCALL01",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/incident",
        "text": text,
        # Slack's id of this one invocation: new for every command typed, the same in a replay.
        "trigger_id": f"{time.time_ns()}.{uuid.uuid4().int % 10**9}",
        **fields,
    }
    body, headers = signed(body=urlencode(form).encode())
    return client.post(COMMANDS, content=body, headers=headers)


def runs_of_dag() -> list:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(DagRun).where(DagRun.dag_id == "incident_response")))


# -- /incident ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "help"])
def test_help_shows_the_usage(client, text):
    response = command(client, text)
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"
    assert "/incident declare <device_id> <error>" in response.json()["text"]


@pytest.mark.parametrize(
    "text", ["declare", "declare PUMP-07B", "list everything", "restart PUMP-07B", "help me"]
)
def test_bad_usage_gets_the_usage_and_starts_nothing(client, store, text):
    before = len(runs_of_dag())
    response = command(client, text)
    assert response.status_code == 200
    assert response.json()["text"].startswith("Usage:")
    assert len(runs_of_dag()) == before


def test_declare_starts_a_run_and_answers_with_the_incident(client, store):
    started = time.monotonic()
    response = command(client, "declare PUMP-07B PRESSURE_SPIKE_DETECTED outlet pressure 9.4 bar")
    assert time.monotonic() - started < 3
    text = response.json()["text"]
    assert response.status_code == 200 and "declared" in text
    [run] = [r for r in runs_of_dag() if r.run_id.startswith("alert__slack__") and r.run_id in text]
    # The conf the intake gives every source's run: the alert, flat, as the DAG's Params read it.
    assert {k: run.conf[k] for k in ("device_id", "error", "source", "message")} == {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "source": "slack",
        "message": "outlet pressure 9.4 bar",
    }
    assert run.triggering_user_name == "slack:U0ALICE"
    from include.store import incident_id_for

    incident_id = incident_id_for("incident_response", run.run_id)
    assert f"`{incident_id}`" in text
    incident = store.incidents.get(incident_id)
    assert incident.source == "slack"
    [declared] = [e for e in store.incidents.timeline(incident_id) if e.kind == "declared"]
    assert declared.detail["by"] == "slack:U0ALICE"


def test_a_replayed_declare_finds_the_incident_it_declared(client, store):
    # The same signed request again (a replay within the signature's window, or Slack's retry): one
    # run, one incident, and the answer names it.
    before = len(runs_of_dag())
    first = command(client, "declare COMP-77 OVERHEATING", trigger_id="555.666.abc")
    again = command(client, "declare COMP-77 OVERHEATING", trigger_id="555.666.abc")
    assert "declared" in first.json()["text"] and "already open" in again.json()["text"]
    assert len(runs_of_dag()) == before + 1
    incident_ids = [w for w in first.json()["text"].split("`") if w.startswith("inc-")]
    assert incident_ids and f"`{incident_ids[0]}`" in again.json()["text"]
    [run] = [r for r in runs_of_dag() if r.conf.get("device_id") == "COMP-77"]
    declared = [e for e in store.incidents.timeline(incident_ids[0]) if e.kind == "declared"]
    assert len(declared) == 1 and run.run_id in first.json()["text"]


def test_declaring_an_open_incident_again_joins_it(client, store):
    # Another person (another invocation) declares what is already open: the intake's rule holds.
    command(client, "declare MOTOR-88 SENSOR_FAULT")
    before = len(runs_of_dag())
    text = command(client, "declare MOTOR-88 SENSOR_FAULT", user="U0BOB").json()["text"]
    assert "already open" in text and len(runs_of_dag()) == before


def test_declare_goes_through_the_intakes_checks(client, store, monkeypatch):
    # A DAG the processor has not parsed yet: the intake refuses, as it does for a webhook.
    from incident_ops import alert_intake

    monkeypatch.setattr(alert_intake, "DAG_ID", "not_parsed_yet")
    before = len(runs_of_dag())
    text = command(client, "declare PUMP-31 OVERHEATING").json()["text"]
    assert text.startswith("Nothing was started:") and "not available yet" in text
    assert len(runs_of_dag()) == before


def test_a_command_from_another_workspace_is_refused(client, store, monkeypatch):
    monkeypatch.setenv("SLACK_TEAM_ID", "T0OURTEAM")
    before = len(runs_of_dag())
    response = command(client, "declare PUMP-32 OVERHEATING")  # signed, but team T0FAKETEAM
    assert response.status_code == 403 and "another Slack workspace" in response.json()["detail"]
    assert len(runs_of_dag()) == before
    ours = command(client, "declare PUMP-32 OVERHEATING", team_id="T0OURTEAM")
    assert ours.status_code == 200 and "declared" in ours.json()["text"]


def test_declare_by_someone_not_a_responder_starts_nothing(client, store):
    before = len(runs_of_dag())
    response = command(client, "declare PUMP-07B OVERHEATING", user="U0MALLORY")
    assert "You may not use `/incident declare`" in response.json()["text"]
    assert len(runs_of_dag()) == before


def test_list_shows_the_open_incidents_with_their_state(client, store):
    first = make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}")
    second = make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}", alert={"device_id": "COMP-03"})
    store.incidents.acknowledge(second.incident_id, by="alice")
    done = make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}")
    store.incidents.resolve(done.incident_id, outcome="fixed")
    text = command(client, "list").json()["text"]
    assert f"`{first.incident_id}`" in text and f"`{second.incident_id}`" in text
    assert done.incident_id not in text
    assert "acknowledged by alice" in text and "COMP-03" in text


def test_a_forged_command_is_401(client, store):
    form = urlencode({"user_id": "U0ALICE", "command": "/incident", "text": "declare PUMP-07B X"}).encode()
    body, headers = signed(body=form, secret="not-the-signing-secret")
    before = len(runs_of_dag())
    assert client.post(COMMANDS, content=body, headers=headers).status_code == 401
    assert len(runs_of_dag()) == before


@pytest.mark.parametrize(
    "form",
    [
        {"command": "/incident", "text": "list"},
        {"user_id": "not a slack id", "command": "/incident"},
        {"user_id": "U0A"},
    ],
)
def test_a_signed_but_malformed_command_is_400(client, form):
    body, headers = signed(body=urlencode(form).encode())
    assert client.post(COMMANDS, content=body, headers=headers).status_code == 400


# -- the incident API -----------------------------------------------------------------------------------


@pytest.fixture
def record(store):
    return make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}")


def test_read_an_incident_document(client, store, tokens, record):
    response = client.get(f"{API}/{record.incident_id}", headers=bearer(tokens["victor"]))
    assert response.status_code == 200
    document = response.json()
    for field in (
        "incident_id",
        "device_id",
        "error",
        "severity",
        "state",
        "opened_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
        "time_to_acknowledge_seconds",
        "time_to_resolve_seconds",
        "dag_run_id",
        "approvals",
        "actions",
        "timeline",
    ):
        assert field in document
    assert document["dag_run_id"] == record.run_id and document["state"] == "open"
    assert [a["id"] for a in document["approvals"]] == [record.id]
    assert document["timeline"][0]["kind"] == "opened"


def test_list_incidents_by_state(client, store, tokens, record):
    other = make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}")
    store.incidents.acknowledge(other.incident_id, by="bob")
    headers = bearer(tokens["alice"])
    open_ids = [
        d["incident_id"] for d in client.get(f"{API}?state=open", headers=headers).json()["incidents"]
    ]
    acked = client.get(f"{API}?state=acknowledged", headers=headers).json()
    assert record.incident_id in open_ids and other.incident_id not in open_ids
    assert [d["incident_id"] for d in acked["incidents"]] == [other.incident_id]
    assert client.get(f"{API}?state=closed", headers=headers).status_code == 422


def test_the_api_needs_a_login(client, record):
    assert client.get(API).status_code == 401
    assert client.get(f"{API}/{record.incident_id}").status_code == 401
    assert client.post(f"{API}/{record.incident_id}/acknowledge").status_code == 401


def test_acknowledge_escalate_resolve_through_the_api(client, store, tokens, record):
    headers = bearer(tokens["alice"])
    acked = client.post(f"{API}/{record.incident_id}/acknowledge", headers=headers)
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged" and acked.json()["acknowledged_by"] == "alice"
    again = client.post(f"{API}/{record.incident_id}/acknowledge", headers=bearer(tokens["bob"]))
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    escalated = client.post(f"{API}/{record.incident_id}/escalate", headers=headers)
    assert escalated.status_code == 200
    assert any(e["kind"] == "escalated" and e["actor"] == "alice" for e in escalated.json()["timeline"])
    assert escalated.json()["escalated_by"] == "alice" and escalated.json()["escalated_at"]
    resolved = client.post(f"{API}/{record.incident_id}/resolve", headers=bearer(tokens["bob"]))
    assert resolved.status_code == 200
    document = resolved.json()
    assert document["state"] == "resolved" and document["resolved_by"] == "bob"
    assert document["time_to_resolve_seconds"] >= document["time_to_acknowledge_seconds"]
    assert [a["state"] for a in document["approvals"]] == ["cancelled"]
    assert client.post(f"{API}/{record.incident_id}/resolve", headers=headers).status_code == 409


@pytest.mark.parametrize("user", ["carol", "victor"])
def test_someone_not_a_responder_is_403_and_recorded(client, store, tokens, record, user):
    response = client.post(f"{API}/{record.incident_id}/resolve", headers=bearer(tokens[user]))
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert store.incidents.get(record.incident_id).state == "open"
    refused = [e for e in store.incidents.timeline(record.incident_id) if e.kind == "action_refused"]
    assert [(e.detail["by"], e.detail["channel"]) for e in refused] == [(user, "api")]


def test_unknown_and_malformed_incidents(client, tokens):
    headers = bearer(tokens["alice"])
    assert client.get(f"{API}/inc-000000000000", headers=headers).status_code == 404
    assert client.post(f"{API}/inc-000000000000/resolve", headers=headers).status_code == 404
    assert client.get(f"{API}/not-an-id", headers=headers).status_code == 422
    assert client.post(f"{API}/inc-000000000000/reopen", headers=headers).status_code == 422


def test_a_cross_site_browser_write_is_refused(client, store, tokens, record):
    client.cookies.set("_token", tokens["alice"])
    try:
        response = client.post(
            f"{API}/{record.incident_id}/resolve",
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
    finally:
        client.cookies.clear()
    assert response.status_code == 403
    assert store.incidents.get(record.incident_id).state == "open"


def test_a_malformed_responders_variable_is_503_and_changes_nothing(
    client, store, tokens, record, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_RESPONDERS", '{"not": "a list"}')
    response = client.post(f"{API}/{record.incident_id}/acknowledge", headers=bearer(tokens["alice"]))
    assert response.status_code == 503 and "incident_responders" in response.json()["detail"]
    assert store.incidents.get(record.incident_id).state == "open"
