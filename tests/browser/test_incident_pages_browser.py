"""An engineer opens an incident from the incident list and reads its timeline chart, in Chromium.

Real Airflow processes (the e2e harness), headless Debian Chromium driven by Playwright. A critical
alert runs through approval (given on the approval page) to its fix and resolution; then the
engineer opens the list, follows the link to the incident and sees the chart from alert to
resolution. With INCIDENT_PAGES_SCREENSHOTS=<folder> set, it also saves the screenshots the README
shows (incidents.png, incident.png).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from include.store import IncidentStore
from scripts.local_airflow import LocalAirflow, poll
from tests.browser.conftest import Page

DAG_ID = "incident_response"
CRITICAL = {
    "device_id": "PUMP-07B",
    "error": "PRESSURE_SPIKE_DETECTED",
    "metrics": {"pressure_bar": 9.4},
    "message": "Outlet pressure above the safe limit",
}
RUN_TIMEOUT = 180.0
SCREENSHOTS = os.environ.get("INCIDENT_PAGES_SCREENSHOTS")


@pytest.fixture(scope="module")
def airflow_extra_env() -> dict[str, str]:
    """Make `admin` an approver (no Slack: messages stay in the outbox)."""
    return {"AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps({"default": ["admin"]})}


@pytest.fixture(scope="module")
def stack(airflow_stack: LocalAirflow) -> LocalAirflow:
    """Return the running stack with incident_response parsed and unpaused."""
    airflow_stack.wait_for_dag(DAG_ID, timeout=RUN_TIMEOUT, fail_on_import_error=True)
    airflow_stack.unpause(DAG_ID)
    return airflow_stack


def log_in(tab: Page, stack: LocalAirflow, url: str) -> None:
    """Open `url` and log in through Airflow's login page, which brings the browser back."""
    page = tab.page
    page.goto(url)
    page.get_by_role("link", name="Log in to Airflow").click()
    page.wait_for_url("**/auth/login**")
    page.locator("input[name='username']").fill("admin")
    page.locator("input[name='password']").fill(stack.passwords()["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url)


def test_open_an_incident_from_the_list_and_see_its_timeline(stack: LocalAirflow, tab: Page) -> None:
    from playwright.sync_api import expect

    store = IncidentStore.from_url(f"sqlite:///{stack.home / 'incident_store.db'}")
    run_id = f"browser-incident-{uuid.uuid4().hex[:8]}"
    stack.trigger(DAG_ID, CRITICAL, run_id=run_id)
    record = poll(
        lambda: (stack.check_alive() or store.approvals.find(run_id=run_id) or [None])[0],
        RUN_TIMEOUT,
        f"the approval request of {run_id}",
    )
    page = tab.page
    log_in(tab, stack, f"{stack.api_url}/incident-response/approvals/{record.id}")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#outcome")).to_contain_text("approved")
    assert stack.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)["state"] == "success"

    page.goto(f"{stack.api_url}/incident-response/incidents")
    expect(page.locator("h1")).to_have_text("Incidents")
    expect(page.locator("#daily-chart rect")).not_to_have_count(0)
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "incidents.png"), full_page=True)
    page.locator("a.incident-link", has_text=record.incident_id).click()

    page.wait_for_url(f"**/incident-response/incidents/{record.incident_id}")
    chart = page.locator("#timeline-chart")
    expect(chart).to_be_visible()
    for label in ("Incident opened", "Approval requested: ", "approve by admin", "Resolved: fixed"):
        expect(chart.locator("text", has_text=label).first).to_be_visible()
    expect(chart.locator("circle.mark-action")).not_to_have_count(0)
    assert chart.bounding_box()["width"] > 500
    expect(page.locator("#incident-state")).to_have_text("resolved")
    expect(page.locator("#timeline-table tbody tr")).not_to_have_count(0)
    expect(page.locator("#report")).to_contain_text(record.incident_id)
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "incident.png"), full_page=True)
    assert tab.dialogs == []
