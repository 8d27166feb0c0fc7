"""The MQTT trigger and its producer: what a message becomes, what is counted, and when it is acknowledged.

The filter is fed a stream as Airflow's shared-stream manager feeds it; the producer talks to the
machine's Mosquitto (127.0.0.1:1883) on topics and client ids unique to each test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from incident_ops.mqtt_client import Delivery, MqttProducer, SubscriptionStatus
from incident_ops.triggers.mqtt import MqttAlertTrigger

BROKER = ("127.0.0.1", 1883)


def broker_up() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1):
            return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(not broker_up(), reason="no MQTT broker on 127.0.0.1:1883")


class FakeStateStore:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


async def stream(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def collect(trigger: MqttAlertTrigger, *items: Any) -> list[dict[str, Any]]:
    events = [event.payload async for event in trigger.filter_shared_stream(stream(*items))]
    if trigger._health_write is not None:
        await trigger._health_write  # the health is written aside, not in the message path
    return events


def test_alerts_and_breaches_become_events_the_rest_is_counted(caplog):
    trigger = MqttAlertTrigger()
    trigger.asset_state_store = FakeStateStore()
    secret = "s3cret-" + uuid.uuid4().hex
    items = [
        SubscriptionStatus("connected", "new session", "127.0.0.1:1883"),
        Delivery("devices/T-101/telemetry", b'{"temperature_c": 40}'),
        Delivery("devices/T-101/telemetry", b'{"temperature_c": 95}'),
        Delivery("devices/COMP-03/alerts", b'{"error": "OVERHEATING"}'),
        Delivery("devices/COMP-03/alerts", f'{{"error": 1, "message": "{secret}"}}'.encode()),
        Delivery("devices/COMP-03/alerts", b"\x00" * 70000),
        Delivery("devices/COMP-03/whatever", b"{}"),
        SubscriptionStatus("connected", "still", "127.0.0.1:1883"),
    ]
    with caplog.at_level(logging.INFO, logger="incident_ops.triggers.mqtt"):
        events = asyncio.run(collect(trigger, *items))
    assert [(e["alert"]["device_id"], e["alert"]["error"], e["status"]) for e in events] == [
        ("T-101", "TEMPERATURE_HIGH", "firing"),
        ("COMP-03", "OVERHEATING", "firing"),
    ]
    assert events[0]["alert"]["severity"] == "critical" and events[0]["alert"]["source"] == "iot"
    health = trigger.asset_state_store.values["mqtt_subscription"]
    assert health["state"] == "connected" and health["detail"] == "new session"
    assert (health["received"], health["alerts"], health["breaches"], health["within_limits"]) == (6, 1, 1, 1)
    assert health["malformed"] == 3
    assert health["malformed_by_reason"] == {"alert": 1, "oversized": 1, "topic": 1}
    assert secret not in caplog.text and secret not in json.dumps(health)
    assert "Dropped an MQTT message" in caplog.text


def test_a_flood_of_malformed_messages_logs_a_line_a_second_at_most(caplog):
    trigger = MqttAlertTrigger()
    with caplog.at_level(logging.WARNING, logger="incident_ops.triggers.mqtt"):
        asyncio.run(collect(trigger, *[Delivery("devices/X/alerts", b"nope")] * 500))
    assert trigger.health.malformed == 500
    assert 1 <= caplog.text.count("Dropped an MQTT message") <= 3


def test_a_slow_health_report_does_not_hold_up_messages():
    class SlowStore(FakeStateStore):
        async def aset(self, key: str, value: Any) -> None:
            await asyncio.sleep(0.5)
            await super().aset(key, value)

    async def scenario() -> tuple[float, dict]:
        trigger = MqttAlertTrigger()
        trigger.asset_state_store = SlowStore()
        loop = asyncio.get_running_loop()
        started = loop.time()
        items = [SubscriptionStatus("connected"), Delivery("devices/T/alerts", b'{"error": "E"}')]
        async for _ in trigger.filter_shared_stream(stream(*items)):
            elapsed = loop.time() - started
        await trigger._health_write
        return elapsed, trigger.asset_state_store.values

    elapsed, values = asyncio.run(scenario())
    assert elapsed < 0.25 and values["mqtt_subscription"]["state"] == "connected"


def test_the_health_report_failing_does_not_stop_the_intake():
    class BrokenStore:
        async def aset(self, key: str, value: Any) -> None:
            raise RuntimeError("supervisor gone")

    trigger = MqttAlertTrigger()
    trigger.asset_state_store = BrokenStore()
    events = asyncio.run(
        collect(trigger, SubscriptionStatus("connected"), Delivery("devices/T/alerts", b'{"error": "E"}'))
    )
    assert len(events) == 1


def test_kwargs_are_a_connection_id_only():
    assert MqttAlertTrigger(conn_id="plant_broker").serialize() == (
        "incident_ops.triggers.mqtt.MqttAlertTrigger",
        {"conn_id": "plant_broker"},
    )
    assert MqttAlertTrigger().shared_stream_key() == ("incident_ops.mqtt", "mqtt_default")


def test_without_the_connection_the_intake_is_off(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MQTT_DEFAULT", raising=False)

    async def first() -> Any:
        producer = MqttProducer("mqtt_default")
        async for raw, receipt in producer.open_stream():
            await producer.aclose()
            return raw, receipt

    raw, receipt = asyncio.run(first())
    assert raw.state == "off" and "mqtt_default" in raw.detail and receipt is None


# -- against the broker --------------------------------------------------------------------------


@pytest.fixture
def client_id() -> Any:
    """Return a client id of the test's own; its persistent session is discarded afterwards."""
    import subprocess

    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    # A clean connection under the same id ends the session the broker kept for it.
    subprocess.run(["mosquitto_sub", "-i", name, "-t", f"{name}/none", "-E"], timeout=10, check=False)


def connect_env(monkeypatch, prefix: str, client_id: str) -> None:
    extra = {"topics": [f"{prefix}/devices/+/alerts"], "client_id": client_id, "qos": 1}
    conn = {"conn_type": "mqtt", "host": BROKER[0], "port": BROKER[1], "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MQTT_DEFAULT", json.dumps(conn))


async def publish(topic: str, payload: bytes) -> None:
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", BROKER[0], "-p", str(BROKER[1]), "-q", "1", "-t", topic, "-m", payload.decode()
    )
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def next_delivery(producer: MqttProducer, on_connected=None) -> tuple[Delivery, Any]:
    async def read() -> tuple[Delivery, Any]:
        async for raw, receipt in producer.open_stream():
            if isinstance(raw, SubscriptionStatus) and raw.state == "connected" and on_connected:
                await on_connected()
            if isinstance(raw, Delivery):
                return raw, receipt
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(read(), 15)


async def nothing_within(producer: MqttProducer, seconds: float) -> bool:
    async def read() -> None:
        async for raw, _ in producer.open_stream():
            if isinstance(raw, Delivery):
                return

    try:
        await asyncio.wait_for(read(), seconds)
    except TimeoutError:
        return True
    return False


@needs_broker
def test_a_message_is_redelivered_until_it_is_acknowledged(monkeypatch, client_id):
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    connect_env(monkeypatch, prefix, client_id)
    topic = f"{prefix}/devices/T-101/alerts"

    async def scenario() -> None:
        first = MqttProducer("mqtt_default")
        delivery, _ = await next_delivery(first, on_connected=lambda: publish(topic, b'{"error": "E"}'))
        assert delivery == Delivery(topic, b'{"error": "E"}')
        await first.aclose()  # not acknowledged: as if the triggerer stopped before Airflow stored it

        second = MqttProducer("mqtt_default")  # same client id: the broker resumes the session
        again, receipt = await next_delivery(second)
        assert again == delivery
        await second.advance([AdvanceItem(receipt, AdvanceOutcome(acked=1, failed=0))])
        await asyncio.sleep(0.5)  # the PUBACK leaves through paho's network thread
        await second.aclose()

        third = MqttProducer("mqtt_default")
        assert await nothing_within(third, 3.0)
        await third.aclose()

    asyncio.run(scenario())


@needs_broker
def test_a_failed_event_is_not_acknowledged(monkeypatch, client_id):
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    connect_env(monkeypatch, prefix, client_id)
    topic = f"{prefix}/devices/T-101/alerts"

    async def scenario() -> None:
        first = MqttProducer("mqtt_default")
        _, receipt = await next_delivery(first, on_connected=lambda: publish(topic, b'{"error": "E"}'))
        # Airflow could not confirm the event was stored (ack timeout): the broker must redeliver.
        await first.advance([AdvanceItem(receipt, AdvanceOutcome(acked=0, failed=1))])
        await first.aclose()
        second = MqttProducer("mqtt_default")
        again, receipt = await next_delivery(second)
        assert again.topic == topic
        await second.advance([AdvanceItem(receipt, AdvanceOutcome(acked=1, failed=0))])
        await asyncio.sleep(0.5)
        await second.aclose()

    asyncio.run(scenario())


# -- hostile payloads ------------------------------------------------------------------------------

GOOD = Delivery("devices/T-101/alerts", b'{"error": "OVERHEATING"}')
SECRET_MARK = "hostile-" + uuid.uuid4().hex[:8]


def hostile_payloads() -> Any:
    from hypothesis import strategies as st

    big = st.integers(min_value=310, max_value=4300).map(lambda n: "9" * n)
    leaves = (
        st.none() | st.booleans() | st.integers() | st.text(max_size=10) | big.map(int) | st.just(SECRET_MARK)
    )
    values = st.recursive(
        leaves,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=12,
    )
    keys = st.sampled_from(
        ["device_id", "error", "metrics", "labels", "status", "severity", "temperature_c", "x"]
    )
    return st.one_of(
        st.integers(min_value=65, max_value=60_000).map(lambda n: b"[" * n),
        st.integers(min_value=65, max_value=12_000).map(
            lambda n: b'{"error": "E", "labels": ' + b'{"a":' * n
        ),
        big.map(lambda n: f'{{"temperature_c": {n}, "note": "{SECRET_MARK}"}}'.encode()),
        big.map(lambda n: f'{{"error": "E", "message": "{SECRET_MARK}", "metrics": {{"t": {n}}}}}'.encode()),
        st.binary(max_size=200).map(lambda b: b"\xff" + b),
        st.dictionaries(keys, values, max_size=5).map(
            lambda d: json.dumps({**d, "device_id": "PUMP-07B"}).encode()
        ),
    )


def test_hostile_payloads_are_counted_and_the_next_good_message_still_raises_its_event(caplog):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        payloads=st.lists(hostile_payloads(), min_size=1, max_size=8),
        kind=st.sampled_from(["alerts", "telemetry"]),
    )
    def check(payloads: list[bytes], kind: str) -> None:
        trigger = MqttAlertTrigger()
        items = [Delivery(f"devices/T-101/{kind}", p) for p in payloads] + [GOOD]
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            events = asyncio.run(collect(trigger, *items))
        assert [(e["alert"]["device_id"], e["alert"]["error"]) for e in events] == [("T-101", "OVERHEATING")]
        assert trigger.health.malformed == len(payloads) and trigger.health.received == len(payloads) + 1
        assert SECRET_MARK not in caplog.text and SECRET_MARK not in trigger.health.last_problem

    check()


def test_an_unexpected_error_is_counted_as_invalid_without_the_payload(monkeypatch, caplog):
    import include.iot_messages as messages

    def broken(*_: Any) -> Any:
        raise TypeError(f"something odd in {SECRET_MARK}")

    monkeypatch.setattr(messages, "classify", broken)
    trigger = MqttAlertTrigger()
    with caplog.at_level(logging.WARNING):
        asyncio.run(collect(trigger, Delivery("devices/T-101/alerts", SECRET_MARK.encode())))
    assert trigger.health.malformed_by_reason == {"invalid": 1}
    assert SECRET_MARK not in caplog.text and "TypeError" in caplog.text


@needs_broker
def test_hostile_messages_on_the_broker_are_acknowledged_and_the_next_alert_starts_its_incident(
    monkeypatch, client_id, incident_store_url
):
    from incident_ops.tasks import mqtt_alerts

    prefix = f"test-{uuid.uuid4().hex[:10]}"
    extra = {
        "topics": [f"{prefix}/devices/+/alerts", f"{prefix}/devices/+/telemetry"],
        "client_id": client_id,
    }
    conn = {"conn_type": "mqtt", "host": BROKER[0], "port": BROKER[1], "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MQTT_DEFAULT", json.dumps(conn))
    hostile = [
        ("alerts", b"[" * 50_000),
        ("telemetry", b'{"temperature_c": ' + b"9" * 400 + b"}"),
        ("alerts", b'{"error": "E", "metrics": {"t": ' + b"9" * 400 + b"}}"),
        ("alerts", b"\xff\xfe\x00garbage"),
        ("alerts", b'{"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "status": "resolved"}'),
        ("telemetry", b'{"temperature_c": [1, {"a": null}]}'),
    ]

    async def publish_raw(topic: str, payload: bytes) -> None:
        process = await asyncio.create_subprocess_exec(
            "mosquitto_pub",
            "-h",
            BROKER[0],
            "-p",
            str(BROKER[1]),
            "-q",
            "1",
            "-t",
            topic,
            "-s",
            stdin=asyncio.subprocess.PIPE,
        )
        await process.communicate(payload)
        assert await asyncio.wait_for(process.wait(), 10) == 0

    async def scenario() -> tuple[dict, MqttAlertTrigger, list[Delivery]]:
        trigger = MqttAlertTrigger()
        trigger.asset_state_store = FakeStateStore()
        events = trigger.run()

        async def first_alert() -> dict:
            async for event in events:
                return event.payload
            raise AssertionError("the trigger ended")

        reader = asyncio.ensure_future(first_alert())
        deadline = asyncio.get_running_loop().time() + 15
        while trigger.health.state != "connected":  # subscribed: what is published now is ours
            assert asyncio.get_running_loop().time() < deadline, "never connected"
            await asyncio.sleep(0.05)
        for kind, payload in hostile:
            await publish_raw(f"{prefix}/devices/T-101/{kind}", payload)
        await publish_raw(f"{prefix}/devices/T-101/alerts", b'{"error": "OVERHEATING"}')
        payload = await asyncio.wait_for(reader, 15)
        await events.aclose()
        # A new connection under the same session: nothing hostile comes back.
        again = MqttProducer("mqtt_default")
        redelivered: list[Delivery] = []

        async def read() -> None:
            async for raw, _ in again.open_stream():
                if isinstance(raw, Delivery):
                    redelivered.append(raw)

        try:
            await asyncio.wait_for(read(), 3.0)
        except TimeoutError:
            pass
        await again.aclose()
        return payload, trigger, redelivered

    payload, trigger, redelivered = asyncio.run(scenario())
    assert trigger.health.malformed == len(hostile) and trigger.health.alerts == 1
    assert all(d.payload == b'{"error": "OVERHEATING"}' for d in redelivered)
    [start] = mqtt_alerts.admit_alerts(
        {"iot_device_alerts": [type("Event", (), {"id": 1, "extra": {"payload": payload}})()]}
    )
    assert start["conf"]["device_id"] == "T-101" and start["conf"]["error"] == "OVERHEATING"
