"""`make eval`'s model path against a loopback chat completions server that replays fixed answers.

The answers below were WRITTEN FOR THE TEST: they exercise the pipeline (the same AI steps and
approval policy as the DAG, the JSON, pass^k, the judge kept apart), not any model's quality. They
deliberately answer "info" to every alert, so the test also shows the rules' floor holding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.evaluation.cases import load_cases
from scripts import run_eval
from tests.fakes.llm_server import FakeLlmServer, LlmRequest, Reply

WRITTEN_FOR_THE_TEST = "Replayed answer written for the test, not a model's: "


def _replay(request: LlmRequest) -> Reply:
    if "You grade incident diagnoses" in request.prompt:
        return Reply.json({"verdict": "yes", "reasoning": WRITTEN_FOR_THE_TEST + "always yes"})
    if not request.is_diagnosis:
        return Reply.json({"summary": WRITTEN_FOR_THE_TEST + "a summary."})
    actions = request.action_enum or ["collect_diagnostics"]
    return Reply.json(
        {
            "severity": "info",
            "diagnosis": WRITTEN_FOR_THE_TEST + "a closed valve, low voltage or heat.",
            "recommended_action": actions[-1],
            "confidence": 0.95,
        }
    )


@pytest.fixture
def replaying(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLlmServer]:
    with FakeLlmServer(default=Reply("dynamic", make=_replay)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_EVAL_MODEL", server.connection_json())
        monkeypatch.delenv("AIRFLOW_CONN_LLM_DEFAULT", raising=False)
        monkeypatch.delenv("AIRFLOW_CONN_LLM_JUDGE", raising=False)
        yield server


def test_the_model_is_scored_through_the_dags_steps_and_never_below_the_rules(replaying, monkeypatch) -> None:
    cases = load_cases()[:20]
    monkeypatch.setenv("EVAL_MODEL_CONN", "eval_model")

    document = run_eval.evaluate(cases, model_conn=run_eval.model_connection(), repeat=2)

    model = document["analysers"]["llm:eval_model"]
    assert model["cases"] == 20 and model["runs"] == 40 and "pass^2" in model
    # Two calls per run, as ai_summarize and ai_diagnose make them.
    assert len(replaying.requests) == 2 * 40
    runs = [c for c in document["cases"] if c["analyser"] == "llm:eval_model"]
    assert all(c["answered_by"] == "llm" for c in runs)
    # The replay answered "info" everywhere: the severity floor keeps every case at its label.
    assert model["severity_never_below"] == 1.0
    rules = {c["id"]: c for c in document["cases"] if c["analyser"] == "rules"}
    for run in runs:
        assert run["severity"] == rules[run["id"]]["severity"]
        if run["action"] != rules[run["id"]]["action"]:
            assert run["approval_needed"], run["id"]


def test_make_eval_writes_the_json_and_chart_and_keeps_the_judge_apart(
    replaying, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LLM_JUDGE", replaying.connection_json())
    monkeypatch.setenv("EVAL_MODEL_CONN", "eval_model")
    monkeypatch.setenv("EVAL_OUT", str(tmp_path / "out.json"))
    cases = tmp_path / "cases"
    cases.mkdir()
    for case in load_cases()[:6]:
        assert case.path is not None
        (cases / case.path.name).write_text(case.path.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("EVAL_CASES", str(cases))

    assert run_eval.main() == 0

    document = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert set(document["analysers"]) == {"rules", "llm:eval_model"}
    assert {c["id"] for c in document["cases"]} == {p.stem for p in cases.glob("*.yaml")}
    # The judge's verdicts are reported beside the keyword figures, never mixed into them.
    assert document["judge"]["llm:eval_model"]["judged"] >= 1
    assert "cause_by_judge" not in document["analysers"]["llm:eval_model"]
    svg = (tmp_path / "out.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "llm:eval_model" in svg


def test_an_unknown_eval_model_connection_stops_the_run(monkeypatch) -> None:
    monkeypatch.setenv("EVAL_MODEL_CONN", "no_such_model_conn")
    with pytest.raises(SystemExit, match="no_such_model_conn"):
        run_eval.model_connection()


def test_without_a_model_only_the_rules_are_scored(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EVAL_MODEL_CONN", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_LLM_DEFAULT", raising=False)
    assert run_eval.model_connection() is None
