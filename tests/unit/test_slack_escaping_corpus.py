"""Every message the product sends: text from an alert, a device or a model never mentions or links.

A corpus of hostile strings is put in every field an alert, a device or a model controls; every
string Slack would render (text, blocks, context, fallback text, updates, Jira descriptions) is then
checked: the only ``<…>`` left are the product's own links and mentions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from incident_ops import messaging
from include import reports, slack_blocks
from include.jira_markup import jira_escape, link
from include.models import Alert, Analysis
from include.runbooks import get_runbook
from include.store import IncidentStore
from tests.factories import incident_record
from tests.fakes.slack_server import FakeSlackServer, slack_connection_json

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0123|@oncall>",
    "<@U0EVIL>",
    "<#C0123>",
    "<https://evil.example/login|Re-login to Airflow>",
    "<mailto:ops|mail>",
    "a &lt;!channel&gt; b",
    "x<!channel>y & <@W1>",
]
RUN_URL = "http://airflow.example/dags/incident_response/runs/r1"
RECORD_URL = "http://airflow.example/incident-response/approvals/a1"
OURS = {f"<{RUN_URL}|Open the DAG run in Airflow>", f"<{RECORD_URL}|approval record>", "<@U0BOB>"}


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def control_sequences(rendered: Any) -> set[str]:
    """Return every ``<…>`` Slack would turn into a mention, channel or link, and every raw ``&`` entity."""
    return {m for s in strings(rendered) for m in re.findall(r"<[^>]*>", s)}


def alert_and_analysis(hostile: str) -> tuple[Alert, Analysis]:
    alert = Alert(
        device_id=hostile[:128],
        error=hostile[:128],
        message=hostile,
        labels={hostile[:128]: hostile},
        fingerprint=hostile,
        source="iot",
    )
    analysis = Analysis(
        severity="critical",
        summary=hostile,
        diagnosis=hostile,
        recommended_action="isolate_pump",
        confidence=0.9,
        analyzer="llm",
        runbook="pressure_spike",
    )
    return alert, analysis


def every_message(hostile: str) -> list[Any]:
    alert, analysis = alert_and_analysis(hostile)
    page_states = [
        {},
        {"state": "acknowledged", "acknowledged_by": "slack:U0BOB"},
        {"state": "acknowledged", "acknowledged_by": hostile, "escalated_by": f"slack:{hostile}"},
        {"state": "resolved", "resolved_by": hostile},
    ]
    incident = incident_record(id="inc-1", error=hostile, device_id=hostile, outcome=hostile, analysis={})
    report = reports.final_report_text(incident=incident, timeline=[], actions=[], approvals=[])
    diagnostic = reports.diagnostic_text(alert, analysis, get_runbook("pressure_spike"))
    return [
        *(
            slack_blocks.page_blocks(alert, analysis, run_url=RUN_URL, incident_id="inc-1", **s)
            for s in page_states
        ),
        slack_blocks.ticket_blocks(alert, analysis, ticket_id=hostile),
        slack_blocks.approval_blocks(
            approval_id="a1",
            alert=alert,
            analysis=analysis,
            risk="high",
            reasons=[hostile],
            quorum=2,
            expires_at="soon",
            record_url=RECORD_URL,
        ),
        slack_blocks.decided_blocks(
            action=hostile,
            device_id=hostile,
            state=hostile,
            deciders=["slack:U0BOB", hostile],
            when="now",
            record_url=RECORD_URL,
        ),
        slack_blocks.escalation_blocks(by="slack:U0BOB", device_id=hostile, error=hostile),
        slack_blocks.text_blocks(hostile, hostile),
        slack_blocks.text_blocks("Incident report", report),
        slack_blocks.text_blocks("Diagnostic report", diagnostic),
        # Fallback and plain texts, as every task and lifecycle step writes them, escaped when sent.
        messaging.safe_text(slack_blocks.incident_header(alert, analysis)),
        messaging.safe_text(f"Fix `isolate_pump` done on {alert.device_id} (simulated)"),
        messaging.safe_text(f"Approval needed: isolate_pump on {alert.device_id}"),
        messaging.safe_text(
            f"Escalated by {hostile}: {hostile} on {hostile} needs the secondary on-call now."
        ),
        messaging.safe_text(report.splitlines()[0]),
        messaging.safe_text(diagnostic),
    ]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_no_alert_device_or_model_text_becomes_a_mention_or_a_link(hostile):
    for message in every_message(hostile):
        assert control_sequences(message) <= OURS, json.dumps(message)[:500]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_escaped_text_still_reads_as_written(hostile):
    [text] = [messaging.safe_text(f"Fix done on {hostile}")]
    unescaped = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert unescaped == f"Fix done on {hostile}"


def test_a_slack_identity_that_is_not_a_user_id_is_not_a_mention():
    blocks = slack_blocks.escalation_blocks(by="slack:U1>|<!channel", device_id="d", error="e")
    assert control_sequences(blocks) == set()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_jira_text_never_becomes_markup(hostile):
    text = jira_escape(f"[~admin] {hostile} {{html}}<b>x</b>{{html}} !https://evil.example/x.png! [a|b]")
    # Every markup character is preceded by a backslash: nothing is a link, mention, macro or image.
    assert re.search(r"(?<!\\)[\[\]{}|!~]", text) is None
    assert link("Open the run", RUN_URL) == f"[Open the run|{RUN_URL}]"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch, slack_server: FakeSlackServer) -> FakeSlackServer:
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", slack_connection_json(slack_server.base_url))
    return slack_server


def test_what_slack_receives_posts_and_updates_is_escaped(slack: FakeSlackServer, tmp_path: Path):
    store = IncidentStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    incident = store.incidents.open(
        dag_id="incident_response", run_id="r1", incident_key="k", alert={"device_id": "d", "error": "e"}
    )
    hostile = " ".join(HOSTILE)
    sent = messaging.deliver(
        store, incident_id=incident, key="r1:fix", channel="#oncall", text=f"Fix done on {hostile}"
    )
    messaging.update(channel=sent.channel, ts=sent.ts, text=f"isolate_pump: {hostile}", blocks=None)
    bodies = [r.body for r in slack.calls("chat.postMessage")] + [r.body for r in slack.calls("chat.update")]
    assert len(bodies) == 2
    assert all(control_sequences(body.get("text", "")) == set() for body in bodies)
    assert all("&lt;!channel&gt;" in body["text"] for body in bodies)
