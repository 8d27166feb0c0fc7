"""Benchmark the on-call page's buttons on real Airflow processes: click → answer, page update, run moving.

    .venv/bin/python bench/bench_slack_clicks.py [--trials 5] [--keep-home]

One embedded Airflow (scripts/local_airflow.py) with loopback fakes of the Slack Web API and of
PagerDuty's Events API in this process. Per trial: trigger a critical incident that needs approval,
wait until `wait_for_approval` is deferred (the page is posted with its buttons), then click
Acknowledge, Escalate and Resolve as Slack sends them (signed block_actions, read from the page as
posted), one after the other. Figures, medians over the trials (the first trial is a warm-up, not
counted):

* answer      the API server's answer to the click (Slack gives up after 3 s);
* page        the click → the fake Slack receiving the page's chat.update;
* run moved   Resolve → `wait_for_approval` ending, and → `approval_decision` starting (task timestamps).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from include.store import IncidentStore, incident_id_for  # noqa: E402
from scripts.local_airflow import LocalAirflow, poll  # noqa: E402
from tests.fakes.pagerduty_server import FakePagerDuty  # noqa: E402
from tests.fakes.slack_server import FakeSlackServer  # noqa: E402
from tests.fakes.slack_signing import signed_click  # noqa: E402

DAG_ID = "incident_response"
CONF = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "require_approval": True}
SECRET = "bench-slack-signing-secret-0f3b"
USER = "U0ONCALL"
ROUTE = "/incident-response/slack/interactions"
TIMEOUT = 180.0
ACTIONS = ("acknowledge", "escalate", "resolve")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(stack: LocalAirflow, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
    """POST a signed interaction; return (status, seconds to answer)."""
    request = urllib.request.Request(stack.api_url + ROUTE, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    try:
        with opener.open(request, timeout=30) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        status = err.code
    return status, time.monotonic() - started


def trial(stack: LocalAirflow, slack: FakeSlackServer) -> dict[str, float]:
    """Run one incident through the three buttons; return its figures in seconds."""
    run_id = f"bench-clicks-{uuid.uuid4().hex[:8]}"
    incident_id = incident_id_for(DAG_ID, run_id)
    stack.trigger(DAG_ID, CONF, run_id=run_id)
    poll(
        lambda: stack.task_states(DAG_ID, run_id).get("wait_for_approval") == "deferred", TIMEOUT, "deferral"
    )
    store = IncidentStore.from_url(f"sqlite:///{stack.home / 'incident_store.db'}")
    incident = store.incidents.get(incident_id)
    # The page starts the incident's thread.
    channel, ts = incident.slack_channel, incident.slack_ts
    figures: dict[str, float] = {}
    resolved_at = 0.0
    for action in ACTIONS:
        current = slack.message(channel, ts)
        before = len([r for r in slack.calls("chat.update") if str(r.body.get("ts")) == ts])
        click = signed_click(SECRET, message=current, channel_id=channel, action_id=action, user_id=USER)
        clicked = time.monotonic()
        resolved_at = time.time()
        status, answered = post(stack, click.body, click.headers)
        assert status == 200, status
        updates = poll(
            lambda before=before: [r for r in slack.calls("chat.update") if str(r.body.get("ts")) == ts][
                before:
            ],
            30,
            "update",
        )
        figures[f"{action} answer"] = answered
        figures[f"{action} page"] = updates[0].time - clicked
    stack.wait_for_run(DAG_ID, run_id, timeout=TIMEOUT)
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    _, body = stack.api("GET", path)
    tis = {ti["task_id"]: ti for ti in body["task_instances"]}
    figures["resolve → wait ended"] = (
        datetime.fromisoformat(tis["wait_for_approval"]["end_date"]).timestamp() - resolved_at
    )
    figures["resolve → next task"] = (
        datetime.fromisoformat(tis["approval_decision"]["start_date"]).timestamp() - resolved_at
    )
    return figures


def main() -> int:
    """Start the stack and the fakes, run the trials, print medians."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--keep-home", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-slack-clicks-"))
    with FakeSlackServer() as slack, FakePagerDuty() as pagerduty:
        connection = json.loads(slack.connection_json())
        connection["extra"]["signing_secret"] = SECRET
        env = {
            "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(connection),
            "AIRFLOW_CONN_PAGERDUTY_EVENTS_DEFAULT": pagerduty.connection_json(),
            "AIRFLOW_VAR_INCIDENT_APPROVERS": json.dumps({"default": ["admin"]}),
            "AIRFLOW_VAR_INCIDENT_RESPONDERS": json.dumps([f"slack:{USER}"]),
        }
        stack = LocalAirflow(
            home / "airflow", free_port(), repo=REPO, extra_env=env, inherit_airflow_env=False
        )
        try:
            stack.prepare()
            stack.start()
            stack.wait_ready(300)
            stack.login("admin")
            stack.wait_for_dag(DAG_ID, timeout=TIMEOUT, fail_on_import_error=True)
            stack.unpause(DAG_ID)
            warm_up = trial(stack, slack)
            print("warm-up (not counted): " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in warm_up.items()))
            results = [trial(stack, slack) for _ in range(args.trials)]
        finally:
            stack.stop()
            if not args.keep_home:
                shutil.rmtree(home, ignore_errors=True)
    print(f"\nmedians over {len(results)} incidents (min–max):")
    for key in results[0]:
        values = [r[key] for r in results]
        print(
            f"  {key:<22} {statistics.median(values) * 1000:6.0f} ms"
            f"  ({min(values) * 1000:.0f}–{max(values) * 1000:.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
