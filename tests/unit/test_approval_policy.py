"""Who must approve what: when approval is needed and who may vote."""

from __future__ import annotations

import pytest

from include.approval_policy import (
    DEFAULT_CONFIDENCE_THRESHOLD,
    ApproverConfigError,
    ApproverPolicy,
    approval_reasons,
    refusal,
)
from include.models import Alert, Analysis
from include.runbooks import get_runbook

PUMP = get_runbook("pressure_spike")


def _alert(**overrides) -> Alert:
    return Alert.model_validate({"device_id": "PUMP-07B", "error": "PRESSURE_SPIKE_DETECTED", **overrides})


def _analysis(action: str, confidence: float = 0.9) -> Analysis:
    return Analysis(
        severity="critical",
        summary="s",
        diagnosis="d",
        recommended_action=action,
        confidence=confidence,
        analyzer="rules",
        runbook="pressure_spike",
    )


def _refusal(**overrides) -> str | None:
    args = {
        "identity": "alice",
        "channel": "web",
        "role": "user",
        "approvers": None,
        "requested_by": None,
        "forbid_self_approval": False,
        **overrides,
    }
    return refusal(**args)


# -- approval_reasons -----------------------------------------------------------------------------


def test_low_risk_confident_fix_needs_no_approval() -> None:
    assert approval_reasons(_alert(), _analysis("open_bypass_valve"), PUMP) == []


def test_risky_action_needs_approval() -> None:
    reasons = approval_reasons(_alert(), _analysis("isolate_pump"), PUMP)
    assert len(reasons) == 1 and "isolate_pump" in reasons[0] and "high risk" in reasons[0]


@pytest.mark.parametrize(("confidence", "needed"), [(0.59, True), (0.3, True), (0.6, False), (0.95, False)])
def test_low_confidence_needs_approval(confidence: float, needed: bool) -> None:
    reasons = approval_reasons(_alert(), _analysis("reduce_load", confidence), PUMP)
    assert bool(reasons) is needed
    if needed:
        assert reasons == [f"confidence {confidence:.2f} is below {DEFAULT_CONFIDENCE_THRESHOLD:.2f}"]


def test_threshold_is_configurable() -> None:
    assert approval_reasons(_alert(), _analysis("reduce_load", 0.7), PUMP, threshold=0.8)
    assert not approval_reasons(_alert(), _analysis("reduce_load", 0.7), PUMP, threshold=0.5)


def test_run_can_ask_for_approval() -> None:
    assert approval_reasons(_alert(require_approval=True), _analysis("reduce_load"), PUMP) == [
        "the run asked for approval"
    ]


def test_every_reason_is_listed() -> None:
    reasons = approval_reasons(_alert(require_approval=True), _analysis("isolate_pump", 0.1), PUMP)
    assert len(reasons) == 3


def test_action_outside_the_runbook_is_an_error_not_a_free_pass() -> None:
    from include.runbooks import RunbookError

    with pytest.raises(RunbookError):
        approval_reasons(_alert(), _analysis("shutdown_device"), PUMP)


# -- ApproverPolicy.from_config -------------------------------------------------------------------


def test_no_variable_means_default_policy() -> None:
    policy = ApproverPolicy.from_config(None)
    assert policy == ApproverPolicy()
    assert policy.approvers_for("isolate_pump") is None
    assert policy.forbid_self_approval is False


def test_good_config() -> None:
    policy = ApproverPolicy.from_config(
        {
            "default": ["alice", "slack:U01"],
            "actions": {"isolate_pump": ["bob", "slack:U02"]},
            "forbid_self_approval": True,
        }
    )
    assert policy.approvers_for("isolate_pump") == ["bob", "slack:U02"]
    assert policy.approvers_for("reduce_load") == ["alice", "slack:U01"]
    assert policy.forbid_self_approval is True


def test_per_action_lists_without_default() -> None:
    policy = ApproverPolicy.from_config({"actions": {"isolate_pump": ["bob"]}})
    assert policy.approvers_for("isolate_pump") == ["bob"]
    assert policy.approvers_for("reduce_load") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["alice"], "must be a JSON object"),
        ("alice", "must be a JSON object"),
        ({"defaults": ["alice"]}, "unknown keys: defaults"),
        ({"default": "alice"}, "incident_approvers.default must be a list of names"),
        ({"default": ["alice", ""]}, "incident_approvers.default must be a list of names"),
        ({"default": ["alice", 7]}, "incident_approvers.default must be a list of names"),
        ({"actions": ["isolate_pump"]}, "incident_approvers.actions must be an object"),
        (
            {"actions": {"isolate_pump": "bob"}},
            "incident_approvers.actions.isolate_pump must be a list of names",
        ),
    ],
)
def test_malformed_config(raw, message: str) -> None:
    with pytest.raises(ApproverConfigError, match=message):
        ApproverPolicy.from_config(raw)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ApproverConfigError, ValueError)


@pytest.mark.parametrize("value", ["false", "no", 1, [True]])
def test_forbid_self_approval_must_be_a_boolean(value) -> None:
    with pytest.raises(ApproverConfigError, match="forbid_self_approval"):
        ApproverPolicy.from_config({"forbid_self_approval": value})


# -- refusal --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["user", "op", "admin", "Admin", "OP"])
def test_airflow_user_with_role_may_approve_without_config(role: str) -> None:
    assert _refusal(role=role) is None


@pytest.mark.parametrize("channel", ["web", "api"])
@pytest.mark.parametrize("role", ["viewer", None, "", "public"])
def test_role_below_user_is_refused_without_config(channel: str, role: str | None) -> None:
    assert _refusal(channel=channel, role=role) == "approving needs the user role or above"


def test_slack_user_is_refused_without_config() -> None:
    why = _refusal(identity="slack:U123", channel="slack", role=None)
    assert why is not None and "no Slack approvers are configured" in why


def test_any_vote_through_slack_is_refused_without_config() -> None:
    assert _refusal(identity="alice", channel="slack", role=None) is not None


def test_listed_airflow_user_may_approve_whatever_the_role() -> None:
    assert _refusal(identity="alice", role="viewer", approvers=["alice"]) is None


def test_listed_slack_user_may_approve() -> None:
    assert (
        _refusal(identity="slack:U123", channel="slack", role=None, approvers=["slack:U123", "bob"]) is None
    )


@pytest.mark.parametrize(
    ("identity", "channel"),
    [("carol", "web"), ("slack:U999", "slack"), ("U123", "slack"), ("slack:u123", "slack"), ("Alice", "web")],
)
def test_unlisted_identity_is_refused(identity: str, channel: str) -> None:
    why = _refusal(identity=identity, channel=channel, role="admin", approvers=["alice", "slack:U123"])
    assert why == f"{identity} is not an allowed approver for this action"


def test_empty_approver_list_refuses_everyone() -> None:
    assert _refusal(identity="admin", role="admin", approvers=[]) is not None


def test_self_approval_refused_when_forbidden() -> None:
    why = _refusal(identity="alice", requested_by="alice", forbid_self_approval=True, approvers=["alice"])
    assert why == "requesters may not approve their own request"
    # Also when no list is configured and the role would allow it.
    assert _refusal(identity="alice", requested_by="alice", forbid_self_approval=True) is not None


def test_self_approval_allowed_when_not_forbidden() -> None:
    assert _refusal(identity="alice", requested_by="alice", forbid_self_approval=False) is None


def test_others_may_approve_when_self_approval_is_forbidden() -> None:
    assert _refusal(identity="bob", requested_by="alice", forbid_self_approval=True) is None


def test_forbidden_self_approval_with_unknown_requester_refuses_nobody() -> None:
    assert _refusal(identity="alice", requested_by=None, forbid_self_approval=True) is None


def test_policy_and_refusal_together() -> None:
    policy = ApproverPolicy.from_config({"default": ["alice"], "actions": {"isolate_pump": ["slack:U42"]}})
    risky = policy.approvers_for("isolate_pump")
    assert _refusal(identity="slack:U42", channel="slack", role=None, approvers=risky) is None
    assert _refusal(identity="alice", role="admin", approvers=risky) is not None
    assert _refusal(identity="alice", role=None, approvers=policy.approvers_for("reduce_load")) is None
