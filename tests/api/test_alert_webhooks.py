"""Alert webhooks on Airflow's own API server app: payloads as the senders post them, runs in Airflow's DB.

`POST /incident-response/api/alerts/{source}` normalises the notification, starts one
`incident_response` run per incident through Airflow's trigger path, deduplicates repeats and
concurrent twins, and resolves. Each test salts its fingerprints: Airflow's metadata DB (and so its
run ids) lives for the whole session, the incident store is the test's own.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.alert_sources import (
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
    PayloadError,
    incident_key_for_fingerprint,
    normalise,
    run_id_for,
)
from include.store import incident_id_for
from tests.api.fixtures import load, salted, sync_dags_to_db
from tests.api.helpers import PREFIX, bearer, defer_sensor, sensor
from tests.factories import approval_record

DAG_ID = "incident_response"
TOKEN = "webhook-token-" + "0123456789abcdef" * 2
ALERTS = f"{PREFIX}/api/alerts"


@pytest.fixture(scope="module")
def parsed_dag(airflow_app):
    """Put incident_response in the metadata DB, as the DAG processor would."""
    sync_dags_to_db()
    return DAG_ID


@pytest.fixture
def webhook(client, parsed_dag, monkeypatch):
    """Return a client with the webhook token configured through INCIDENT_WEBHOOK_TOKEN."""
    monkeypatch.setenv("INCIDENT_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.delenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", raising=False)
    return client


def post(client, source: str, body, *, token: str | None = TOKEN, **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    if isinstance(body, (bytes, str)):
        return client.post(f"{ALERTS}/{source}", content=body, headers=headers, **kwargs)
    return client.post(f"{ALERTS}/{source}", json=body, headers=headers, **kwargs)


def airflow_run(client, tokens, run_id: str) -> dict | None:
    response = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", headers=bearer(tokens["admin"]))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()


def run_count(client, tokens) -> int:
    response = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1", headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    return response.json()["total_entries"]


# -- Alertmanager ---------------------------------------------------------------------------------


def test_alertmanager_group_starts_one_run_per_alert_with_the_normalised_conf(webhook, tokens):
    body = salted(load("alertmanager_firing"))
    before = run_count(webhook, tokens)
    response = post(webhook, "alertmanager", body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["source"] == "alertmanager" and answer["truncated_alerts"] == 0
    incidents = answer["incidents"]
    assert [i["deduplicated"] for i in incidents] == [False, False, False]
    assert len({i["dag_run_id"] for i in incidents}) == 3
    assert run_count(webhook, tokens) == before + 3
    for item in incidents:
        assert item["dag_run_id"].startswith("alert__alertmanager__")
        assert item["incident_id"] == incident_id_for(DAG_ID, item["dag_run_id"])
        assert item["status"] == "firing" and item["resolved"] is False
        assert item["dag_paused"] is True  # parsed DAGs start paused: the run waits, queued

    first, second, third = (airflow_run(webhook, tokens, i["dag_run_id"]) for i in incidents)
    assert first["state"] == "queued" and first["run_type"] == "manual"
    assert first["triggering_user_name"] == "webhook:alertmanager"
    conf = first["conf"]
    assert conf["device_id"] == "PUMP-07B"  # device_id label wins over instance and job
    assert conf["error"] == "PRESSURE_SPIKE_DETECTED"
    assert conf["severity"] == "critical"  # "page"
    assert conf["source"] == "alertmanager"
    assert conf["message"].startswith("Discharge pressure on PUMP-07B is 9.4 bar\n\nPressure rose")
    assert conf["started_at"] == "2024-05-01T10:00:00.123456Z"  # nanoseconds cut to microseconds
    assert conf["labels"]["instance"] == "10.20.0.7:9100" and conf["labels"]["site"] == "plant-north"
    assert conf["fingerprint"] == body["alerts"][0]["fingerprint"]
    assert (second["conf"]["device_id"], second["conf"]["severity"]) == ("PUMP-12A", "warning")
    # Unicode survives; the device falls back to the job label; +02:00 is converted to UTC.
    assert (third["conf"]["device_id"], third["conf"]["severity"]) == ("line-3-sensors", "info")
    assert "🌡️" in third["conf"]["message"] and "压力峰值" in third["conf"]["message"]
    assert third["conf"]["started_at"] == "2024-05-01T08:01:00Z"


def test_repeats_of_a_group_are_deduplicated_onto_the_same_runs(webhook, tokens):
    body = salted(load("alertmanager_firing"))
    first = post(webhook, "alertmanager", body).json()["incidents"]
    count = run_count(webhook, tokens)
    for _ in range(3):  # group_interval / repeat_interval re-sends, and retries
        again = post(webhook, "alertmanager", body)
        assert again.status_code == 202
        incidents = again.json()["incidents"]
        assert [i["deduplicated"] for i in incidents] == [True, True, True]
        assert [i["dag_run_id"] for i in incidents] == [i["dag_run_id"] for i in first]
        assert all(i["dag_paused"] is None for i in incidents)
    assert run_count(webhook, tokens) == count


def test_a_group_that_grows_starts_runs_only_for_its_new_alerts(webhook, tokens):
    full = salted(load("alertmanager_firing"))
    partial = {**full, "alerts": full["alerts"][:1]}
    assert post(webhook, "alertmanager", partial).json()["incidents"][0]["deduplicated"] is False
    incidents = post(webhook, "alertmanager", full).json()["incidents"]
    assert [i["deduplicated"] for i in incidents] == [True, False, False]


def test_a_flapping_alert_stays_one_incident_while_it_is_open(webhook, tokens):
    body = salted(load("alertmanager_firing"))
    body["alerts"] = body["alerts"][:1]
    first = post(webhook, "alertmanager", body).json()["incidents"][0]
    body["alerts"][0]["startsAt"] = "2024-05-01T10:05:00Z"  # re-fired: a new start time
    again = post(webhook, "alertmanager", body).json()["incidents"][0]
    assert again["deduplicated"] is True and again["dag_run_id"] == first["dag_run_id"]


def test_truncated_groups_and_missing_optional_fields(webhook, tokens):
    body = salted(load("alertmanager_truncated_minimal"))
    response = post(webhook, "alertmanager", body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["truncated_alerts"] == 7
    with_service, bare = answer["incidents"]
    assert (with_service["device_id"], with_service["error"]) == ("compressor-COMP-03", "OVERHEATING")
    # No device label, no fingerprint, no status, no annotations: still an incident, keyed by its labels.
    assert (bare["device_id"], bare["error"], bare["status"]) == ("unknown", "OVERHEATING", "firing")
    assert bare["fingerprint"] and bare["deduplicated"] is False
    assert airflow_run(webhook, tokens, bare["dag_run_id"])["conf"].get("message") is None


def test_huge_annotations_and_labels_are_clipped_to_fit_the_conf(webhook, tokens):
    body = salted(load("alertmanager_firing"))
    alert = body["alerts"][0]
    alert["annotations"]["description"] = "é" * 100_000
    alert["labels"].update({f"extra_{i:03d}": "v" * 2000 for i in range(100)})
    response = post(webhook, "alertmanager", body)
    assert response.status_code == 202, response.text
    conf = airflow_run(webhook, tokens, response.json()["incidents"][0]["dag_run_id"])["conf"]
    assert len(conf["message"]) == MAX_MESSAGE and conf["message"].endswith("…")
    assert len(conf["labels"]) == MAX_LABELS
    assert max(len(v) for v in conf["labels"].values()) == MAX_LABEL_VALUE


# -- Grafana --------------------------------------------------------------------------------------


def test_grafana_alerts_carry_their_values_as_metrics(webhook, tokens):
    body = salted(load("grafana_firing"))
    response = post(webhook, "grafana", body)
    assert response.status_code == 202, response.text
    hot, stuck = response.json()["incidents"]
    conf = airflow_run(webhook, tokens, hot["dag_run_id"])["conf"]
    assert (conf["device_id"], conf["error"], conf["severity"]) == ("COMP-03", "OVERHEATING", "critical")
    assert conf["metrics"] == {"B": 96.2, "C": 1.0}
    assert conf["started_at"] == "2024-05-01T07:51:03.157076Z"
    assert (
        conf["message"]
        == "COMP-03 outlet temperature 96 C\n\nOutlet temperature has been above 90 C for 5 minutes"
    )
    conf = airflow_run(webhook, tokens, stuck["dag_run_id"])["conf"]
    assert (conf["device_id"], conf["severity"]) == ("SENSOR-T-88", "warning")  # "warn"
    assert conf["metrics"] == {"A": 21.0}  # a null reading is left out


def test_grafana_resolved_closes_the_incident(webhook, tokens):
    salt = uuid.uuid4().hex[:8]
    firing = post(webhook, "grafana", salted(load("grafana_firing"), salt)).json()["incidents"][0]
    resolved = post(webhook, "grafana", salted(load("grafana_resolved"), salt))
    assert resolved.status_code == 202, resolved.text
    [item] = resolved.json()["incidents"]
    assert item["resolved"] is True and item["dag_run_id"] == firing["dag_run_id"]


# -- resolution -----------------------------------------------------------------------------------


def _alert_runs(store) -> int:
    """Return how many DAG runs the intake started (a count of its rows)."""
    import sqlalchemy as sa

    from include.store.schema import alert_runs

    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(alert_runs)).scalar_one()


def _pending_approval(store, run_id: str, alert: dict):
    """Open the run's incident and create its approval record, as ingest and request_approval do."""
    return approval_record(store, run_id=run_id, alert=alert, incident_key="k", deadline=timedelta(hours=1))


def test_resolved_cancels_the_pending_approval_and_records_the_resolution(webhook, tokens, store):
    salt = uuid.uuid4().hex[:8]
    firing = salted(load("alertmanager_firing"), salt)
    started = post(webhook, "alertmanager", firing).json()["incidents"][0]
    run_id = started["dag_run_id"]
    record = _pending_approval(store, run_id, {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"})
    defer_sensor(run_id, record.id)

    response = post(webhook, "alertmanager", salted(load("alertmanager_resolved"), salt))
    assert response.status_code == 202, response.text
    [item] = response.json()["incidents"]
    assert item == {
        **item,
        "status": "resolved",
        "resolved": True,
        "deduplicated": False,
        "dag_run_id": run_id,
        "incident_id": started["incident_id"],
        "cancelled_approvals": [record.id],
    }
    assert store.get_approval(record.id).state == "cancelled"
    # The waiting sensor ends at once, handing `cancelled` on so the run skips the fix.
    ended = sensor(run_id)
    assert ended["state"] == "success"
    assert ended["xcom"] == {"approval_id": record.id, "state": "cancelled", "decided_by": []}
    assert store.get_alert_run(run_id)["state"] == "resolved"
    kinds = [e["kind"] for e in store.timeline(started["incident_id"])]
    assert "alert_resolved" in kinds and "approval_cancelled" in kinds

    again = post(webhook, "alertmanager", salted(load("alertmanager_resolved"), salt)).json()["incidents"][0]
    assert again["resolved"] is True and again["deduplicated"] is True and again["cancelled_approvals"] == []


def test_a_decided_approval_is_not_cancelled_by_a_late_resolve(webhook, tokens, store):
    salt = uuid.uuid4().hex[:8]
    run_id = post(webhook, "alertmanager", salted(load("alertmanager_firing"), salt)).json()["incidents"][0][
        "dag_run_id"
    ]
    record = _pending_approval(store, run_id, {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"})
    store.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    item = post(webhook, "alertmanager", salted(load("alertmanager_resolved"), salt)).json()["incidents"][0]
    assert item["cancelled_approvals"] == []
    assert store.get_approval(record.id).state == "approved"


def test_a_new_firing_after_resolution_is_a_new_incident(webhook, tokens):
    salt = uuid.uuid4().hex[:8]
    first = post(webhook, "alertmanager", salted(load("alertmanager_firing"), salt)).json()["incidents"][0]
    post(webhook, "alertmanager", salted(load("alertmanager_resolved"), salt))
    refire = salted(load("alertmanager_firing"), salt)
    refire["alerts"][0]["startsAt"] = "2024-05-02T08:00:00Z"
    again = post(webhook, "alertmanager", refire).json()["incidents"][0]
    assert again["deduplicated"] is False and again["dag_run_id"] != first["dag_run_id"]
    # A late retry of the old firing notification finds the old, resolved run: nothing new starts.
    late = post(webhook, "alertmanager", salted(load("alertmanager_firing"), salt)).json()["incidents"][0]
    assert late["dag_run_id"] in (first["dag_run_id"], again["dag_run_id"]) and late["deduplicated"] is True


def test_resolving_an_alert_never_seen_is_accepted_and_changes_nothing(webhook, tokens):
    before = run_count(webhook, tokens)
    response = post(webhook, "alertmanager", salted(load("alertmanager_resolved")))
    assert response.status_code == 202
    [item] = response.json()["incidents"]
    assert item["resolved"] is False and item["dag_run_id"] is None and item["incident_id"] is None
    assert run_count(webhook, tokens) == before


# -- PagerDuty Events API v2 ----------------------------------------------------------------------


def test_pagerduty_trigger_acknowledge_resolve_and_trigger_again(webhook, tokens, store):
    salt = uuid.uuid4().hex[:8]
    trigger = salted(load("pagerduty_trigger"), salt)
    first = post(webhook, "pagerduty", trigger)
    assert first.status_code == 202, first.text
    [item] = first.json()["incidents"]
    assert item["fingerprint"] == trigger["dedup_key"] and item["deduplicated"] is False
    conf = airflow_run(webhook, tokens, item["dag_run_id"])["conf"]
    assert (conf["device_id"], conf["error"], conf["severity"]) == (
        "PUMP-07B",
        "PRESSURE_SPIKE_DETECTED",
        "critical",
    )
    assert conf["metrics"] == {"pressure_bar": 9.4, "temperature_c": 71.5}
    assert (
        conf["labels"]["component"] == "discharge-valve" and conf["labels"]["operator on shift"] == "Łukasz"
    )
    assert conf["started_at"] == "2024-05-01T10:00:00.315000Z"

    # PagerDuty-style re-triggers with a new event timestamp are the same alert.
    trigger["payload"]["timestamp"] = "2024-05-01T10:05:00.000+0000"
    assert post(webhook, "pagerduty", trigger).json()["incidents"][0]["deduplicated"] is True

    store.open_incident(dag_id=DAG_ID, run_id=item["dag_run_id"], incident_key="k", alert=conf)
    ack = post(webhook, "pagerduty", salted(load("pagerduty_acknowledge"), salt)).json()["incidents"][0]
    assert ack["status"] == "acknowledged" and ack["dag_run_id"] == item["dag_run_id"]
    assert "alert_acknowledged" in [e["kind"] for e in store.timeline(item["incident_id"])]

    resolved = post(webhook, "pagerduty", salted(load("pagerduty_resolve"), salt)).json()["incidents"][0]
    assert resolved["resolved"] is True and resolved["dag_run_id"] == item["dag_run_id"]

    # After a resolve, PagerDuty opens a new alert for the same dedup_key: so do we.
    again = post(webhook, "pagerduty", trigger).json()["incidents"][0]
    assert again["deduplicated"] is False and again["dag_run_id"] != item["dag_run_id"]


def test_pagerduty_without_dedup_key_keys_identical_events_together(webhook, tokens):
    body = salted(load("pagerduty_trigger_minimal"))
    first = post(webhook, "pagerduty", body).json()["incidents"][0]
    assert first["fingerprint"].startswith("sha256:") and first["deduplicated"] is False
    assert post(webhook, "pagerduty", body).json()["incidents"][0]["deduplicated"] is True


def test_pagerduty_senders_may_authenticate_with_the_routing_key(webhook, tokens):
    body = salted(load("pagerduty_trigger"))
    assert post(webhook, "pagerduty", {**body, "routing_key": TOKEN}, token=None).status_code == 202
    refused = post(webhook, "pagerduty", body, token=None)
    assert refused.status_code == 401 and "routing_key" in refused.json()["detail"]
    # Only PagerDuty: a routing_key means nothing to the other sources.
    assert post(webhook, "generic", {**load("generic"), "routing_key": TOKEN}, token=None).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_action": "escalate", "dedup_key": "x"}, "event_action"),
        ({"event_action": "resolve", "routing_key": "r"}, "dedup_key"),
        ({"event_action": "trigger", "routing_key": "r"}, "payload"),
        ({"event_action": "trigger", "payload": {"summary": "s", "source": "d"}}, "payload.severity"),
        (
            {"event_action": "trigger", "payload": {"summary": "s", "source": "d", "severity": "high"}},
            "payload.severity",
        ),
        ({"event_action": "trigger", "dedup_key": "", "payload": {}}, "dedup_key"),
    ],
)
def test_malformed_pagerduty_events_name_the_field(webhook, body, field):
    response = post(webhook, "pagerduty", body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


# -- generic --------------------------------------------------------------------------------------


def test_generic_conf_starts_a_run_and_resolves(webhook, tokens, store):
    body = salted(load("generic"))
    started = post(webhook, "generic", body, params={"dry_run": "true"}).json()["incidents"][0]
    conf = airflow_run(webhook, tokens, started["dag_run_id"])["conf"]
    assert conf == {**body, "metrics": {"temperature_c": 96.0}, "require_approval": False, "dry_run": True}
    resolved = post(webhook, "generic", {**body, "status": "resolved"}).json()["incidents"][0]
    assert resolved["resolved"] is True and resolved["dag_run_id"] == started["dag_run_id"]


def test_generic_refuses_unknown_fields_unless_allowed(webhook, tokens, monkeypatch):
    body = {**salted(load("generic")), "devce_id": "PUMP-07B"}
    refused = post(webhook, "generic", body)
    assert refused.status_code == 422
    assert "'devce_id' (did you mean 'device_id'?)" in refused.json()["detail"]
    monkeypatch.setenv("INCIDENT_ALLOW_UNKNOWN_CONF_KEYS", "true")
    accepted = post(webhook, "generic", body)
    assert accepted.status_code == 202 and accepted.json()["ignored_fields"] == ["devce_id"]
    conf = airflow_run(webhook, tokens, accepted.json()["incidents"][0]["dag_run_id"])["conf"]
    assert "devce_id" not in conf


def test_generic_values_are_validated_like_the_trigger_form(webhook):
    response = post(webhook, "generic", {"device_id": "P", "error": "E", "severity": "urgent"})
    assert response.status_code == 422 and "severity" in response.json()["detail"]
    response = post(webhook, "generic", {"device_id": "P", "error": "E", "metrics": {"t": "hot"}})
    assert response.status_code == 422 and "metrics" in response.json()["detail"]


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrent_identical_notifications_start_each_run_once(webhook, tokens):
    body = salted(load("alertmanager_firing"))
    before = run_count(webhook, tokens)
    barrier = threading.Barrier(12)
    answers, errors = [], []

    def send() -> None:
        try:
            barrier.wait(timeout=30)
            answers.append(post(webhook, "alertmanager", body))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(r.status_code for r in answers) == [202] * 12, [
        r.text for r in answers if r.status_code != 202
    ]
    for index in range(3):
        items = [r.json()["incidents"][index] for r in answers]
        assert len({i["dag_run_id"] for i in items}) == 1
        assert sum(not i["deduplicated"] for i in items) == 1
    assert run_count(webhook, tokens) == before + 3


# -- authentication, limits, malformed bodies -----------------------------------------------------


def test_no_configured_token_is_503_with_the_fix(client, parsed_dag, monkeypatch):
    monkeypatch.delenv("INCIDENT_WEBHOOK_TOKEN", raising=False)
    response = post(client, "alertmanager", load("alertmanager_firing"))
    assert response.status_code == 503
    assert (
        "INCIDENT_WEBHOOK_TOKEN" in response.json()["detail"]
        and "incident_webhook" in response.json()["detail"]
    )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token",
        f"Token {TOKEN}",
        "Basic !!!",
        f"Bearer {TOKEN}x",
        "Basic " + base64.b64encode(b"user:wrong").decode(),
    ],
)
def test_requests_without_the_token_are_401(webhook, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = post(webhook, "alertmanager", load("alertmanager_firing"), token=None, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_basic_auth_with_the_token_as_password_is_accepted(webhook):
    basic = "Basic " + base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
    response = post(
        webhook,
        "alertmanager",
        salted(load("alertmanager_firing")),
        token=None,
        headers={"Authorization": basic},
    )
    assert response.status_code == 202


def test_the_connection_password_is_the_token_when_set(webhook, monkeypatch):
    connection = json.dumps({"conn_type": "generic", "password": "from-the-connection"})
    monkeypatch.setenv("AIRFLOW_CONN_INCIDENT_WEBHOOK", connection)
    body = salted(load("alertmanager_firing"))
    assert post(webhook, "alertmanager", body, token="from-the-connection").status_code == 202
    assert post(webhook, "alertmanager", body).status_code == 401  # the connection wins over the env


def test_unknown_source_is_404(webhook):
    response = post(webhook, "nagios", {})
    assert response.status_code == 404 and "alertmanager" in response.json()["detail"]


def test_oversized_bodies_are_413_before_reading_them(webhook):
    big = b'{"alerts": ["' + b"x" * (1024 * 1024) + b'"]}'
    assert post(webhook, "alertmanager", big, headers={"Content-Type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"alerts": ["'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"]}'

    response = webhook.post(
        f"{ALERTS}/alertmanager", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"", 400),
        (b"{not json", 400),
        (b"\xff\xfe{}", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b"[]", 422),
        (b'"firing"', 422),
        (b'{"alerts": {}}', 422),
        (b'{"alerts": [1]}', 422),
        (b'{"alerts": [{"labels": ["a"]}]}', 422),
        (b'{"alerts": [{"labels": {"a": {"b": 1}}}]}', 422),
        (b'{"alerts": [{"status": "pending"}]}', 422),
        (b'{"alerts": [{"startsAt": "yesterday"}]}', 422),
        (b'{"alerts": [{"startsAt": 1714557600}]}', 422),
        (b'{"alerts": [{"startsAt": "2024-13-45T99:00:00Z"}]}', 422),
        (b'{"alerts": [], "truncatedAlerts": -1}', 422),
        (b'{"alerts": [{"fingerprint": 12}]}', 422),
    ],
)
def test_malformed_bodies_are_4xx_with_the_reason(webhook, raw, status):
    response = post(webhook, "alertmanager", raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_an_empty_group_is_accepted_and_starts_nothing(webhook):
    response = post(webhook, "alertmanager", {"version": "4", "status": "firing", "alerts": []})
    assert response.status_code == 202 and response.json()["incidents"] == []


def test_a_dag_that_is_not_parsed_is_503_and_the_retry_succeeds(webhook, monkeypatch):
    from incident_ops import intake

    body = salted(load("alertmanager_firing"))
    monkeypatch.setattr(intake, "DAG_ID", "not_parsed_yet")
    response = post(webhook, "alertmanager", body)
    assert response.status_code == 503 and "not_parsed_yet" in response.json()["detail"]
    monkeypatch.setattr(intake, "DAG_ID", DAG_ID)
    retry = post(webhook, "alertmanager", body)
    assert retry.status_code == 202 and not any(i["deduplicated"] for i in retry.json()["incidents"])


def test_the_route_is_in_the_plugin_openapi(webhook):
    spec = webhook.get(f"{PREFIX}/openapi.json").json()
    operation = spec["paths"]["/api/alerts/{source}"]["post"]
    assert {"202", "401", "413", "422", "503"} <= set(operation["responses"])


# -- ingest: one incident per fingerprint whatever the entry point --------------------------------


def _dag_run(run_id: str | None = None):
    return SimpleNamespace(dag_id=DAG_ID, run_id=run_id or f"manual__{uuid.uuid4().hex[:8]}")


def test_ingest_ends_a_repeat_of_an_open_incident_as_a_duplicate(store):
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    first = ingest(params=conf, dag_run=_dag_run())
    assert first["fingerprint"] == conf["fingerprint"]
    open_one = store.active_alert_run(incident_key_for_fingerprint(conf["fingerprint"]), dag_id=DAG_ID)
    with pytest.raises(AirflowSkipException, match="duplicate of open incident"):
        ingest(params=conf, dag_run=_dag_run())
    original = incident_id_for(DAG_ID, open_one["run_id"])
    assert "duplicate" in [e["kind"] for e in store.timeline(original)]
    # Once the first incident is resolved, the same fingerprint is a new incident again.
    store.resolve_incident(original, outcome="fixed")
    assert ingest(params=conf, dag_run=_dag_run())["device_id"] == "PUMP-07B"


def test_ingest_retries_keep_their_own_incident(store):
    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    run = _dag_run()
    first = ingest(params=conf, dag_run=run)
    # A retried attempt of the same run is not a duplicate of itself: it goes on with the same alert.
    again = ingest(params=conf, dag_run=run)
    assert again == first
    incident_id = incident_id_for(DAG_ID, run.run_id)
    kinds = [e["kind"] for e in store.timeline(incident_id)]
    assert kinds.count("opened") == 1 and "duplicate" not in kinds
    assert store.get_incident(incident_id)["state"] == "open"


def test_concurrent_ingests_of_one_fingerprint_open_one_incident(store):
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def one() -> None:
        barrier.wait(timeout=30)
        try:
            ingest(params=conf, dag_run=_dag_run())
            outcomes.append("opened")
        except AirflowSkipException:
            outcomes.append("duplicate")
        except BaseException as exc:
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["duplicate"] * 7 + ["opened"]


def test_ingest_skips_an_alert_resolved_before_the_run_started(store):
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    key = incident_key_for_fingerprint(conf["fingerprint"])
    run_id = run_id_for("alertmanager", key, "2024-05-01T10:00:00+00:00")
    store.claim_alert_run(
        run_id=run_id,
        dag_id=DAG_ID,
        incident_key=key,
        source="alertmanager",
        fingerprint=conf["fingerprint"],
        episode="2024-05-01T10:00:00+00:00",
    )
    store.resolve_alert_run(run_id, source="alertmanager")
    with pytest.raises(AirflowSkipException, match="resolved before"):
        ingest(params=conf, dag_run=_dag_run(run_id))
    incident = store.get_incident(incident_id_for(DAG_ID, run_id))
    assert (incident["state"], incident["outcome"]) == ("resolved", "resolved_upstream")


def test_a_duplicate_run_skips_everything_and_succeeds_on_dag_test(airflow_db, store):
    from airflow.dag_processing.dagbag import DagBag

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    key = incident_key_for_fingerprint(conf["fingerprint"])
    store.open_incident(dag_id=DAG_ID, run_id="alert__earlier", incident_key=key, alert=conf)
    dag = DagBag().dags[DAG_ID]
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success"
    assert states["ingest"] == "skipped" and set(states.values()) == {"skipped"}
    assert not store.messages(incident_id_for(DAG_ID, "alert__earlier"))  # nobody was paged
    assert [
        e["detail"]["run_id"]
        for e in store.timeline(incident_id_for(DAG_ID, "alert__earlier"))
        if e["kind"] == "duplicate"
    ] == [dag_run.run_id]


# -- the intake tables on both store backends -----------------------------------------------------

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "connect_timeout": 3}


@pytest.fixture(scope="module")
def postgres_database():
    """Create a throw-away PostgreSQL database for this module (skipped when no server runs)."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(**PG)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    name = f"ir_webhook_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Return an incident store on SQLite or PostgreSQL."""
    from include.store import IncidentStore

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    opened = IncidentStore.from_url(url)
    yield opened
    opened.engine.dispose()


def _together(count: int, work) -> list:
    """Run `work()` in `count` threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list = []

    def one() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(work())
        except BaseException as exc:  # returned for the test to see
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_claims_of_one_run_id_have_one_winner(backend):
    claim = {
        "dag_id": DAG_ID,
        "incident_key": "k1",
        "source": "alertmanager",
        "fingerprint": "f",
        "episode": "e",
    }
    results = _together(10, lambda: backend.claim_alert_run(run_id="alert__x__1", **claim))
    assert sorted(results) == [False] * 9 + [True]
    assert backend.active_alert_run("k1", dag_id=DAG_ID)["run_id"] == "alert__x__1"


def test_concurrent_openings_of_one_key_open_one_incident(backend):
    alert = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api"}
    results = _together(
        10,
        lambda: backend.open_incident_unless_duplicate(
            dag_id=DAG_ID, run_id=f"manual__{uuid.uuid4().hex[:8]}", incident_key="k2", alert=alert
        ),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    opened = [r for r in results if r[1] is None]
    assert len(opened) == 1
    assert {r[1] for r in results if r[1] is not None} == {opened[0][0]}


def test_the_intake_lifecycle(backend):
    key, run_id = f"k3-{uuid.uuid4().hex[:6]}", f"alert__pd__{uuid.uuid4().hex[:6]}"
    before = _alert_runs(backend)
    claim = {"dag_id": DAG_ID, "incident_key": key, "source": "pagerduty", "fingerprint": "f"}
    assert backend.alert_generation(key, dag_id=DAG_ID) == 0
    assert backend.claim_alert_run(run_id=run_id, episode="gen:0", **claim)
    assert backend.alert_generation(key, dag_id=DAG_ID) == 1
    # Not opened yet, then open: active either way.
    assert backend.active_alert_run(key, dag_id=DAG_ID)["run_id"] == run_id
    incident = backend.open_incident(
        dag_id=DAG_ID, run_id=run_id, incident_key=key, alert={"device_id": "D", "error": "E"}
    )
    assert backend.active_alert_run(key, dag_id=DAG_ID)["run_id"] == run_id
    assert backend.resolve_alert_run(run_id, source="pagerduty") is True
    assert backend.resolve_alert_run(run_id, source="pagerduty") is False
    assert backend.get_alert_run(run_id)["state"] == "resolved"
    assert "alert_resolved" in [e["kind"] for e in backend.timeline(incident)]
    # Resolved upstream but the incident is still open: the open incident still answers for the key.
    assert backend.active_alert_run(key, dag_id=DAG_ID)["run_id"] == run_id
    backend.resolve_incident(incident, outcome="fixed")
    assert backend.active_alert_run(key, dag_id=DAG_ID) is None
    assert backend.latest_alert_run(key, dag_id=DAG_ID, state="firing") is None
    assert backend.latest_alert_run(key, dag_id=DAG_ID)["run_id"] == run_id
    backend.release_alert_run(run_id)  # only an unstarted (firing) claim is released
    assert _alert_runs(backend) == before + 1


# -- normalisation, directly ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "critical"),
        ("CRITICAL", "critical"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("info", "info"),
        ("none", "info"),
        ("P3", None),
    ],
)
def test_severity_mapping(label, severity):
    body = {"alerts": [{"labels": {"alertname": "X", "severity": label}}]}
    assert normalise("alertmanager", body).notifications[0].alert.severity == severity


@pytest.mark.parametrize(
    ("labels", "device"),
    [
        ({"device_id": "a", "device": "b", "instance": "c", "service": "d", "job": "e"}, "a"),
        ({"device": "b", "instance": "c", "service": "d", "job": "e"}, "b"),
        ({"instance": "c", "service": "d", "job": "e"}, "c"),
        ({"service": "d", "job": "e"}, "d"),
        ({"job": "e"}, "e"),
        ({"device_id": " ", "job": "e"}, "e"),
        ({}, "unknown"),
    ],
)
def test_device_comes_from_the_most_specific_label(labels, device):
    body = {"alerts": [{"labels": {"alertname": "X", **labels}}]}
    assert normalise("alertmanager", body).notifications[0].alert.device_id == device


def test_an_error_code_label_wins_over_alertname_and_common_labels_fill_gaps():
    body = {
        "commonLabels": {"device": "PUMP-07B"},
        "alerts": [{"labels": {"alertname": "PumpPressure", "error_code": "PRESSURE_HIGH"}}],
    }
    alert = normalise("alertmanager", body).notifications[0].alert
    assert (alert.device_id, alert.error) == ("PUMP-07B", "PRESSURE_HIGH")


def test_repeat_notifications_map_to_the_same_run_id_and_episodes_to_new_ones():
    body = load("alertmanager_firing")
    one, again = normalise("alertmanager", body), normalise("alertmanager", json.loads(json.dumps(body)))
    ids = [run_id_for(n.source, n.incident_key, n.episode) for n in one.notifications]
    assert ids == [run_id_for(n.source, n.incident_key, n.episode) for n in again.notifications]
    body["alerts"][0]["startsAt"] = "2024-06-01T00:00:00Z"
    moved = normalise("alertmanager", body).notifications[0]
    assert run_id_for(moved.source, moved.incident_key, moved.episode) != ids[0]


def test_the_generic_conf_of_every_fixture_satisfies_the_dag_params(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    params = DagBag().dags[DAG_ID].params
    for name, source in [
        ("alertmanager_firing", "alertmanager"),
        ("grafana_firing", "grafana"),
        ("pagerduty_trigger", "pagerduty"),
        ("pagerduty_trigger_minimal", "pagerduty"),
        ("generic", "generic"),
        ("alertmanager_truncated_minimal", "alertmanager"),
    ]:
        for notification in normalise(source, load(name)).notifications:
            merged = copy.deepcopy(params)
            merged.update(notification.conf)
            merged.validate()  # as the task runner does; raises ParamValidationError


# -- fuzzing: no input is a 5xx -------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
TIMES = (
    st.sampled_from(
        [
            "2024-05-01T10:00:00Z",
            "0001-01-01T00:00:00Z",
            "2024-05-01T10:00:00.123456789+02:00",
            "",
            "not a time",
            "2024-02-30T00:00:00Z",
        ]
    )
    | JSON_SCALARS
)
LABELS = st.dictionaries(
    st.sampled_from(["alertname", "device_id", "device", "instance", "severity", "job", "__name__", "x"])
    | st.text(max_size=8),
    st.text(max_size=40) | JSON_SCALARS,
    max_size=6,
)
GROUP_ALERT = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "pending"]) | JSON_SCALARS,
        "labels": LABELS | JSON,
        "annotations": st.dictionaries(st.sampled_from(["summary", "description"]), st.text(max_size=50))
        | JSON,
        "startsAt": TIMES,
        "endsAt": TIMES,
        "fingerprint": st.text(max_size=20) | JSON_SCALARS,
        "values": st.dictionaries(
            st.text(max_size=5), st.floats() | st.integers() | st.none() | st.text(max_size=3)
        )
        | JSON,
    },
)
GROUP = st.fixed_dictionaries(
    {"alerts": st.lists(GROUP_ALERT, max_size=3) | JSON},
    optional={
        "version": st.just("4"),
        "status": st.sampled_from(["firing", "resolved"]) | JSON_SCALARS,
        "commonLabels": LABELS | JSON,
        "commonAnnotations": JSON,
        "truncatedAlerts": st.integers(-2, 5) | JSON_SCALARS,
        "groupKey": st.text(max_size=10),
    },
)
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24)
PD_PAYLOAD = st.fixed_dictionaries(
    {
        "summary": NAMES,
        "source": NAMES,
        "severity": st.sampled_from(["critical", "error", "warning", "info"]),
    },
    optional={
        "timestamp": TIMES,
        "class": NAMES | JSON_SCALARS,
        "component": NAMES,
        "group": NAMES,
        "custom_details": st.dictionaries(st.text(max_size=8), JSON_SCALARS, max_size=5) | JSON,
    },
)
PAGERDUTY = st.fixed_dictionaries(
    {"event_action": st.sampled_from(["trigger", "trigger", "acknowledge", "resolve"])},
    optional={
        "dedup_key": st.text(min_size=1, max_size=40) | JSON_SCALARS,
        "routing_key": st.text(max_size=10),
        "payload": PD_PAYLOAD | JSON,
    },
)
GENERIC = st.fixed_dictionaries(
    {"device_id": NAMES, "error": NAMES},
    optional={
        "message": st.text(max_size=60),
        "source": st.sampled_from(["alertmanager", "iot", "generic", "nagios"]),
        "severity": st.sampled_from(["critical", "warning", "info", "bad"]) | JSON_SCALARS,
        "metrics": st.dictionaries(
            st.text(max_size=5), st.floats() | st.integers() | st.booleans(), max_size=3
        ),
        "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=20) | JSON_SCALARS, max_size=3),
        "started_at": TIMES,
        "status": st.sampled_from(["firing", "resolved", "pending"]),
        "fingerprint": st.text(max_size=300) | JSON_SCALARS,
        "dry_run": st.booleans() | JSON_SCALARS,
        "unknown_key": JSON_SCALARS,
    },
)
BODIES = {
    "alertmanager": GROUP | JSON,
    "grafana": GROUP | JSON,
    "pagerduty": PAGERDUTY | JSON,
    "generic": GENERIC | JSON,
}


@pytest.mark.parametrize("source", sorted(BODIES))
def test_fuzzed_bodies_never_get_a_5xx(webhook, source):
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES[source])
    def check(body):
        raw = json.dumps(body, allow_nan=True).encode()
        response = post(webhook, source, raw, headers={"Content-Type": "application/json"})
        assert response.status_code in (202, 400, 401, 413, 422), (response.status_code, response.text)

    check()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_get_a_5xx(webhook, raw):
    response = post(webhook, "alertmanager", raw)
    assert response.status_code in (202, 400, 422), (response.status_code, response.text)


def test_normalise_raises_only_payload_errors():
    @settings(max_examples=400, deadline=None)
    @given(source=st.sampled_from(sorted(BODIES)), data=st.data())
    def check(source, data):
        body = data.draw(BODIES[source])
        try:
            normalise(source, body)
        except PayloadError:
            pass

    check()


# -- authentication and bounds before parsing -------------------------------------------------------


def test_a_pagerduty_routing_key_is_checked_before_the_body_is_parsed(webhook):
    # Not JSON at all: a wrong key must be refused for the key, not for the body.
    garbage = b'{"routing_key": "not-the-token", "payload": ' + b"[" * 100_000
    response = post(webhook, "pagerduty", garbage, token=None, headers={"Content-Type": "application/json"})
    assert response.status_code == 401 and "routing_key" in response.json()["detail"]


def test_a_routing_key_sender_gets_pagerduty_s_own_size_limit(webhook):
    body = {"routing_key": TOKEN, "event_action": "trigger", "padding": "x" * (600 * 1024)}
    response = post(webhook, "pagerduty", body, token=None)
    assert response.status_code == 413


def test_json_nested_past_the_limit_is_refused(webhook):
    deep = {"version": "4", "status": "firing", "alerts": []}
    node = deep
    for _ in range(70):
        node["x"] = {}
        node = node["x"]
    response = post(webhook, "alertmanager", deep)
    assert response.status_code == 400 and "nests deeper than 64" in response.json()["detail"]


def test_too_many_alerts_in_one_notification_is_413_naming_the_limit(webhook, client, tokens):
    from include.limits import MAX_ALERTS_PER_NOTIFICATION

    before = run_count(client, tokens)
    body = load("alertmanager_firing")
    body["alerts"] = [body["alerts"][0]] * (MAX_ALERTS_PER_NOTIFICATION + 1)
    response = post(webhook, "alertmanager", body)
    assert response.status_code == 413 and str(MAX_ALERTS_PER_NOTIFICATION) in response.json()["detail"]
    assert run_count(client, tokens) == before
