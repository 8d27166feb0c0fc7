"""Refused acknowledge, escalate and resolve attempts are kept up to a cap per person and incident."""

from __future__ import annotations

import itertools
import json
import threading
import uuid

import pytest

from incident_ops import incident_lifecycle
from incident_ops.hooks.incident_store import get_store
from include.errors import Refused
from include.responders import MAX_REFUSED_ACTIONS
from include.vocabulary import IncidentState, RefusalCode, TimelineKind
from tests.plugins.test_incident_sync import ALERT, DAG_ID

ACTIONS = ("acknowledge", "escalate", "resolve")
# Mallory is one person with an Airflow login and a Slack identity; neither is a responder.
APPROVERS = {"default": ["alice"], "people": {"mallory": ["mallory", "slack:U0MALLORY"]}}
IDENTITIES = {"mallory": "api", "slack:U0MALLORY": "slack"}


@pytest.fixture
def store(incident_store_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_APPROVERS", json.dumps(APPROVERS))
    monkeypatch.setenv("AIRFLOW_VAR_INCIDENT_RESPONDERS", json.dumps(["alice"]))
    return get_store()


def _incident(store) -> str:
    return store.incidents.open(
        dag_id=DAG_ID,
        run_id=f"manual__{uuid.uuid4().hex[:8]}",
        incident_key=ALERT.incident_key,
        alert=ALERT.to_xcom(),
    )


def _attempt(store, incident_id: str, action: str, identity: str, channel: str) -> str:
    with pytest.raises(Refused) as refused:
        incident_lifecycle.act(store, incident_id, action, identity=identity, channel=channel, role="user")
    return refused.value.code


def _kept(store, incident_id: str) -> list[str]:
    return [
        e.detail["by"] for e in store.incidents.timeline(incident_id) if e.kind == TimelineKind.ACTION_REFUSED
    ]


@pytest.mark.parametrize("extra", [1, 3, 10])
def test_past_the_cap_an_attempt_is_refused_and_not_kept(store, extra):
    incident_id = _incident(store)
    tries = itertools.islice(
        zip(itertools.cycle(ACTIONS), itertools.cycle(IDENTITIES.items())), MAX_REFUSED_ACTIONS + extra
    )
    codes = [_attempt(store, incident_id, action, who, channel) for action, (who, channel) in tries]

    assert codes == [RefusalCode.FORBIDDEN] * MAX_REFUSED_ACTIONS + [RefusalCode.TOO_MANY] * extra
    # Both of Mallory's identities count as one person: five entries, no more.
    assert len(_kept(store, incident_id)) == MAX_REFUSED_ACTIONS
    assert store.incidents.get(incident_id).state == IncidentState.OPEN


def test_the_cap_is_per_person_and_per_incident(store, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_VAR_INCIDENT_APPROVERS",
        json.dumps({**APPROVERS, "people": {**APPROVERS["people"], "eve": ["eve"]}}),
    )
    first, second = _incident(store), _incident(store)
    for _ in range(MAX_REFUSED_ACTIONS + 2):
        _attempt(store, first, "resolve", "mallory", "api")
    # Someone else on the same incident, and Mallory on another incident, are still kept.
    assert _attempt(store, first, "resolve", "eve", "api") == RefusalCode.FORBIDDEN
    assert _attempt(store, second, "resolve", "mallory", "api") == RefusalCode.FORBIDDEN
    assert _kept(store, first) == ["mallory"] * MAX_REFUSED_ACTIONS + ["eve"]
    assert _kept(store, second) == ["mallory"]


def test_concurrent_attempts_never_pass_the_cap_together(store):
    incident_id = _incident(store)
    start = threading.Barrier(12)
    codes: list[str] = []

    def attempt(n: int) -> None:
        start.wait(timeout=30)
        codes.append(_attempt(store, incident_id, ACTIONS[n % 3], "mallory", "api"))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and len(codes) == 12
    assert codes.count(RefusalCode.FORBIDDEN) == MAX_REFUSED_ACTIONS == len(_kept(store, incident_id))
