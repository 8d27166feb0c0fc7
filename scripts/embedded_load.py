"""Apply a small team's burst to a running stack: REST triggers and alert webhooks from concurrent clients.

The load `bench/bench_embedded_load.py` measures and `tests/e2e/test_embedded_load.py` asserts: REST
triggers of `incident_response` and Alertmanager webhook posts (each distinct alert re-sent, as
Alertmanager does on every group_interval and retry), mixed and sent by a pool of client threads,
each request on its own connection. Nothing is retried: every 5xx and every reset is counted.

Stdlib only, like the launcher: the caller's process stays free of Airflow.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.local_airflow import LocalAirflow, LocalAirflowError

DAG_ID = "incident_response"
WEBHOOK_PATH = "/incident-response/api/alerts/alertmanager"
TRIGGER_PATH = f"/api/v2/dags/{DAG_ID}/dagRuns"
# Alerts whose runs finish without a human: an info notice (log only) and a warning (a ticket).
TRIGGER_ALERTS = ("motor_status_info.json", "sensor_stuck_reading.json")
WEBHOOK_ALERTS = (("MOTOR-21", "MAINTENANCE_DUE", "info"), ("SENSOR-T-88", "STUCK_READING", "warning"))
SAMPLE_ALERTS = Path(__file__).resolve().parent.parent / "include" / "sample_alerts"
# Errors of a connection the server dropped, as opposed to one that timed out.
RESETS = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


@dataclass(frozen=True)
class Job:
    """One request of the load: a REST trigger or a webhook post carrying one alert."""

    kind: str  # "trigger" or "webhook"
    path: str
    body: bytes
    fingerprint: str | None = None


@dataclass(frozen=True)
class Answer:
    """What the server made of one job."""

    job: Job
    status: int | None  # None: no HTTP answer (see error)
    seconds: float
    error: str | None = None
    reset: bool = False
    body: Any = None


@dataclass
class Load:
    """The answers to a burst, with the figures the requirement is about."""

    answers: list[Answer]
    seconds: float
    started_at: float  # time.time() when the first request left
    statuses: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.statuses = Counter(str(a.status) if a.status else "no answer" for a in self.answers)

    @property
    def server_errors(self) -> list[Answer]:
        """Return the answers of 500 or more."""
        return [a for a in self.answers if a.status is not None and a.status >= 500]

    @property
    def resets(self) -> list[Answer]:
        """Return the requests whose connection the server dropped."""
        return [a for a in self.answers if a.reset]

    @property
    def failures(self) -> list[Answer]:
        """Return every job that got no answer, or an answer other than the one expected."""
        return [a for a in self.answers if a.status != (200 if a.job.kind == "trigger" else 202)]

    def latency(self, share: float) -> float | None:
        """Return a latency percentile in seconds over the answered requests."""
        ordered = sorted(a.seconds for a in self.answers if a.status is not None)
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else None

    def triggered_runs(self) -> set[str]:
        """Return the run ids of the accepted REST triggers."""
        return {a.body["dag_run_id"] for a in self.answers if a.job.kind == "trigger" and a.status == 200}

    def accepted_alerts(self) -> dict[str, str]:
        """Return {fingerprint: run id} of every alert a webhook answer accepted (new or repeat)."""
        accepted: dict[str, str] = {}
        for answer in self.answers:
            if answer.job.kind == "webhook" and answer.status == 202:
                for item in answer.body["incidents"]:
                    accepted[answer.job.fingerprint or ""] = item["dag_run_id"]
        return accepted

    def alerts_sent(self) -> set[str]:
        """Return the fingerprints of the distinct alerts posted."""
        return {a.job.fingerprint for a in self.answers if a.job.fingerprint}


def plan(triggers: int, posts: int, distinct: int, salt: str) -> list[Job]:
    """Return the jobs in sending order: posts cycle through the distinct alerts, triggers spread evenly."""
    confs = [json.loads((SAMPLE_ALERTS / name).read_text()) for name in TRIGGER_ALERTS]
    bodies = [{"logical_date": None, "conf": confs[i % len(confs)]} for i in range(triggers)]
    trigger_jobs = [Job("trigger", TRIGGER_PATH, json.dumps(body).encode()) for body in bodies]
    post_jobs = []
    for i in range(posts):
        number = i % max(1, distinct)
        fingerprint = f"load-{salt}-{number}"
        post_jobs.append(Job("webhook", WEBHOOK_PATH, _alertmanager_body(number, fingerprint), fingerprint))
    jobs: list[Job] = []
    every = max(1, (triggers + posts) // max(1, triggers))
    while trigger_jobs or post_jobs:
        if trigger_jobs and (not post_jobs or len(jobs) % every == 0):
            jobs.append(trigger_jobs.pop(0))
        else:
            jobs.append(post_jobs.pop(0))
    return jobs


def _alertmanager_body(number: int, fingerprint: str) -> bytes:
    """Return an Alertmanager webhook body (version 4) with one firing alert."""
    device, error, severity = WEBHOOK_ALERTS[number % len(WEBHOOK_ALERTS)]
    labels = {"alertname": error, "device_id": f"{device}-{number}", "severity": severity, "site": "load"}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{error} on {device}-{number}"},
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph",
        "fingerprint": fingerprint,
    }
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{load="{fingerprint}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "incident-response",
        "groupLabels": {"load": fingerprint},
        "commonLabels": {"site": "load"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def send(stack: LocalAirflow, jobs: Iterable[Job], webhook_token: str, clients: int) -> Load:
    """Send the jobs from `clients` threads, all starting together; return every answer."""
    pending: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        pending.put(job)
    answers: list[Answer] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    tokens = {"trigger": stack.default_token or "", "webhook": webhook_token}

    def client() -> None:
        start.wait()
        while True:
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            answer = _request(stack.api_port, job, tokens[job.kind])
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    started_at, began = time.time(), time.monotonic()
    start.wait()
    for thread in threads:
        thread.join(timeout=300)
    return Load(answers, time.monotonic() - began, started_at)


def _request(port: int, job: Job, token: str) -> Answer:
    """Post one job on a new connection and time it."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    began = time.perf_counter()
    try:
        connection.request("POST", job.path, body=job.body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
        return Answer(job, None, time.perf_counter() - began, error, reset=isinstance(exc, RESETS))
    finally:
        connection.close()
    seconds = time.perf_counter() - began
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    error = None if response.status < 400 else f"{response.status}: {str(body)[:300]}"
    return Answer(job, response.status, seconds, error, body=body)


def warm_up(stack: LocalAirflow, runs: int, timeout: float) -> set[str]:
    """Trigger runs and wait until one of their tasks has started, so the load meets executing runs."""
    confs = [json.loads((SAMPLE_ALERTS / name).read_text()) for name in TRIGGER_ALERTS]
    run_ids = {stack.trigger(DAG_ID, confs[i % len(confs)])["dag_run_id"] for i in range(runs)}
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/~/taskInstances?state=running&state=success&limit=1"

    def started() -> bool:
        status, page = stack.api("GET", path)
        return status == 200 and page["total_entries"] > 0

    stack.wait_until(started, timeout, "a task of the warm-up runs to start", interval=0.2)
    return run_ids


def run_states(stack: LocalAirflow) -> dict[str, dict[str, Any]]:
    """Return {run id: run} of every incident_response run, through the REST API."""
    runs: dict[str, dict[str, Any]] = {}
    offset, limit = 0, 100
    while True:
        status, page = stack.api("GET", f"{TRIGGER_PATH}?limit={limit}&offset={offset}&order_by=id")
        if status != 200:
            raise LocalAirflowError(f"listing runs answered {status}: {page!r}"[:500])
        runs.update({run["dag_run_id"]: run for run in page["dag_runs"]})
        offset += limit
        if offset >= page["total_entries"]:
            return runs


def wait_for_runs(stack: LocalAirflow, run_ids: set[str], timeout: float) -> dict[str, str]:
    """Wait until every run is finished or the timeout passes; return {run id: state} as last seen."""
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        runs = run_states(stack)
        states = {run_id: runs[run_id]["state"] if run_id in runs else "missing" for run_id in run_ids}
        done = all(state in ("success", "failed", "missing") for state in states.values())
        if done or time.monotonic() >= deadline:
            return states
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


def components_alive(stack: LocalAirflow) -> dict[str, bool]:
    """Return whether each Airflow process of the stack is still running."""
    return {name: component.alive() for name, component in stack.components.items()}


def lock_errors(stack: LocalAirflow) -> int:
    """Return how many lines of the stack's logs report SQLite's "database is locked"."""
    count = 0
    for path in stack.logs_dir.rglob("*.log"):
        with path.open("rb") as handle:
            count += sum(line.count(b"database is locked") for line in handle)
    return count
