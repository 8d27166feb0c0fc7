"""The DAG file parses cleanly, fast, without I/O, into exactly the graph docs/architecture.md describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "incident_response.py"

EDGES = {
    "ingest": {"enrich"},
    "enrich": {"ai_summarize"},
    "ai_summarize": {"ai_diagnose"},
    "ai_diagnose": {"analyze_severity"},
    "analyze_severity": {"page_oncall", "automated_containment", "create_ticket", "log_only"},
    "page_oncall": {"approval_needed"},
    "approval_needed": {"request_approval", "execute_fix"},
    "request_approval": {"wait_for_approval"},
    "wait_for_approval": {"approval_decision"},
    "approval_decision": {"execute_fix", "escalate"},
    "execute_fix": {"resolve_incident"},
    "escalate": {"resolve_incident"},
    "automated_containment": {"resolve_incident"},
    "create_ticket": {"diagnostic_report"},
    "diagnostic_report": {"resolve_incident"},
    "log_only": {"resolve_incident"},
    "resolve_incident": {"final_report"},
    "final_report": set(),
}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["incident_response"]


def test_exact_task_graph(dag):
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == EDGES


def test_operators_are_airflows_own_classes(dag):
    # The REST API and the UI show `operator_name`: the steps are exactly Airflow's PythonOperator and
    # BranchPythonOperator (no subclass), and the approval wait is our deferrable sensor.
    from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator

    from incident_ops import tasks
    from incident_ops.sensors.approval import ApprovalSensor

    branches = {"analyze_severity", "approval_needed", "approval_decision"}
    for task in dag.tasks:
        if task.task_id in branches:
            assert type(task) is BranchPythonOperator, task.task_id
        elif task.task_id == "wait_for_approval":
            assert type(task) is ApprovalSensor
            assert task.deferrable
        else:
            assert type(task) is PythonOperator, task.task_id
        if task.task_id != "wait_for_approval":
            # Each task runs the callable of its name, and shows its docstring in the UI.
            assert task.python_callable is getattr(tasks, task.task_id)
            assert task.doc_md and task.doc_md.splitlines()[0] in task.python_callable.__doc__


def test_operator_names_once_serialized(dag):
    # What the REST API's `operator_name` reads is the serialized DAG.
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    names = {task.task_id: task.operator_name for task in serialized.tasks}
    assert names["ai_diagnose"] == "PythonOperator"
    assert names["analyze_severity"] == "BranchPythonOperator"
    assert names["wait_for_approval"] == "ApprovalSensor"
    assert sum(name == "PythonOperator" for name in names.values()) == 14
    assert sum(name == "BranchPythonOperator" for name in names.values()) == 3


def test_joins_run_whichever_branch_was_taken(dag):
    for task_id in ("execute_fix", "resolve_incident", "final_report"):
        assert dag.get_task(task_id).trigger_rule == "none_failed_min_one_success"


def test_every_task_has_explicit_retries_and_a_failure_callback(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_policy is not None, task.task_id
        assert task.on_failure_callback, task.task_id
    ai = dag.get_task("ai_diagnose")
    assert ai.retry_exponential_backoff and ai.max_retry_delay is not None
    assert dag.get_task("execute_fix").retries <= 2  # device actions: few retries, idempotency key


def test_conf_is_declared_as_params_with_help(dag):
    expected = {
        "device_id",
        "error",
        "message",
        "source",
        "severity",
        "metrics",
        "labels",
        "fingerprint",
        "started_at",
        "require_approval",
        "dry_run",
    }
    assert set(dag.params) == expected
    for name in expected:
        param = dag.params.get_param(name)
        assert param.description and param.schema.get("title") and param.schema.get("section"), name
    assert dag.doc_md and "approval" in dag.doc_md.lower()


def test_device_and_error_are_required_without_defaults_once_serialized(dag):
    # What the scheduler and the UI's trigger form read is the serialized DAG, not the DAG object.
    from airflow.sdk.definitions._internal.types import is_arg_set
    from airflow.serialization.serialized_objects import DagSerialization

    params = DagSerialization.from_dict(DagSerialization.to_dict(dag)).params
    for name in ("device_id", "error"):
        param = params.get_param(name)
        assert not is_arg_set(param.value), name
        # The form marks a field required when its type does not admit null and its value is null.
        assert param.dump()["value"] is None and param.schema["type"] == "string", name
        assert param.schema["examples"], name
    for name in set(params) - {"device_id", "error"}:
        assert is_arg_set(params.get_param(name).value), name


def test_params_bound_labels_and_metrics_with_the_alert_limits(dag):
    from include import limits

    labels, metrics = dag.params.get_param("labels").schema, dag.params.get_param("metrics").schema
    assert labels["maxProperties"] == limits.MAX_LABELS
    assert labels["propertyNames"] == {"maxLength": limits.MAX_LABEL_KEY}
    assert labels["additionalProperties"]["maxLength"] == limits.MAX_LABEL_VALUE
    assert metrics["maxProperties"] == limits.MAX_METRICS
    assert metrics["propertyNames"] == {"maxLength": limits.MAX_METRIC_NAME}
    assert dag.params.get_param("message").schema["maxLength"] == limits.MAX_MESSAGE
    assert dag.params.get_param("fingerprint").schema["maxLength"] == limits.MAX_FINGERPRINT
    for name in ("device_id", "error"):
        assert dag.params.get_param(name).schema["maxLength"] == limits.MAX_ID


PROBE = textwrap.dedent(
    """
    import json, socket, sys, time
    # Any Variable, Connection or network access while the file is parsed is a bug: make it raise.
    def refuse(*a, **k):
        raise RuntimeError("I/O at parse time")
    import airflow.sdk
    from airflow.sdk import Variable, Connection
    from airflow.sdk.bases.hook import BaseHook
    Variable.get = staticmethod(refuse)
    Connection.get = classmethod(refuse)
    BaseHook.get_connection = classmethod(refuse)
    socket.socket.connect = refuse
    socket.create_connection = refuse
    from airflow.dag_processing.dagbag import DagBag
    started = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - started
    print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                      "dags": sorted(bag.dag_ids), "seconds": elapsed}))
    """
)


def run_probe(code: str) -> dict:
    """Run `code` on the DAG file in a fresh interpreter; return the JSON it printed last."""
    result = subprocess.run(
        [sys.executable, "-c", code, str(DAG_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_parsing_touches_no_variables_connections_or_network():
    report = run_probe(PROBE)
    assert report["errors"] == {}
    assert report["dags"] == ["incident_response"]


def test_dag_module_imports_nothing_heavy():
    # Beyond what Airflow itself loads, the DAG file pulls in only our thin wiring: no Slack SDK, no
    # HTTP client, no database driver, no store or LLM code until a task runs. (YAML, SQLAlchemy and
    # httpx are loaded by Airflow already, so watching them would prove nothing.)
    probe = (
        "import json, sys, runpy\n"
        "import airflow.sdk\n"
        "heavy = ('slack_sdk', 'requests', 'psycopg2', 'include.store', 'include.llm_output',\n"
        "         'incident_ops.hooks.slack', 'incident_ops.hooks.llm', 'airflow.providers.slack.hooks',\n"
        "         'airflow.providers.http.hooks', 'include.models', 'include.runbooks')\n"
        "before = set(sys.modules)\n"
        "runpy.run_path(sys.argv[1])\n"
        "print(json.dumps({'preloaded': sorted(m for m in before if m.startswith(heavy)),\n"
        "                  'added': sorted(m for m in set(sys.modules) - before if m.startswith(heavy))}))\n"
    )
    report = run_probe(probe)
    assert report["preloaded"] == []  # else the check below could not see them being imported
    assert report["added"] == []


def test_socket_probe_really_refuses():
    # Guard for the probe above: the patched socket must raise, or the test proves nothing.
    code = PROBE.split("from airflow.dag_processing")[0] + "\nsocket.create_connection(('127.0.0.1', 9))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "I/O at parse time" in result.stderr
