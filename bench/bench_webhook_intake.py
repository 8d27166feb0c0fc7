"""Benchmark the alert webhook: many senders posting mostly repeats of a few Alertmanager groups.

    .venv/bin/python bench/bench_webhook_intake.py [--senders 20] [--seconds 20] [--groups 8]
        [--new-every 50] [--unpause] [--url http://127.0.0.1:8080 --token ...] [--keep-home]

Starts an embedded Airflow (scripts/local_airflow: api-server, scheduler, dag-processor, triggerer
on the embedded PostgreSQL + LocalExecutor, loopback only, a free port, a throw-away AIRFLOW_HOME) with
INCIDENT_WEBHOOK_TOKEN set, or uses a running one given --url and --token (then the run count below
includes its earlier runs). `--senders` threads, each with its own keep-alive connection, post
Alertmanager webhook bodies (version 4, 1-3 alerts per group) to
`/incident-response/api/alerts/alertmanager` for `--seconds`: a request re-sends one of `--groups`
fixed groups (what Alertmanager does every group_interval and on retries), and every `--new-every`-th
request of a sender carries a group nobody sent before (a new alert). All senders start at the same
moment, so the first copies of every fixed group arrive concurrently.

The DAG stays paused unless --unpause: new runs wait queued, so the figures measure the intake rather
than the scheduler and workers competing for the same SQLite files.

Prints requests/s, latency p50/p95/p99, errors, and checks that the number of runs Airflow created
equals the number of distinct alerts sent. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import where_time_goes  # noqa: E402
from common import comparison, distribution, write_result  # noqa: E402

from scripts.local_airflow import LocalAirflow  # noqa: E402

DAG_ID = "incident_response"
ROUTE = "/incident-response/api/alerts/alertmanager"
TARGET_RPS = 300.0
DEVICES = ["PUMP-07B", "PUMP-12A", "COMP-03", "SENSOR-T-88", "MOTOR-21", "VALVE-3", "FAN-9", "PUMP-01C"]
ERRORS = ["PRESSURE_SPIKE_DETECTED", "OVERHEATING", "STUCK_READING", "MAINTENANCE_DUE"]


def alert(device: str, error: str, fingerprint: str) -> dict[str, Any]:
    """Return one alert as Alertmanager renders it in a webhook body."""
    return {
        "status": "firing",
        "labels": {"alertname": error, "device_id": device, "severity": "warning", "site": "plant-north"},
        "annotations": {"summary": f"{error} on {device}", "description": "Benchmark alert."},
        "startsAt": "2024-05-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def group(alerts: list[dict[str, Any]], key: str) -> bytes:
    """Return an Alertmanager webhook body (version 4) for `alerts`, encoded."""
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{bench="{key}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incident-response",
        "groupLabels": {"bench": key},
        "commonLabels": {"site": "plant-north"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": alerts,
    }
    return json.dumps(body).encode()


@dataclass
class Tally:
    """What one sender saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    fingerprints: set[str] = field(default_factory=set)
    created: int = 0
    deduplicated: int = 0


def sender(
    index: int,
    host: str,
    port: int,
    root: str,
    token: str,
    fixed: list[tuple[bytes, list[str]]],
    new_every: int,
    start: threading.Barrier,
    stop_at: list[float],
    tally: Tally,
    expect: int = 202,
) -> None:
    """Post bodies until the deadline; count statuses, latencies and what the answers say."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection(host, port, timeout=60)
    start.wait()
    sent = 0
    while time.monotonic() < stop_at[0]:
        sent += 1
        if new_every and sent % new_every == 0:
            fingerprint = f"bench-new-{index}-{sent}-{uuid.uuid4().hex[:6]}"
            body, fingerprints = (
                group([alert(DEVICES[sent % len(DEVICES)], ERRORS[0], fingerprint)], fingerprint),
                [fingerprint],
            )
        else:
            body, fingerprints = fixed[(index + sent) % len(fixed)]
        began = time.perf_counter()
        try:
            connection.request("POST", root + ROUTE, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")
            tally.statuses["connection error"] += 1
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=60)
            continue
        tally.latencies.append(time.perf_counter() - began)
        tally.statuses[response.status] += 1
        if response.status != expect:
            tally.errors.append(f"{response.status}: {payload[:200]!r}")
        if response.status != 202:
            continue
        tally.fingerprints.update(fingerprints)
        for item in json.loads(payload)["incidents"]:
            if item["deduplicated"]:
                tally.deduplicated += 1
            else:
                tally.created += 1
    connection.close()


def blast(
    address: tuple[str, int, str],
    token: str,
    fixed: list,
    new_every: int,
    senders: int,
    seconds: float,
    expect: int = 202,
) -> tuple[list[Tally], float]:
    """Run `senders` threads for `seconds`, all starting at the same moment; return their tallies."""
    tallies = [Tally() for _ in range(senders)]
    start = threading.Barrier(senders + 1)
    stop_at = [0.0]
    threads = [
        threading.Thread(
            target=sender,
            args=(i, *address, token, fixed, new_every, start, stop_at, tallies[i], expect),
            daemon=True,
        )
        for i in range(senders)
    ]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return tallies, time.monotonic() - began


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def rest(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """Call Airflow's REST API on loopback and return the decoded answer; raise on a non-2xx."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())


def run_count(base: str, token: str) -> int:
    return rest(base, "GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1", token=token)["total_entries"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def profile_intake(
    stack: LocalAirflow, home: Path | None, address: tuple, token: str, fixed: list, args: Any
) -> dict[str, Any] | None:
    """Blast again under py-spy (the API server and its workers); return where the time went."""
    out = (home or Path(tempfile.gettempdir())) / "api-server.collapsed"
    try:
        spy = where_time_goes.start(stack.components["api-server"].pid, args.profile, out)
    except FileNotFoundError as exc:
        print(f"no profile: {exc}")
        return None
    time.sleep(1.0)  # py-spy attaches to every worker first
    blast(address, token, fixed, args.new_every, args.senders, args.profile)
    _, stderr = spy.communicate(timeout=args.profile + 60)
    if spy.returncode or not out.exists():
        print(f"no profile: py-spy exited {spy.returncode}: {stderr.decode(errors='replace')[-300:]}")
        return None
    summary = where_time_goes.summarise(out)
    where_time_goes.print_summary(summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--groups", type=int, default=8, help="fixed groups re-sent over and over")
    parser.add_argument(
        "--new-every", type=int, default=50, help="every n-th request is a new alert (0: never)"
    )
    parser.add_argument("--unpause", action="store_true", help="let the runs execute while measuring")
    parser.add_argument("--baseline-seconds", type=float, default=5.0, help="then time 401 answers (0: skip)")
    parser.add_argument(
        "--profile", type=float, default=10.0, help="then this many seconds under py-spy (0: skip)"
    )
    parser.add_argument("--url", help="use this running Airflow (its /incident-response plugin) instead")
    parser.add_argument("--token", help="the webhook token of --url")
    parser.add_argument("--username", default="admin", help="Airflow user that counts runs (with --url)")
    parser.add_argument("--password", help="that user's password (with --url)")
    parser.add_argument("--keep-home", action="store_true", help="keep the throw-away AIRFLOW_HOME")
    args = parser.parse_args(argv)
    if not 1 <= args.senders <= 200 or not 0 < args.seconds <= 600:
        parser.error("--senders must be 1..200 and --seconds 0..600")

    home = stack = None
    try:
        if args.url:
            if not (args.token and args.password):
                parser.error("--url needs --token and --password")
            base = args.url.rstrip("/")
            url = urllib.parse.urlsplit(base)
            host, port, root, token = url.hostname or "127.0.0.1", url.port or 80, url.path, args.token
            login = {"username": args.username, "password": args.password}
            admin = rest(base, "POST", "/auth/token", login)["access_token"]
        else:
            home = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
            token = uuid.uuid4().hex
            stack = LocalAirflow(
                home, free_port(), extra_env={"INCIDENT_WEBHOOK_TOKEN": token}, inherit_airflow_env=False
            )
            print(f"Starting Airflow in {home} on 127.0.0.1:{stack.api_port} ...", flush=True)
            stack.prepare()
            stack.start()
            stack.wait_ready(240)
            admin = stack.login("admin")
            print(f"Airflow ready after {stack.ready_after:.1f}s", flush=True)
            stack.wait_for_dag(DAG_ID, timeout=180)
            base, host, port, root = stack.api_url, "127.0.0.1", stack.api_port, ""
        if args.unpause:
            rest(base, "PATCH", f"/api/v2/dags/{DAG_ID}?update_mask=is_paused", {"is_paused": False}, admin)
        runs_before = run_count(base, admin)

        salt = uuid.uuid4().hex[:8]
        fixed = []
        for number in range(args.groups):
            members = [
                alert(
                    DEVICES[(number + k) % len(DEVICES)],
                    ERRORS[(number + k) % len(ERRORS)],
                    f"bench-{salt}-{number}-{k}",
                )
                for k in range(1 + number % 3)
            ]
            fixed.append((group(members, f"{salt}-{number}"), [a["fingerprint"] for a in members]))

        address = (host, port, root)
        tallies, elapsed = blast(address, token, fixed, args.new_every, args.senders, args.seconds)

        latencies = sorted(x for t in tallies for x in t.latencies)
        statuses = sum((t.statuses for t in tallies), Counter())
        errors = [e for t in tallies for e in t.errors]
        distinct = set().union(*(t.fingerprints for t in tallies))
        created = sum(t.created for t in tallies)
        deduplicated = sum(t.deduplicated for t in tallies)
        time.sleep(1.0)
        runs = run_count(base, admin) - runs_before
        requests = sum(statuses.values())

        print()
        print(
            f"senders {args.senders}, {elapsed:.1f} s, {args.groups} fixed groups, a new alert every "
            f"{args.new_every or 'never'} requests per sender, DAG {'unpaused' if args.unpause else 'paused'}"
        )
        print(f"requests      {requests}  ({requests / elapsed:.1f} req/s)")
        if latencies:
            p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
            mean, worst = statistics.fmean(latencies) * 1000, latencies[-1] * 1000
            print(f"latency       p50 {p50:.1f} ms   p95 {p95:.1f} ms   p99 {p99:.1f} ms", end="")
            print(f"   mean {mean:.1f} ms   max {worst:.1f} ms")
        print(f"statuses      {dict(statuses)}")
        print(f"errors        {len(errors)}" + (f"  e.g. {errors[0]}" if errors else ""))
        answered = created + deduplicated
        print(f"alerts        {answered} in answers: {created} started a run, {deduplicated} deduplicated")
        print(f"distinct      {len(distinct)} alerts sent")
        print(
            f"runs created  {runs}  ({'equal to' if runs == len(distinct) == created else 'DIFFERENT FROM'} "
            "the distinct alerts and the answers that started one)"
        )
        floor_result: dict = {}
        if args.baseline_seconds:
            # The cheapest answer of the route (a refused token, no body read, no store) under the
            # same load: the API server's own floor, for comparison.
            floor, floor_elapsed = blast(address, "wrong", fixed, 0, args.senders, args.baseline_seconds, 401)
            floor_latencies = sorted(x for t in floor for x in t.latencies)
            if floor_latencies:
                p50, p95 = (percentile(floor_latencies, q) * 1000 for q in (0.5, 0.95))
                print(
                    f"floor (401)   {len(floor_latencies) / floor_elapsed:.1f} req/s   p50 {p50:.1f} ms   "
                    f"p95 {p95:.1f} ms   errors {sum(len(t.errors) for t in floor)}"
                )
                floor_result = {
                    "requests_per_second": len(floor_latencies) / floor_elapsed,
                    "latency_ms": distribution([x * 1000 for x in floor_latencies]),
                }
        profile = None
        if args.profile and stack is not None:
            profile = profile_intake(stack, home, address, token, fixed, args)
        throughput = requests / elapsed
        rows = [
            comparison(
                "Webhook intake", "req/s against the target", throughput, TARGET_RPS, ">= 1x", "req/s"
            ),
            comparison(
                "Webhook intake",
                "req/s against the 401 floor",
                throughput,
                floor_result.get("requests_per_second"),
                "-",
                "req/s",
            ),
        ]
        write_result(
            "webhook_intake",
            {
                "senders": args.senders,
                "seconds": elapsed,
                "dag": "unpaused" if args.unpause else "paused",
                "requests": requests,
                "requests_per_second": throughput,
                "latency_ms": distribution([x * 1000 for x in latencies]),
                "statuses": {str(k): v for k, v in statuses.items()},
                "errors": len(errors),
                "distinct_alerts": len(distinct),
                "runs_created": runs,
                "runs_match": runs == len(distinct) == created,
                "floor": floor_result,
                "profile": profile,
                "comparisons": rows,
            },
        )
        return 0 if runs == len(distinct) == created and not errors else 1
    finally:
        if stack is not None:
            stack.stop()
        if home is not None:
            if args.keep_home:
                print(f"Kept {home}")
            else:
                shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
