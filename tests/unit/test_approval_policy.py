"""Who must approve what: when approval is needed and who may vote."""

from __future__ import annotations

import pytest

from include.approval_policy import (
    DEFAULT_CONFIDENCE_THRESHOLD,
    ApproverConfigError,
    ApproverPolicy,
    caution,
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


# -- caution: a model may only add caution ---------------------------------------------------------


def approval_reasons(alert, analysis, runbook, *, rules=None, threshold=DEFAULT_CONFIDENCE_THRESHOLD):
    """The reasons when the rules agree with the analysis (or, given, the rules' own analysis)."""
    return caution(
        alert, rules=rules or analysis, proposed=analysis, runbook=runbook, threshold=threshold
    ).reasons


def _llm(action: str, confidence: float = 1.0, severity: str = "critical") -> Analysis:
    return _analysis(action, confidence).model_copy(update={"analyzer": "llm", "severity": severity})


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


def test_a_model_that_swaps_the_risky_action_for_a_safe_one_still_needs_a_human() -> None:
    rules = _analysis("isolate_pump", 0.9)
    verdict = caution(_alert(), rules=rules, proposed=_llm("reduce_load", 1.0), runbook=PUMP)
    assert verdict.needs_approval
    assert verdict.reasons == ["the model proposed reduce_load instead of isolate_pump"]


def test_any_other_action_than_the_rules_choice_needs_a_human_even_a_safe_one() -> None:
    rules = _analysis("reduce_load", 0.9)
    verdict = caution(_alert(), rules=rules, proposed=_llm("open_bypass_valve", 1.0), runbook=PUMP)
    assert verdict.reasons == ["the model proposed open_bypass_valve instead of reduce_load"]


def test_model_confidence_never_lifts_the_rules_own_low_confidence() -> None:
    rules = _analysis("reduce_load", 0.3)
    verdict = caution(_alert(), rules=rules, proposed=_llm("reduce_load", 1.0), runbook=PUMP)
    assert verdict.reasons == ["confidence 0.30 is below 0.60"]


def test_a_model_agreeing_with_confident_rules_on_a_safe_action_runs_at_once() -> None:
    rules = _analysis("reduce_load", 0.9)
    assert not caution(_alert(), rules=rules, proposed=_llm("reduce_load", 0.95), runbook=PUMP).needs_approval


def test_a_model_may_raise_caution() -> None:
    rules = _analysis("reduce_load", 0.9)
    verdict = caution(_alert(), rules=rules, proposed=_llm("isolate_pump", 0.9), runbook=PUMP)
    assert "action isolate_pump is high risk" in verdict.reasons


@pytest.mark.parametrize(
    ("rules_severity", "model_severity", "hint", "expected"),
    [
        ("critical", "info", None, "critical"),
        ("warning", "info", None, "warning"),
        ("warning", "critical", None, "critical"),
        ("info", "info", "warning", "warning"),
        ("warning", "info", "info", "warning"),
    ],
)
def test_the_rules_severity_and_the_hint_are_a_floor_at_every_level(
    rules_severity, model_severity, hint, expected
) -> None:
    rules = _analysis("reduce_load").model_copy(update={"severity": rules_severity})
    proposed = _llm("reduce_load", severity=model_severity)
    assert caution(_alert(severity=hint), rules=rules, proposed=proposed, runbook=PUMP).severity == expected


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
    assert why in (
        f"{identity} is not an allowed approver for this action",
        "Slack identities vote through Slack only",
    )


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


# -- people: quorum counts people, and a Slack identity is only Slack's ---------------------------------


def test_people_map_each_identity_to_its_person_and_widen_the_lists() -> None:
    policy = ApproverPolicy.from_config(
        {"default": ["alice", "bob"], "people": {"alice": ["alice", "slack:U0ALICE"], "bob": ["slack:U0BOB"]}}
    )
    assert policy.person_index() == {"alice": "alice", "slack:U0ALICE": "alice", "slack:U0BOB": "bob"}
    assert set(policy.approvers_for("isolate_pump")) == {"alice", "bob", "slack:U0ALICE", "slack:U0BOB"}


def test_one_identity_cannot_belong_to_two_people() -> None:
    with pytest.raises(ApproverConfigError, match="slack:U1 for both"):
        ApproverPolicy.from_config({"people": {"alice": ["slack:U1"], "bob": ["slack:U1"]}})


@pytest.mark.parametrize("channel", ["web", "api"])
def test_an_airflow_username_spelled_like_a_slack_id_is_not_that_slack_user(channel: str) -> None:
    why = _refusal(identity="slack:U0ALICE", channel=channel, role="admin", approvers=["slack:U0ALICE"])
    assert why == "Slack identities vote through Slack only"


def test_self_approval_is_refused_through_another_identity_of_the_same_person() -> None:
    why = _refusal(
        identity="slack:U0ALICE",
        channel="slack",
        approvers=["slack:U0ALICE"],
        requested_by="alice",
        forbid_self_approval=True,
        people={"slack:U0ALICE": "alice", "alice": "alice"},
    )
    assert why == "requesters may not approve their own request"
