"""The labelled corpus: one YAML file per incident, checked against the runbooks when it is loaded.

A case is the trigger conf of a run (`alert`), what the inventory would find (`inventory`), and what
an SRE would call the truth (`expect`). A label that names a runbook or an action the runbooks do not
have is refused at load time, so a renamed action cannot silently turn a case into a free pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.inventory import enrichment_from_record
from include.models import Alert, Enrichment
from include.runbooks import load_runbooks
from include.vocabulary import Severity

CASES_DIR = Path(__file__).resolve().parents[2] / "eval" / "cases"
APPROVALS = ("required", "not_required")
# A corpus is read whole into memory: a bound keeps a wrong EVAL_CASES from reading a disk.
MAX_CASES = 5000
MAX_CASE_BYTES = 64_000


class CaseError(ValueError):
    """A case file does not follow the contract."""


@dataclass(frozen=True)
class Expectation:
    """What a right diagnosis of a case says and does."""

    runbook: str
    severity: Severity
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    approval: str | None = None
    cause: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One labelled incident."""

    id: str
    tags: tuple[str, ...]
    alert: Alert
    enrichment: Enrichment
    expect: Expectation
    path: Path | None = field(default=None, compare=False)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CaseError(f"{where} must be a list of strings")
    return tuple(value)


def _expectation(raw: Any, origin: str) -> Expectation:
    if not isinstance(raw, dict):
        raise CaseError(f"{origin}: expect must be a mapping")
    unknown = set(raw) - {"runbook", "severity", "actions", "not_actions", "approval", "cause"}
    if unknown:
        raise CaseError(f"{origin}: unknown keys in expect: {', '.join(sorted(unknown))}")
    books = load_runbooks()
    runbook = raw.get("runbook")
    if runbook not in books:
        raise CaseError(f"{origin}: expect.runbook {runbook!r} is not a runbook")
    if raw.get("severity") not in {s.value for s in Severity}:
        raise CaseError(f"{origin}: expect.severity must be one of {', '.join(Severity)}")
    actions = _strings(raw.get("actions"), f"{origin}: expect.actions")
    not_actions = _strings(raw.get("not_actions"), f"{origin}: expect.not_actions")
    if not actions:
        raise CaseError(f"{origin}: expect.actions needs at least one acceptable action")
    known = {a for book in books.values() for a in book.actions}
    for action in (*actions, *not_actions):
        if action not in known:
            raise CaseError(f"{origin}: no runbook has the action {action!r}")
    if set(actions) & set(not_actions):
        raise CaseError(f"{origin}: an action cannot be both acceptable and forbidden")
    approval = raw.get("approval")
    if approval is not None and approval not in APPROVALS:
        raise CaseError(f"{origin}: expect.approval must be one of {', '.join(APPROVALS)}")
    return Expectation(
        runbook=runbook,
        severity=Severity(raw["severity"]),
        actions=actions,
        not_actions=not_actions,
        approval=approval,
        cause=tuple(c.lower() for c in _strings(raw.get("cause"), f"{origin}: expect.cause")),
    )


def parse_case(raw: Any, origin: str, path: Path | None = None) -> Case:
    """Return the case described by `raw` (a YAML document), or raise CaseError."""
    from pydantic import ValidationError

    if not isinstance(raw, dict):
        raise CaseError(f"{origin}: a case must be a mapping")
    unknown = set(raw) - {"id", "tags", "alert", "inventory", "expect"}
    if unknown:
        raise CaseError(f"{origin}: unknown keys: {', '.join(sorted(unknown))}")
    case_id = raw.get("id")
    if not isinstance(case_id, str) or not case_id:
        raise CaseError(f"{origin}: id must be a non-empty string")
    try:
        alert = Alert.model_validate(raw.get("alert"))
    except ValidationError as exc:
        raise CaseError(f"{origin}: alert is not a valid trigger conf ({exc.error_count()} errors)") from None
    inventory = raw.get("inventory")
    if inventory is None:
        enrichment = Enrichment(device_id=alert.device_id, known=False, source="eval-case")
    elif isinstance(inventory, dict):
        enrichment = enrichment_from_record(alert.device_id, inventory, source="eval-case")
    else:
        raise CaseError(f"{origin}: inventory must be a mapping")
    return Case(
        id=case_id,
        tags=_strings(raw.get("tags"), f"{origin}: tags"),
        alert=alert,
        enrichment=enrichment,
        expect=_expectation(raw.get("expect"), origin),
        path=path,
    )


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    """Load every `*.yaml` case under `directory`, sorted by file name; ids must be unique."""
    import yaml

    paths = sorted(directory.rglob("*.yaml"))
    if not paths:
        raise CaseError(f"{directory}: no *.yaml case found")
    if len(paths) > MAX_CASES:
        raise CaseError(f"{directory}: more than {MAX_CASES} cases")
    cases: list[Case] = []
    seen: set[str] = set()
    for path in paths:
        if path.stat().st_size > MAX_CASE_BYTES:
            raise CaseError(f"{path.name}: larger than {MAX_CASE_BYTES} bytes")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CaseError(f"{path.name}: not valid YAML ({exc})") from None
        case = parse_case(raw, path.name, path)
        if case.id in seen:
            raise CaseError(f"{path.name}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases
