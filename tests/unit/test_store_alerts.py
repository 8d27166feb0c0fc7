"""The alerts repository on SQLite and PostgreSQL: one row per (source, fingerprint), first and last seen."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.store import AlertRecord, IncidentStore, NotFound
from include.store.schema import metadata
from include.vocabulary import AlertStatus
from tests.unit.store_helpers import incident as _incident
from tests.unit.store_helpers import race

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _fingerprint() -> str:
    return f"fp-{uuid.uuid4().hex[:12]}"


def _record(store: IncidentStore, fingerprint: str, **overrides) -> AlertRecord:
    values = {"source": "alertmanager", "device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"}
    return store.alerts.record(fingerprint=fingerprint, **{**values, **overrides})


def test_an_alert_is_recorded_once_then_seen_again_and_resolved(store: IncidentStore) -> None:
    fp = _fingerprint()
    first = _record(store, fp, at=T0)
    assert isinstance(first, AlertRecord)
    assert (first.status, first.first_seen, first.last_seen) == (AlertStatus.FIRING, T0, T0)

    again = _record(store, fp, at=T0 + timedelta(minutes=5))
    assert again.id == first.id
    assert (again.first_seen, again.last_seen) == (T0, T0 + timedelta(minutes=5))

    resolved = _record(store, fp, status=AlertStatus.RESOLVED, at=T0 + timedelta(minutes=9))
    assert (resolved.id, resolved.status, resolved.firing) == (first.id, AlertStatus.RESOLVED, False)
    assert store.alerts.get(source="alertmanager", fingerprint=fp) == resolved


def test_a_late_older_notification_changes_nothing(store: IncidentStore) -> None:
    fp = _fingerprint()
    _record(store, fp, at=T0)
    _record(store, fp, status="resolved", at=T0 + timedelta(minutes=10))
    late = _record(store, fp, status="firing", at=T0 + timedelta(minutes=3))
    assert (late.status, late.last_seen) == (AlertStatus.RESOLVED, T0 + timedelta(minutes=10))


def test_the_same_fingerprint_from_two_senders_is_two_alerts(store: IncidentStore) -> None:
    fp = _fingerprint()
    mine, theirs = _record(store, fp), _record(store, fp, source="grafana")
    assert mine.id != theirs.id
    assert {a.source for a in store.alerts.by_fingerprint(fp)} == {"alertmanager", "grafana"}


def test_alerts_are_listed_by_incident_and_by_device(store: IncidentStore, run_id: str) -> None:
    incident_id = _incident(store, run_id)
    device = f"PUMP-{uuid.uuid4().hex[:6]}"
    one = _record(store, _fingerprint(), device_id=device, at=T0)
    two = _record(store, _fingerprint(), device_id=device, incident_id=incident_id, at=T0 + timedelta(1))
    # The incident is set by the first notification that names one, and kept by later ones.
    one = _record(store, one.fingerprint, device_id=device, incident_id=incident_id, at=T0 + timedelta(2))
    _record(store, one.fingerprint, device_id=device, incident_id="inc-other", at=T0 + timedelta(3))
    assert [a.id for a in store.alerts.for_incident(incident_id)] == [one.id, two.id]
    assert [a.id for a in store.alerts.for_device(device)] == [one.id, two.id]
    _record(store, two.fingerprint, device_id=device, status="resolved", at=T0 + timedelta(4))
    assert [a.id for a in store.alerts.for_device(device, status=AlertStatus.FIRING)] == [one.id]


def test_grouping_attaches_an_alert_to_another_incident(store: IncidentStore, run_id: str) -> None:
    fp = _fingerprint()
    _record(store, fp, incident_id="inc-first")
    attached = store.alerts.attach(source="alertmanager", fingerprint=fp, incident_id="inc-group")
    assert attached.incident_id == "inc-group"
    with pytest.raises(NotFound):
        store.alerts.attach(source="alertmanager", fingerprint=_fingerprint(), incident_id="inc-group")


def test_concurrent_first_notifications_make_one_row(store: IncidentStore) -> None:
    fp = _fingerprint()
    results, errors = race(8, lambda i: _record(store, fp, at=T0 + timedelta(seconds=i)))
    assert not errors
    assert len({r.id for r in results}) == 1
    [row] = store.alerts.by_fingerprint(fp)
    assert row.first_seen <= row.last_seen


def test_a_store_made_before_the_alerts_table_gets_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    older = [table for name, table in metadata.tables.items() if name != "ir_alerts"]
    metadata.create_all(engine, tables=older)
    assert "ir_alerts" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    store = IncidentStore.from_url(url)
    try:
        assert _record(store, _fingerprint()).status is AlertStatus.FIRING
        indexes = {index["name"] for index in sa.inspect(store.engine).get_indexes("ir_alerts")}
        assert {"ix_ir_alerts_device_id", "ix_ir_alerts_fingerprint"} <= indexes
    finally:
        store.engine.dispose()
