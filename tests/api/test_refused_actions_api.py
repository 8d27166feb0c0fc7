"""The incident API answers 429 once a person's refused attempts on an incident reach the cap."""

from __future__ import annotations

import uuid

from include.responders import MAX_REFUSED_ACTIONS
from include.vocabulary import IncidentState, RefusalCode, TimelineKind
from tests.api.helpers import PREFIX, bearer, make_record

API = f"{PREFIX}/api/incidents"


def test_refused_attempts_past_the_cap_are_429_and_not_recorded(client, store, tokens):
    record = make_record(store, run_id=f"manual__{uuid.uuid4().hex[:10]}")
    headers = bearer(tokens["victor"])  # a viewer: never a responder
    answers = [
        client.post(f"{API}/{record.incident_id}/{action}", headers=headers)
        for action in ["acknowledge", "escalate", "resolve"] * 3
    ]
    statuses = [a.status_code for a in answers]
    assert statuses == [403] * MAX_REFUSED_ACTIONS + [429] * (9 - MAX_REFUSED_ACTIONS)
    assert answers[-1].json()["code"] == RefusalCode.TOO_MANY
    refused = [
        e for e in store.incidents.timeline(record.incident_id) if e.kind == TimelineKind.ACTION_REFUSED
    ]
    assert len(refused) == MAX_REFUSED_ACTIONS
    assert store.incidents.get(record.incident_id).state == IncidentState.OPEN
