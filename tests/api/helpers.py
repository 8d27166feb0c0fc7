"""Helpers of the API tests: records as request_approval makes them, and requests as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.factories import approval_record

USERS = {"admin": "admin", "alice": "user", "bob": "user", "carol": "user", "victor": "viewer"}
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
PREFIX = "/incident-response"
SENSOR = "wait_for_approval"
APPROVERS = {
    "default": ["alice", "bob", "slack:U0ALICE", "slack:U0BOB"],
    "actions": {"open_bypass_valve": ["admin"]},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_record(
    store,
    *,
    action: str = "restart_pump",
    quorum: int = 1,
    approvers: Any = "policy",
    deadline: timedelta = timedelta(hours=1),
    alert: dict[str, Any] | None = None,
    analysis: dict[str, Any] | None = None,
    run_id: str | None = None,
):
    """Open an incident with a diagnosis and create its approval record, with the configured approvers."""
    from incident_ops.config import approver_policy

    policy = approver_policy()
    return approval_record(
        store,
        run_id=run_id,
        action=action,
        quorum=quorum,
        approvers=policy.approvers_for(action) if approvers == "policy" else approvers,
        deadline=deadline,
        alert=alert,
        analysis={
            "severity": "critical",
            "summary": "Pressure spike on PUMP-07B",
            "diagnosis": "Outlet valve stuck; pressure rising past the safe limit.",
            "recommended_action": action,
            "confidence": 0.82,
            "analyzer": "rules",
            "runbook": "pressure_spike",
            **(analysis or {}),
        },
        people=policy.person_index(),
    )


def snapshot(record) -> tuple:
    """Return what a refused or rejected request must not change: state, decision time, counted votes."""
    counted = tuple((v.identity, v.decision) for v in record.votes if v.accepted)
    return record.state, record.decided_at, counted


def click_payload(
    record_id: str, *, user: str = "U0ALICE", action_id: str = "approve", response_url: str | None = None
) -> dict[str, Any]:
    """Return a block_actions payload shaped like the one Slack sends for a button click."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0FAKETEAM"},
        "api_app_id": "A0INCIDENT",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0ONCALL01"},
        "trigger_id": "1.2.3",
        "team": {"id": "T0FAKETEAM", "domain": "fake"},
        "channel": {"id": "C0ONCALL01", "name": "oncall"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"approval:{record_id}",
                "value": record_id,
                "type": "button",
                "action_ts": "1700000001.000200",
            }
        ],
    }
    if response_url:
        payload["response_url"] = response_url
    return payload


def signed(
    payload: dict[str, Any] | None = None,
    *,
    body: bytes | None = None,
    secret: str = SIGNING_SECRET,
    timestamp: int | str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Play Slack: form-encode the payload and sign `v0:{timestamp}:{body}` with HMAC-SHA256."""
    if body is None:
        body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def defer_sensor(run_id: str, approval_id: str, *, store_conn_id: str = "incident_store") -> None:
    """Put the run's sensor in the state Airflow leaves it in once it has deferred on `approval_id`."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from incident_ops.triggers.approval import ApprovalTrigger

    trigger = ApprovalTrigger(
        approval_id=approval_id,
        expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        store_conn_id=store_conn_id,
    )
    with create_session() as session:
        row = Trigger.from_object(trigger)
        session.add(row)
        session.flush()
        ti = session.scalar(
            select(TaskInstance).where(TaskInstance.run_id == run_id, TaskInstance.task_id == SENSOR)
        )
        assert ti is not None, "the run has no wait_for_approval task instance"
        ti.state = TaskInstanceState.DEFERRED
        ti.trigger_id = row.id
        ti.next_method = "execute_complete"
        ti.next_kwargs = {}


def sensor(run_id: str) -> dict:
    """Return the sensor's state, trigger and returned XCom, as the next task would see them."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(
            select(TaskInstance).where(TaskInstance.run_id == run_id, TaskInstance.task_id == SENSOR)
        )
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.run_id == run_id, XComModel.task_id == SENSOR, XComModel.key == "return_value"
            )
        )
        while isinstance(value, str):  # stored JSON-encoded, as from the triggerer
            value = json.loads(value)
        return {"state": ti.state, "trigger_id": ti.trigger_id, "xcom": value}
