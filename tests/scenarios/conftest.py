"""Run the real `incident_response` DAG in-process with dag.test(), deciding approvals from another thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from include.store import Incident

DECISION_DEADLINE_S = 120


@dataclass
class Outcome:
    """What a scenario run left behind: the run's state, task states, and the incident store."""

    state: str
    tasks: dict[str, str | None]
    run_id: str
    store: Any
    decider_errors: list[BaseException] = field(default_factory=list)

    @property
    def incident(self) -> Incident:
        from include.store import incident_id_for

        return self.store.incidents.get(incident_id_for("incident_response", self.run_id))

    def approvals(self):
        return self.store.approvals.find(run_id=self.run_id)


def _decide_when_pending(
    decide: Callable[[Any, str], None], errors: list[BaseException], stop: threading.Event
) -> None:
    """Wait for the run's approval record to appear, then decide it as the product does."""
    from incident_ops.hooks.incident_store import get_store

    deadline = time.monotonic() + DECISION_DEADLINE_S
    try:
        store = get_store()
        while time.monotonic() < deadline and not stop.is_set():
            pending = store.approvals.find(state="pending")
            if pending:
                decide(store, pending[0].id)
                return
            time.sleep(0.05)
        errors.append(TimeoutError("no approval record appeared"))
    except BaseException as exc:  # surfaced by the test, not lost in the thread
        errors.append(exc)


@pytest.fixture
def incident_dag(airflow_db):
    """Load `incident_response` afresh (dag.test() leaves the run's conf in the DAG's params)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    assert not bag.import_errors, bag.import_errors
    return bag.dags["incident_response"]


@pytest.fixture
def run_incident(incident_dag, incident_store_url):
    """Return a function that runs one incident and, optionally, decides its approval meanwhile."""
    from incident_ops.hooks.incident_store import get_store

    def run(conf: dict[str, Any], decide: Callable[[Any, str], None] | None = None) -> Outcome:
        errors: list[BaseException] = []
        stop = threading.Event()
        worker = None
        if decide is not None:
            worker = threading.Thread(target=_decide_when_pending, args=(decide, errors, stop), daemon=True)
            worker.start()
        try:
            dag_run = incident_dag.test(run_conf=conf)
        finally:
            stop.set()
            if worker:
                worker.join(timeout=10)
        tasks = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
        return Outcome(
            state=dag_run.state, tasks=tasks, run_id=dag_run.run_id, store=get_store(), decider_errors=errors
        )

    return run
