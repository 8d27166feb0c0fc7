"""The HTML pages: the list, one record's page, escaping, and what a visitor who is not logged in sees."""

from __future__ import annotations

import re

import pytest

from tests.api.helpers import PREFIX, make_record

SCRIPT = "<script>alert('pwned')</script>"


@pytest.fixture
def as_user(airflow_app, client, tokens):
    """Return a function giving a client with a user's `_token` cookie, as after logging in to the UI."""
    from fastapi.testclient import TestClient

    return lambda name: TestClient(airflow_app, cookies={"_token": tokens[name]})


def page(record_id: str) -> str:
    return f"{PREFIX}/approvals/{record_id}"


def test_record_page_shows_the_incident_and_a_form_for_an_approver(as_user, store):
    record = make_record(store, alert={"message": "Outlet pressure 14.2 bar"})
    response = as_user("alice").get(page(record.id))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    expected_texts = (
        "PUMP-07B",
        "PRESSURE_SPIKE_DETECTED",
        "Outlet pressure 14.2 bar",
        "Pressure spike on PUMP-07B",
        "Outlet valve stuck",
        "82%",
        "rules",
        "restart_pump",
        "high",
        "0 of 1 approval",
        f"http://localhost:8080/dags/incident_response/runs/{record.run_id}",
    )
    for expected in expected_texts:
        assert expected in html, expected
    assert 'id="decision-form"' in html
    assert f'data-api="{PREFIX}/api/approvals/{record.id}/decisions"' in html
    assert 'value="approve"' in html and 'value="reject"' in html


def test_user_supplied_text_is_escaped(as_user, store):
    record = make_record(
        store,
        alert={"message": SCRIPT, "device_id": "<img src=x onerror=alert(1)>"},
        analysis={"summary": SCRIPT, "diagnosis": '"><script>alert(2)</script>'},
        run_id='manual__"><script>alert(3)</script>',
    )
    as_user("alice").post(
        f"{PREFIX}/api/approvals/{record.id}/decisions",
        json={"decision": "reject", "comment": SCRIPT},
        headers={"Origin": "http://testserver"},
    )
    html = as_user("alice").get(page(record.id)).text
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # Decided: no form, so no script at all; the comment is shown escaped.
    assert "<script" not in html


def test_the_only_script_is_ours_and_carries_the_csp_nonce(as_user, store):
    record = make_record(store, alert={"message": SCRIPT})
    response = as_user("alice").get(page(record.id))
    nonce = re.search(r"script-src 'nonce-([^']+)'", response.headers["content-security-policy"]).group(1)
    assert response.text.count("<script") == 1
    assert f'<script nonce="{nonce}">' in response.text


def test_votes_and_refused_attempts_are_listed(as_user, store, tokens, client):
    record = make_record(store, quorum=2)
    headers = {"Origin": "http://testserver"}
    as_user("carol").post(
        f"{PREFIX}/api/approvals/{record.id}/decisions", json={"decision": "approve"}, headers=headers
    )
    as_user("alice").post(
        f"{PREFIX}/api/approvals/{record.id}/decisions",
        json={"decision": "approve", "comment": "checked the gauge"},
        headers=headers,
    )
    html = as_user("bob").get(page(record.id)).text
    votes = html[html.index('id="votes"') :]
    assert "carol" in votes and "refused: carol is not an allowed approver" in votes
    assert "alice" in votes and "checked the gauge" in votes and "web" in votes
    assert "1 of 2 approvals" in html
    assert 'id="decision-form"' in html  # bob may still vote


def test_no_form_for_who_may_not_vote(as_user, store):
    record = make_record(store)
    html = as_user("carol").get(page(record.id)).text
    assert 'id="decision-form"' not in html
    assert "carol is not an allowed approver" in html


def test_no_form_once_decided(as_user, store):
    record = make_record(store)
    as_user("alice").post(
        f"{PREFIX}/api/approvals/{record.id}/decisions",
        json={"decision": "approve"},
        headers={"Origin": "http://testserver"},
    )
    html = as_user("bob").get(page(record.id)).text
    assert 'id="decision-form"' not in html
    assert "This request was approved" in html


def test_not_logged_in_gets_a_login_link_and_no_details(client, store):
    record = make_record(store, alert={"message": "secret plant detail"})
    response = client.get(page(record.id))
    assert response.status_code == 401
    assert "secret plant detail" not in response.text and "PUMP-07B" not in response.text
    assert f'href="/auth/login?next=%2Fincident-response%2Fapprovals%2F{record.id}"' in response.text


def test_unknown_record_page_is_404(as_user, store):
    response = as_user("alice").get(page("apr-<b>nope"))
    assert response.status_code == 404
    assert "apr-&lt;b&gt;nope" in response.text


def test_list_shows_pending_and_recent(as_user, store):
    waiting = make_record(store)
    done = make_record(store, action="open_bypass_valve")
    store.approvals.close(done.id, state="expired")
    response = as_user("victor").get(f"{PREFIX}/approvals")
    assert response.status_code == 200
    html = response.text
    pending_part, recent_part = html.split("Recently decided")
    assert f'href="{PREFIX}/approvals/{waiting.id}"' in pending_part
    assert f'href="{PREFIX}/approvals/{done.id}"' in recent_part and "expired" in recent_part


def test_list_needs_a_login(client, store):
    make_record(store)
    response = client.get(f"{PREFIX}/approvals")
    assert response.status_code == 401
    assert "/auth/login?next=" in response.text


def test_pages_may_be_framed_by_airflow_only(as_user, store):
    response = as_user("alice").get(f"{PREFIX}/approvals")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "default-src 'none'" in policy
    assert response.headers["cache-control"] == "no-store"
