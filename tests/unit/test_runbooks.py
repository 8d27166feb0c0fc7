"""Runbooks: the shipped set is consistent, matching picks the right one, broken files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.runbooks import (
    FALLBACK,
    RISKS,
    RUNBOOK_DIR,
    GroupingSpec,
    Runbook,
    RunbookError,
    get_runbook,
    load_runbooks,
    match_runbook,
)

SHIPPED = sorted(p.stem for p in RUNBOOK_DIR.glob("*.yaml"))

GOOD = """\
name: {name}
title: A title
match:
  errors: [{errors}]
actions:
  safe: {{risk: low, description: Do the safe thing}}
  bold: {{risk: high, description: Do the bold thing}}
default_action: safe
"""


def _write(directory: Path, filename: str, text: str) -> None:
    (directory / filename).write_text(text, encoding="utf-8")


def _valid_dir(directory: Path) -> Path:
    _write(directory, "unknown.yaml", GOOD.format(name="unknown", errors=""))
    return directory


# -- the shipped runbooks -------------------------------------------------------------------------


def test_every_shipped_runbook_loads() -> None:
    books = load_runbooks()
    assert SHIPPED and sorted(books) == SHIPPED
    assert FALLBACK in books
    assert {"pressure_spike", "overheating", "maintenance"} <= set(books)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_runbook_is_consistent(name: str) -> None:
    book = get_runbook(name)
    assert isinstance(book, Runbook)
    assert book.name == name, "file name and runbook name differ"
    assert book.title and book.grounding
    assert book.default_severity in ("critical", "warning", "info")
    for referenced in (book.default_action, book.critical_action, book.containment):
        if referenced is not None:
            assert referenced in book.actions, f"{referenced} is not defined in {name}"
    for action in book.actions.values():
        assert action.risk in RISKS and action.description
    # Containment runs without approval, alongside the page: it must never be risky.
    if book.containment:
        assert not book.action(book.containment).risky
    assert book.quorum >= 1 and book.deadline_minutes >= 1
    assert book.allowed_actions == sorted(book.actions)


def test_error_codes_are_not_claimed_by_two_runbooks() -> None:
    seen: dict[str, str] = {}
    for book in load_runbooks().values():
        for code in book.errors:
            assert code not in seen, f"{code} is in both {seen[code]} and {book.name}"
            seen[code] = book.name


def test_the_unknown_runbook_takes_no_risky_action() -> None:
    book = get_runbook(FALLBACK)
    assert book.errors == ()
    assert not any(a.risky for a in book.actions.values())


def test_get_runbook_unknown_name() -> None:
    with pytest.raises(RunbookError, match="unknown runbook 'nope'"):
        get_runbook("nope")


def test_action_outside_the_allow_list_is_refused() -> None:
    with pytest.raises(RunbookError, match="not allowed by runbook 'pressure_spike'"):
        get_runbook("pressure_spike").action("rm_rf")


def test_risk_decides_whether_an_action_is_risky() -> None:
    book = get_runbook("pressure_spike")
    assert book.action("isolate_pump").risky
    assert not book.action("open_bypass_valve").risky


# -- matching -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("PRESSURE_SPIKE_DETECTED", "pressure_spike"),
        ("pressure_spike_detected", "pressure_spike"),
        ("  Pressure_Spike_Detected ", "pressure_spike"),
        ("OVERHEATING", "overheating"),
        ("overheating", "overheating"),
        ("BOOT_LOOP", "firmware"),
        ("DEVICE_OFFLINE", "connectivity"),
        ("MAINTENANCE_DUE", "maintenance"),
        ("SENSOR_FAULT", "sensor_fault"),
        ("OVERCURRENT", "power"),
    ],
)
def test_match_by_error_code_case_insensitive(error: str, expected: str) -> None:
    assert match_runbook(error).name == expected


def test_error_code_wins_over_metrics() -> None:
    # A sensor fault on a hot device is still a sensor fault.
    assert match_runbook("SENSOR_FAULT", {"temperature_c": 99}).name == "sensor_fault"


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"temperature_c": 70}, "overheating"),
        ({"temperature": 95}, "overheating"),
        ({"pressure_bar": 9.4}, "pressure_spike"),
        ({"voltage_v": 180}, "power"),
    ],
)
def test_match_by_metrics_when_the_error_is_unknown(metrics: dict, expected: str) -> None:
    assert match_runbook("SOMETHING_ODD", metrics).name == expected


@pytest.mark.parametrize("metrics", [None, {}, {"humidity_pct": 40}])
def test_fallback_to_unknown(metrics) -> None:
    assert match_runbook("SOMETHING_ODD", metrics).name == FALLBACK


# -- malformed runbook files ----------------------------------------------------------------------


def test_a_minimal_valid_directory_loads(tmp_path: Path) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "pumps.yaml", GOOD.format(name="pumps", errors="pump_jam") + "critical_action: bold\n")
    books = load_runbooks(tmp_path)
    assert sorted(books) == ["pumps", "unknown"]
    pumps = books["pumps"]
    assert pumps.errors == ("PUMP_JAM",)  # stored upper-case so matching is case-insensitive
    assert pumps.default_severity == "warning" and pumps.quorum == 1 and pumps.deadline_minutes == 30
    assert pumps.critical_action == "bold" and pumps.action("bold").risky


def test_directory_without_the_unknown_runbook(tmp_path: Path) -> None:
    _write(tmp_path, "pumps.yaml", GOOD.format(name="pumps", errors=""))
    with pytest.raises(RunbookError, match="'unknown' runbook is required"):
        load_runbooks(tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="'unknown' runbook is required"):
        load_runbooks(tmp_path)


@pytest.mark.parametrize("field", ["name", "title", "default_action"])
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    _valid_dir(tmp_path)
    text = "".join(
        line
        for line in GOOD.format(name="broken", errors="").splitlines(keepends=True)
        if not line.startswith(f"{field}:")
    )
    _write(tmp_path, "broken.yaml", text)
    with pytest.raises(RunbookError) as info:
        load_runbooks(tmp_path)
    # The message names the file and the missing key, so an operator can fix it.
    assert "broken.yaml" in str(info.value)
    assert field in str(info.value)


def test_action_without_risk(tmp_path: Path) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "broken.yaml", GOOD.format(name="broken", errors="").replace("risk: low, ", ""))
    with pytest.raises(RunbookError, match=r"broken\.yaml.*risk"):
        load_runbooks(tmp_path)


@pytest.mark.parametrize("key", ["default_action", "critical_action", "containment"])
def test_reference_to_an_undefined_action(tmp_path: Path, key: str) -> None:
    _valid_dir(tmp_path)
    text = GOOD.format(name="broken", errors="")
    if key == "default_action":
        text = text.replace("default_action: safe", "default_action: launch_rockets")
    else:
        text += f"{key}: launch_rockets\n"
    _write(tmp_path, "broken.yaml", text)
    with pytest.raises(RunbookError, match="'launch_rockets' is not allowed by runbook 'broken'"):
        load_runbooks(tmp_path)


@pytest.mark.parametrize("risk", ["medium", "HIGH", "none"])
def test_bad_risk(tmp_path: Path, risk: str) -> None:
    _valid_dir(tmp_path)
    _write(
        tmp_path, "broken.yaml", GOOD.format(name="broken", errors="").replace("risk: high", f"risk: {risk}")
    )
    with pytest.raises(RunbookError, match=r"broken\.yaml: risk must be one of"):
        load_runbooks(tmp_path)


@pytest.mark.parametrize("approval", ["{quorum: 0}", "{deadline_minutes: 0}", "{quorum: -1}"])
def test_non_positive_quorum_or_deadline(tmp_path: Path, approval: str) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "broken.yaml", GOOD.format(name="broken", errors="") + f"approval: {approval}\n")
    with pytest.raises(RunbookError, match="must be positive"):
        load_runbooks(tmp_path)


def test_non_numeric_quorum(tmp_path: Path) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "broken.yaml", GOOD.format(name="broken", errors="") + "approval: {quorum: two}\n")
    with pytest.raises(RunbookError, match=r"broken\.yaml: malformed runbook"):
        load_runbooks(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("name: broken\ntitle: T\nactions: [safe]\ndefault_action: safe\n", id="actions-as-list"),
        pytest.param("- name: broken\n- title: T\n", id="top-level-list"),
        pytest.param("name: broken\ntitle: [unclosed\n", id="invalid-yaml"),
    ],
)
def test_wrongly_shaped_file_is_a_runbook_error(tmp_path: Path, text: str) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "broken.yaml", text)
    with pytest.raises(RunbookError, match=r"broken\.yaml"):
        load_runbooks(tmp_path)


def test_action_written_as_a_string(tmp_path: Path) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "broken.yaml", "name: broken\ntitle: T\nactions: {safe: low}\ndefault_action: safe\n")
    with pytest.raises(RunbookError, match=r"broken\.yaml: malformed runbook"):
        load_runbooks(tmp_path)


def test_below_thresholds_are_checked() -> None:
    from include.runbooks import _parse

    raw = {
        "name": "p",
        "title": "P",
        "match": {"errors": ["X"]},
        "severity": {"warning_below": {"voltage_v": 18}, "critical_below": {"voltage_v": 19}},
        "actions": {"a": {"risk": "low", "description": "d"}},
        "default_action": "a",
    }
    with pytest.raises(RunbookError, match="warning_below"):
        _parse(raw, "p.yaml")
    raw["severity"] = {"critical_below": {"voltage_v": 19}, "nominal": {"voltage_v": 0}}
    with pytest.raises(RunbookError, match="nominal"):
        _parse(raw, "p.yaml")


# -- grouping rules -------------------------------------------------------------------------------


def test_power_groups_a_sites_outage() -> None:
    grouping = get_runbook("power").grouping
    assert grouping == GroupingSpec(by=("site",), window_minutes=10)
    assert get_runbook("overheating").grouping is None


def test_grouping_window_defaults_to_ten_minutes(tmp_path: Path) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "pumps.yaml", GOOD.format(name="pumps", errors="") + "grouping: {by: [site, kind]}\n")
    assert load_runbooks(tmp_path)["pumps"].grouping == GroupingSpec(by=("site", "kind"), window_minutes=10)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("grouping: [site]", "grouping must be a mapping"),
        ("grouping: {}", "grouping.by must list inventory fields"),
        ("grouping: {by: []}", "grouping.by must list inventory fields"),
        ("grouping: {by: [rack]}", "grouping.by names 'rack', not an inventory field"),
        ("grouping: {by: [site, site]}", "grouping.by names a field twice"),
        ("grouping: {by: [site], window_minutes: 0}", "grouping.window_minutes must be between 1"),
        ("grouping: {by: [site], window_minutes: 99999}", "grouping.window_minutes must be between 1"),
        ("grouping: {by: [site], window_minutes: ten}", "grouping.window_minutes must be a whole number"),
        ("grouping: {by: [site], window_minutes: yes}", "grouping.window_minutes must be a whole number"),
        ("grouping: {by: [site], window_minutes: 2.5}", "grouping.window_minutes must be a whole number"),
        ("grouping: {by: [site], window: 5}", "grouping.window is not a grouping setting"),
    ],
)
def test_a_bad_grouping_section_names_the_file_and_field(tmp_path: Path, section: str, message: str) -> None:
    _valid_dir(tmp_path)
    _write(tmp_path, "broken.yaml", GOOD.format(name="broken", errors="") + section + "\n")
    with pytest.raises(RunbookError, match="broken.yaml") as info:
        load_runbooks(tmp_path)
    assert message in str(info.value)
