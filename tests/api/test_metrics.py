"""GET /incident-response/metrics: the bearer token, and the store's values as Prometheus parses them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import PREFIX, make_record

TOKEN = "metrics-token-0123456789abcdef"
URL = f"{PREFIX}/metrics"


@pytest.fixture
def with_token(monkeypatch):
    monkeypatch.setenv("INCIDENT_METRICS_TOKEN", TOKEN)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """Return every sample of the exposition as {(name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_without_a_configured_token_the_endpoint_is_503(client, monkeypatch):
    monkeypatch.delenv("INCIDENT_METRICS_TOKEN", raising=False)
    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503 and "incident_metrics" in response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
def test_without_the_token_the_endpoint_is_401(client, with_token, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(URL, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "incident_response_" not in response.text


def test_the_connection_password_is_the_token(client, monkeypatch):
    monkeypatch.delenv("INCIDENT_METRICS_TOKEN", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_INCIDENT_METRICS", '{"conn_type": "generic", "password": "from-the-connection"}'
    )
    assert client.get(URL, headers={"Authorization": "Bearer from-the-connection"}).status_code == 200
    assert client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_a_scrape_reports_what_the_store_holds(client, store, with_token, monkeypatch):
    monkeypatch.setenv("INCIDENT_WEBHOOK_TOKEN", "webhook-token-0123456789")
    # Two critical incidents from the API, one resolved after an approval; one warning from Grafana.
    first = make_record(store)
    store.approvals.cast_vote(first.id, identity="alice", channel="web", decision="approve", comment=None)
    store.incidents.acknowledge(first.incident_id, by="alice")
    store.incidents.resolve(first.incident_id, outcome="fixed")
    make_record(store, deadline=timedelta(seconds=-5))  # pending, and past its deadline
    grafana = store.incidents.open(
        dag_id="incident_response",
        run_id="manual__grafana",
        incident_key="k-grafana",
        alert={"device_id": "VALVE-2", "error": "LEAK", "source": "grafana"},
    )
    # Diagnosed twice (a retried task): counted once.
    store.incidents.update(grafana, severity="warning", analysis={"severity": "warning"})
    store.incidents.update(grafana, severity="warning", analysis={"severity": "warning"})
    store.incidents.add_event(
        grafana, "llm_call", {"step": "diagnose", "analyzer": "llm", "latency_ms": 1500}
    )
    store.incidents.add_event(
        grafana, "llm_call", {"step": "diagnose", "analyzer": "rules", "latency_ms": 30000}
    )
    store.incidents.add_event(
        grafana, "llm_call", {"step": "summarize", "analyzer": "llm", "latency_ms": 400}
    )
    # Webhook requests are counted by the route itself: one refused, one unknown source.
    assert client.post(f"{PREFIX}/api/alerts/grafana", json={}).status_code == 401
    assert client.post(f"{PREFIX}/api/alerts/nagios", json={}).status_code == 404

    response = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("incident_response_incidents_total", severity="critical", source="api") == 2
    assert value("incident_response_incidents_total", severity="warning", source="grafana") == 1
    assert value("incident_response_open_incidents", severity="critical") == 1
    assert value("incident_response_open_incidents", severity="warning") == 1
    assert value("incident_response_open_incidents", severity="info") == 0
    assert value("incident_response_pending_approvals") == 1
    assert value("incident_response_pending_approvals_past_deadline") == 1
    assert value("incident_response_approvals_total", outcome="approved") == 1
    assert value("incident_response_time_to_acknowledge_seconds_count") == 1
    assert value("incident_response_time_to_resolve_seconds_count") == 1
    assert value("incident_response_time_to_resolve_seconds_bucket", le="60.0") == 1
    expected_mttr = store.incident_document(first.incident_id)["time_to_resolve_seconds"]
    assert value("incident_response_time_to_resolve_seconds_sum") == pytest.approx(expected_mttr, abs=0.05)
    assert value("incident_response_model_calls_total", step="diagnose", outcome="answered") == 1
    assert value("incident_response_model_calls_total", step="diagnose", outcome="fallback") == 1
    assert value("incident_response_model_latency_seconds_bucket", step="diagnose", le="2.0") == 1
    assert value("incident_response_model_latency_seconds_bucket", step="diagnose", le="+Inf") == 2
    assert value("incident_response_model_latency_seconds_sum", step="diagnose") == pytest.approx(31.5)
    assert value("incident_response_webhook_requests_total", source="grafana", status="401") == 1
    assert value("incident_response_webhook_requests_total", source="other", status="404") == 1

    # The values are the store's: a second scrape (another process, or after a restart) reads the same.
    assert _samples(client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"}).text) == samples
