"""Benchmark alert -> page: a webhook received until the on-call page reaches Slack, against Airflow's floor.

    .venv/bin/python bench/bench_alert_to_page.py [--trials 20] [--warmup 1]
        [--airflow-env KEY=VALUE ...] [--keep-home]

One embedded Airflow (scripts/local_airflow on the embedded PostgreSQL + LocalExecutor, loopback, a
free port) whose DAGs folder holds dags/incident_response.py and bench/dags/empty_chain_bench.py, with
its Slack connection pointing at the loopback fake Slack Web API (tests/fakes/slack_server.py) run in
this process. Trials alternate, one run at a time:

ours    POST a critical alert (a new fingerprint each time) to the plugin's generic webhook;
        latency = the fake Slack server receiving the page (the first chat.postMessage after the
        POST, checked to be in the on-call channel) - the moment the POST was sent (one clock:
        this process's). page_oncall is the sixth task of the run. The run is then marked failed,
        so no approval waits pile up.
anchor  trigger empty_chain_bench (six chained EmptyOperators) through Airflow's REST API;
        latency = the sixth task's end_date - the moment the trigger was sent (the same machine's
        wall clock).

No scheduler tuning unless --airflow-env, which applies to both sides (the same processes). Prints
median and p95 of each side and their ratio (target ours / anchor <= 1.2), writes
bench/results/alert_to_page.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

from common import REPO, airflow_stack, comparison, distribution, parse_env, print_table, write_result

from include import names
from scripts.local_airflow import LocalAirflow, LocalAirflowError
from tests.fakes.slack_server import FakeSlackServer

ANCHOR_DAG = "empty_chain_bench"
ANCHOR_LAST_TASK = "step_6"
DAG_FILES = (REPO / "dags" / "incident_response.py", REPO / "bench" / "dags" / "empty_chain_bench.py")
WEBHOOK = "/incident-response/api/alerts/generic"
TARGET = 1.2
ONCALL_CHANNEL = "#oncall"
CHANNELS = {"oncall": ONCALL_CHANNEL, "default": "#incidents"}
STEP_TIMEOUT = 180.0
# The tasks of incident_response up to and including the page, in order.
CHAIN = (
    names.INGEST,
    names.ENRICH,
    names.SUMMARIZE,
    names.DIAGNOSE,
    names.ANALYZE_SEVERITY,
    names.PAGE_ONCALL,
)


def send_alert(stack: LocalAirflow, token: str, fingerprint: str) -> tuple[float, str]:
    """POST one critical alert to the webhook; return when it was sent (monotonic) and its run id."""
    body = json.dumps(
        {
            "device_id": "PUMP-07B",
            "error": "PRESSURE_SPIKE_DETECTED",
            "metrics": {"pressure_bar": 9.4},
            "fingerprint": fingerprint,
        }
    ).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection("127.0.0.1", stack.api_port, timeout=30)
    try:
        sent = time.monotonic()
        connection.request("POST", WEBHOOK, body=body, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read() or b"{}")
    finally:
        connection.close()
    if response.status != 202 or answer["incidents"][0]["deduplicated"]:
        raise LocalAirflowError(f"webhook answered {response.status}: {answer!r}")
    return sent, answer["incidents"][0]["dag_run_id"]


def run_ours(stack: LocalAirflow, slack: FakeSlackServer, token: str) -> dict[str, Any]:
    """Send an alert and wait for its page; return the latency and what it was made of."""
    seen = len(slack.calls("chat.postMessage"))
    sent, run_id = send_alert(stack, token, f"bench-page-{uuid.uuid4().hex[:10]}")

    def paged() -> Any:
        calls = slack.calls("chat.postMessage")[seen:]
        return calls[0] if calls else None

    page = stack.wait_until(paged, STEP_TIMEOUT, f"the page of {run_id}", interval=0.05)
    try:
        channel = page.body.get("channel")
        if channel != ONCALL_CHANNEL:
            raise LocalAirflowError(f"first message of {run_id} went to {channel!r}, not the on-call channel")
        latency = page.time - sent
        return {"run_id": run_id, "latency": latency, "steps": breakdown(stack, run_id, sent, latency)}
    finally:
        stack.api(
            "PATCH",
            f"/api/v2/dags/{names.DAG_ID}/dagRuns/{quote(run_id, safe='')}",
            {"state": "failed"},
        )


def breakdown(stack: LocalAirflow, run_id: str, sent: float, latency: float) -> dict[str, float]:
    """Split ours into scheduling, worker start-up and running, summed over the six tasks."""
    offset = time.time() - time.monotonic()  # the server's wall clock against our monotonic one
    start = datetime.fromtimestamp(sent + offset).astimezone()
    status, body = stack.api(
        "GET", f"/api/v2/dags/{names.DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=100"
    )
    if status != 200:
        return {}
    tis = {ti["task_id"]: ti for ti in body["task_instances"]}
    steps = {"scheduling (ready -> queued)": 0.0, "worker start (queued -> running)": 0.0, "running": 0.0}
    previous = start
    for task_id in CHAIN:
        ti = tis.get(task_id) or {}
        if not (ti.get("queued_when") and ti.get("start_date")):
            return {}
        queued, started = parse_time(ti["queued_when"]), parse_time(ti["start_date"])
        steps["scheduling (ready -> queued)"] += (queued - previous).total_seconds()
        steps["worker start (queued -> running)"] += (started - queued).total_seconds()
        if task_id != names.PAGE_ONCALL:
            previous = parse_time(ti["end_date"])
            steps["running"] += (previous - started).total_seconds()
        else:
            steps["running"] += (start - started).total_seconds() + latency  # until the page arrived
    return steps


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 timestamp from the API."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_anchor(stack: LocalAirflow) -> dict[str, Any]:
    """Trigger the EmptyOperator chain; return the latency until its sixth task ended."""
    run_id = f"bench-chain-{uuid.uuid4().hex[:10]}"
    sent = datetime.now().astimezone()
    stack.trigger(ANCHOR_DAG, {}, run_id=run_id)
    stack.wait_for_run(ANCHOR_DAG, run_id, timeout=STEP_TIMEOUT)
    status, ti = stack.api(
        "GET", f"/api/v2/dags/{ANCHOR_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{ANCHOR_LAST_TASK}"
    )
    if status != 200:
        raise LocalAirflowError(f"{ANCHOR_LAST_TASK} of {run_id}: HTTP {status} {ti!r}")
    ended = parse_time(ti["end_date"])
    return {"run_id": run_id, "latency": (ended - sent).total_seconds()}


def measured(run: Any) -> dict[str, Any]:
    """Run one trial; a failure is counted, not raised."""
    try:
        return run()
    except (LocalAirflowError, TimeoutError, KeyError, ValueError) as exc:
        return {"latency": None, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def main() -> int:
    """Start the fake Slack and the stack, run the trials, print and write the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20, help="measured trials per side (default 20)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted trials per side first (default 1)")
    parser.add_argument(
        "--budget-minutes", type=float, default=0, help="start no trial after this long (0: no limit)"
    )
    parser.add_argument("--airflow-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME (logs)")
    args = parser.parse_args()
    tuning = parse_env(args.airflow_env)
    token = uuid.uuid4().hex
    trials: dict[str, list[dict[str, Any]]] = {"ours": [], "anchor": []}
    with FakeSlackServer() as slack:
        env = {
            "AIRFLOW_CONN_SLACK_API_DEFAULT": slack.connection_json(),
            names.WEBHOOK_TOKEN_ENV: token,
            f"AIRFLOW_VAR_{names.CHANNELS_VARIABLE.upper()}": json.dumps(CHANNELS),
            **tuning,
        }
        with airflow_stack("page", dag_files=DAG_FILES, extra_env=env, keep_home=args.keep_home) as stack:
            for dag_id in (names.DAG_ID, ANCHOR_DAG):
                stack.wait_for_dag(dag_id, 180, fail_on_import_error=True)
                stack.unpause(dag_id)
            deadline = time.monotonic() + args.budget_minutes * 60 if args.budget_minutes else None
            for index in range(args.warmup + args.trials):
                if deadline is not None and time.monotonic() > deadline:
                    print(f"budget of {args.budget_minutes:g} min spent: stopping after {index} trials")
                    break
                ours, anchor = (
                    measured(lambda: run_ours(stack, slack, token)),
                    measured(lambda: run_anchor(stack)),
                )
                counted = index >= args.warmup
                if counted:
                    trials["ours"].append(ours)
                    trials["anchor"].append(anchor)
                shown = "   ".join(
                    f"{side} {t['latency']:5.2f} s"
                    if t["latency"] is not None
                    else f"{side} FAILED ({t['error']})"
                    for side, t in (("ours", ours), ("anchor", anchor))
                )
                print(f"trial {index:02d}{'' if counted else ' (warm-up)'}: {shown}", flush=True)
    figures = {
        side: distribution([t["latency"] for t in ts if t["latency"] is not None])
        for side, ts in trials.items()
    }
    failures = {side: sum(t["latency"] is None for t in ts) for side, ts in trials.items()}
    print("\nalert -> page (seconds)")
    print_table(
        [
            [
                "ours: webhook -> page in Slack",
                figures["ours"]["median"],
                figures["ours"]["p95"],
                failures["ours"],
            ],
            [
                "anchor: trigger -> 6th EmptyOperator done",
                figures["anchor"]["median"],
                figures["anchor"]["p95"],
                failures["anchor"],
            ],
        ],
        ["side", "median", "p95", "failed"],
    )
    steps = [t["steps"] for t in trials["ours"] if t.get("steps")]
    if steps:
        print("\nours, where the time goes (median over trials, summed over the six tasks)")
        for step in steps[0]:
            print(f"  {step:<34} {statistics.median(s[step] for s in steps):6.2f} s")
    rows = [
        comparison("Alert -> page", stat, figures["ours"][stat], figures["anchor"][stat], f"<= {TARGET}x")
        for stat in ("median", "p95")
    ]
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"ratio ({row['metric']}) {ratio} (target <= {TARGET}x)")
    write_result(
        "alert_to_page",
        {
            "trials": trials,
            "failures": failures,
            "figures": figures,
            "airflow_env": tuning,
            "comparisons": rows,
        },
    )
    return 0 if not any(failures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
