"""What follows a grouping decision: the thread summary of joining alerts, and flapping."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from include.grouping_model import HeldAlert
from include.grouping_updates import (
    MAX_SUMMARY,
    ResolvedIncident,
    joined_summary,
    reopened_incident,
    reopens,
    summary_due,
)
from include.topology import Topology
from include.vocabulary import AlertStatus
from tests.unit.grouping_sim import T0, alert

NO_TOPOLOGY = Topology.from_records({})


def _held(device_id: str, error: str = "DEVICE_OFFLINE", runbook: str = "connectivity") -> HeldAlert:
    return HeldAlert(device_id, error, f"{device_id}:{error}", runbook, T0)


def test_summary_lists_the_devices_offline() -> None:
    text = joined_summary([_held("PUMP-07B"), _held("PUMP-12A"), _held("PUMP-07B")])
    assert text == "+2 devices offline: PUMP-07B, PUMP-12A"
    assert joined_summary([_held("PUMP-07B")]) == "+1 device offline: PUMP-07B"
    assert joined_summary([]) == ""


def test_summary_of_other_errors_says_alerting() -> None:
    text = joined_summary([_held("PUMP-07B"), _held("PUMP-12A", "OVERHEATING", "overheating")])
    assert text.startswith("+2 devices alerting: ")


def test_summary_is_bounded_and_counts_what_does_not_fit() -> None:
    devices = [_held(f"PUMP-{n:03d}") for n in range(200)]
    text = joined_summary(devices, limit=120)
    assert len(text) <= 120 and text.startswith("+200 devices offline: PUMP-000, ")
    assert text.endswith(" more") and "PUMP-199" not in text


def test_summary_is_redacted_and_escaped_for_slack() -> None:
    text = joined_summary([_held("<!channel>&x"), _held("dev-ops@example.com")])
    assert "<!channel>" not in text and "&lt;!channel&gt;&amp;x" in text
    assert "example.com" not in text and "[REDACTED:" in text


@given(st.lists(st.text(min_size=1, max_size=200), min_size=1, max_size=50), st.integers(40, MAX_SUMMARY))
def test_summary_never_exceeds_its_bound_nor_splits_an_escape(names: list[str], limit: int) -> None:
    text = joined_summary([_held(name) for name in names], limit=limit)
    assert len(text) <= limit
    assert "<" not in text and ">" not in text
    # Every & starts an entity the escaper wrote.
    for index in [i for i, c in enumerate(text) if c == "&"]:
        assert text.startswith(("&amp;", "&lt;", "&gt;"), index)


def test_summary_due_at_most_every_thirty_seconds() -> None:
    assert summary_due(None, T0)
    assert not summary_due(T0, T0 + timedelta(seconds=29))
    assert summary_due(T0, T0 + timedelta(seconds=30))


RESOLVED = ResolvedIncident("I1", T0, frozenset({"PUMP-07B:DEVICE_OFFLINE"}), frozenset({"PUMP-07B"}))


def test_an_alert_firing_again_within_thirty_minutes_reopens_its_incident() -> None:
    assert reopens(alert(NO_TOPOLOGY, "PUMP-07B", seconds=60), RESOLVED)
    assert reopens(alert(NO_TOPOLOGY, "PUMP-07B", seconds=30 * 60), RESOLVED)
    # The same device with another error is still the flapping device: one incident.
    assert reopens(alert(NO_TOPOLOGY, "PUMP-07B", "HEARTBEAT_MISSED", seconds=5), RESOLVED)


def test_no_reopen_late_early_for_others_or_when_not_firing() -> None:
    assert not reopens(alert(NO_TOPOLOGY, "PUMP-07B", seconds=30 * 60 + 1), RESOLVED)
    assert not reopens(alert(NO_TOPOLOGY, "PUMP-07B", seconds=-1), RESOLVED)
    assert not reopens(alert(NO_TOPOLOGY, "PUMP-12A", seconds=5), RESOLVED)
    resolved = replace(alert(NO_TOPOLOGY, "PUMP-07B", seconds=5), status=AlertStatus.RESOLVED)
    assert not reopens(resolved, RESOLVED)


def test_the_most_recently_resolved_incident_is_reopened() -> None:
    later = replace(RESOLVED, incident_id="I2", resolved_at=T0 + timedelta(minutes=5))
    new = alert(NO_TOPOLOGY, "PUMP-07B", seconds=600)
    assert reopened_incident(new, [RESOLVED, later]) == later
    assert reopened_incident(alert(NO_TOPOLOGY, "X-1"), [RESOLVED, later]) is None
