"""Alert intake behind the webhooks: ingest's duplicate checks, the intake tables on SQLite and
PostgreSQL, the normaliser directly, and fuzzing of every sender (no input is ever a 5xx).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.alert_sources import (
    PayloadError,
    incident_key_for_fingerprint,
    normalise,
    run_id_for,
)
from include.store import incident_id_for
from tests.api.fixtures import load
from tests.api.webhooks import ALERTS, DAG_ID, TOKEN, airflow_run, post, run_count  # noqa: F401
from tests.factories import alert_run_count
from tests.postgres import throwaway_database

# -- ingest: one incident per fingerprint whatever the entry point --------------------------------


def _dag_run(run_id: str | None = None):
    return SimpleNamespace(dag_id=DAG_ID, run_id=run_id or f"manual__{uuid.uuid4().hex[:8]}")


def test_ingest_ends_a_repeat_of_an_open_incident_as_a_duplicate(store):
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    first = ingest(params=conf, dag_run=_dag_run())
    assert first["fingerprint"] == conf["fingerprint"]
    open_one = store.intake.active_alert_run(incident_key_for_fingerprint(conf["fingerprint"]), dag_id=DAG_ID)
    with pytest.raises(AirflowSkipException, match="duplicate of open incident"):
        ingest(params=conf, dag_run=_dag_run())
    original = incident_id_for(DAG_ID, open_one.run_id)
    assert "duplicate" in [e.kind for e in store.incidents.timeline(original)]
    # Once the first incident is resolved, the same fingerprint is a new incident again.
    store.incidents.resolve(original, outcome="fixed")
    assert ingest(params=conf, dag_run=_dag_run())["device_id"] == "PUMP-07B"


def test_ingest_retries_keep_their_own_incident(store):
    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    run = _dag_run()
    first = ingest(params=conf, dag_run=run)
    # A retried attempt of the same run is not a duplicate of itself: it goes on with the same alert.
    again = ingest(params=conf, dag_run=run)
    assert again == first
    incident_id = incident_id_for(DAG_ID, run.run_id)
    kinds = [e.kind for e in store.incidents.timeline(incident_id)]
    assert kinds.count("opened") == 1 and "duplicate" not in kinds
    assert store.incidents.get(incident_id).state == "open"


def test_concurrent_ingests_of_one_fingerprint_open_one_incident(store):
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def one() -> None:
        barrier.wait(timeout=30)
        try:
            ingest(params=conf, dag_run=_dag_run())
            outcomes.append("opened")
        except AirflowSkipException:
            outcomes.append("duplicate")
        except BaseException as exc:
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["duplicate"] * 7 + ["opened"]


def test_ingest_skips_an_alert_resolved_before_the_run_started(store):
    from airflow.sdk.exceptions import AirflowSkipException

    from incident_ops.tasks import ingest

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    key = incident_key_for_fingerprint(conf["fingerprint"])
    run_id = run_id_for("alertmanager", key, "2024-05-01T10:00:00+00:00")
    store.intake.claim_alert_run(
        run_id=run_id,
        dag_id=DAG_ID,
        incident_key=key,
        source="alertmanager",
        fingerprint=conf["fingerprint"],
        episode="2024-05-01T10:00:00+00:00",
    )
    store.intake.resolve_alert_run(run_id, source="alertmanager")
    with pytest.raises(AirflowSkipException, match="resolved before"):
        ingest(params=conf, dag_run=_dag_run(run_id))
    incident = store.incidents.get(incident_id_for(DAG_ID, run_id))
    assert (incident.state, incident.outcome) == ("resolved", "resolved_upstream")


def test_a_duplicate_run_skips_everything_and_succeeds_on_dag_test(airflow_db, store):
    from airflow.dag_processing.dagbag import DagBag

    conf = {
        "device_id": "PUMP-07B",
        "error": "PRESSURE_SPIKE_DETECTED",
        "fingerprint": "fp-" + uuid.uuid4().hex,
    }
    key = incident_key_for_fingerprint(conf["fingerprint"])
    store.incidents.open(dag_id=DAG_ID, run_id="alert__earlier", incident_key=key, alert=conf)
    dag = DagBag().dags[DAG_ID]
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success"
    assert states["ingest"] == "skipped" and set(states.values()) == {"skipped"}
    assert not store.outbox.for_incident(incident_id_for(DAG_ID, "alert__earlier"))  # nobody was paged
    assert [
        e.detail["run_id"]
        for e in store.incidents.timeline(incident_id_for(DAG_ID, "alert__earlier"))
        if e.kind == "duplicate"
    ] == [dag_run.run_id]


# -- the intake tables on both store backends -----------------------------------------------------


@pytest.fixture(scope="module")
def postgres_database():
    """Create a throw-away PostgreSQL database for this module (skipped when no server runs)."""
    with throwaway_database("ir_webhook") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Return an incident store on SQLite or PostgreSQL."""
    from include.store import IncidentStore

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    opened = IncidentStore.from_url(url)
    yield opened
    opened.engine.dispose()


def _together(count: int, work) -> list:
    """Run `work()` in `count` threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list = []

    def one() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(work())
        except BaseException as exc:  # returned for the test to see
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_claims_of_one_run_id_have_one_winner(backend):
    claim = {
        "dag_id": DAG_ID,
        "incident_key": "k1",
        "source": "alertmanager",
        "fingerprint": "f",
        "episode": "e",
    }
    results = _together(10, lambda: backend.intake.claim_alert_run(run_id="alert__x__1", **claim))
    assert sorted(results) == [False] * 9 + [True]
    assert backend.intake.active_alert_run("k1", dag_id=DAG_ID).run_id == "alert__x__1"


def test_concurrent_openings_of_one_key_open_one_incident(backend):
    alert = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api"}
    results = _together(
        10,
        lambda: backend.intake.open_incident_unless_duplicate(
            dag_id=DAG_ID, run_id=f"manual__{uuid.uuid4().hex[:8]}", incident_key="k2", alert=alert
        ),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    opened = [r for r in results if r[1] is None]
    assert len(opened) == 1
    assert {r[1] for r in results if r[1] is not None} == {opened[0][0]}


def test_the_intake_lifecycle(backend):
    key, run_id = f"k3-{uuid.uuid4().hex[:6]}", f"alert__pd__{uuid.uuid4().hex[:6]}"
    before = alert_run_count(backend)
    claim = {"dag_id": DAG_ID, "incident_key": key, "source": "pagerduty", "fingerprint": "f"}
    assert backend.intake.alert_generation(key, dag_id=DAG_ID) == 0
    assert backend.intake.claim_alert_run(run_id=run_id, episode="gen:0", **claim)
    assert backend.intake.alert_generation(key, dag_id=DAG_ID) == 1
    # Not opened yet, then open: active either way.
    assert backend.intake.active_alert_run(key, dag_id=DAG_ID).run_id == run_id
    incident = backend.incidents.open(
        dag_id=DAG_ID, run_id=run_id, incident_key=key, alert={"device_id": "D", "error": "E"}
    )
    assert backend.intake.active_alert_run(key, dag_id=DAG_ID).run_id == run_id
    assert backend.intake.resolve_alert_run(run_id, source="pagerduty") is True
    assert backend.intake.resolve_alert_run(run_id, source="pagerduty") is False
    assert backend.intake.get_alert_run(run_id).state == "resolved"
    assert "alert_resolved" in [e.kind for e in backend.incidents.timeline(incident)]
    # Resolved upstream but the incident is still open: the open incident still answers for the key.
    assert backend.intake.active_alert_run(key, dag_id=DAG_ID).run_id == run_id
    backend.incidents.resolve(incident, outcome="fixed")
    assert backend.intake.active_alert_run(key, dag_id=DAG_ID) is None
    assert backend.intake.latest_alert_run(key, dag_id=DAG_ID, state="firing") is None
    assert backend.intake.latest_alert_run(key, dag_id=DAG_ID).run_id == run_id
    backend.intake.release_alert_run(run_id)  # only an unstarted (firing) claim is released
    assert alert_run_count(backend) == before + 1


# -- normalisation, directly ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "critical"),
        ("CRITICAL", "critical"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("info", "info"),
        ("none", "info"),
        ("P3", None),
    ],
)
def test_severity_mapping(label, severity):
    body = {"alerts": [{"labels": {"alertname": "X", "severity": label}}]}
    assert normalise("alertmanager", body).notifications[0].alert.severity == severity


@pytest.mark.parametrize(
    ("labels", "device"),
    [
        ({"device_id": "a", "device": "b", "instance": "c", "service": "d", "job": "e"}, "a"),
        ({"device": "b", "instance": "c", "service": "d", "job": "e"}, "b"),
        ({"instance": "c", "service": "d", "job": "e"}, "c"),
        ({"service": "d", "job": "e"}, "d"),
        ({"job": "e"}, "e"),
        ({"device_id": " ", "job": "e"}, "e"),
        ({}, "unknown"),
    ],
)
def test_device_comes_from_the_most_specific_label(labels, device):
    body = {"alerts": [{"labels": {"alertname": "X", **labels}}]}
    assert normalise("alertmanager", body).notifications[0].alert.device_id == device


def test_an_error_code_label_wins_over_alertname_and_common_labels_fill_gaps():
    body = {
        "commonLabels": {"device": "PUMP-07B"},
        "alerts": [{"labels": {"alertname": "PumpPressure", "error_code": "PRESSURE_HIGH"}}],
    }
    alert = normalise("alertmanager", body).notifications[0].alert
    assert (alert.device_id, alert.error) == ("PUMP-07B", "PRESSURE_HIGH")


def test_repeat_notifications_map_to_the_same_run_id_and_episodes_to_new_ones():
    body = load("alertmanager_firing")
    one, again = normalise("alertmanager", body), normalise("alertmanager", json.loads(json.dumps(body)))
    ids = [run_id_for(n.source, n.incident_key, n.episode) for n in one.notifications]
    assert ids == [run_id_for(n.source, n.incident_key, n.episode) for n in again.notifications]
    body["alerts"][0]["startsAt"] = "2024-06-01T00:00:00Z"
    moved = normalise("alertmanager", body).notifications[0]
    assert run_id_for(moved.source, moved.incident_key, moved.episode) != ids[0]


def test_the_generic_conf_of_every_fixture_satisfies_the_dag_params(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    params = DagBag().dags[DAG_ID].params
    for name, source in [
        ("alertmanager_firing", "alertmanager"),
        ("grafana_firing", "grafana"),
        ("pagerduty_trigger", "pagerduty"),
        ("pagerduty_trigger_minimal", "pagerduty"),
        ("generic", "generic"),
        ("alertmanager_truncated_minimal", "alertmanager"),
    ]:
        for notification in normalise(source, load(name)).notifications:
            merged = copy.deepcopy(params)
            merged.update(notification.conf)
            merged.validate()  # as the task runner does; raises ParamValidationError


# -- fuzzing: no input is a 5xx -------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
TIMES = (
    st.sampled_from(
        [
            "2024-05-01T10:00:00Z",
            "0001-01-01T00:00:00Z",
            "2024-05-01T10:00:00.123456789+02:00",
            "",
            "not a time",
            "2024-02-30T00:00:00Z",
        ]
    )
    | JSON_SCALARS
)
LABELS = st.dictionaries(
    st.sampled_from(["alertname", "device_id", "device", "instance", "severity", "job", "__name__", "x"])
    | st.text(max_size=8),
    st.text(max_size=40) | JSON_SCALARS,
    max_size=6,
)
GROUP_ALERT = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "pending"]) | JSON_SCALARS,
        "labels": LABELS | JSON,
        "annotations": st.dictionaries(st.sampled_from(["summary", "description"]), st.text(max_size=50))
        | JSON,
        "startsAt": TIMES,
        "endsAt": TIMES,
        "fingerprint": st.text(max_size=20) | JSON_SCALARS,
        "values": st.dictionaries(
            st.text(max_size=5), st.floats() | st.integers() | st.none() | st.text(max_size=3)
        )
        | JSON,
    },
)
GROUP = st.fixed_dictionaries(
    {"alerts": st.lists(GROUP_ALERT, max_size=3) | JSON},
    optional={
        "version": st.just("4"),
        "status": st.sampled_from(["firing", "resolved"]) | JSON_SCALARS,
        "commonLabels": LABELS | JSON,
        "commonAnnotations": JSON,
        "truncatedAlerts": st.integers(-2, 5) | JSON_SCALARS,
        "groupKey": st.text(max_size=10),
    },
)
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24)
PD_PAYLOAD = st.fixed_dictionaries(
    {
        "summary": NAMES,
        "source": NAMES,
        "severity": st.sampled_from(["critical", "error", "warning", "info"]),
    },
    optional={
        "timestamp": TIMES,
        "class": NAMES | JSON_SCALARS,
        "component": NAMES,
        "group": NAMES,
        "custom_details": st.dictionaries(st.text(max_size=8), JSON_SCALARS, max_size=5) | JSON,
    },
)
PAGERDUTY = st.fixed_dictionaries(
    {"event_action": st.sampled_from(["trigger", "trigger", "acknowledge", "resolve"])},
    optional={
        "dedup_key": st.text(min_size=1, max_size=40) | JSON_SCALARS,
        "routing_key": st.text(max_size=10),
        "payload": PD_PAYLOAD | JSON,
    },
)
GENERIC = st.fixed_dictionaries(
    {"device_id": NAMES, "error": NAMES},
    optional={
        "message": st.text(max_size=60),
        "source": st.sampled_from(["alertmanager", "iot", "generic", "nagios"]),
        "severity": st.sampled_from(["critical", "warning", "info", "bad"]) | JSON_SCALARS,
        "metrics": st.dictionaries(
            st.text(max_size=5), st.floats() | st.integers() | st.booleans(), max_size=3
        ),
        "labels": st.dictionaries(st.text(max_size=8), st.text(max_size=20) | JSON_SCALARS, max_size=3),
        "started_at": TIMES,
        "status": st.sampled_from(["firing", "resolved", "pending"]),
        "fingerprint": st.text(max_size=300) | JSON_SCALARS,
        "dry_run": st.booleans() | JSON_SCALARS,
        "unknown_key": JSON_SCALARS,
    },
)
BODIES = {
    "alertmanager": GROUP | JSON,
    "grafana": GROUP | JSON,
    "pagerduty": PAGERDUTY | JSON,
    "generic": GENERIC | JSON,
}


@pytest.mark.parametrize("source", sorted(BODIES))
def test_fuzzed_bodies_never_get_a_5xx(webhook, source):
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES[source])
    def check(body):
        raw = json.dumps(body, allow_nan=True).encode()
        response = post(webhook, source, raw, headers={"Content-Type": "application/json"})
        assert response.status_code in (202, 400, 401, 413, 422), (response.status_code, response.text)

    check()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_get_a_5xx(webhook, raw):
    response = post(webhook, "alertmanager", raw)
    assert response.status_code in (202, 400, 422), (response.status_code, response.text)


def test_normalise_raises_only_payload_errors():
    @settings(max_examples=400, deadline=None)
    @given(source=st.sampled_from(sorted(BODIES)), data=st.data())
    def check(source, data):
        body = data.draw(BODIES[source])
        try:
            normalise(source, body)
        except PayloadError:
            pass

    check()
