"""The IoT intake DAG parses without I/O, is scheduled on the MQTT-watched asset, and starts incidents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dags.test_dag_integrity import PROBE

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "incident_iot_intake.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["incident_iot_intake"]


def test_scheduled_on_the_asset_its_mqtt_trigger_watches(dag):
    from airflow.sdk import Asset

    from incident_ops.triggers.mqtt import MqttAlertTrigger

    [asset] = dag.timetable.asset_condition.objects
    assert isinstance(asset, Asset) and asset.name == "iot_device_alerts"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, MqttAlertTrigger)
    # Its kwargs are a connection id only: no host, no password.
    assert watcher.trigger.serialize()[1] == {"conn_id": "mqtt_default"}


def test_admits_then_starts_incident_response_runs(dag):
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == {
        "admit_alerts": {"start_incidents"},
        "start_incidents": set(),
    }
    start = dag.get_task("start_incidents")
    assert issubclass(start.operator_class, TriggerDagRunOperator)
    assert start.partial_kwargs["trigger_dag_id"] == "incident_response"
    assert start.partial_kwargs["skip_when_already_exists"] is True
    assert dag.get_task("admit_alerts").retries >= 1 and start.partial_kwargs["retries"] >= 1
    assert start.partial_kwargs["on_failure_callback"]  # releases the claim of a run never created


def test_parsing_touches_no_variables_connections_or_network():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(DAG_FILE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == ["incident_iot_intake"]


def test_dag_module_does_not_import_the_mqtt_client():
    # paho and the broker-side code load in the triggerer only, when the subscription starts.
    probe = (
        "import json, sys, runpy\n"
        "runpy.run_path(sys.argv[1])\n"
        "loaded = [m for m in sys.modules if m.startswith(('paho', 'incident_ops.mqtt_client'))]\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(DAG_FILE)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
