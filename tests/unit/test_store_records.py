"""The store hands out typed records, is made of small repositories, and spells states as enums."""

from __future__ import annotations

import ast
from dataclasses import FrozenInstanceError
from datetime import datetime
from pathlib import Path

import pytest

from include.store import AlertRun, Incident, IncidentStore, TimelineEntry
from include.vocabulary import (
    ActionState,
    AlertStatus,
    ApprovalState,
    IncidentState,
    OutboxState,
    Severity,
)
from tests.unit.store_helpers import ALERT, DAG_ID
from tests.unit.store_helpers import incident as _incident

STORE = Path(__file__).resolve().parents[2] / "include" / "store"
MAX_LINES = 450


def test_incidents_are_typed_records(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.incidents.update(incident_id, severity="warning", analysis={"summary": "s"})
    incident = store.incidents.get(incident_id)
    assert isinstance(incident, Incident)
    assert incident.state is IncidentState.OPEN and incident.active
    assert incident.severity is Severity.WARNING
    assert (incident.dag_id, incident.run_id, incident.device_id) == (DAG_ID, run_id, ALERT["device_id"])
    assert incident.analysis == {"summary": "s"} and incident.alert["error"] == ALERT["error"]
    assert incident.created_at.tzinfo is not None and incident.acknowledged_at is None
    with pytest.raises(FrozenInstanceError):
        incident.state = IncidentState.RESOLVED  # type: ignore[misc]
    assert store.incidents.find(dag_ids={DAG_ID}, limit=500).count(incident) == 1


def test_timeline_entries_are_typed(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    store.incidents.acknowledge(incident_id, by="alice")
    opened, acknowledged = store.incidents.timeline(incident_id)
    assert isinstance(opened, TimelineEntry) and isinstance(opened.at, datetime)
    assert (opened.kind, acknowledged.kind, acknowledged.by) == ("opened", "acknowledged", "alice")


def test_alert_runs_are_typed(store: IncidentStore, run_id: str) -> None:
    claim = {"dag_id": DAG_ID, "incident_key": "k" * 16, "source": "grafana", "fingerprint": "f"}
    claim["episode"] = "e"
    assert store.intake.claim_alert_run(run_id=run_id, **claim)
    row = store.intake.get_alert_run(run_id)
    assert isinstance(row, AlertRun) and row.state is AlertStatus.FIRING and not row.resolved
    assert store.intake.resolve_alert_run(run_id, source="grafana")
    assert store.intake.resolved_upstream(run_id)


def test_incident_json_is_the_documents_own_part(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    own = store.incidents.get(incident_id).to_json()
    document = store.incident_document(incident_id)
    assert {key: document[key] for key in own} == own
    assert own["state"] == "open" and type(own["state"]) is str


def test_the_store_is_composed_of_repositories_not_mixins() -> None:
    assert IncidentStore.__mro__ == (IncidentStore, object)
    public = [name for name in vars(IncidentStore) if not name.startswith("_")]
    assert sorted(public) == ["create_schema", "from_url", "incident_document"]


@pytest.mark.parametrize("path", sorted(STORE.glob("*.py")), ids=lambda p: p.name)
def test_store_modules_are_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _state_words() -> set[str]:
    enums = (IncidentState, ApprovalState, AlertStatus, OutboxState, ActionState, Severity)
    return {member.value for enum in enums for member in enum}


@pytest.mark.parametrize("path", sorted(STORE.glob("*.py")), ids=lambda p: p.name)
def test_no_bare_state_or_severity_word_in_the_store(path: Path) -> None:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words = _state_words()
    bare = [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in words and id(node) not in docstrings
    ]
    assert not bare, f"{path.name}: use the vocabulary's enums, not {bare}"
