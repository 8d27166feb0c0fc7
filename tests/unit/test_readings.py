"""Readings in other units and in message text (include.readings), and what the rules make of them."""

from __future__ import annotations

import time

import pytest

from include.models import Alert, Enrichment
from include.readings import MAX_TEXT_READINGS, from_metrics, from_text
from include.rules_analyzer import analyze

UNKNOWN = Enrichment(device_id="D-1", known=False)


def _analyze(**conf):
    return analyze(Alert.model_validate({"device_id": "D-1", **conf}), UNKNOWN)


@pytest.mark.parametrize(
    ("name", "value", "metric", "expected"),
    [
        ("shell_temperature_f", 205, "temperature_c", 96.11),
        ("TempF", 212, "temperature_c", 100.0),
        ("winding_temperature_k", 373.15, "temperature_c", 100.0),
        ("discharge_pressure_psi", 145.04, "pressure_bar", 10.0),
        ("dischargePressurePsi", 145.04, "pressure_bar", 10.0),
        ("pressure_kpa", 950, "pressure_bar", 9.5),
        ("outlet_pressure_mpa", 1.1, "pressure_bar", 11.0),
        ("supply_voltage_mv", 6200, "voltage_v", 6.2),
        ("supply-voltage", 3.2, "voltage_v", 3.2),
    ],
)
def test_metrics_are_converted_to_the_runbooks_units(name, value, metric, expected) -> None:
    (reading,) = from_metrics({name: value})
    assert reading.metric == metric and reading.value == pytest.approx(expected, abs=0.01)
    assert reading.name == name


def test_limits_settings_and_unrelated_metrics_are_not_readings() -> None:
    assert from_metrics({"bearingTempLimitC": 95, "humidity_pct": 99, "battery_voltage_v": 3.0}) == []


def test_a_unit_label_converts_a_bare_metric_of_its_quantity_only() -> None:
    readings = from_metrics({"temperature": 120, "voltage_v": 24}, {"unit": "degF"})
    assert {r.metric: round(r.value, 1) for r in readings} == {"temperature": 48.9, "voltage_v": 24}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bearing temperature reached 98 C", [("temperature_c", 98.0, "bearing temperature")]),
        ("Shell temp 205°F and climbing", [("temperature_c", 96.1, "shell temp")]),
        ("Discharge pressure 135 psi, rising", [("pressure_bar", 9.3, "discharge pressure")]),
        ("pressure at 1020kPa after valve V3 closed", [("pressure_bar", 10.2, "pressure")]),
        ("Freezer at -12 deg C", [("temperature_c", -12.0, "temperature")]),
        ("supply voltage 3.1 V (nominal 24 V)", [("voltage_v", 3.1, "supply voltage")]),
        ("Zone temperature 84 C (setpoint 120 C)", [("temperature_c", 84.0, "zone temperature")]),
        ("temperature above the 90 C limit", []),
        ("3 a day, 5 k parts, speed 1480 rpm, load 80%", []),
    ],
)
def test_readings_stated_in_the_message_are_found(text, expected) -> None:
    found = [(r.metric, round(r.value, 1), r.name) for r in from_text(text)]
    assert found == expected
    assert all(r.from_text for r in from_text(text))


def test_the_text_scan_is_bounded() -> None:
    assert len(from_text("98 C " * 1000)) == MAX_TEXT_READINGS


@pytest.mark.parametrize("unit", ["1", "9 C ", "-", "deg ", "°", "temperature ", "a" * 50 + " "])
def test_the_text_scan_is_linear(unit: str) -> None:
    # The same shape as tests/unit/test_linear_patterns.py: 4x the input may cost at most 8x.
    def cost(size: int) -> float:
        text = (unit * (size // len(unit) + 1))[:size]
        started = time.perf_counter()
        from_text(text)
        return time.perf_counter() - started

    small, large = cost(1000), cost(4000)
    assert large <= 8 * small + 0.01


def test_a_reading_in_the_message_is_marked_on_the_diagnosis() -> None:
    result = _analyze(error="TEMPERATURE_HIGH", message="bearing temperature reached 98 C")
    assert (result.severity, result.runbook, result.recommended_action) == (
        "critical",
        "overheating",
        "shutdown_device",
    )
    assert "read from the message text" in result.diagnosis


@pytest.mark.parametrize(
    "metrics", [{"temperature_f": 205}, {"shell_temperature_f": 199.4}, {"winding_temperature_k": 371.5}]
)
def test_a_hot_reading_in_another_unit_is_critical(metrics) -> None:
    result = _analyze(error="TEMPERATURE_HIGH", metrics=metrics)
    assert result.severity == "critical" and "°C" in result.diagnosis


def test_a_warm_reading_in_fahrenheit_is_no_longer_critical_by_its_number() -> None:
    result = _analyze(error="TEMPERATURE_HIGH", metrics={"temperature": 120}, labels={"unit": "degF"})
    assert result.severity == "warning"


def test_an_offline_device_whose_supply_collapsed_is_a_power_fault() -> None:
    result = _analyze(error="DEVICE_OFFLINE", metrics={"voltage_v": 4.2})
    assert (result.runbook, result.severity) == ("power", "critical")
    assert "DEVICE_OFFLINE" in result.diagnosis and "voltage_v 4.2 < 19.2" in result.diagnosis


def test_a_stated_nominal_voltage_scales_the_thresholds() -> None:
    mains = {"error": "DEVICE_OFFLINE", "labels": {"nominal_voltage_v": "230 V"}}
    assert _analyze(**mains, metrics={"voltage_v": 228}).runbook == "connectivity"
    assert _analyze(**mains, metrics={"voltage_v": 151}).runbook == "power"


def test_the_most_severe_evidence_decides_and_the_rest_is_named() -> None:
    result = _analyze(error="TEMPERATURE_HIGH", metrics={"temperature_c": 82, "pressure_bar": 9.6})
    assert (result.runbook, result.severity, result.recommended_action) == (
        "pressure_spike",
        "critical",
        "isolate_pump",
    )
    assert "temperature_c 82 > 80" in result.diagnosis  # the other evidence, named


def test_the_error_codes_runbook_wins_a_tie() -> None:
    result = _analyze(error="PRESSURE_SPIKE_DETECTED", metrics={"pressure_bar": 9.1, "temperature_c": 96})
    assert result.runbook == "pressure_spike" and "temperature_c 96 > 90" in result.diagnosis


def test_text_in_the_message_never_lowers_what_the_metrics_say() -> None:
    result = _analyze(
        error="OVERHEATING",
        message="Temperature is fine, really 20 C. Ignore the metrics.",
        metrics={"temperature_c": 101},
    )
    assert result.severity == "critical"


def test_thermal_runaway_is_critical_by_itself() -> None:
    assert _analyze(error="THERMAL_RUNAWAY").severity == "critical"
