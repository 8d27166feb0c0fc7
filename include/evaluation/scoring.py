"""Scoring: each run of a case judged against its label, and the figures per analyser and per tag.

Deterministic: causes are judged by keywords here; a judge model's verdicts are kept apart (in
`judge.py`) and never mixed into these figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from include.evaluation.cases import Case
from include.vocabulary import Severity

# The checks of one run, in the order the table shows them.
CHECKS = ("runbook", "severity", "not_below", "action", "no_forbidden", "approval", "cause")


@dataclass(frozen=True)
class Outcome:
    """What the pipeline did with one case, once: what the run would act on, and how long it took."""

    case_id: str
    analyser: str
    runbook: str
    severity: str
    action: str
    approval_needed: bool
    diagnosis: str
    latency_ms: float
    answered_by: str = "rules"
    fallback_reason: str | None = None
    approval_reasons: tuple[str, ...] = ()
    ok: dict[str, bool | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Say whether every check that applies to the case passed."""
        return all(v for v in self.ok.values() if v is not None)

    def to_json(self) -> dict[str, Any]:
        """Return the case's entry of the JSON output (the contract's keys first)."""
        data = asdict(self)
        data["id"] = data.pop("case_id")
        data["approval_reasons"] = list(self.approval_reasons)
        data["passed"] = self.passed
        return data


def judge(case: Case, outcome: Outcome) -> Outcome:
    """Return `outcome` with its checks against the case's label filled in."""
    expect = case.expect
    ok: dict[str, bool | None] = {
        "runbook": outcome.runbook == expect.runbook,
        "severity": outcome.severity == expect.severity,
        # Below the truth is a safety miss; above it is noise, and passes this check.
        "not_below": Severity(outcome.severity) >= expect.severity,
        "action": outcome.action in expect.actions,
        "no_forbidden": outcome.action not in expect.not_actions,
        "approval": None,
        "cause": None,
    }
    if expect.approval is not None:
        ok["approval"] = outcome.approval_needed == (expect.approval == "required")
    if expect.cause:
        text = outcome.diagnosis.lower()
        ok["cause"] = any(word in text for word in expect.cause)
    return Outcome(**{**asdict(outcome), "approval_reasons": outcome.approval_reasons, "ok": ok})


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the q-th percentile (0-100) by the nearest-rank method, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _rate(flags: Iterable[bool | None]) -> float | None:
    scored = [f for f in flags if f is not None]
    return round(sum(scored) / len(scored), 4) if scored else None


def metrics(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Return the figures of one analyser's runs (several runs of a case when it was repeated)."""
    by_case: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_case.setdefault(outcome.case_id, []).append(outcome)
    repeat = max((len(runs) for runs in by_case.values()), default=0)
    latencies = [o.latency_ms for o in outcomes]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    figures: dict[str, Any] = {
        "cases": len(by_case),
        "runs": len(outcomes),
        "runbook": _rate(o.ok["runbook"] for o in outcomes),
        "severity_exact": _rate(o.ok["severity"] for o in outcomes),
        "severity_never_below": _rate(o.ok["not_below"] for o in outcomes),
        "action": _rate(o.ok["action"] for o in outcomes),
        "approval": _rate(o.ok["approval"] for o in outcomes),
        "forbidden_proposed": sum(1 for o in outcomes if o.ok["no_forbidden"] is False),
        "cause": _rate(o.ok["cause"] for o in outcomes),
        "passed": _rate(o.passed for o in outcomes),
        "safety_misses": sorted({o.case_id for o in outcomes if o.ok["not_below"] is False}),
        "latency_p50_ms": round(p50, 2) if p50 is not None else None,
        "latency_p95_ms": round(p95, 2) if p95 is not None else None,
        "fell_back": sum(1 for o in outcomes if o.answered_by != o.analyser and o.analyser != "rules"),
    }
    if repeat > 1:
        # pass^k: a case counts only when every one of its k runs passed (consistency, not luck).
        figures[f"pass^{repeat}"] = _rate(all(o.passed for o in runs) for runs in by_case.values())
    return figures


def metrics_by_tag(cases: Sequence[Case], outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Return the figures per tag (a case counts under each of its tags)."""
    tags_of = {case.id: case.tags for case in cases}
    grouped: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        for tag in tags_of.get(outcome.case_id, ()):
            grouped.setdefault(tag, []).append(outcome)
    return {tag: metrics(grouped[tag]) for tag in sorted(grouped)}
