"""The JSON API: reading records, and voting with a real Airflow login (JWT or the UI's cookie)."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from tests.api.helpers import PREFIX, bearer, make_record, snapshot


def api(record_id: str = "") -> str:
    return f"{PREFIX}/api/approvals" + (f"/{record_id}" if record_id else "")


def decisions(record_id: str) -> str:
    return f"{api(record_id)}/decisions"


def vote(client, record_id: str, token: str, decision: str = "approve", **extra):
    """Vote as the token's user, with a Bearer token."""
    return client.post(decisions(record_id), json={"decision": decision, **extra}, headers=bearer(token))


# -- reading ---------------------------------------------------------------------------------------


def test_list_and_filters(client, store, tokens):
    first = make_record(store)
    second = make_record(store, action="open_bypass_valve")
    store.approvals.close(second.id, state="cancelled")

    everything = client.get(api(), headers=bearer(tokens["victor"]))
    assert everything.status_code == 200
    body = everything.json()
    assert body["total_entries"] == 2
    assert {r["id"] for r in body["approvals"]} == {first.id, second.id}

    pending = client.get(api(), params={"state": "pending"}, headers=bearer(tokens["victor"])).json()
    assert [r["id"] for r in pending["approvals"]] == [first.id]
    by_run = client.get(api(), params={"dag_run_id": second.run_id}, headers=bearer(tokens["victor"])).json()
    assert [r["id"] for r in by_run["approvals"]] == [second.id]
    viewer = bearer(tokens["victor"])
    empty_filters = client.get(api(), params={"state": "", "dag_run_id": ""}, headers=viewer)
    assert empty_filters.json()["total_entries"] == 2
    assert client.get(api(), params={"state": "bogus"}, headers=bearer(tokens["victor"])).status_code == 422


def test_one_record_is_its_json(client, store, tokens):
    record = make_record(store)
    response = client.get(api(record.id), headers=bearer(tokens["victor"]))
    assert response.status_code == 200
    assert response.json() == record.to_json()


def test_reading_needs_a_login(client, store):
    record = make_record(store)
    for url in (api(), api(record.id)):
        response = client.get(url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_record_is_404(client, store, tokens):
    assert client.get(api("apr-000000000000"), headers=bearer(tokens["admin"])).status_code == 404


# -- voting with a Bearer token --------------------------------------------------------------------


def test_an_allowed_approver_approves_with_a_jwt(client, store, tokens):
    record = make_record(store)
    response = client.post(
        decisions(record.id),
        json={"decision": "approve", "comment": "go ahead"},
        headers=bearer(tokens["alice"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "approved"
    [vote] = body["votes"]
    assert (vote["identity"], vote["channel"], vote["decision"], vote["comment"], vote["accepted"]) == (
        "alice",
        "api",
        "approve",
        "go ahead",
        True,
    )
    assert store.approvals.get(record.id).state == "approved"


def test_reject_decides_at_once(client, store, tokens):
    record = make_record(store, quorum=2)
    response = vote(client, record.id, tokens["bob"], "reject")
    assert response.status_code == 200
    assert response.json()["state"] == "rejected"


def test_quorum_of_two_needs_two_people(client, store, tokens):
    record = make_record(store, quorum=2)
    first = vote(client, record.id, tokens["alice"])
    assert first.status_code == 200 and first.json()["state"] == "pending"
    second = vote(client, record.id, tokens["bob"])
    assert second.status_code == 200 and second.json()["state"] == "approved"
    assert store.approvals.get(record.id).deciders == ["alice", "bob"]


def test_without_the_variable_any_user_role_may_approve(client, store, tokens):
    record = make_record(store, approvers=None)
    response = vote(client, record.id, tokens["carol"])
    assert response.status_code == 200 and response.json()["state"] == "approved"


# -- refusals: each leaves the decision as it was ----------------------------------------------------


def _expired_token(name: str, role: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=name, role=role)
    return get_auth_manager().generate_jwt(user, expiration_time_in_seconds=-3600)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic YWxpY2U6YWxpY2U="},
        "forged",
        "expired",
    ],
    ids=["no credentials", "garbage token", "basic auth", "forged signature", "expired"],
)
def test_401_without_a_valid_login(client, store, headers):
    if headers == "forged":
        forged = jwt.encode(
            {"sub": "admin", "role": "admin", "exp": int(time.time()) + 600}, "x" * 64, algorithm="HS512"
        )
        headers = bearer(forged)
    elif headers == "expired":
        headers = bearer(_expired_token("alice", "user"))
    record = make_record(store)
    response = client.post(decisions(record.id), json={"decision": "approve"}, headers=headers)
    assert response.status_code == 401, response.text
    assert store.approvals.get(record.id) == record


def test_403_for_someone_not_in_the_approvers_and_audited(client, store, tokens):
    record = make_record(store)  # approvers: alice, bob and two Slack users
    response = vote(client, record.id, tokens["carol"])
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert "carol is not an allowed approver" in response.json()["detail"]
    after = store.approvals.get(record.id)
    assert snapshot(after) == snapshot(record)
    [attempt] = after.votes
    assert (attempt.identity, attempt.channel, attempt.accepted) == ("carol", "api", False)
    assert "not an allowed approver" in attempt.refused_because


def test_403_for_a_viewer_when_any_user_may_approve(client, store, tokens):
    record = make_record(store, approvers=None)
    response = vote(client, record.id, tokens["victor"])
    assert response.status_code == 403
    assert "user role" in response.json()["detail"]
    assert snapshot(store.approvals.get(record.id)) == snapshot(record)


def test_409_when_already_decided(client, store, tokens):
    record = make_record(store)
    assert (
        client.post(
            decisions(record.id), json={"decision": "reject"}, headers=bearer(tokens["alice"])
        ).status_code
        == 200
    )
    decided = store.approvals.get(record.id)
    response = vote(client, record.id, tokens["bob"])
    assert response.status_code == 409
    assert response.json() == {"detail": "the request was already rejected", "code": "conflict"}
    assert snapshot(store.approvals.get(record.id)) == snapshot(decided)


def test_409_for_a_second_vote_by_the_same_person(client, store, tokens):
    record = make_record(store, quorum=2)
    vote(client, record.id, tokens["alice"])
    once = store.approvals.get(record.id)
    response = vote(client, record.id, tokens["alice"])
    assert response.status_code == 409
    assert "already voted" in response.json()["detail"]
    assert snapshot(store.approvals.get(record.id)) == snapshot(once)
    assert once.state == "pending"


def test_409_after_the_deadline(client, store, tokens):
    record = make_record(store, deadline=timedelta(seconds=-1))
    response = vote(client, record.id, tokens["alice"])
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    after = store.approvals.get(record.id)
    assert after.state == "expired" and after.deciders == []


def test_404_for_an_unknown_record(client, store, tokens):
    record = make_record(store)
    response = client.post(
        decisions("apr-000000000000"), json={"decision": "approve"}, headers=bearer(tokens["alice"])
    )
    assert response.status_code == 404
    assert store.approvals.get(record.id) == record


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe"},
        {},
        {"decision": "approve", "comment": "x" * 2001},
        {"decision": "approve", "as_user": "admin"},
        {"decision": ["approve"]},
        "approve",
    ],
    ids=["unknown decision", "empty", "comment too long", "extra field", "list", "not an object"],
)
def test_422_for_a_malformed_body(client, store, tokens, body):
    record = make_record(store)
    response = client.post(decisions(record.id), json=body, headers=bearer(tokens["alice"]))
    assert response.status_code == 422
    assert store.approvals.get(record.id) == record


def test_422_for_a_form_post(client, store, tokens):
    # Only JSON is read: a cross-site HTML form cannot produce a vote.
    record = make_record(store)
    response = client.post(
        decisions(record.id), data={"decision": "approve"}, headers=bearer(tokens["alice"])
    )
    assert response.status_code == 422
    assert store.approvals.get(record.id) == record


def test_a_comment_of_2000_characters_is_kept(client, store, tokens):
    record = make_record(store)
    response = client.post(
        decisions(record.id),
        json={"decision": "approve", "comment": "é" * 2000},
        headers=bearer(tokens["alice"]),
    )
    assert response.status_code == 200
    assert store.approvals.get(record.id).votes[0].comment == "é" * 2000


# -- voting with the UI's session cookie -----------------------------------------------------------


@pytest.fixture
def browser(airflow_app, client, tokens):
    """Return a client carrying alice's `_token` cookie, as the Airflow UI leaves it after login."""
    from fastapi.testclient import TestClient

    return TestClient(airflow_app, cookies={"_token": tokens["alice"]})


def test_the_session_cookie_votes_on_the_web_channel(browser, store):
    record = make_record(store)
    response = browser.post(
        decisions(record.id),
        json={"decision": "approve"},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 200, response.text
    [vote] = store.approvals.get(record.id).votes
    assert (vote.identity, vote.channel, vote.accepted) == ("alice", "web", True)


def test_bearer_wins_over_the_cookie(browser, store, tokens):
    record = make_record(store)
    response = browser.post(decisions(record.id), json={"decision": "approve"}, headers=bearer(tokens["bob"]))
    assert response.status_code == 200
    [vote] = store.approvals.get(record.id).votes
    assert (vote.identity, vote.channel) == ("bob", "api")


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}],
    ids=["foreign origin", "cross-site", "same-site neighbour"],
)
def test_cookie_votes_from_other_sites_are_refused(browser, store, headers):
    record = make_record(store)
    response = browser.post(decisions(record.id), json={"decision": "approve"}, headers=headers)
    assert response.status_code == 403
    assert store.approvals.get(record.id) == record


def test_an_invalid_cookie_is_401(airflow_app, store):
    from fastapi.testclient import TestClient

    record = make_record(store)
    response = TestClient(airflow_app, cookies={"_token": "stale"}).post(
        decisions(record.id), json={"decision": "approve"}
    )
    assert response.status_code == 401
    assert store.approvals.get(record.id) == record
