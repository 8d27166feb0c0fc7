"""The shipped Grafana dashboard and Prometheus rules use only metrics that the endpoint exposes."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from include.metrics import exposition
from include.store import IncidentStore

GRAFANA = Path(__file__).resolve().parents[2] / "include" / "grafana"
METRIC = re.compile(r"\bincident_response_[a-z_]+")


def _exposed(tmp_path: Path) -> set[str]:
    store = IncidentStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    incident = store.incidents.open(
        dag_id="d", run_id="r", incident_key="k", alert={"device_id": "D", "error": "E"}
    )
    store.incidents.update(incident, severity="critical", analysis={"severity": "critical"})
    store.incidents.add_event(incident, "llm_call", {"step": "diagnose", "analyzer": "llm", "latency_ms": 10})
    store.stats.count_webhook_request("grafana", 202)
    record = store.approvals.create(
        incident_id=incident,
        dag_id="d",
        run_id="r",
        action="a",
        risk="high",
        reasons=[],
        quorum=1,
        approvers=None,
        deadline=timedelta(hours=1),
    )
    store.approvals.close(record.id, state="expired")
    families = text_string_to_metric_families(exposition(store).decode())
    return {sample.name for family in families for sample in family.samples}


def test_the_dashboard_queries_exposed_metrics(tmp_path):
    dashboard = json.loads((GRAFANA / "incident_response.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(dashboard["panels"]) >= 8
    assert used and used <= _exposed(tmp_path), used - _exposed(tmp_path)


def test_the_alert_rules_use_exposed_metrics(tmp_path):
    rules = yaml.safe_load((GRAFANA / "alerts.yaml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"IncidentApprovalPastDeadline", "IncidentMTTAHigh"} <= names
    used = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    assert used <= _exposed(tmp_path), used - _exposed(tmp_path)
