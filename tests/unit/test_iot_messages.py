"""MQTT messages from devices: topics, alert payloads and telemetry readings, mapped without Airflow."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from include.iot_messages import (
    MAX_PAYLOAD_BYTES,
    MessageError,
    classify,
    decode_payload,
    event_payload,
    notification_from_event,
    parse_topic,
)
from include.models import Alert
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


def test_the_source_is_forced_and_the_payload_may_repeat_its_own_device():
    notification = classify(
        "devices/PUMP-07B/alerts", msg({"device_id": "PUMP-07B", "error": "X", "source": "api"}), THRESHOLDS
    )
    assert notification.alert.device_id == "PUMP-07B" and notification.alert.source == "iot"


# Any value other than the topic's own device id: other ids, case and space variants, other types.
@pytest.mark.parametrize(
    "named",
    ["PUMP-07B", "t-101", "T-101 ", " T-101", "T-1010", "", "devices/T-101", 101, ["T-101"], {"id": "T-101"}],
)
@pytest.mark.parametrize("kind", ["alerts", "telemetry"])
def test_a_payload_naming_another_device_is_refused(named, kind):
    body = {"device_id": named, "error": "PRESSURE_SPIKE_DETECTED", "status": "resolved", "temperature_c": 99}
    if kind == "telemetry":
        body = {"device_id": named, "temperature_c": 99}
    with pytest.raises(MessageError) as err:
        classify(f"devices/T-101/{kind}", msg(body), THRESHOLDS)
    assert err.value.reason == "device"
    assert "PUMP" not in str(err.value)  # logged without the payload's content


@given(
    device=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
    other=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
    fingerprint=st.text(min_size=1, max_size=40),
    error=st.sampled_from(["PRESSURE_SPIKE_DETECTED", "OVERHEATING"]),
)
def test_a_devices_incident_keys_are_its_own(device, other, fingerprint, error):
    """Whatever fingerprint or error a device sends, its keys never meet another device's, nor a webhook's."""
    assume(device != other)

    def key(dev: str, body: dict) -> str:
        return classify(f"devices/{dev}/alerts", msg(body), THRESHOLDS).incident_key

    mine = {key(device, {"error": error, "fingerprint": fingerprint}), key(device, {"error": error})}
    theirs = {key(other, {"error": error, "fingerprint": fingerprint}), key(other, {"error": error})}
    webhook = Alert(device_id=other, error=error, fingerprint=fingerprint, source="generic").incident_key
    assert not mine & theirs and webhook not in mine


def test_repeats_are_one_incident_by_device_and_error_or_by_fingerprint():
    first = classify("devices/T-101/alerts", msg({"error": "OVERHEATING"}), THRESHOLDS)
    again = classify(
        "devices/T-101/alerts", msg({"error": "OVERHEATING", "message": "still hot"}), THRESHOLDS
    )
    other = classify("devices/T-102/alerts", msg({"error": "OVERHEATING"}), THRESHOLDS)
    assert first.incident_key == again.incident_key != other.incident_key
    by_fp = [
        classify("devices/A/alerts", msg({"error": e, "fingerprint": "fp-1"}), THRESHOLDS) for e in ("X", "Y")
    ]
    assert by_fp[0].incident_key == by_fp[1].incident_key
    elsewhere = classify("devices/B/alerts", msg({"error": "X", "fingerprint": "fp-1"}), THRESHOLDS)
    assert elsewhere.incident_key != by_fp[0].incident_key


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


# -- hostile payloads: every way to fail is a MessageError, never another exception ------------------

BIG = st.integers(min_value=310, max_value=4300).map(lambda digits: "9" * digits)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | BIG.map(int),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
CONF_KEYS = [
    "device_id",
    "error",
    "message",
    "severity",
    "metrics",
    "labels",
    "fingerprint",
    "started_at",
    "status",
    "source",
    "require_approval",
    "dry_run",
    "temperature_c",
]


def nested(depth: int, opener: str) -> bytes:
    return (opener * depth).encode()


HOSTILE = st.one_of(
    st.integers(min_value=65, max_value=60_000).flatmap(
        lambda n: st.sampled_from(
            [nested(n, "["), nested(n, '{"a":'), b'{"error": "E", "labels": ' + nested(n, "[")]
        )
    ),
    BIG.map(lambda n: f'{{"temperature_c": {n}}}'.encode()),
    BIG.map(lambda n: f'{{"error": "E", "metrics": {{"t": {n}}}}}'.encode()),
    BIG.map(lambda n: f'{{"error": {n}}}'.encode()),
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(CONF_KEYS), JSON_VALUES, max_size=6).map(
        lambda d: json.dumps(d).encode()
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=HOSTILE, kind=st.sampled_from(["alerts", "telemetry"]))
def test_hostile_payloads_are_refused_as_messages_never_raise_anything_else(payload, kind):
    try:
        classify(f"devices/T-101/{kind}", payload, THRESHOLDS)
    except MessageError:
        pass


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 50_000, "depth"),
        (b'{"a":' * 65 + b"1" + b"}" * 65, "depth"),
        (b'{"temperature_c": ' + b"9" * 400 + b"}", "telemetry"),
    ],
)
def test_the_reviews_examples_are_refused_with_their_reason(payload, reason):
    kind = "telemetry" if b"temperature" in payload else "alerts"
    with pytest.raises(MessageError) as err:
        classify(f"devices/T-101/{kind}", payload, THRESHOLDS)
    assert err.value.reason == reason
