"""Smaller hardening: deeply nested Slack payloads, inventory path segments, MQTT passwords in the clear."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlencode

import pytest

from tests.api.helpers import PREFIX, signed

URL = f"{PREFIX}/slack/interactions"


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_a_deeply_nested_signed_slack_payload_is_refused_not_a_500(client, depth):
    body = urlencode({"payload": '{"a":' * depth + "1" + "}" * depth}).encode()
    body, headers = signed(body=body)
    response = client.post(URL, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("device_id", [".", ".."])
def test_dot_segment_device_ids_never_reach_another_inventory_path(device_id, monkeypatch):
    from incident_ops.hooks.http_services import InventoryHook

    asked: list[str] = []
    hook = InventoryHook()
    monkeypatch.setattr(hook, "run", lambda endpoint, **_: asked.append(endpoint))
    assert hook.lookup(device_id) is None and asked == []


def test_device_ids_are_one_encoded_path_segment(monkeypatch):
    from incident_ops.hooks.http_services import InventoryHook

    asked: list[str] = []

    class Answer:
        status_code = 404

    hook = InventoryHook()
    monkeypatch.setattr(hook, "run", lambda endpoint, **_: asked.append(endpoint) or Answer())
    for device_id in ("../admin", "a/b", "%2e%2e", "?x=1", "#frag"):
        hook.lookup(device_id)
    assert all(e.count("/") == 2 and e.startswith("/devices/") for e in asked), asked


@pytest.mark.parametrize(("tls", "warned"), [(False, True), (True, False)])
def test_a_password_sent_without_tls_is_warned_about(monkeypatch, caplog, tls, warned):
    from incident_ops.mqtt_client import MqttProducer

    # A port nobody listens on: the connection fails, but the client is configured (and warns) first.
    conn = {
        "conn_type": "mqtt",
        "host": "127.0.0.1",
        "port": 9,
        "login": "airflow",
        "password": "pw-1234",
        "extra": {"tls": tls, "client_id": "test-tls-warning"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MQTT_DEFAULT", json.dumps(conn))

    async def first_status() -> None:
        producer = MqttProducer("mqtt_default")
        async for _raw, _ in producer.open_stream():
            break
        await producer.aclose()

    with caplog.at_level(logging.WARNING, logger="incident_ops.mqtt_client"):
        asyncio.run(asyncio.wait_for(first_status(), 15))
    assert ("without TLS" in caplog.text) is warned
    assert "pw-1234" not in caplog.text
