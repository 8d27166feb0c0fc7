"""Triggering incident_response through Airflow's REST API (and the UI's route): bad conf is a 400.

Airflow validates values against the DAG's Params itself; unknown keys are refused by our middleware
(`incident_ops.api.conf_guard`), registered by the plugin in front of Airflow's app. Both are checked
here on Airflow's real app, plus the middleware alone on a bare ASGI app.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from include.alert_sources import CONF_KEYS
from tests.api.fixtures import sync_dags_to_db
from tests.api.helpers import bearer

DAG_ID = "incident_response"
TRIGGER = f"/api/v2/dags/{DAG_ID}/dagRuns"
ALERT = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}


@pytest.fixture(scope="module")
def parsed_dag(airflow_app):
    sync_dags_to_db()
    return DAG_ID


@pytest.fixture
def api(client, parsed_dag, monkeypatch):
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    return client


def trigger(client, conf, *, headers=None, **extra):
    body = {"logical_date": None, "conf": conf, "dag_run_id": f"guard__{uuid.uuid4().hex[:10]}", **extra}
    return client.post(TRIGGER, json=body, headers=headers or {}), body["dag_run_id"]


def exists(client, tokens, run_id: str) -> bool:
    response = client.get(f"{TRIGGER}/{run_id}", headers=bearer(tokens["admin"]))
    return response.status_code == 200


def test_the_guard_knows_exactly_the_dag_params():
    from airflow.dag_processing.dagbag import DagBag

    assert set(DagBag().dags[DAG_ID].params.keys()) == CONF_KEYS


def test_a_valid_conf_passes_through_with_its_body_intact(api, tokens):
    response, run_id = trigger(api, ALERT, headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["dag_run_id"] == run_id and run["conf"] == ALERT


def test_unknown_keys_are_400_naming_them_and_no_run_is_created(api, tokens):
    conf = {**ALERT, "devce_id": "PUMP-07B", "sevrity": "critical", "zzz": 1}
    response, run_id = trigger(api, conf, headers=bearer(tokens["admin"]))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "'devce_id' (did you mean 'device_id'?)" in detail
    assert "'sevrity' (did you mean 'severity'?)" in detail
    assert "'zzz'" in detail and "INCIDENT_ALLOW_UNKNOWN_CONF_KEYS" in detail
    assert not exists(api, tokens, run_id)


def test_the_ui_trigger_form_route_is_guarded_too(api, tokens):
    # The UI posts to the same public route with its session cookie and a Referer.
    api.cookies.set("_token", tokens["admin"])
    try:
        response, run_id = trigger(
            api, {**ALERT, "device": "x"}, headers={"Referer": "http://localhost:8080/dags/incident_response"}
        )
    finally:
        api.cookies.clear()
    assert response.status_code == 400 and "'device'" in response.json()["detail"]


def test_invalid_values_are_airflows_own_400_naming_the_param(api, tokens):
    for conf, name in [
        ({**ALERT, "severity": "urgent"}, "severity"),
        ({**ALERT, "metrics": {"pressure_bar": "high"}}, "metrics"),
        ({**ALERT, "source": "nagios"}, "source"),
        ({**ALERT, "device_id": ""}, "device_id"),
        ({**ALERT, "labels": {"site": 3}}, "labels"),
        ({**ALERT, "require_approval": "yes"}, "require_approval"),
    ]:
        response, run_id = trigger(api, conf, headers=bearer(tokens["admin"]))
        assert response.status_code == 400, (conf, response.text)
        assert name in response.json()["detail"], response.json()
        assert not exists(api, tokens, run_id)


def test_callers_who_may_not_trigger_get_airflows_answer_not_ours(api, tokens):
    conf = {**ALERT, "devce_id": "x"}
    response, _ = trigger(api, conf)
    assert response.status_code == 401
    response, _ = trigger(api, conf, headers=bearer("not-a-jwt"))
    assert response.status_code in (401, 403) and "devce_id" not in response.text
    response, _ = trigger(api, conf, headers=bearer(tokens["victor"]))  # viewer
    assert response.status_code == 403 and "devce_id" not in response.text


def test_the_switch_lets_unknown_keys_through(api, tokens, monkeypatch):
    monkeypatch.setenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", "true")
    response, run_id = trigger(api, {**ALERT, "ticket_queue": "ops"}, headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    assert response.json()["conf"]["ticket_queue"] == "ops"


def test_ingest_ignores_unknown_keys_only_when_the_switch_is_on(incident_store_url, monkeypatch):
    from types import SimpleNamespace

    from pydantic import ValidationError

    from incident_ops.tasks import ingest

    params = {**ALERT, "ticket_queue": "ops"}
    run = SimpleNamespace(dag_id=DAG_ID, run_id=f"manual__{uuid.uuid4().hex[:8]}")
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    with pytest.raises(ValidationError, match="ticket_queue"):
        ingest(params=params, dag_run=run)
    monkeypatch.setenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", "1")
    assert "ticket_queue" not in ingest(params=params, dag_run=run)


def test_other_dags_and_malformed_bodies_are_left_to_airflow(api, tokens):
    response = api.post(
        "/api/v2/dags/some_other_dag/dagRuns",
        json={"logical_date": None, "conf": {"anything": 1}},
        headers=bearer(tokens["admin"]),
    )
    assert response.status_code == 404  # Airflow's: no such DAG
    response = api.post(
        TRIGGER, content=b"{not json", headers={**bearer(tokens["admin"]), "Content-Type": "application/json"}
    )
    assert response.status_code == 422  # Airflow's request validation
    response = api.post(TRIGGER, json={"logical_date": None, "conf": "text"}, headers=bearer(tokens["admin"]))
    assert response.status_code == 422


# -- the middleware alone -------------------------------------------------------------------------


class Recorder:
    """A bare ASGI app that records the body it received."""

    def __init__(self) -> None:
        self.body = b""
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        if scope["type"] == "http" and scope.get("method") == "POST":
            while True:
                message = await receive()
                self.body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run_asgi(app, scope, messages):
    sent = []
    queue = list(messages)

    async def receive():
        if not queue:
            raise AssertionError("the app read past the end of the body")
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "headers": [], "root_path": "", **scope}, receive, send))
    return sent


def _guard(app):
    from incident_ops.api.conf_guard import ConfGuardMiddleware

    return ConfGuardMiddleware(app)


@pytest.mark.parametrize(
    "scope",
    [
        {"method": "GET", "path": TRIGGER},
        {"method": "POST", "path": "/api/v2/dags/incident_response/dagRuns/list"},
        {"method": "POST", "path": "/api/v2/dags/other/dagRuns"},
        {"method": "POST", "path": "/incident-response/api/alerts/generic"},
        {"type": "websocket", "method": "POST", "path": TRIGGER},
    ],
)
def test_other_requests_go_straight_through_without_a_body_read(scope):
    calls = []

    async def inner(scope, receive, send):
        calls.append(receive)

    async def receive():
        raise AssertionError("the guard must not read this body")

    async def send(message):
        pass

    asyncio.run(_guard(inner)({"type": "http", "headers": [], **scope}, receive, send))
    assert calls == [receive]  # the app got the server's own receive: nothing was read or wrapped


def test_a_chunked_body_is_handed_on_whole(monkeypatch):
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    inner = Recorder()
    raw = json.dumps({"logical_date": None, "conf": ALERT}).encode()
    chunks = [raw[:10], raw[10:25], raw[25:]]
    messages = [{"type": "http.request", "body": c, "more_body": i < 2} for i, c in enumerate(chunks)]
    sent = run_asgi(_guard(inner), {"method": "POST", "path": TRIGGER}, messages)
    assert inner.body == raw and sent[0]["status"] == 200


def test_the_root_path_is_stripped_before_matching(monkeypatch):
    from incident_ops.api import conf_guard

    async def allowed(scope, dag_id):
        return True

    monkeypatch.setattr(conf_guard, "_may_trigger", allowed)
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    inner = Recorder()
    raw = json.dumps({"logical_date": None, "conf": {"devce_id": "x"}}).encode()
    sent = run_asgi(
        _guard(inner),
        {"method": "POST", "path": f"/airflow{TRIGGER}", "root_path": "/airflow"},
        [{"type": "http.request", "body": raw, "more_body": False}],
    )
    assert sent[0]["status"] == 400 and inner.calls == 0


def test_a_client_that_disconnects_mid_body_reaches_the_app_as_a_disconnect(monkeypatch):
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    received = []

    async def app(scope, receive, send):
        received.append(await receive())
        received.append(await receive())

    messages = [{"type": "http.request", "body": b'{"co', "more_body": True}, {"type": "http.disconnect"}]
    run_asgi(_guard(app), {"method": "POST", "path": TRIGGER}, messages)
    assert received == [
        {"type": "http.request", "body": b'{"co', "more_body": True},
        {"type": "http.disconnect"},
    ]


def test_a_body_over_the_buffer_limit_is_413_not_unchecked(monkeypatch):
    from incident_ops.api import conf_guard

    monkeypatch.setattr(conf_guard, "MAX_BODY_BYTES", 16)
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    inner = Recorder()
    raw = json.dumps({"logical_date": None, "conf": {"devce_id": "x" * 50}}).encode()
    messages = [
        {"type": "http.request", "body": raw[i : i + 8], "more_body": i + 8 < len(raw)}
        for i in range(0, len(raw), 8)
    ]
    sent = run_asgi(_guard(inner), {"method": "POST", "path": TRIGGER}, messages)
    assert sent[0]["status"] == 413 and inner.calls == 0
