"""The incident pages: the list, one incident with its chart, the postmortem; auth, escaping, unknown ids."""

# The LLM fixtures are imported into this module; their use as parameters is not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
import re

import pytest

from tests.api.helpers import PREFIX, make_record
from tests.fakes.llm_fixtures import llm_connection, llm_server  # noqa: F401
from tests.fakes.llm_server import Reply

HOSTILE_DEVICE = '<img src=x onerror="alert(1)">'
HOSTILE_MESSAGE = "<script>alert('pwned')</script> password=hunter2secret"


@pytest.fixture
def as_user(airflow_app, client, tokens):
    """Return a function giving a client with a user's `_token` cookie, as after logging in to the UI."""
    from fastapi.testclient import TestClient

    return lambda name: TestClient(airflow_app, cookies={"_token": tokens[name]})


def _incident(store, **alert):
    """Open an incident with a diagnosis, a vote, an AI step, an action, and resolve it."""
    record = make_record(store, alert=alert)
    store.approvals.cast_vote(record.id, identity="alice", channel="web", decision="approve", comment=None)
    incident_id = record.incident_id
    store.incidents.acknowledge(incident_id, by="alice")
    store.incidents.add_event(
        incident_id, "llm_call", {"step": "diagnose", "analyzer": "llm", "model": "m", "latency_ms": 1800}
    )
    row, _ = store.actions.begin(
        key=f"{incident_id}:fix",
        incident_id=incident_id,
        action="restart_pump",
        target="PUMP-07B",
        dry_run=True,
    )
    store.actions.finish(row["idempotency_key"], state="done", result={"mode": "dry_run"})
    store.incidents.resolve(incident_id, outcome="fixed")
    return incident_id


def test_the_list_shows_counts_windows_chart_and_links(as_user, store):
    resolved = _incident(store)
    open_one = make_record(store).incident_id
    response = as_user("victor").get(f"{PREFIX}/incidents")

    assert response.status_code == 200
    html = response.text
    assert f'href="{PREFIX}/incidents/{resolved}"' in html and f'href="{PREFIX}/incidents/{open_one}"' in html
    assert re.search(r'data-count="open">1<', html) and re.search(r'data-count="resolved">1<', html)
    assert "Last 24 h" in html and "Last 7 days" in html and "2 opened" in html
    assert 'id="daily-chart"' in html and 'class="bar-critical"' in html
    assert "<script" not in html


def test_the_list_filters_by_state_and_severity(as_user, store):
    resolved = _incident(store)
    open_one = make_record(store).incident_id
    user = as_user("alice")

    by_state = user.get(f"{PREFIX}/incidents", params={"state": "resolved"}).text
    assert resolved in by_state and open_one not in by_state
    by_severity = user.get(f"{PREFIX}/incidents", params={"severity": "warning"}).text
    assert resolved not in by_severity and open_one not in by_severity
    assert user.get(f"{PREFIX}/incidents", params={"state": "bogus"}).status_code == 400


def test_the_incident_page_draws_the_timeline_and_shows_the_record(as_user, store):
    incident_id = _incident(store, message="Outlet pressure 14.2 bar")
    response = as_user("victor").get(f"{PREFIX}/incidents/{incident_id}")

    assert response.status_code == 200
    html = response.text
    chart = html[
        html.index('<svg id="timeline-chart"') : html.index("</svg>", html.index('id="timeline-chart"'))
    ]
    for kind in ("alert", "ack", "ai", "approval", "vote", "action", "resolution"):
        assert f'class="mark mark-{kind}"' in chart, kind
    assert 'class="span"' in chart and "diagnose (model, 2 s)" in chart
    assert "Acknowledged by alice" in chart and "Resolved: fixed" in chart
    assert 'id="timeline-table"' in html and "<code>vote</code>" in html
    assert "Outlet valve stuck" in html and "restart_pump" in html
    assert "http://localhost:8080/dags/incident_response/runs/" in html
    assert f'href="{PREFIX}/incidents/{incident_id}/postmortem.md"' in html
    # A viewer may look, never act: the page has no form and no script.
    assert "<form" not in html and "<script" not in html
    assert "script-src 'nonce-" in response.headers["content-security-policy"]


def test_hostile_text_is_escaped_and_secrets_redacted(as_user, store):
    incident_id = _incident(store, device_id=HOSTILE_DEVICE, message=HOSTILE_MESSAGE)
    user = as_user("alice")

    for url in (f"{PREFIX}/incidents", f"{PREFIX}/incidents/{incident_id}"):
        html = user.get(url).text
        assert "<img src=x" not in html and "<script>alert" not in html
        assert "&lt;img src=x onerror=" in html
        assert "hunter2secret" not in html
    markdown = user.get(f"{PREFIX}/incidents/{incident_id}/postmortem.md").text
    # Markdown renderers pass raw HTML through: every markup character of the record is escaped.
    assert not re.search(r"(?<!\\)<(img|script)", markdown) and "hunter2secret" not in markdown
    assert r'\<img src=x onerror="alert(1)"\>' in markdown


def test_the_postmortem_is_a_markdown_download_with_the_facts(as_user, store):
    incident_id = _incident(store)
    response = as_user("victor").get(f"{PREFIX}/incidents/{incident_id}/postmortem.md")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert f'filename="postmortem-{incident_id}.md"' in response.headers["content-disposition"]
    text = response.text
    for heading in (
        "Summary",
        "Impact",
        "Timeline",
        "Root cause",
        "Actions taken",
        "Decisions",
        "Response times",
    ):
        assert f"## {heading}" in text, heading
    assert "- Confirmed by: alice" in text
    assert "approve by alice (web" in text
    assert "Acknowledged by alice" in text
    assert "Time to acknowledge (MTTA): " in text and "n/a" not in text.split("## Response times")[1]
    assert "ran as a dry run" in text  # an open follow-up
    assert "written by the product" in text  # no model configured


@pytest.mark.parametrize("suffix", ["", "/postmortem.md"])
def test_unknown_incidents_are_404_and_strangers_must_log_in(as_user, client, store, suffix):
    assert as_user("alice").get(f"{PREFIX}/incidents/inc-000000000000{suffix}").status_code == 404
    incident_id = make_record(store).incident_id
    response = client.get(f"{PREFIX}/incidents/{incident_id}{suffix}")
    assert response.status_code == 401
    assert (
        "Log in" in response.text and incident_id not in response.text.split("<body>")[1].split("Log in")[0]
    )


def test_strangers_see_no_list(client, store):
    make_record(store)
    response = client.get(f"{PREFIX}/incidents")
    assert response.status_code == 401 and "PUMP-07B" not in response.text


def test_the_model_writes_the_postmortem_narrative_and_the_facts_stay(
    as_user, store, llm_server, llm_connection
):
    incident_id = _incident(store, message="call jane@example.com")
    narrative = f"Incident {incident_id} on PUMP-07B was fixed after alice approved restart_pump."
    llm_server.enqueue(Reply.json({"report": narrative}))

    text = as_user("victor").get(f"{PREFIX}/incidents/{incident_id}/postmortem.md").text

    summary = text.split("## Summary")[1].split("## Impact")[0]
    assert "was fixed after alice approved restart\\_pump." in summary
    assert "written by the model" in summary
    assert "- Confirmed by: alice" in text and "| vote |" in text  # the record, not the model
    [request] = llm_server.requests
    sent = json.dumps(request.body)
    assert "postmortem" in sent and incident_id in sent and "jane@example.com" not in sent


def test_a_narrative_that_drops_the_outcome_is_not_used(as_user, store, llm_server, llm_connection):
    incident_id = _incident(store)
    llm_server.default = Reply.json({"report": f"Incident {incident_id}: all is well, nothing happened."})

    text = as_user("alice").get(f"{PREFIX}/incidents/{incident_id}/postmortem.md").text

    assert "nothing happened" not in text
    assert "written by the product" in text and "Outcome: fixed." in text
