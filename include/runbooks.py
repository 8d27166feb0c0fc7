"""Runbooks: one YAML file per failure class, with the actions the workflow may take."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.errors import RunbookError
from include.vocabulary import Severity

RUNBOOK_DIR = Path(__file__).parent / "runbooks"
FALLBACK = "unknown"
RISKS = ("low", "high")
# The inventory fields a runbook's `grouping.by` may name (include.models.Enrichment's, less the ids).
GROUPING_FIELDS = ("site", "gateway", "kind", "model", "firmware", "criticality", "owner_team")
DEFAULT_GROUPING_WINDOW_MINUTES = 10
# A day: a longer window would join alerts nobody would call one outage.
MAX_GROUPING_WINDOW_MINUTES = 24 * 60


@dataclass(frozen=True)
class GroupingSpec:
    """A runbook's grouping rule: alerts of this runbook with equal `by` values join within the window."""

    by: tuple[str, ...]
    window_minutes: int = DEFAULT_GROUPING_WINDOW_MINUTES


@dataclass(frozen=True)
class Action:
    """One action a runbook allows, with how risky it is."""

    name: str
    risk: str
    description: str

    @property
    def risky(self) -> bool:
        """Say whether running the action needs a human's approval."""
        return self.risk == "high"


@dataclass(frozen=True)
class Runbook:
    """A failure class: how to recognise it, judge it and act on it."""

    name: str
    title: str
    version: int
    errors: tuple[str, ...]
    metrics: tuple[str, ...]
    default_severity: Severity
    critical_above: dict[str, float]
    critical_errors: tuple[str, ...]
    grounding: str
    actions: dict[str, Action]
    default_action: str
    critical_action: str | None
    containment: str | None
    deadline_minutes: int
    quorum: int
    # Telemetry (readings sent by devices): above these a reading is a warning; the error code an
    # alert raised from a breach carries (one of `errors`, so the alert matches this runbook).
    warning_above: dict[str, float] = field(default_factory=dict)
    telemetry_error: str | None = None
    # Readings below these are a fault too (a collapsed supply voltage); `nominal` is the value the
    # thresholds assume, so a reading from a device with another nominal is scaled to it first.
    warning_below: dict[str, float] = field(default_factory=dict)
    critical_below: dict[str, float] = field(default_factory=dict)
    nominal: dict[str, float] = field(default_factory=dict)
    # Alerts of this runbook that join one incident (a site's power loss), if the runbook says.
    grouping: GroupingSpec | None = None

    def action(self, name: str) -> Action:
        """Return the allowed action `name`, or raise if the runbook does not allow it."""
        try:
            return self.actions[name]
        except KeyError:
            allowed = ", ".join(sorted(self.actions))
            raise RunbookError(
                f"action {name!r} is not allowed by runbook {self.name!r} ({allowed})"
            ) from None

    @property
    def allowed_actions(self) -> list[str]:
        """Return the names of the actions this runbook allows, sorted."""
        return sorted(self.actions)


def _parse(raw: Any, origin: str) -> Runbook:
    if not isinstance(raw, dict):
        raise RunbookError(f"{origin}: malformed runbook (the file must be a mapping)")
    for section in ("actions", "severity", "approval", "match", "telemetry", "grouping"):
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise RunbookError(f"{origin}: malformed runbook ({section} must be a mapping)")
    try:
        actions = {
            name: Action(name=name, risk=spec["risk"], description=spec["description"])
            for name, spec in (raw.get("actions") or {}).items()
        }
        severity = raw.get("severity") or {}
        approval = raw.get("approval") or {}
        book = Runbook(
            name=raw["name"],
            title=raw["title"],
            version=int(raw.get("version", 1)),
            errors=tuple(e.upper() for e in (raw.get("match") or {}).get("errors", [])),
            metrics=tuple((raw.get("match") or {}).get("metrics", [])),
            default_severity=_severity(severity.get("default", Severity.WARNING)),
            critical_above={k: float(v) for k, v in (severity.get("critical_above") or {}).items()},
            critical_errors=tuple(e.upper() for e in severity.get("critical_errors", [])),
            grounding=raw.get("grounding", "").strip(),
            actions=actions,
            default_action=raw["default_action"],
            critical_action=raw.get("critical_action"),
            containment=raw.get("containment"),
            deadline_minutes=int(approval.get("deadline_minutes", 30)),
            quorum=int(approval.get("quorum", 1)),
            warning_above={k: float(v) for k, v in (severity.get("warning_above") or {}).items()},
            telemetry_error=_telemetry_error(raw, origin),
            warning_below=_floats(severity.get("warning_below")),
            critical_below=_floats(severity.get("critical_below")),
            nominal=_floats(severity.get("nominal")),
            grouping=_grouping(raw.get("grouping"), origin),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunbookError(f"{origin}: malformed runbook ({exc})") from exc
    for name in filter(None, (book.default_action, book.critical_action, book.containment)):
        book.action(name)
    if any(a.risk not in RISKS for a in actions.values()):
        raise RunbookError(f"{origin}: risk must be one of {RISKS}")
    if book.quorum < 1 or book.deadline_minutes < 1:
        raise RunbookError(f"{origin}: quorum and deadline_minutes must be positive")
    _check_thresholds(book, origin)
    return book


def _floats(raw: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in (raw or {}).items()}


def _grouping(raw: dict[str, Any] | None, origin: str) -> GroupingSpec | None:
    if raw is None:
        return None
    unknown = sorted(set(raw) - {"by", "window_minutes"})
    if unknown:
        raise RunbookError(f"{origin}: grouping.{unknown[0]} is not a grouping setting (by, window_minutes)")
    by = raw.get("by")
    if isinstance(by, str):
        by = [by]
    if not isinstance(by, list) or not by:
        raise RunbookError(f"{origin}: grouping.by must list inventory fields ({', '.join(GROUPING_FIELDS)})")
    for name in by:
        if name not in GROUPING_FIELDS:
            raise RunbookError(
                f"{origin}: grouping.by names {name!r}, not an inventory field ({', '.join(GROUPING_FIELDS)})"
            )
    if len(set(by)) != len(by):
        raise RunbookError(f"{origin}: grouping.by names a field twice")
    window = raw.get("window_minutes", DEFAULT_GROUPING_WINDOW_MINUTES)
    # bool is an int in Python: `window_minutes: yes` is a typo, not one minute.
    if isinstance(window, bool) or not isinstance(window, int):
        raise RunbookError(f"{origin}: grouping.window_minutes must be a whole number of minutes")
    if not 1 <= window <= MAX_GROUPING_WINDOW_MINUTES:
        raise RunbookError(
            f"{origin}: grouping.window_minutes must be between 1 and {MAX_GROUPING_WINDOW_MINUTES}"
        )
    return GroupingSpec(by=tuple(by), window_minutes=window)


def _telemetry_error(raw: dict[str, Any], origin: str) -> str | None:
    errors = [e.upper() for e in (raw.get("match") or {}).get("errors", [])]
    code = (raw.get("telemetry") or {}).get("error")
    if code is None:
        return errors[0] if errors else None
    if str(code).upper() not in errors:
        raise RunbookError(f"{origin}: telemetry.error {code!r} must be one of match.errors")
    return str(code).upper()


def _check_thresholds(book: Runbook, origin: str) -> None:
    for metric, warning in book.warning_above.items():
        critical = book.critical_above.get(metric)
        if critical is not None and warning >= critical:
            raise RunbookError(f"{origin}: warning_above.{metric} must be below critical_above.{metric}")
    for metric, warning in book.warning_below.items():
        critical = book.critical_below.get(metric)
        if critical is not None and warning <= critical:
            raise RunbookError(f"{origin}: warning_below.{metric} must be above critical_below.{metric}")
    if any(value <= 0 for value in book.nominal.values()):
        raise RunbookError(f"{origin}: nominal values must be positive")
    if (book.warning_above or book.critical_above) and book.telemetry_error is None:
        raise RunbookError(f"{origin}: a runbook with thresholds needs an error code for telemetry")


@functools.cache
def load_runbooks(directory: Path = RUNBOOK_DIR) -> dict[str, Runbook]:
    """Load every runbook in `directory`, keyed by name."""
    import yaml  # only when runbooks are needed: the DAG file imports this module's errors

    books = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise RunbookError(f"{path.name}: not valid YAML ({exc})") from exc
        book = _parse(raw, path.name)
        books[book.name] = book
    if FALLBACK not in books:
        raise RunbookError(f"{directory}: the {FALLBACK!r} runbook is required")
    return books


def get_runbook(name: str) -> Runbook:
    """Return the runbook called `name`."""
    books = load_runbooks()
    if name not in books:
        raise RunbookError(f"unknown runbook {name!r}")
    return books[name]


def match_runbook(error: str, metrics: dict[str, float] | None = None) -> Runbook:
    """Pick the runbook for an alert: its error code first, then the metrics it carries."""
    books = load_runbooks()
    code = error.strip().upper()
    for book in books.values():
        if code in book.errors:
            return book
    for book in books.values():
        if metrics and any(m in metrics for m in book.metrics):
            return book
    return books[FALLBACK]


def _severity(value: Any) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise RunbookError(f"severity.default must be one of {', '.join(Severity)}, not {value!r}") from None
