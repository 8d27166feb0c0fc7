"""Request and response bodies of the JSON API (the response shapes mirror `Approval.to_json()`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from include.vocabulary import ApprovalState, Decision

MAX_COMMENT_CHARS = 2000


class DecisionBody(BaseModel):
    """A vote on an approval record."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None


class VoteResponse(BaseModel):
    """A counted vote or a refused attempt, as kept in the audit trail."""

    identity: str
    person: str = Field(description="The person behind the identity (quorum counts people)")
    channel: str
    decision: str
    comment: str | None
    at: str
    accepted: bool
    refused_because: str | None


class ApprovalResponse(BaseModel):
    """An approval record with every vote and refused attempt."""

    id: str
    incident_id: str
    dag_id: str
    dag_run_id: str
    action: str
    risk: str
    reasons: list[str]
    quorum: int
    approvals: int = Field(description="How many different people have approved so far")
    approvers: list[str] | None
    requested_by: str | None
    state: ApprovalState
    created_at: str
    expires_at: str
    decided_at: str | None
    votes: list[VoteResponse]


class ApprovalCollection(BaseModel):
    """A page of approval records, newest first."""

    approvals: list[ApprovalResponse]
    total_entries: int


class ErrorResponse(BaseModel):
    """Why a request was refused; `code` is `forbidden` or `conflict` for a refused vote."""

    detail: str
    code: str | None = None
