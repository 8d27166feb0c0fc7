"""Postmortem downloads: the model's narrative is kept per state of the record; model calls are bounded."""

# The LLM fixtures are imported into this module; their use as parameters is not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import time

import pytest

from include.vocabulary import TimelineKind
from tests.api.helpers import PREFIX
from tests.api.test_incident_pages import _incident
from tests.fakes.llm_fixtures import llm_connection, llm_server  # noqa: F401
from tests.fakes.llm_server import Reply


@pytest.fixture
def as_user(airflow_app, client, tokens):
    from fastapi.testclient import TestClient

    return lambda name: TestClient(airflow_app, cookies={"_token": tokens[name]})


def _download(as_user, incident_id: str) -> str:
    response = as_user("victor").get(f"{PREFIX}/incidents/{incident_id}/postmortem.md")
    assert response.status_code == 200, response.text
    return response.text


def test_the_narrative_is_kept_until_the_record_changes(as_user, store, llm_server, llm_connection):
    incident_id = _incident(store)
    llm_server.default = Reply.json({"report": f"Incident {incident_id} on PUMP-07B was fixed by a restart."})

    first, second = _download(as_user, incident_id), _download(as_user, incident_id)
    assert "was fixed by a restart." in first and "written by the model" in first
    assert "was fixed by a restart." in second and "written by the model" in second
    assert len(llm_server.requests) == 1  # the second download read the kept narrative

    store.incidents.add_event(incident_id, TimelineKind.TICKET_OPENED, {"key": "OPS-7"})  # the record changed
    _download(as_user, incident_id)
    assert len(llm_server.requests) == 2


def test_a_draft_without_a_model_answer_is_not_kept(as_user, store, llm_server, llm_connection):
    incident_id = _incident(store)
    llm_server.default = Reply.json({"report": "nothing about the incident"})
    assert "written by the product" in _download(as_user, incident_id)
    asked = len(llm_server.requests)
    assert "written by the product" in _download(as_user, incident_id)
    assert asked >= 1 and len(llm_server.requests) == 2 * asked  # the second download asked again


def test_when_the_model_is_busy_the_draft_from_the_record_comes_at_once(
    as_user, store, llm_server, llm_connection
):
    from incident_ops import postmortem

    incident_id = _incident(store)
    llm_server.default = Reply.json({"report": f"Incident {incident_id} on PUMP-07B was fixed by a restart."})
    # Every model slot taken, as by long drafts of other incidents.
    held = [postmortem._model_calls.acquire(blocking=False) for _ in range(postmortem.MAX_MODEL_CALLS)]
    try:
        assert all(held)
        started = time.monotonic()
        text = _download(as_user, incident_id)
        assert time.monotonic() - started < 10
        assert "the model is busy" in text and "Outcome: fixed." in text and "| vote |" in text
        assert llm_server.requests == []
    finally:
        for _ in held:
            postmortem._model_calls.release()
    # Once a slot is free, the next download gets the model's narrative.
    assert "was fixed by a restart." in _download(as_user, incident_id)
    assert len(llm_server.requests) == 1
