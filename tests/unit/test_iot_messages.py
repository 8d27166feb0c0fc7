"""MQTT messages from devices: topics, alert payloads and telemetry readings, mapped without Airflow."""

from __future__ import annotations

import json

import pytest

from include.iot_messages import (
    MAX_PAYLOAD_BYTES,
    MessageError,
    classify,
    decode_payload,
    event_payload,
    notification_from_event,
    parse_topic,
)
from include.telemetry import Thresholds

THRESHOLDS = Thresholds.from_runbooks()


def msg(body: object) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("topic", "device", "kind"),
    [
        ("devices/T-101/alerts", "T-101", "alerts"),
        ("devices/T-101/telemetry", "T-101", "telemetry"),
        ("plant-north/line-2/devices/PUMP-07B/alerts", "PUMP-07B", "alerts"),
    ],
)
def test_topic_names_the_device_and_the_kind(topic, device, kind):
    where = parse_topic(topic)
    assert (where.device_id, where.kind) == (device, kind)


@pytest.mark.parametrize(
    "topic", ["devices/T-101", "devices//alerts", "things/T-101/alerts", "devices/T-101/status", "alerts", ""]
)
def test_other_topics_are_refused(topic):
    with pytest.raises(MessageError) as err:
        parse_topic(topic)
    assert err.value.reason == "topic"


def test_an_alert_takes_the_device_from_the_topic_and_is_an_iot_alert():
    notification = classify(
        "devices/COMP-03/alerts", msg({"error": "OVERHEATING", "severity": "warning"}), THRESHOLDS
    )
    assert notification.source == "iot" and notification.status == "firing"
    assert notification.conf["device_id"] == "COMP-03" and notification.conf["source"] == "iot"
    assert notification.alert.severity == "warning"


def test_the_payloads_device_and_source_are_kept_and_forced():
    notification = classify(
        "devices/GW-NORTH-1/alerts", msg({"device_id": "PUMP-07B", "error": "X", "source": "api"}), THRESHOLDS
    )
    assert notification.alert.device_id == "PUMP-07B" and notification.alert.source == "iot"


def test_repeats_are_one_incident_by_device_and_error_or_by_fingerprint():
    first = classify("devices/T-101/alerts", msg({"error": "OVERHEATING"}), THRESHOLDS)
    again = classify(
        "devices/T-101/alerts", msg({"error": "OVERHEATING", "message": "still hot"}), THRESHOLDS
    )
    other = classify("devices/T-102/alerts", msg({"error": "OVERHEATING"}), THRESHOLDS)
    assert first.incident_key == again.incident_key != other.incident_key
    by_fp = [
        classify(f"devices/{d}/alerts", msg({"error": e, "fingerprint": "fp-1"}), THRESHOLDS)
        for d, e in (("A", "X"), ("B", "Y"))
    ]
    assert by_fp[0].incident_key == by_fp[1].incident_key


def test_status_resolved_closes():
    notification = classify(
        "devices/T-101/alerts", msg({"error": "OVERHEATING", "status": "resolved"}), THRESHOLDS
    )
    assert notification.status == "resolved"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "json"),
        (b"\xff\xfe", "json"),
        (msg([1, 2]), "json"),
        (msg({"message": "no error code"}), "alert"),
        (msg({"error": "X" * 129}), "alert"),
        (msg({"error": "X", "severity": "urgent"}), "alert"),
        (msg({"error": "X", "devce_id": "T"}), "alert"),
        (msg({"error": "X", "status": "maybe-secret"}), "alert"),
        (msg({"error": "X", "metrics": {"t": "95"}}), "alert"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "oversized"),
    ],
)
def test_malformed_alerts_are_refused_without_quoting_the_payload(payload, reason):
    with pytest.raises(MessageError) as err:
        classify("devices/T-101/alerts", payload, THRESHOLDS)
    assert err.value.reason == reason
    assert "maybe-secret" not in str(err.value) and "urgent" not in str(err.value)


def test_oversized_is_refused_before_decoding():
    with pytest.raises(MessageError) as err:
        decode_payload(msg({"error": "X", "message": "m" * MAX_PAYLOAD_BYTES}))
    assert err.value.reason == "oversized"


def test_telemetry_within_limits_raises_nothing():
    assert classify("devices/T-101/telemetry", msg({"temperature_c": 40}), THRESHOLDS) is None
    assert (
        classify("devices/T-101/telemetry", msg({"humidity": 99.0, "ts": "2024-05-01T10:00:00Z"}), THRESHOLDS)
        is None
    )


def test_telemetry_over_the_critical_threshold_is_a_critical_alert_named_by_the_runbook():
    notification = classify("devices/T-101/telemetry", msg({"temperature_c": 95, "rpm": 1450}), THRESHOLDS)
    alert = notification.alert
    assert (alert.device_id, alert.error, alert.severity, alert.source) == (
        "T-101",
        "TEMPERATURE_HIGH",
        "critical",
        "iot",
    )
    assert alert.metrics == {"temperature_c": 95.0, "rpm": 1450.0}
    assert alert.labels["metric"] == "temperature_c" and alert.labels["threshold"] == "90"
    assert "95" in alert.message and "90" in alert.message


@pytest.mark.parametrize(
    "payload",
    [msg({}), msg({"temperature_c": "95"}), msg({"on": True}), msg({f"m{i}": 1 for i in range(65)})],
)
def test_malformed_telemetry_is_refused(payload):
    with pytest.raises(MessageError) as err:
        classify("devices/T-101/telemetry", payload, THRESHOLDS)
    assert err.value.reason in ("telemetry", "json")


def test_the_asset_event_round_trips_the_notification():
    notification = classify(
        "devices/T-101/alerts",
        msg({"error": "OVERHEATING", "started_at": "2024-05-01T10:00:00Z", "labels": {"site": "north"}}),
        THRESHOLDS,
    )
    payload = json.loads(json.dumps(event_payload(notification)))
    assert notification_from_event(payload) == notification


@pytest.mark.parametrize("payload", [None, "x", {"status": "firing"}, {"status": "odd", "alert": {}}])
def test_an_asset_event_that_is_not_an_iot_alert_is_refused(payload):
    with pytest.raises(MessageError):
        notification_from_event(payload)
