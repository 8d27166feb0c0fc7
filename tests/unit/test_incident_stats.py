"""The aggregates behind the incident list and the metrics, in SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.incident_stats import DURATION_BUCKETS, LATENCY_BUCKETS, daily_series, human_duration, merged
from include.store import IncidentStore
from include.store.schema import incidents
from tests.postgres import throwaway_database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IncidentStore]:
    """Return an empty store: a SQLite file, or a throw-away PostgreSQL database of its own."""
    if request.param == "sqlite":
        opened = IncidentStore.from_url(f"sqlite:///{tmp_path / 'stats.db'}")
        yield opened
        opened.engine.dispose()
        return
    with throwaway_database("ir_stats") as url:
        opened = IncidentStore.from_url(url)
        try:
            yield opened
        finally:
            opened.engine.dispose()


def _incident(
    store, n: int, *, severity="critical", source="api", opened=NOW, ack=None, resolved=None
) -> str:
    """Write an incident row with known times (as the lifecycle would have, at those moments).

    The rows are written by hand, so the running totals are counted again from them afterwards.
    """
    incident_id = store.incidents.open(
        dag_id="incident_response",
        run_id=f"run-{n}",
        incident_key=f"key-{n}",
        alert={"device_id": f"D-{n}", "error": "E", "source": source},
    )
    state = "resolved" if resolved is not None else ("acknowledged" if ack is not None else "open")
    values = {
        "severity": severity,
        "analysis": {"severity": severity} if severity else None,
        "state": state,
        "created_at": opened,
        "acknowledged_at": opened + timedelta(seconds=ack) if ack is not None else None,
        "resolved_at": opened + timedelta(seconds=resolved) if resolved is not None else None,
    }
    with store.engine.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))
    store.stats.recount_totals()
    return incident_id


def test_recounted_durations_are_bucketed_and_summed_in_sql(store):
    _incident(store, 1, ack=30, resolved=600)
    _incident(store, 2, ack=300, resolved=3600)  # on a bucket's bound: counted in it (le)
    _incident(store, 3, ack=7200)
    _incident(store, 4)

    ack = store.stats.time_to_acknowledge()
    resolve = store.stats.time_to_resolve()

    assert ack.count == 3 and ack.total == pytest.approx(7530, abs=0.01)
    assert dict(zip(DURATION_BUCKETS, ack.cumulative, strict=True))[60] == 1
    assert dict(zip(DURATION_BUCKETS, ack.cumulative, strict=True))[300] == 2
    assert dict(zip(DURATION_BUCKETS, ack.cumulative, strict=True))[3600] == 2
    assert dict(zip(DURATION_BUCKETS, ack.cumulative, strict=True))[7200] == 3
    assert ack.buckets()[-1] == ("+Inf", 3)
    assert resolve.count == 2 and resolve.mean == pytest.approx(2100, abs=0.01)


def test_counts_by_label_state_and_window(store):
    _incident(store, 1, severity="critical", source="grafana", resolved=60)
    _incident(store, 2, severity="warning", source="grafana", opened=NOW - timedelta(days=3), ack=120)
    _incident(store, 3, severity=None, source="api", opened=NOW - timedelta(days=10))

    # Not diagnosed yet, the third is not counted: a counter series must never go down.
    assert store.stats.incident_totals() == {("critical", "grafana"): 1, ("warning", "grafana"): 1}
    assert store.stats.open_incident_counts() == {"warning": 1, "unknown": 1}
    assert store.stats.state_counts() == {"open": 1, "acknowledged": 1, "resolved": 1}
    assert store.stats.state_counts(dag_ids=set()) == {"open": 0, "acknowledged": 0, "resolved": 0}

    day = store.stats.window_stats("24 h", NOW - timedelta(hours=24))
    week = store.stats.window_stats("7 d", NOW - timedelta(days=7))
    assert (day.opened, day.resolved, day.mttr_seconds, day.mtta_seconds) == (1, 1, pytest.approx(60), None)
    assert (week.opened, week.acknowledged, week.mtta_seconds) == (2, 1, pytest.approx(120))

    rows = store.stats.daily_counts(NOW - timedelta(days=7))
    series = daily_series(rows, days=7, today=NOW.date())
    assert [d.total for d in series] == [0, 0, 0, 1, 0, 0, 1]
    assert series[3].day == date(2026, 2, 27) and series[3].by_severity == {"warning": 1}


def test_list_is_newest_first_and_filtered(store):
    old = _incident(store, 1, opened=NOW - timedelta(hours=2), resolved=10)
    new = _incident(store, 2, opened=NOW - timedelta(hours=1), severity="warning")

    assert [r.id for r in store.incidents.find()] == [new, old]
    assert [r.id for r in store.incidents.find(states=("resolved",))] == [old]
    assert [r.id for r in store.incidents.find(severity="warning")] == [new]
    assert [r.id for r in store.incidents.find(states=("open", "resolved"), limit=1)] == [new]
    assert store.incidents.find(dag_ids={"another_dag"}) == []
    assert store.incidents.find()[0].created_at.tzinfo is not None
    assert store.stats.incident_dag_ids() == {"incident_response"}


def test_approvals_model_calls_and_webhook_counts(store):
    incident_id = _incident(store, 1)
    for n, deadline in enumerate((timedelta(hours=1), timedelta(seconds=-1), timedelta(hours=1))):
        store.approvals.create(
            incident_id=incident_id,
            dag_id="incident_response",
            run_id=f"run-{n}",
            action=f"act{n}",
            risk="high",
            reasons=[],
            quorum=1,
            approvers=None,
            deadline=deadline,
        )
    store.approvals.close(store.approvals.find(run_id="run-2")[0].id, state="cancelled")
    store.incidents.add_event(
        incident_id, "llm_call", {"step": "report", "analyzer": "llm", "latency_ms": 250}
    )
    store.incidents.add_event(
        incident_id, "llm_call", {"step": "report", "analyzer": "rules", "latency_ms": 70000}
    )
    store.incidents.add_event(incident_id, "diagnosed", {"latency_ms": 5})  # not an AI step record
    for status in (202, 202, 401):
        store.stats.count_webhook_request("alertmanager", status)

    assert store.stats.pending_approval_counts() == (2, 1)
    assert store.stats.approval_outcomes() == {"cancelled": 1}
    assert {k: h.count for k, h in store.stats.model_calls().items()} == {
        ("report", "answered"): 1,
        ("report", "fallback"): 1,
    }
    latency = merged(list(store.stats.model_calls().values()), LATENCY_BUCKETS)
    assert latency.count == 2 and latency.total == pytest.approx(70.25)
    assert latency.cumulative[0] == 1 and latency.cumulative[-1] == 2
    assert store.stats.webhook_request_counts() == {("alertmanager", "202"): 2, ("alertmanager", "401"): 1}


def test_the_counter_table_is_created_in_an_older_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    IncidentStore(engine).create_schema()
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ir_webhook_requests"))
    store = IncidentStore.from_url(url)
    store.stats.count_webhook_request("grafana", 202)
    assert store.stats.webhook_request_counts() == {("grafana", "202"): 1}


def _totals(store) -> dict:
    """Return every total a scrape reads, as comparable values (sums to within 0.05 s)."""

    def shape(histogram):
        # A recount on SQLite rounds each duration to the millisecond: sums agree to a few ms.
        return histogram.cumulative, histogram.count, pytest.approx(histogram.total, abs=0.05)

    return {
        "incidents": store.stats.incident_totals(),
        "approvals": store.stats.approval_outcomes(),
        "ack": shape(store.stats.time_to_acknowledge()),
        "resolve": shape(store.stats.time_to_resolve()),
        "model": {key: shape(h) for key, h in store.stats.model_calls().items()},
    }


def _live_incident(store, n: int, *, severity: str, source: str = "api") -> str:
    incident_id = store.incidents.open(
        dag_id="incident_response",
        run_id=f"live-{n}",
        incident_key=f"live-{n}",
        alert={"device_id": f"D-{n}", "error": "E", "source": source, "severity": "info"},
    )
    store.incidents.update(incident_id, severity=severity, analysis={"severity": severity})
    return incident_id


def test_the_workflow_raises_the_totals_that_a_recount_finds(store):
    first = _live_incident(store, 1, severity="critical", source="grafana")
    second = _live_incident(store, 2, severity="warning")
    # A retried diagnosis counts the incident once, under the severity the diagnosis found.
    store.incidents.update(first, severity="critical", analysis={"severity": "critical"})
    store.incidents.acknowledge(first, by="alice")
    store.incidents.acknowledge(first, by="bob")  # not open any more: not counted again
    store.incidents.resolve(first, outcome="fixed")
    store.incidents.resolve(first, outcome="fixed")
    store.incidents.resolve(second, outcome="escalated")
    for detail in (
        {"step": "diagnose", "analyzer": "llm", "latency_ms": 1200},
        {"step": "diagnose", "analyzer": "rules", "latency_ms": 61000},
        {"step": "report", "analyzer": "llm"},
    ):
        store.incidents.add_event(second, "llm_call", detail)
    record = store.approvals.create(
        incident_id=first,
        dag_id="incident_response",
        run_id="live-1",
        action="restart",
        risk="high",
        reasons=[],
        quorum=1,
        approvers=None,
        deadline=timedelta(hours=1),
    )
    store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve", role="user")
    store.approvals.close(record.id, state="expired")  # decided already: stays approved

    raised = _totals(store)
    assert raised["incidents"] == {("critical", "grafana"): 1, ("warning", "api"): 1}
    assert raised["approvals"] == {"approved": 1}
    assert raised["ack"][1] == 1 and raised["resolve"][1] == 2
    assert {key: value[1] for key, value in raised["model"].items()} == {
        ("diagnose", "answered"): 1,
        ("diagnose", "fallback"): 1,
        ("report", "answered"): 1,
    }
    store.stats.recount_totals()
    assert _totals(store) == raised


def test_an_older_store_gets_its_totals_counted_once_when_opened(store, tmp_path):
    _incident(store, 1, ack=30, resolved=600)
    _incident(store, 2, severity="warning", resolved=90)
    counted = _totals(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE ir_metric_totals"))
        conn.execute(sa.text("DROP INDEX ix_ir_incidents_created_at"))
    url = store.engine.url.render_as_string(hide_password=False)

    reopened = IncidentStore.from_url(url)
    again = IncidentStore.from_url(url)  # a second api-server process: counts nothing twice

    assert _totals(reopened) == _totals(again) == counted
    assert counted["incidents"] == {("critical", "api"): 1, ("warning", "api"): 1}
    indexes = {index["name"] for index in sa.inspect(reopened.engine).get_indexes("ir_incidents")}
    assert "ix_ir_incidents_created_at" in indexes
    reopened.engine.dispose(), again.engine.dispose()


def test_concurrent_writers_lose_no_count(store):
    ids = [_live_incident(store, n, severity="critical") for n in range(24)]

    def lifecycle(incident_id: str) -> None:
        store.incidents.acknowledge(incident_id, by="alice")
        store.incidents.add_event(
            incident_id, "llm_call", {"step": "diagnose", "analyzer": "llm", "latency_ms": 300}
        )
        store.incidents.resolve(incident_id, outcome="fixed")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lifecycle, ids))

    raised = _totals(store)
    assert raised["incidents"] == {("critical", "api"): 24}
    assert raised["ack"][1] == raised["resolve"][1] == 24
    assert raised["model"][("diagnose", "answered")][1] == 24
    store.stats.recount_totals()
    assert _totals(store) == raised


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "n/a"), (0.4, "0 s"), (59, "59 s"), (90, "1.5 min"), (5400, "1.5 h")]
)
def test_durations_read_well(seconds, text):
    assert human_duration(seconds) == text
