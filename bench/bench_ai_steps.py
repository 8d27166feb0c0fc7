"""Benchmark the AI steps: our overhead around one model call, and ai_summarize + ai_diagnose end to end.

    .venv/bin/python bench/bench_ai_steps.py [--runs 300] [--task-runs 100]

(a) overhead: build the prompt (render + redact), encode the request body, read the completion,
    extract and validate the JSON against Analysis and the allow-list. No network.
(b) ai_summarize + ai_diagnose: the task callables, as the DAG runs them, on the embedded default
    (SQLite incident store in a throw-away AIRFLOW_HOME), with a stub model on 127.0.0.1 that answers
    instantly; and, for reference, the same two tasks with no `llm_default` (rules only).

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-ai-steps-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
    del os.environ[_name]

CONF = {
    "device_id": "PUMP-07B",
    "error": "PRESSURE_SPIKE_DETECTED",
    "message": "Pressure 9.4 bar on the discharge line; reported by ops@example.org (token=tok_abc123def456)",
    "metrics": {"pressure_bar": 9.4, "temperature_c": 61.0},
    "labels": {"site": "plant-north", "line": "L2"},
}


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * 1000:8.3f} ms   p95 {p95 * 1000:8.3f} ms   (n={len(ordered)})"
    )


def _time(fn: Callable[[], object], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def bench_overhead(runs: int) -> None:
    """Time what our code adds around one model call, without the call."""
    from include import inventory, rules_analyzer
    from include.llm_output import parse_chat_response, parse_diagnosis, parse_summary
    from include.models import Alert
    from include.prompting import build_diagnose_prompt, build_summarize_prompt
    from include.redaction import Redactor
    from include.runbooks import get_runbook, match_runbook

    alert = Alert.model_validate(CONF)
    enrichment = inventory.lookup(alert.device_id)
    redactor = Redactor(redact_ips=True)
    answer = {
        "severity": "critical",
        "diagnosis": "A closed downstream valve is the likely cause.",
        "recommended_action": "open_bypass_valve",
        "confidence": 0.85,
    }
    completion = {
        "model": "stub",
        "choices": [
            {
                "finish_reason": "stop",
                "message": {"content": f"Here you go:\n```json\n{json.dumps(answer)}\n```"},
            }
        ],
        "usage": {"prompt_tokens": 700, "completion_tokens": 60, "total_tokens": 760},
    }
    summary_completion = {"choices": [{"message": {"content": '{"summary": "Pump PUMP-07B at 9.4 bar."}'}}]}

    def diagnose_side() -> None:
        rules = rules_analyzer.analyze(alert, enrichment)  # the runbook choice and the fallback
        runbook = get_runbook(rules.runbook)
        prompt = build_diagnose_prompt(
            alert, enrichment, runbook, rules=rules, summary=rules.summary, redactor=redactor
        )
        json.dumps(
            {"model": "stub", "messages": prompt.messages, "response_format": prompt.response_format()}
        )
        parse_diagnosis(
            parse_chat_response(json.loads(json.dumps(completion))), runbook=runbook, summary=rules.summary
        )

    def summarize_side() -> None:
        prompt = build_summarize_prompt(
            alert, enrichment, match_runbook(alert.error, alert.metrics), redactor=redactor
        )
        json.dumps(
            {"model": "stub", "messages": prompt.messages, "response_format": prompt.response_format()}
        )
        parse_summary(parse_chat_response(json.loads(json.dumps(summary_completion))))

    rules = rules_analyzer.analyze(alert, enrichment)
    runbook = get_runbook(rules.runbook)
    user = build_diagnose_prompt(
        alert, enrichment, runbook, rules=rules, summary=rules.summary, redactor=Redactor()
    ).messages[1]["content"]

    print("(a) overhead around one model call (no network)")
    rows = [
        ("diagnose: rules, prompt, redact, encode, parse, validate", _time(diagnose_side, runs)),
        ("summarize: prompt, redact, encode, parse", _time(summarize_side, runs)),
        (
            f"redaction only, diagnose user message ({len(user)} chars)",
            _time(lambda: redactor.redact(user), runs),
        ),
    ]
    for label, samples in rows:
        print(f"  {label:<60} {_stats(samples)}")


class _TaskInstance:
    """Just what the AI task callables use of a TaskInstance: XCom pulls from ingest and enrich."""

    def __init__(self, xcoms: dict[str, object]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str):
        return self.xcoms.get(task_ids)


class _DagRun:
    def __init__(self, run_id: str) -> None:
        self.dag_id, self.run_id = "incident_response", run_id


def bench_tasks(runs: int) -> None:
    """Time ai_summarize + ai_diagnose with an instant stub model, then with no model."""
    from incident_ops import tasks
    from incident_ops.hooks.incident_store import get_store
    from include import inventory, names
    from include.models import Alert
    from tests.fakes.llm_server import FakeLlmServer, Reply

    alert = Alert.model_validate(CONF)
    enrichment = inventory.lookup(alert.device_id)
    store = get_store()
    counter = iter(range(10**9))

    def one_run() -> None:
        run = _DagRun(f"bench__{next(counter)}")
        store.incidents.open(
            dag_id=run.dag_id, run_id=run.run_id, incident_key=alert.incident_key, alert=alert.to_xcom()
        )
        ti = _TaskInstance({names.INGEST: alert.to_xcom(), names.ENRICH: enrichment.to_xcom()})
        started = time.perf_counter()
        ti.xcoms[names.SUMMARIZE] = tasks.ai_summarize(ti=ti, dag_run=run)
        result = tasks.ai_diagnose(ti=ti, dag_run=run)
        samples.append(time.perf_counter() - started)
        analyzers.add(result["analyzer"])

    print("(b) ai_summarize + ai_diagnose task callables, embedded default store (SQLite in AIRFLOW_HOME)")
    with FakeLlmServer(default=Reply.valid(action="open_bypass_valve")) as server:
        os.environ["AIRFLOW_CONN_LLM_DEFAULT"] = server.connection_json()
        samples: list[float] = []
        analyzers: set[str] = set()
        for _ in range(5):
            one_run()
        samples.clear()
        for _ in range(runs):
            one_run()
        print(
            f"  {'stub LLM on 127.0.0.1 (2 HTTP calls)':<40} {_stats(samples)}   analyzer={sorted(analyzers)}"
            f"   requests={len(server.requests)}"
        )
    del os.environ["AIRFLOW_CONN_LLM_DEFAULT"]
    samples, analyzers = [], set()
    for _ in range(5):
        one_run()
    samples.clear()
    for _ in range(runs):
        one_run()
    print(f"  {'no llm_default (rules only)':<40} {_stats(samples)}   analyzer={sorted(analyzers)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=300, help="iterations for (a)")
    parser.add_argument("--task-runs", type=int, default=100, help="iterations for (b)")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)  # the per-call log lines would dominate the figures
    print(f"Python {sys.version.split()[0]}, AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}")
    bench_overhead(args.runs)
    bench_tasks(args.task_runs)


if __name__ == "__main__":
    main()
