"""The incident JSON API and `log_only` redact the model's summary, as the pages do."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from include import names
from tests.api.helpers import PREFIX, bearer, make_record

API = f"{PREFIX}/api/incidents"

# Secrets as an alert message (and so a summary quoting it) carries them: (the text, the secret part).
SUMMARIES = {
    "key=value": ("Login failed: password=hunter2secret on PUMP-07B", "hunter2secret"),
    "url credentials": ("Cannot reach postgres://app:S3cretPw9@db:5432/plant", "S3cretPw9"),
    "bearer token": ("Upstream 401 for Bearer abcDEF1234567890xyz", "abcDEF1234567890xyz"),
    "slack token": ("Bot xoxb-1234567890-abcdefghijkl rejected", "xoxb-1234567890-abcdefghijkl"),
    "e-mail": ("Escalate to oncall.lead@example.com now", "oncall.lead@example.com"),
}


@pytest.mark.parametrize("name", list(SUMMARIES))
def test_the_incident_api_returns_the_summary_redacted(client, store, tokens, name):
    text, secret = SUMMARIES[name]
    record = make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}", analysis={"summary": text})
    assert secret in store.incident_document(record.incident_id)["analysis"]["summary"]  # kept as sent

    viewer, responder = bearer(tokens["victor"]), bearer(tokens["alice"])
    one = client.get(f"{API}/{record.incident_id}", headers=viewer)
    listed = client.get(API, headers=viewer)
    acted = client.post(f"{API}/{record.incident_id}/acknowledge", headers=responder)
    for response in (one, listed, acted):
        assert response.status_code == 200, response.text
        assert secret not in response.text
    assert "[REDACTED:" in one.json()["analysis"]["summary"]


@pytest.mark.parametrize("name", list(SUMMARIES))
def test_log_only_writes_the_summary_redacted(store, caplog, name):
    from incident_ops import tasks
    from include import inventory, rules_analyzer
    from include.models import Alert

    text, secret = SUMMARIES[name]
    alert = Alert(device_id="SENSOR-01", error="TEMP_DRIFT", metrics={"temperature_c": 41.0})
    enrichment = inventory.lookup(alert.device_id)
    analysis = rules_analyzer.analyze(alert, enrichment).model_copy(update={"summary": text})
    xcoms = {
        names.INGEST: alert.to_xcom(),
        names.ENRICH: enrichment.to_xcom(),
        names.DIAGNOSE: analysis.to_xcom(),
    }
    ti = SimpleNamespace(xcom_pull=lambda task_ids: xcoms.get(task_ids))
    run = SimpleNamespace(dag_id=names.DAG_ID, run_id=f"manual__{uuid.uuid4().hex[:8]}")
    store.incidents.open(
        dag_id=run.dag_id, run_id=run.run_id, incident_key=alert.incident_key, alert=alert.to_xcom()
    )

    with caplog.at_level(logging.INFO, logger="incident_ops.tasks.noncritical"):
        assert tasks.log_only(ti=ti, dag_run=run) == {"logged": True}
    assert "Informational:" in caplog.text and "[REDACTED:" in caplog.text
    assert secret not in caplog.text
