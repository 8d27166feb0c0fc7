"""Helpers of the incident store tests: records as the workflow makes them."""

from __future__ import annotations

import threading
from pathlib import Path

from include.store import Approval, IncidentStore
from tests.factories import approval_record

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "incident_response"
ALERT = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", "source": "api", "severity": None}


def incident(store: IncidentStore, run_id: str) -> str:
    return store.incidents.open(dag_id=DAG_ID, run_id=run_id, incident_key="k" * 16, alert=dict(ALERT))


def approval(store: IncidentStore, run_id: str, **overrides) -> Approval:
    return approval_record(store, run_id=run_id, incident_key="k" * 16, **overrides)


def kinds(store: IncidentStore, incident_id: str) -> list[str]:
    return [e.kind for e in store.incidents.timeline(incident_id)]


def race(n: int, work) -> tuple[list, list[BaseException]]:
    """Run `work(i)` in `n` threads released at the same moment; return results and exceptions."""
    barrier = threading.Barrier(n)
    results: list = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            value = work(i)
        except BaseException as exc:  # collected and asserted on by the test
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a voter hung"
    return results, errors
