"""Alert webhooks on Airflow's own API server app: payloads as the senders post them, runs in Airflow's DB.

`POST /incident-response/api/alerts/{source}` normalises the notification, starts one
`incident_response` run per incident through Airflow's trigger path, deduplicates repeats and
concurrent twins, and resolves. Each test salts its fingerprints: Airflow's metadata DB (and so its
run ids) lives for the whole session, the incident store is the test's own.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import timedelta

import pytest

from include.alert_sources import (
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
)
from include.store import incident_id_for
from tests.api.fixtures import load, salted
from tests.api.helpers import PREFIX, defer_sensor, sensor
from tests.api.webhooks import ALERTS, DAG_ID, TOKEN, airflow_run, post, run_count  # noqa: F401
from tests.factories import approval_record

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
    assert store.approvals.get(record.id).state == "cancelled"
    # The waiting sensor ends at once, handing `cancelled` on so the run skips the fix.
    ended = sensor(run_id)
    assert ended["state"] == "success"
    assert ended["xcom"] == {"approval_id": record.id, "state": "cancelled", "decided_by": []}
    assert store.intake.get_alert_run(run_id).state == "resolved"
    kinds = [e.kind for e in store.incidents.timeline(started["incident_id"])]
    assert "alert_resolved" in kinds and "approval_cancelled" in kinds

    again = post(webhook, "alertmanager", salted(load("alertmanager_resolved"), salt)).json()["incidents"][0]
    assert again["resolved"] is True and again["deduplicated"] is True and again["cancelled_approvals"] == []


def test_a_decided_approval_is_not_cancelled_by_a_late_resolve(webhook, tokens, store):
    salt = uuid.uuid4().hex[:8]
    run_id = post(webhook, "alertmanager", salted(load("alertmanager_firing"), salt)).json()["incidents"][0][
        "dag_run_id"
    ]
    record = _pending_approval(store, run_id, {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"})
    store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    item = post(webhook, "alertmanager", salted(load("alertmanager_resolved"), salt)).json()["incidents"][0]
    assert item["cancelled_approvals"] == []
    assert store.approvals.get(record.id).state == "approved"


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

    store.incidents.open(dag_id=DAG_ID, run_id=item["dag_run_id"], incident_key="k", alert=conf)
    ack = post(webhook, "pagerduty", salted(load("pagerduty_acknowledge"), salt)).json()["incidents"][0]
    assert ack["status"] == "acknowledged" and ack["dag_run_id"] == item["dag_run_id"]
    assert "alert_acknowledged" in [e.kind for e in store.incidents.timeline(item["incident_id"])]

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
    from incident_ops import alert_intake

    body = salted(load("alertmanager_firing"))
    monkeypatch.setattr(alert_intake, "DAG_ID", "not_parsed_yet")
    response = post(webhook, "alertmanager", body)
    assert response.status_code == 503 and "not_parsed_yet" in response.json()["detail"]
    monkeypatch.setattr(alert_intake, "DAG_ID", DAG_ID)
    retry = post(webhook, "alertmanager", body)
    assert retry.status_code == 202 and not any(i["deduplicated"] for i in retry.json()["incidents"])


def test_the_route_is_in_the_plugin_openapi(webhook):
    spec = webhook.get(f"{PREFIX}/openapi.json").json()
    operation = spec["paths"]["/api/alerts/{source}"]["post"]
    assert {"202", "401", "413", "422", "503"} <= set(operation["responses"])


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
