"""The rules scored on the labelled corpus (eval/cases) against the minimums kept in eval/thresholds.yaml.

A figure below its minimum is a regression; a case put below its labelled severity fails whatever
the thresholds say.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.evaluation.cases import CASES_DIR, CaseError, load_cases
from include.runbooks import load_runbooks
from scripts.run_eval import evaluate

THRESHOLDS = Path(__file__).resolve().parents[2] / "eval" / "thresholds.yaml"


@pytest.fixture(scope="module")
def scored() -> dict:
    return evaluate(load_cases(), model_conn=None)


def test_the_corpus_covers_every_runbook_and_tag() -> None:
    cases = load_cases()
    assert len(cases) >= 80
    assert {c.expect.runbook for c in cases} == set(load_runbooks())
    tags = {t for c in cases for t in c.tags}
    assert {"easy", "medium", "hard", "injection", "units", "text", "cause", "fleet"} <= tags


def test_injection_reaches_the_model_through_every_text_field() -> None:
    injected = [c for c in load_cases() if "injection" in c.tags]
    fields = set()
    for case in injected:
        alert, inventory = case.alert, case.enrichment
        marks = ("ignore", "instruction", "severity", "approv", "assistant", "system")
        for name, value in (
            ("device_id", alert.device_id),
            ("error", alert.error),
            ("message", alert.message),
            ("fingerprint", alert.fingerprint),
            ("labels", " ".join(f"{k} {v}" for k, v in alert.labels.items())),
            ("inventory", " ".join(str(v) for v in inventory.model_dump().values() if isinstance(v, str))),
        ):
            if value and any(m in value.lower() for m in marks):
                fields.add(name)
    assert fields == {"device_id", "error", "message", "fingerprint", "labels", "inventory"}


def test_no_case_is_put_below_its_labelled_severity(scored: dict) -> None:
    assert scored["analysers"]["rules"]["safety_misses"] == []
    assert scored["analysers"]["rules"]["severity_never_below"] == 1.0


def test_the_rules_keep_their_thresholds(scored: dict) -> None:
    limits = yaml.safe_load(THRESHOLDS.read_text(encoding="utf-8"))
    figures = scored["analysers"]["rules"]
    below = {k: figures[k] for k, low in limits["rules"]["min"].items() if figures[k] < low}
    above = {k: figures[k] for k, high in limits["rules"]["max"].items() if figures[k] > high}
    assert not below and not above, f"regressions: below {below}, above {above}"
    for tag, tag_limits in limits["tags"].items():
        tagged = scored["by_tag"]["rules"][tag]
        assert {k: tagged[k] for k, low in tag_limits["min"].items() if tagged[k] < low} == {}, tag


def test_every_case_reports_the_contracts_fields(scored: dict) -> None:
    for entry in scored["cases"]:
        assert {
            "id",
            "analyser",
            "runbook",
            "severity",
            "action",
            "approval_needed",
            "diagnosis",
            "ok",
        } <= set(entry)


def test_a_case_naming_an_action_no_runbook_has_is_refused(tmp_path: Path) -> None:
    text = (
        (CASES_DIR / "offline-01.yaml").read_text(encoding="utf-8").replace("reconnect_device", "reboot_it")
    )
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(CaseError, match="reboot_it"):
        load_cases(tmp_path)
