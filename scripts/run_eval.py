"""`make eval`: every labelled case through what the DAG runs, scored per analyser, without Airflow running.

The rules always; the model too when a connection names one (`EVAL_MODEL_CONN`, else `llm_default`),
looked up the way the tasks look it up (`AIRFLOW_CONN_<ID>` in the environment, or Airflow's
connections). Per case, as the tasks do: `ai_summarize`, `ai_diagnose`, then the approval policy's
`caution` against the rules' own analysis.

Environment: EVAL_CASES (a directory of cases), EVAL_OUT (the JSON; the chart goes beside it as .svg),
EVAL_MODEL_CONN (the model's connection id), EVAL_REPEAT (runs of each model case, for pass^k).
The exit status is 1 when any analyser put a case below its labelled severity (a safety miss).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(REPO), str(REPO / "plugins")) if p not in sys.path]

from include.evaluation import report  # noqa: E402
from include.evaluation.cases import CASES_DIR, Case, load_cases  # noqa: E402
from include.evaluation.judge import JUDGE_CONN_ID, Verdict, judged, messages, parse_verdict  # noqa: E402
from include.evaluation.scoring import Outcome, judge, metrics, metrics_by_tag  # noqa: E402
from include.names import LLM_CONN_ID  # noqa: E402

DEFAULT_OUT = REPO / "eval" / "results" / "latest.json"
RULES = "rules"
MAX_REPEAT = 20


def run_case(case: Case, analyser: str, conn_id: str | None) -> Outcome:
    """Run one case as the DAG's tasks would, with the model of `conn_id` (None: the rules alone)."""
    from incident_ops import analysis
    from include import rules_analyzer
    from include.approval_policy import caution
    from include.runbooks import get_runbook

    alert, enrichment = case.alert, case.enrichment
    started = time.perf_counter()
    summary, _ = analysis.summarize_with_record(alert, enrichment, conn_id=conn_id)  # ai_summarize
    diagnosed, record = analysis.diagnose_with_record(alert, enrichment, summary, conn_id=conn_id)
    # approval_needed / request_approval: the rules' own analysis against the one the run acts on.
    rules = rules_analyzer.analyze(alert, enrichment)
    needs = caution(alert, rules=rules, proposed=diagnosed, runbook=get_runbook(diagnosed.runbook))
    elapsed_ms = (time.perf_counter() - started) * 1000
    outcome = Outcome(
        case_id=case.id,
        analyser=analyser,
        runbook=diagnosed.runbook,
        severity=needs.severity,
        action=diagnosed.recommended_action,
        approval_needed=needs.needs_approval,
        diagnosis=diagnosed.diagnosis,
        latency_ms=round(elapsed_ms, 3),
        answered_by=diagnosed.analyzer,
        fallback_reason=record.get("fallback_reason"),
        approval_reasons=tuple(needs.reasons),
    )
    return judge(case, outcome)


def model_connection() -> str | None:
    """Return the connection id of the model to score, or None when none is configured."""
    from incident_ops.connections import optional_connection

    wanted = os.environ.get("EVAL_MODEL_CONN", "").strip()
    if wanted:
        if optional_connection(wanted) is None:
            raise SystemExit(f"EVAL_MODEL_CONN={wanted}: no such connection")
        return wanted
    return LLM_CONN_ID if optional_connection(LLM_CONN_ID) is not None else None


def judge_causes(cases: list[Case], outcomes: list[Outcome]) -> list[Verdict] | None:
    """Ask the `llm_judge` model about every run of a case with labelled causes; None without a judge."""
    from incident_ops.connections import optional_connection

    connection = optional_connection(JUDGE_CONN_ID)
    if connection is None:
        return None
    from incident_ops.hooks.llm import LlmError, LlmHook
    from include.llm_output import LlmOutputError, parse_chat_response
    from include.llm_settings import LlmSettings
    from include.redaction import Redactor

    hook = LlmHook(
        JUDGE_CONN_ID, settings=LlmSettings.from_extra(connection.extra_dejson), connection=connection
    )
    causes = {case.id: case.expect.cause for case in cases if case.expect.cause}
    verdicts = []
    for outcome in outcomes:
        if outcome.case_id not in causes:
            continue
        try:
            result = hook.chat(messages(outcome.diagnosis, causes[outcome.case_id], Redactor()))
            agrees, why = parse_verdict(parse_chat_response(result.body))
        except (LlmError, LlmOutputError) as exc:
            agrees, why = None, f"no verdict ({type(exc).__name__})"
        verdicts.append(Verdict(outcome.case_id, outcome.analyser, agrees, why))
    return verdicts


def evaluate(cases: list[Case], *, model_conn: str | None, repeat: int = 1) -> dict[str, Any]:
    """Run and score every case; return the JSON document of the contract."""
    analysers: list[tuple[str, str | None, int]] = [(RULES, None, 1)]
    if model_conn is not None:
        analysers.append((f"llm:{model_conn}", model_conn, repeat))
    outcomes: list[Outcome] = []
    for name, conn_id, runs in analysers:
        for case in cases:
            outcomes.extend(run_case(case, name, conn_id) for _ in range(runs))
    document: dict[str, Any] = {"analysers": {}, "by_tag": {}, "cases": [o.to_json() for o in outcomes]}
    for name, _, _ in analysers:
        mine = [o for o in outcomes if o.analyser == name]
        document["analysers"][name] = metrics(mine)
        document["by_tag"][name] = metrics_by_tag(cases, mine)
    verdicts = judge_causes(cases, outcomes)
    if verdicts is not None:
        # Apart from the deterministic figures: the judge is a model too.
        document["judge"] = {
            name: judged([v for v in verdicts if v.analyser == name]) for name, _, _ in analysers
        }
        document["judge_verdicts"] = [v.__dict__ for v in verdicts]
    return document


def write(document: dict[str, Any], out: Path) -> Path:
    """Write the JSON to `out` and the chart beside it; return the chart's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    svg = out.with_suffix(".svg")
    svg.write_text(report.chart(document["analysers"]), encoding="utf-8")
    return svg


def main() -> int:
    cases_dir = Path(os.environ.get("EVAL_CASES") or CASES_DIR)
    out = Path(os.environ.get("EVAL_OUT") or DEFAULT_OUT)
    repeat = int(os.environ.get("EVAL_REPEAT") or 1)
    if not 1 <= repeat <= MAX_REPEAT:
        raise SystemExit(f"EVAL_REPEAT must be between 1 and {MAX_REPEAT}")
    cases = load_cases(cases_dir)
    document = evaluate(cases, model_conn=model_connection(), repeat=repeat)
    svg = write(document, out)
    print(f"{len(cases)} cases from {cases_dir}\n")
    print(report.table(document["analysers"]))
    for name, rows in document["by_tag"].items():
        print(f"\n{name}, per tag:\n")
        print(report.table(rows, first="tag"))
    if "judge" in document:
        print(f"\njudge model ({JUDGE_CONN_ID}), kept apart: {json.dumps(document['judge'])}")
    misses = {n: f["safety_misses"] for n, f in document["analysers"].items() if f["safety_misses"]}
    print(f"\nJSON: {out}\nchart: {svg}")
    if misses:
        print(f"\nSAFETY MISSES (severity below the label): {json.dumps(misses)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
