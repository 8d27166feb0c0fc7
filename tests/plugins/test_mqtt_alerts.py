"""admit_alerts, as the IoT intake DAG calls it: merged asset events, repeats and resolves."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from incident_ops.hooks.incident_store import get_store
from incident_ops.tasks import mqtt_alerts
from include.iot_messages import classify, event_payload
from include.telemetry import Thresholds
from tests.factories import alert_run_count

THRESHOLDS = Thresholds.from_runbooks()


def asset_events(*messages: tuple[str, dict]) -> dict:
    """Return `triggering_asset_events` as the task receives it: asset -> events with the trigger's extra."""
    events = []
    for i, (topic, body) in enumerate(messages):
        payload = event_payload(classify(topic, json.dumps(body).encode(), THRESHOLDS))
        events.append(SimpleNamespace(id=i, extra={"from_trigger": True, "payload": payload}))
    return {"iot_device_alerts": events}


@pytest.fixture
def store(incident_store_url):
    return get_store()


def test_one_alert_merged_three_times_is_one_incident_run(store):
    alert = ("devices/T-101/alerts", {"error": "OVERHEATING", "message": "hot"})
    starts = mqtt_alerts.admit_alerts(asset_events(alert, alert, alert))
    assert len(starts) == 1
    [start] = starts
    assert start["trigger_run_id"].startswith("alert__iot__")
    assert start["conf"]["device_id"] == "T-101" and start["conf"]["source"] == "iot"
    # The same alert again, in a later run of the intake, while the incident is open: nothing new.
    assert mqtt_alerts.admit_alerts(asset_events(alert)) == []
    assert alert_run_count(store) == 1


def test_different_devices_are_different_incidents(store):
    starts = mqtt_alerts.admit_alerts(
        asset_events(
            ("devices/T-101/telemetry", {"temperature_c": 95}),
            ("devices/T-102/telemetry", {"temperature_c": 96}),
            ("devices/T-101/telemetry", {"temperature_c": 97}),
        )
    )
    assert [s["conf"]["device_id"] for s in starts] == ["T-101", "T-102"]
    assert starts[0]["conf"]["severity"] == "critical" and starts[0]["conf"]["error"] == "TEMPERATURE_HIGH"


def test_resolved_closes_the_alert_run(store):
    firing = ("devices/T-101/alerts", {"error": "OVERHEATING"})
    [start] = mqtt_alerts.admit_alerts(asset_events(firing))
    assert (
        mqtt_alerts.admit_alerts(
            asset_events(("devices/T-101/alerts", {"error": "OVERHEATING", "status": "resolved"}))
        )
        == []
    )
    assert store.intake.resolved_upstream(start["trigger_run_id"])


def test_events_that_are_not_iot_alerts_are_skipped(store):
    events = {"iot_device_alerts": [SimpleNamespace(id=1, extra={"payload": {"status": "firing"}})]}
    assert mqtt_alerts.admit_alerts(events) == []
    assert mqtt_alerts.admit_alerts(None) == []


def test_a_run_that_could_not_be_created_is_released_for_the_next_delivery(store):
    alert = ("devices/T-101/alerts", {"error": "OVERHEATING"})
    [start] = mqtt_alerts.admit_alerts(asset_events(alert))
    mqtt_alerts.release_unstarted({"task": SimpleNamespace(trigger_run_id=start["trigger_run_id"])})
    assert mqtt_alerts.admit_alerts(asset_events(alert)) == [start]


def test_a_device_cannot_resolve_or_join_another_devices_incident(store):
    from incident_ops import alert_intake
    from include.alert_sources import normalise

    # PUMP-07B's incidents: one from its own topic, one from a webhook, both with fingerprint "fp-1".
    [pump] = mqtt_alerts.admit_alerts(
        asset_events(("devices/PUMP-07B/alerts", {"error": "PRESSURE_SPIKE_DETECTED", "fingerprint": "fp-1"}))
    )
    hooked: list[str] = []
    webhook = normalise(
        "generic", {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "fingerprint": "fp-1"}
    )
    alert_intake.process(webhook, start=lambda run_id, _: hooked.append(run_id) or False)

    # T-101 repeats the fingerprint, resolved and firing: it opens its own incident, closes nothing else.
    resolved = (
        "devices/T-101/alerts",
        {"error": "PRESSURE_SPIKE_DETECTED", "fingerprint": "fp-1", "status": "resolved"},
    )
    assert mqtt_alerts.admit_alerts(asset_events(resolved)) == []
    [own] = mqtt_alerts.admit_alerts(
        asset_events(("devices/T-101/alerts", {"error": "PRESSURE_SPIKE_DETECTED", "fingerprint": "fp-1"}))
    )
    assert own["conf"]["device_id"] == "T-101" and own["trigger_run_id"] not in (
        pump["trigger_run_id"],
        *hooked,
    )
    assert not store.intake.resolved_upstream(pump["trigger_run_id"]) and not store.intake.resolved_upstream(
        hooked[0]
    )


def test_a_payload_naming_another_device_never_reaches_the_intake():
    from include.iot_messages import MessageError

    for topic, body in (
        (
            "devices/T-101/alerts",
            {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "status": "resolved"},
        ),
        ("devices/T-101/telemetry", {"device_id": "PUMP-07B", "pressure_bar": 20}),
    ):
        with pytest.raises(MessageError):
            classify(topic, json.dumps(body).encode(), THRESHOLDS)
