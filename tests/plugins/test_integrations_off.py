"""With its integration off, a task never imports the provider behind it (a slow import in every task)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Each of these costs a fresh task process 0.1 to 0.6 s to import (most of it aiohttp).
PROVIDERS = (
    "airflow.providers.http.hooks",
    "airflow.providers.slack.hooks",
    "airflow.providers.pagerduty.hooks",
    "airflow.providers.atlassian.jira.hooks",
    "incident_ops.hooks.http_services",
    "incident_ops.hooks.llm",
    "incident_ops.hooks.slack",
    "incident_ops.hooks.pagerduty",
    "incident_ops.hooks.jira",
    "aiohttp",
    "slack_sdk",
)

PROBE = """
import json, sys
from types import SimpleNamespace

providers = tuple(json.loads(sys.argv[1]))
preloaded = sorted(m for m in sys.modules if m.startswith(providers))
from incident_ops import tasks
from incident_ops.hooks.incident_store import get_store
from include import inventory, names, rules_analyzer
from include.models import Alert

alert = Alert(device_id="PUMP-07B", error="PRESSURE_SPIKE_DETECTED", metrics={"pressure_bar": 9.4})
enrichment = inventory.lookup(alert.device_id)
analysis = rules_analyzer.analyze(alert, enrichment)
xcoms = {names.INGEST: alert.to_xcom(), names.ENRICH: enrichment.to_xcom()}
xcoms[names.DIAGNOSE] = analysis.to_xcom()
ti = SimpleNamespace(xcom_pull=lambda task_ids: xcoms.get(task_ids))
run = SimpleNamespace(dag_id="incident_response", run_id="manual__probe", triggering_user_name="admin")
store = get_store()
incident_id = store.incidents.open(
    dag_id=run.dag_id, run_id=run.run_id, incident_key=alert.incident_key, alert=alert.to_xcom()
)
tasks.enrich(ti=ti, dag_run=run)
xcoms[names.SUMMARIZE] = tasks.ai_summarize(ti=ti, dag_run=run)
tasks.ai_diagnose(ti=ti, dag_run=run)
tasks.page_oncall(ti=ti, dag_run=run)
tasks.automated_containment(ti=ti, dag_run=run, params={"dry_run": False})
tasks.create_ticket(ti=ti, dag_run=run)
outbox = [m["state"] for m in store.outbox.for_incident(incident_id)]
imported = sorted(m for m in sys.modules if m.startswith(providers))
print(json.dumps({"preloaded": preloaded, "imported": imported, "outbox": outbox}))
"""


def test_tasks_with_every_integration_off_import_no_provider(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW_CONN_INCIDENT_STORE=json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "store.db")}),
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "plugins")]),
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(PROVIDERS)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["preloaded"] == [], report  # else the check below could not see them being imported
    assert report["imported"] == [], report["imported"]
    # The work was done all the same: the page and the ticket notice wait in the outbox.
    assert report["outbox"] and set(report["outbox"]) == {"pending"}
