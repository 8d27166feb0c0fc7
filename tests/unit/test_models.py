"""The documents passed between the workflow's steps: what they accept, refuse and how they travel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from include.models import SOURCES, Alert, Analysis, ApprovalOutcome, Enrichment, InvalidDocument

MINIMAL = {"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED"}


def _analysis(**overrides) -> dict:
    return {
        "severity": "critical",
        "summary": "PRESSURE_SPIKE_DETECTED on pump PUMP-07B",
        "diagnosis": "Pressure spike: pressure_bar 9.4 > 8.",
        "recommended_action": "isolate_pump",
        "confidence": 0.9,
        "analyzer": "rules",
        "runbook": "pressure_spike",
        **overrides,
    }


def _error_fields(exc: ValidationError) -> set[str]:
    return {str(err["loc"][0]) for err in exc.errors() if err["loc"]}


# -- Alert ----------------------------------------------------------------------------------------


def test_the_original_example_conf_is_a_valid_alert_with_defaults() -> None:
    alert = Alert.model_validate(MINIMAL)
    assert (alert.device_id, alert.error) == ("PUMP-07B", "PRESSURE_SPIKE_DETECTED")
    assert alert.source == "api"
    assert alert.severity is None
    assert alert.metrics == {} and alert.labels == {}
    assert alert.require_approval is False and alert.dry_run is False


def test_a_full_alert_is_accepted() -> None:
    alert = Alert.model_validate(
        {
            **MINIMAL,
            "message": "Outlet pressure 9.4 bar",
            "source": "alertmanager",
            "severity": "warning",
            "metrics": {"pressure_bar": 9.4, "flow": 12},
            "labels": {"site": "plant-north"},
            "fingerprint": "abc123",
            "started_at": "2024-05-01T10:00:00Z",
            "require_approval": True,
            "dry_run": True,
        }
    )
    assert alert.metrics == {"pressure_bar": 9.4, "flow": 12.0}
    assert alert.started_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("missing", ["device_id", "error"])
def test_required_fields(missing: str) -> None:
    conf = {k: v for k, v in MINIMAL.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        Alert.model_validate(conf)
    assert _error_fields(info.value) == {missing}


@pytest.mark.parametrize(
    ("field", "limit"),
    [("device_id", 128), ("error", 128), ("message", 4000), ("fingerprint", 256)],
)
def test_length_limits(field: str, limit: int) -> None:
    assert getattr(Alert.model_validate({**MINIMAL, field: "x" * limit}), field) == "x" * limit
    with pytest.raises(ValidationError) as info:
        Alert.model_validate({**MINIMAL, field: "x" * (limit + 1)})
    assert _error_fields(info.value) == {field}


@pytest.mark.parametrize("field", ["device_id", "error"])
def test_empty_identifiers_are_refused(field: str) -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({**MINIMAL, field: ""})


def test_unknown_keys_are_refused() -> None:
    # A mistyped key (e.g. `severty`) must not be silently dropped.
    with pytest.raises(ValidationError) as info:
        Alert.model_validate({**MINIMAL, "severty": "critical"})
    assert _error_fields(info.value) == {"severty"}


@pytest.mark.parametrize("source", SOURCES)
def test_every_known_source_is_accepted(source: str) -> None:
    assert Alert.model_validate({**MINIMAL, "source": source}).source == source


@pytest.mark.parametrize("source", ["nagios", "", "API", "alertmanager "])
def test_unknown_sources_are_refused(source: str) -> None:
    with pytest.raises(ValidationError, match="Input should be .alertmanager."):
        Alert.model_validate({**MINIMAL, "source": source})


def test_the_source_list_matches_the_contract() -> None:
    assert set(SOURCES) >= {"alertmanager", "grafana", "pagerduty", "generic"}


@pytest.mark.parametrize("severity", ["critical", "warning", "info", None])
def test_severity_hints_accepted(severity: str | None) -> None:
    assert Alert.model_validate({**MINIMAL, "severity": severity}).severity == severity


@pytest.mark.parametrize("severity", ["CRITICAL", "high", "", "critical\n", " warning", "infos"])
def test_severity_hints_refused(severity: str) -> None:
    with pytest.raises(ValidationError) as info:
        Alert.model_validate({**MINIMAL, "severity": severity})
    assert _error_fields(info.value) == {"severity"}


@pytest.mark.parametrize("value", ["hot", None, [1], {"v": 1}])
def test_metrics_must_be_numbers(value) -> None:
    with pytest.raises(ValidationError) as info:
        Alert.model_validate({**MINIMAL, "metrics": {"temperature_c": value}})
    assert _error_fields(info.value) == {"metrics"}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="bool"),
        pytest.param("95", id="numeric-string"),
    ],
)
def test_metrics_refuse_values_json_schema_does_not_call_numbers(value) -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({**MINIMAL, "metrics": {"temperature_c": value}})


def test_metrics_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({**MINIMAL, "metrics": [95]})


def test_labels_must_be_strings() -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({**MINIMAL, "labels": {"site": 3}})


def test_started_at_must_be_a_date_time() -> None:
    with pytest.raises(ValidationError):
        Alert.model_validate({**MINIMAL, "started_at": "yesterday"})


def test_alerts_are_immutable() -> None:
    alert = Alert.model_validate(MINIMAL)
    with pytest.raises(ValidationError):
        alert.error = "OTHER"  # type: ignore[misc]


# -- incident key ---------------------------------------------------------------------------------


def test_incident_key_is_stable_and_ignores_what_changes_between_repeats() -> None:
    first = Alert.model_validate({**MINIMAL, "message": "first", "metrics": {"pressure_bar": 9}})
    repeat = Alert.model_validate(
        {**MINIMAL, "message": "again", "metrics": {"pressure_bar": 11}, "started_at": "2024-05-01T10:00:00Z"}
    )
    assert first.incident_key == repeat.incident_key
    assert len(first.incident_key) == 16 and all(c in "0123456789abcdef" for c in first.incident_key)
    # Stable across processes: it is a hash of the content, not of object identity or a random salt.
    assert first.incident_key == Alert.model_validate(MINIMAL).incident_key


def test_incident_key_distinguishes_devices_and_errors() -> None:
    keys = {
        Alert.model_validate(conf).incident_key
        for conf in (
            MINIMAL,
            {**MINIMAL, "device_id": "PUMP-12A"},
            {**MINIMAL, "error": "OVERHEATING"},
        )
    }
    assert len(keys) == 3


def test_incident_key_follows_the_fingerprint_when_given() -> None:
    a = Alert.model_validate({"device_id": "PUMP-07B", "error": "PRESSURE_HIGH", "fingerprint": "fp-1"})
    b = Alert.model_validate({"device_id": "PUMP-12A", "error": "OVERHEATING", "fingerprint": "fp-1"})
    c = Alert.model_validate({"device_id": "PUMP-07B", "error": "PRESSURE_HIGH", "fingerprint": "fp-2"})
    plain = Alert.model_validate({"device_id": "PUMP-07B", "error": "PRESSURE_HIGH"})
    assert a.incident_key == b.incident_key
    assert a.incident_key != c.incident_key
    assert a.incident_key != plain.incident_key


def test_a_fingerprint_cannot_collide_with_a_device_error_pair() -> None:
    # The two bases are namespaced, so a fingerprint that spells out a device and error is its own incident.
    plain = Alert.model_validate(MINIMAL)
    tricky = Alert.model_validate({**MINIMAL, "fingerprint": "PUMP-07B:PRESSURE_SPIKE_DETECTED"})
    assert plain.incident_key != tricky.incident_key


# -- Analysis -------------------------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0, 0.0, 0.59, 1, 1.0])
def test_analysis_confidence_within_bounds(confidence: float) -> None:
    assert Analysis.model_validate(_analysis(confidence=confidence)).confidence == confidence


@pytest.mark.parametrize("confidence", [-0.01, 1.01, 75, "high"])
def test_analysis_confidence_out_of_bounds(confidence) -> None:
    with pytest.raises(ValidationError) as info:
        Analysis.model_validate(_analysis(confidence=confidence))
    assert _error_fields(info.value) == {"confidence"}


@pytest.mark.parametrize("analyzer", ["llm", "rules"])
def test_analysis_analyzer_accepted(analyzer: str) -> None:
    assert Analysis.model_validate(_analysis(analyzer=analyzer)).analyzer == analyzer


@pytest.mark.parametrize("analyzer", ["gpt-4", "LLM", "", "rules\n"])
def test_analysis_analyzer_refused(analyzer: str) -> None:
    with pytest.raises(ValidationError) as info:
        Analysis.model_validate(_analysis(analyzer=analyzer))
    assert _error_fields(info.value) == {"analyzer"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"severity": "urgent"},
        {"summary": ""},
        {"diagnosis": ""},
        {"recommended_action": ""},
        {"runbook": ""},
        {"summary": "x" * 2001},
        {"extra": "field"},
    ],
    ids=lambda o: next(iter(o)),
)
def test_analysis_refuses_malformed_verdicts(overrides: dict) -> None:
    with pytest.raises(ValidationError):
        Analysis.model_validate(_analysis(**overrides))


@pytest.mark.parametrize("missing", sorted(_analysis()))
def test_analysis_fields_are_all_required(missing: str) -> None:
    with pytest.raises(ValidationError) as info:
        Analysis.model_validate({k: v for k, v in _analysis().items() if k != missing})
    assert _error_fields(info.value) == {missing}


# -- XCom transport -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [Alert, Analysis, Enrichment, ApprovalOutcome])
def test_from_xcom_none_raises_invalid_document(model) -> None:
    with pytest.raises(InvalidDocument, match=model.__name__):
        model.from_xcom(None)


def test_invalid_document_is_a_value_error() -> None:
    # Callers (and the DAG's retry policy) treat it as bad input.
    assert issubclass(InvalidDocument, ValueError)


def test_from_xcom_validates() -> None:
    with pytest.raises(ValidationError):
        Alert.from_xcom({"device_id": "PUMP-07B"})


def test_alert_round_trips_through_xcom_as_plain_json() -> None:
    import json

    alert = Alert.model_validate(
        {
            **MINIMAL,
            "message": "Outlet <b>pressure</b> 9.4 bar",
            "source": "grafana",
            "severity": "critical",
            "metrics": {"pressure_bar": 9.4},
            "labels": {"site": "plant-north"},
            "fingerprint": "abc",
            "started_at": "2024-05-01T10:00:00+02:00",
            "dry_run": True,
        }
    )
    value = alert.to_xcom()
    # XCom stores JSON: the value must survive a real JSON round trip, not just a dict copy.
    assert json.loads(json.dumps(value)) == value
    assert isinstance(value["started_at"], str)
    again = Alert.from_xcom(json.loads(json.dumps(value)))
    assert again == alert
    assert again.incident_key == alert.incident_key


def test_analysis_and_outcome_round_trip() -> None:
    analysis = Analysis.model_validate(_analysis())
    assert Analysis.from_xcom(analysis.to_xcom()) == analysis
    outcome = ApprovalOutcome(approval_id="apr-1", state="approved", decided_by=["alice", "slack:U1"])
    assert ApprovalOutcome.from_xcom(outcome.to_xcom()) == outcome


@given(
    device_id=st.text(min_size=1, max_size=128),
    error=st.text(min_size=1, max_size=128),
    metrics=st.dictionaries(
        st.text(max_size=20), st.floats(allow_nan=False, allow_infinity=False), max_size=5
    ),
    labels=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=5),
    source=st.sampled_from(SOURCES),
    severity=st.sampled_from([None, "critical", "warning", "info"]),
)
def test_any_valid_alert_round_trips(device_id, error, metrics, labels, source, severity) -> None:
    alert = Alert(
        device_id=device_id, error=error, metrics=metrics, labels=labels, source=source, severity=severity
    )
    again = Alert.from_xcom(alert.to_xcom())
    assert again == alert
    assert again.incident_key == alert.incident_key
