"""The vocabulary: severities compare by rank, and no state or severity word is written bare elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from include import vocabulary
from include.vocabulary import (
    ActionState,
    AlertStatus,
    ApprovalState,
    IncidentState,
    OutboxState,
    Outcome,
    Severity,
)

REPO = Path(__file__).resolve().parents[2]
# Every state and severity word the product stores or compares.
STATE_ENUMS = (Severity, IncidentState, ApprovalState, AlertStatus, OutboxState, ActionState, Outcome)
WORDS = {member.value for enum in STATE_ENUMS for member in enum}


def test_severities_compare_by_rank_not_alphabetically():
    assert Severity.INFO < Severity.WARNING < Severity.CRITICAL
    assert sorted([Severity.CRITICAL, Severity.INFO, Severity.WARNING]) == [
        Severity.INFO,
        Severity.WARNING,
        Severity.CRITICAL,
    ]
    # A plain string is read as a severity first (alphabetically "critical" < "info").
    assert Severity.CRITICAL > "info" and Severity.WARNING <= "warning"
    assert Severity.highest("info", None, "critical", Severity.WARNING) is Severity.CRITICAL
    with pytest.raises(ValueError):
        Severity.highest(None)
    with pytest.raises(ValueError):
        _ = Severity.WARNING < "bogus"


def test_members_are_their_wire_values():
    # The store, XCom and the JSON API carry the values: members must equal and hash as them.
    assert Severity.CRITICAL == "critical" and {"critical": 1}[Severity.CRITICAL] == 1
    assert f"{IncidentState.RESOLVED}" == "resolved"
    assert Outcome.escalated_after(ApprovalState.EXPIRED) is Outcome.ESCALATED_EXPIRED
    assert Outcome.escalated_after(None) is Outcome.ESCALATED


def _bare_words(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in WORDS
        and id(node) not in docstrings
    ]


def test_no_state_or_severity_word_is_written_bare_outside_the_vocabulary():
    vocabulary_file = Path(vocabulary.__file__).resolve()
    files = [
        path
        for folder in ("dags", "include", "plugins")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.resolve() != vocabulary_file
    ]
    assert len(files) > 50  # the scan sees the product
    bare = [hit for path in files for hit in _bare_words(path)]
    assert bare == [], "use the enums of include/vocabulary.py:\n" + "\n".join(bare)


def test_the_scan_finds_a_bare_word(tmp_path):
    # Guard for the test above: it must see a bare state word, and skip docstrings.
    sample = REPO / "include" / "_vocabulary_probe.py"
    try:
        sample.write_text('"""resolved"""\nSTATE = "resolved"\n', encoding="utf-8")
        assert _bare_words(sample) == ["include/_vocabulary_probe.py:2: 'resolved'"]
    finally:
        sample.unlink()
