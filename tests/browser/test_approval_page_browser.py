"""An on-call engineer approves in the browser, from the link in the Slack approval request.

Real Airflow processes (the e2e harness) with the loopback fake of the Slack Web API; headless
Debian Chromium driven by Playwright. The engineer opens the "Open record" link of the message the
bot posted, logs in through Airflow's own login page, approves with a comment, sees the outcome,
and the run goes on to success. A second test shows that alert text is rendered as text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from include.store import Approval, IncidentStore
from scripts.local_airflow import LocalAirflow, poll
from tests.browser.conftest import Page
from tests.fakes.slack_server import FakeSlackServer
from tests.fakes.slack_signing import find_button

DAG_ID = "incident_response"
CRITICAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "metrics": {"pressure_bar": 9.4}}
SCRIPT = "<script>alert(1)</script>"
APPROVERS = {"default": ["admin", "slack:U0APPROVER"]}
RUN_TIMEOUT = 180.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlackServer]:
    """Run the fake Slack Web API for the module, started before Airflow."""
    with FakeSlackServer() as server:
        yield server


@pytest.fixture(scope="module")
def airflow_extra_env(slack: FakeSlackServer) -> dict[str, str]:
    """Point Airflow's Slack connection at the fake and make `admin` an approver."""
    return {
        "AIRFLOW_CONN_SLACK_API_DEFAULT": slack.connection_json(),
        "AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps(APPROVERS),
    }


@pytest.fixture(scope="module")
def stack(airflow_stack: LocalAirflow) -> LocalAirflow:
    """Return the running stack with incident_response parsed and unpaused."""
    airflow_stack.wait_for_dag(DAG_ID, timeout=RUN_TIMEOUT, fail_on_import_error=True)
    airflow_stack.unpause(DAG_ID)
    return airflow_stack


@pytest.fixture(scope="module")
def store(airflow_stack: LocalAirflow) -> IncidentStore:
    """Return the stack's incident store (the default SQLite file in its AIRFLOW_HOME)."""
    return IncidentStore.from_url(f"sqlite:///{airflow_stack.home / 'incident_store.db'}")


def posted_request(stack: LocalAirflow, store: IncidentStore, run_id: str) -> Approval:
    """Wait until the run's approval request is posted to Slack; return its record."""

    def posted() -> Approval | None:
        stack.check_alive()
        records = store.approvals.find(run_id=run_id)
        return records[0] if records and records[0].slack_ts else None

    return poll(posted, RUN_TIMEOUT, f"the approval request of {run_id} in Slack")


def record_link(slack: FakeSlackServer, record: Approval) -> str:
    """Return the "Open record" link of the approval message the fake Slack server received."""
    message = slack.message(record.slack_channel, record.slack_ts)
    assert message is not None, "the approval message never reached Slack"
    return find_button(message, "open_record")[1]["url"]


def open_logged_in(tab: Page, stack: LocalAirflow, url: str, username: str = "admin") -> None:
    """Open `url`; if the page asks for a login, log in through Airflow's login page and come back."""
    page = tab.page
    page.goto(url)
    login_link = page.get_by_role("link", name="Log in to Airflow")
    if page.locator("#state").count() == 0 and login_link.count() == 1:
        login_link.click()
        page.wait_for_url("**/auth/login**")
        page.locator("input[name='username']").fill(username)
        page.locator("input[name='password']").fill(stack.passwords()[username])
        page.get_by_role("button", name="Sign in").click()
        # The login page stores the `_token` cookie and goes back to where we came from.
        page.wait_for_url(url)
    page.locator("#state").wait_for()


def test_approve_on_the_record_page_linked_from_slack(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, tab: Page
) -> None:
    from playwright.sync_api import expect

    run_id = f"browser-approve-{uuid.uuid4().hex[:8]}"
    triggered = time.monotonic()
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    record = posted_request(stack, store, run_id)
    link = record_link(slack, record)
    assert urlsplit(link).path == f"/incident-response/approvals/{record.id}"

    # Not logged in yet: the page offers Airflow's login, which brings the engineer back here.
    tab.page.goto(link)
    expect(tab.page.get_by_role("heading", name="Log in to see approval requests")).to_be_visible()
    assert "PUMP-07B" not in tab.page.content()
    open_logged_in(tab, stack, link)
    shown_at = time.monotonic()

    page = tab.page
    expect(page.locator("h1")).to_contain_text(record.action)
    expect(page.locator("h1")).to_contain_text("PUMP-07B")
    expect(page.locator("#state")).to_have_text("Pending")
    comment = "Pressure trend checked with the plant; go ahead."
    page.locator("#comment").fill(comment)
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#outcome")).to_have_text("Your vote was counted: the request is approved.")
    expect(page.locator("#state")).to_have_text("approved")
    expect(page.locator("#decision-form")).to_be_hidden()
    clicked = time.monotonic()

    # Reloaded, the page shows the decision and the vote, and offers no form any more.
    page.reload()
    expect(page.locator("#state")).to_have_text("Approved")
    expect(page.locator("#cannot-vote")).to_contain_text("This request was approved")
    row = page.locator("#votes tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("admin")
    expect(row).to_contain_text("web")
    expect(row).to_contain_text(comment)

    decided = store.approvals.get(record.id)
    assert decided.state == "approved"
    [vote] = decided.votes
    assert (vote.identity, vote.channel, vote.decision, vote.comment) == ("admin", "web", "approve", comment)

    run = stack.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    assert run["state"] == "success"
    states = stack.task_states(DAG_ID, run_id)
    assert states["execute_fix"] == "success" and states["escalate"] == "skipped"
    assert not {t: s for t, s in states.items() if s in ("failed", "upstream_failed")}
    assert tab.dialogs == []
    print(
        f"\n[browser] record page shown {shown_at - triggered:.1f}s after the trigger (incl. login); "
        f"vote shown {clicked - shown_at:.1f}s later; run success {time.monotonic() - clicked:.1f}s "
        f"after the click"
    )


def test_alert_text_is_shown_as_text_not_run_as_script(
    stack: LocalAirflow, store: IncidentStore, slack: FakeSlackServer, tab: Page
) -> None:
    from playwright.sync_api import expect

    message = f"Operator note: {SCRIPT} <b>valve</b> & <img src=x onerror=alert(2)>"
    run_id = f"browser-escape-{uuid.uuid4().hex[:8]}"
    stack.trigger(DAG_ID, {**CRITICAL, "message": message}, run_id=run_id)
    record = posted_request(stack, store, run_id)
    open_logged_in(tab, stack, record_link(slack, record))
    page = tab.page

    # The alert is shown exactly as sent, as text.
    alert = page.locator("dt", has_text="Alert").locator("xpath=following-sibling::dd[1]")
    expect(alert).to_have_text(message)
    html = page.content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT not in html
    # None of it became markup, and nothing ran.
    assert page.locator("b", has_text="valve").count() == 0
    assert page.locator("img").count() == 0
    scripts: list[Any] = page.locator("script").evaluate_all("els => els.map(e => e.textContent)")
    assert not [s for s in scripts if "alert(" in s]
    page.wait_for_timeout(500)
    assert tab.dialogs == []

    # Leave the run finished: reject through the page (the escalation path).
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#outcome")).to_have_text("Your vote was counted: the request is rejected.")
    stack.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    assert stack.task_states(DAG_ID, run_id)["escalate"] == "success"
    assert tab.dialogs == []
