"""Bind an approval to exactly what it approved, and check it again before the fix acts.

The branch and the XCom that lead to ``execute_fix`` are editable by any Airflow user who may edit
task states; the approval record is not. So the fix re-reads the record: it must be approved, for this
incident, and for the same action digest (action, targets, parameters) that was put to the approvers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from include.store.records import Approval
from include.vocabulary import ApprovalState


def action_digest(action: str, targets: Sequence[str], parameters: Mapping[str, Any]) -> str:
    """Return the SHA-256 of what an approval is for: the action, its targets and its parameters."""
    canonical = json.dumps(
        {"action": action, "targets": sorted(targets), "parameters": dict(parameters)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def fix_refusal(
    record: Approval | None, *, incident_id: str, action: str, digest: str, incident_resolved: bool
) -> str | None:
    """Return why the fix must not act on this record, or None when the record approves exactly it."""
    if record is None:
        return "no approval record exists for this action"
    if record.incident_id != incident_id or record.action != action:
        return "the approval record is for another incident or action"
    if record.state != ApprovalState.APPROVED:
        return f"the approval record is {record.state}, not approved"
    if incident_resolved:
        return "the incident is resolved"
    if record.action_digest != digest:
        return "the approved action, targets or parameters differ from what would run"
    return None
