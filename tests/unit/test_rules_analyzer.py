"""The built-in rules analyser: the original example's logic, plus the guarantees the workflow relies on."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.approval_policy import DEFAULT_CONFIDENCE_THRESHOLD
from include.inventory import lookup
from include.models import Alert, Analysis, Enrichment
from include.rules_analyzer import analyze
from include.runbooks import get_runbook, load_runbooks, match_runbook
from include.vocabulary import Severity

UNKNOWN_DEVICE = Enrichment(device_id="X-1", known=False)


def _analyze(**conf) -> Analysis:
    conf.setdefault("device_id", "COMP-03")
    alert = Alert.model_validate(conf)
    return analyze(alert, lookup(alert.device_id))


# -- temperature: the original example's threshold -------------------------------------------------


@pytest.mark.parametrize("metric", ["temperature_c", "temperature"])
@pytest.mark.parametrize("value", [90.01, 91, 120])
def test_above_90_degrees_is_critical(metric: str, value: float) -> None:
    result = _analyze(error="HIGH_TEMPERATURE", metrics={metric: value})
    assert result.severity == "critical"
    assert result.runbook == "overheating"
    assert result.recommended_action == "shutdown_device"
    assert result.confidence >= DEFAULT_CONFIDENCE_THRESHOLD
    assert metric in result.diagnosis


@pytest.mark.parametrize("metric", ["temperature_c", "temperature"])
@pytest.mark.parametrize("value", [90, 89.99, 20])
def test_90_degrees_or_less_is_not_critical(metric: str, value: float) -> None:
    result = _analyze(error="HIGH_TEMPERATURE", metrics={metric: value})
    assert result.severity == "warning"
    assert result.recommended_action == "restart_cooling"


def test_a_hot_device_with_an_unrecognised_error_is_still_critical() -> None:
    # The metric alone identifies the failure class and decides the severity.
    result = _analyze(error="VENDOR_CODE_0x42", metrics={"temperature_c": 97})
    assert (result.severity, result.runbook, result.recommended_action) == (
        "critical",
        "overheating",
        "shutdown_device",
    )


def test_a_device_offline_while_hot_is_diagnosed_as_overheating() -> None:
    # "90 °C is critical everywhere", and the reading says why the device went quiet.
    result = _analyze(error="DEVICE_OFFLINE", metrics={"temperature_c": 95})
    assert (result.severity, result.runbook, result.recommended_action) == (
        "critical",
        "overheating",
        "shutdown_device",
    )
    assert "DEVICE_OFFLINE" in result.diagnosis  # the symptom is still named


# -- the original example: pressure spike ---------------------------------------------------------


def test_pressure_spike_maps_to_its_runbook_and_critical_action() -> None:
    result = _analyze(device_id="PUMP-07B", error="PRESSURE_SPIKE_DETECTED")
    book = get_runbook("pressure_spike")
    assert result.runbook == "pressure_spike"
    assert result.severity == "critical"
    assert result.recommended_action == book.critical_action == "isolate_pump"
    assert result.analyzer == "rules"
    # The enrichment reaches the summary the on-call engineer reads.
    assert "PUMP-07B" in result.summary and "Plant North" in result.summary and "pump" in result.summary


def test_pressure_spike_is_case_insensitive() -> None:
    assert (
        _analyze(device_id="PUMP-07B", error="pressure_spike_detected").recommended_action == "isolate_pump"
    )


def test_pressure_above_threshold_without_a_known_error() -> None:
    result = _analyze(device_id="PUMP-07B", error="ODD", metrics={"pressure_bar": 9.4})
    assert (result.severity, result.runbook, result.recommended_action) == (
        "critical",
        "pressure_spike",
        "isolate_pump",
    )
    assert "pressure_bar 9.4 > 8" in result.diagnosis


def test_critical_error_code_by_itself() -> None:
    result = _analyze(error="BOOT_LOOP")
    assert (result.severity, result.runbook, result.recommended_action) == (
        "critical",
        "firmware",
        "rollback_firmware",
    )


def test_critical_error_code_with_surrounding_spaces() -> None:
    result = _analyze(error=" boot_loop ")
    assert result.runbook == "firmware"
    assert result.severity == "critical"


# -- unknown, hints, info -------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["SOMETHING_ODD", "E-1234", "x"])
def test_unknown_errors_are_warning_with_low_confidence(error: str) -> None:
    result = _analyze(device_id="NOT-IN-INVENTORY", error=error)
    assert result.runbook == "unknown"
    assert result.severity == "warning"
    assert result.recommended_action == "collect_diagnostics"
    # Below the approval threshold, so a human decides.
    assert result.confidence < 0.6
    assert result.confidence < DEFAULT_CONFIDENCE_THRESHOLD
    assert "NOT-IN-INVENTORY" in result.summary


@pytest.mark.parametrize(
    ("error", "hint", "expected"),
    [
        ("SENSOR_FAULT", "critical", "critical"),  # warning raised to critical
        ("SENSOR_FAULT", "info", "warning"),  # never lowered
        ("PRESSURE_SPIKE_DETECTED", "info", "critical"),
        ("PRESSURE_SPIKE_DETECTED", "warning", "critical"),
        ("MAINTENANCE_DUE", "warning", "warning"),  # info raised to warning
        ("MAINTENANCE_DUE", "info", "info"),
        ("SOMETHING_ODD", "critical", "critical"),
    ],
)
def test_severity_hint_raises_but_never_lowers(error: str, hint: str, expected: str) -> None:
    assert _analyze(error=error, severity=hint).severity == expected


def test_a_raised_severity_says_so_and_picks_the_critical_action() -> None:
    result = _analyze(device_id="COMP-03", error="OVERHEATING", severity="critical")
    assert result.severity == "critical"
    assert result.recommended_action == "shutdown_device"
    assert "hint" in result.diagnosis


def test_a_hint_does_not_lower_a_temperature_breach() -> None:
    result = _analyze(error="OVERHEATING", severity="info", metrics={"temperature_c": 95})
    assert result.severity == "critical"
    assert result.recommended_action == "shutdown_device"


@pytest.mark.parametrize(
    "error", ["MAINTENANCE_DUE", "filter_change_due", "STATUS_REPORT", "CALIBRATION_DUE"]
)
def test_maintenance_errors_are_info(error: str) -> None:
    result = _analyze(device_id="MOTOR-21", error=error)
    assert result.severity == "info"
    assert result.runbook == "maintenance"
    assert result.recommended_action == "log_for_planner"


def test_message_is_in_the_summary_but_bounded() -> None:
    result = _analyze(error="SENSOR_FAULT", message="m" * 4000)
    assert "m" * 300 in result.summary
    assert len(result.summary) <= 2000


def test_unknown_device_is_described_generically() -> None:
    result = analyze(Alert(device_id="X-1", error="SENSOR_FAULT"), UNKNOWN_DEVICE)
    assert result.summary == "SENSOR_FAULT on device X-1"


# -- properties -----------------------------------------------------------------------------------

KNOWN_CODES = sorted({code for book in load_runbooks().values() for code in book.errors})
METRIC_NAMES = sorted(
    {m for book in load_runbooks().values() for m in (*book.metrics, *book.critical_above)} | {"humidity_pct"}
)
error_codes = st.one_of(
    st.sampled_from(KNOWN_CODES),
    st.sampled_from(KNOWN_CODES).map(str.lower),
    st.text(min_size=1, max_size=128),
)
metric_maps = st.dictionaries(
    st.one_of(st.sampled_from(METRIC_NAMES), st.text(max_size=20)),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    error=error_codes,
    metrics=metric_maps,
    hint=st.sampled_from([None, "critical", "warning", "info"]),
    message=st.one_of(st.none(), st.text(max_size=500)),
    device_id=st.one_of(
        st.sampled_from(["PUMP-07B", "COMP-03", "MOTOR-21"]), st.text(min_size=1, max_size=128)
    ),
)
def test_output_always_validates_and_stays_in_the_runbook_allow_list(
    error, metrics, hint, message, device_id
):
    alert = Alert(device_id=device_id, error=error, metrics=metrics, severity=hint, message=message)
    result = analyze(alert, lookup(device_id))
    # The same schema the LLM's answer must pass.
    assert Analysis.model_validate(result.to_xcom()) == result
    book = get_runbook(result.runbook)
    assert result.recommended_action in book.actions
    # Never below what the error code and the readings in the runbooks' own metrics say alone.
    by_code = match_runbook(error)
    floor = "warning"
    if by_code.name != "unknown":
        floor = "critical" if error.strip().upper() in by_code.critical_errors else by_code.default_severity
    if any(
        metrics.get(m, float("-inf")) > limit
        for b in load_runbooks().values()
        for m, limit in b.critical_above.items()
    ):
        floor = "critical"
    assert result.severity >= Severity(floor)
    assert result.analyzer == "rules"
    assert 0.0 <= result.confidence <= 1.0
    if hint == "critical":
        assert result.severity == "critical"
    if book.name == "unknown" and result.severity != "critical":
        assert result.confidence < DEFAULT_CONFIDENCE_THRESHOLD
    if result.severity == "critical" and book.critical_action:
        assert result.recommended_action == book.critical_action
    else:
        assert result.recommended_action == book.default_action


@settings(max_examples=100, deadline=None)
@given(temperature=st.floats(min_value=-50, max_value=500, allow_nan=False))
def test_temperature_severity_is_exactly_the_threshold(temperature: float) -> None:
    result = _analyze(error="OVERHEATING", metrics={"temperature_c": temperature})
    assert result.severity == ("critical" if temperature > 90 else "warning")
