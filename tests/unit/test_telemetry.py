"""Telemetry thresholds from the runbooks: warning_above, critical_above and the error code they name."""

from __future__ import annotations

import pytest

from include.runbooks import RunbookError, _parse, load_runbooks
from include.telemetry import Thresholds

THRESHOLDS = Thresholds.from_runbooks()


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        ({"temperature_c": 40}, None),
        ({"temperature_c": 80}, None),  # at the threshold is within it
        ({"temperature_c": 85}, ("warning", "TEMPERATURE_HIGH", 80.0)),
        ({"temperature_c": 95}, ("critical", "TEMPERATURE_HIGH", 90.0)),
        ({"pressure_bar": 7.5}, ("warning", "PRESSURE_HIGH", 7.0)),
        ({"pressure_bar": 9.4}, ("critical", "PRESSURE_HIGH", 8.0)),
        ({"humidity": 1000}, None),  # no runbook sets a limit for it
    ],
)
def test_readings_against_the_runbooks(readings, expected):
    breach = THRESHOLDS.check(readings)
    assert (breach and (breach.severity, breach.error, breach.threshold)) == expected


def test_the_worst_reading_wins():
    breach = THRESHOLDS.check({"temperature_c": 85, "pressure_bar": 9})
    assert (breach.metric, breach.severity) == ("pressure_bar", "critical")


def test_every_telemetry_error_matches_its_runbook():
    from include.runbooks import match_runbook

    for limit in THRESHOLDS.limits.values():
        assert match_runbook(limit.error).name == limit.runbook


def test_the_shipped_runbooks_define_temperature_and_pressure_limits():
    books = load_runbooks()
    assert (
        books["overheating"].warning_above["temperature_c"]
        < books["overheating"].critical_above["temperature_c"]
    )
    assert books["overheating"].telemetry_error == "TEMPERATURE_HIGH"
    assert books["pressure_spike"].telemetry_error == "PRESSURE_HIGH"


BASE = {
    "name": "x",
    "title": "X",
    "match": {"errors": ["HOT", "WARM"]},
    "actions": {"a": {"risk": "low", "description": "d"}},
    "default_action": "a",
}


def test_a_warning_limit_must_be_below_the_critical_one():
    with pytest.raises(RunbookError, match="warning_above.t must be below"):
        _parse({**BASE, "severity": {"warning_above": {"t": 90}, "critical_above": {"t": 90}}}, "x.yaml")


def test_the_telemetry_error_must_be_one_of_the_runbooks_errors():
    with pytest.raises(RunbookError, match="telemetry.error"):
        _parse({**BASE, "severity": {"critical_above": {"t": 9}}, "telemetry": {"error": "COLD"}}, "x.yaml")
    book = _parse(
        {**BASE, "severity": {"critical_above": {"t": 9}}, "telemetry": {"error": "warm"}}, "x.yaml"
    )
    assert book.telemetry_error == "WARM"


def test_without_a_telemetry_error_the_first_error_is_used():
    book = _parse({**BASE, "severity": {"warning_above": {"t": 9}}}, "x.yaml")
    assert book.telemetry_error == "HOT" and book.warning_above == {"t": 9.0}


def test_thresholds_without_any_error_code_are_refused():
    with pytest.raises(RunbookError, match="needs an error code"):
        _parse({**BASE, "match": {"errors": []}, "severity": {"critical_above": {"t": 9}}}, "x.yaml")
