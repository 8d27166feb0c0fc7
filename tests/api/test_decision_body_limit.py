"""The decisions route reads its body only after the login, and never more than its limit (413)."""

from __future__ import annotations

import json

import pytest

from incident_ops.api.routes_approvals import MAX_DECISION_BODY_BYTES
from include.vocabulary import ApprovalState
from tests.api.helpers import PREFIX, bearer, make_record


def decisions(record_id: str) -> str:
    return f"{PREFIX}/api/approvals/{record_id}/decisions"


def oversized_bodies() -> dict[str, bytes]:
    over = MAX_DECISION_BODY_BYTES + 1
    return {
        "a valid vote with a huge comment": json.dumps(
            {"decision": "approve", "comment": "x" * over}
        ).encode(),
        "deep nesting": b"[" * over,
        "just over the limit": json.dumps({"decision": "approve", "comment": ""}).encode().ljust(over),
        "a megabyte of garbage": b"\xff" * 1_000_000,
    }


@pytest.mark.parametrize("name", list(oversized_bodies()))
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_decision_body_is_413_and_changes_nothing(client, store, tokens, name, chunked):
    record = make_record(store)
    raw = oversized_bodies()[name]
    content = iter([raw[i : i + 8192] for i in range(0, len(raw), 8192)]) if chunked else raw
    headers = {**bearer(tokens["alice"]), "Content-Type": "application/json"}
    response = client.post(decisions(record.id), content=content, headers=headers)
    assert response.status_code == 413, response.text
    assert store.approvals.get(record.id) == record


def test_a_stranger_is_answered_401_before_the_body_is_read(client, store):
    record = make_record(store)
    response = client.post(
        decisions(record.id), content=b"[" * 1_000_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401, response.text
    assert store.approvals.get(record.id) == record


def test_a_body_at_the_limit_is_still_a_vote(client, store, tokens):
    record = make_record(store)
    raw = json.dumps({"decision": "approve", "comment": "\U0001f600" * 2000})  # \u-escaped: 24 kB
    assert len(raw.encode()) <= MAX_DECISION_BODY_BYTES
    headers = {**bearer(tokens["alice"]), "Content-Type": "application/json"}
    response = client.post(decisions(record.id), content=raw.encode(), headers=headers)
    assert response.status_code == 200, response.text
    assert store.approvals.get(record.id).state == ApprovalState.APPROVED
