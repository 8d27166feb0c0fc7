"""Documents that flow between the workflow's steps, validated at every hop."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict, StringConstraints

from include.errors import InvalidDocument
from include.limits import (
    MAX_FINGERPRINT,
    MAX_ID,
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_MESSAGE,
    MAX_METRIC_NAME,
    MAX_METRICS,
)
from include.vocabulary import ApprovalState, Severity, Source

SEVERITIES = tuple(Severity)
SOURCES = tuple(Source)
# Strict and finite, like the trigger form's schema: no true-as-1.0, no "95", no NaN.
Reading = Annotated[float, Strict(), AllowInfNan(False)]
MetricName = Annotated[str, StringConstraints(max_length=MAX_METRIC_NAME)]
LabelKey = Annotated[str, StringConstraints(max_length=MAX_LABEL_KEY)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]


class Document(BaseModel):
    """Base for XCom documents: strict about unknown fields, JSON round-trippable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_xcom(self) -> dict[str, Any]:
        """Return the JSON-safe dict pushed to XCom."""
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, value: Any) -> Self:
        """Validate a value pulled from XCom."""
        if value is None:
            raise InvalidDocument(f"{cls.__name__}: no value was passed from the upstream task")
        return cls.model_validate(value)


class Alert(Document):
    """The alert as triggered: the DAG run conf, flat."""

    device_id: str = Field(min_length=1, max_length=MAX_ID)
    error: str = Field(min_length=1, max_length=MAX_ID)
    message: str | None = Field(default=None, max_length=MAX_MESSAGE)
    source: Source = Source.API
    severity: Severity | None = None
    metrics: dict[MetricName, Reading] = Field(default_factory=dict, max_length=MAX_METRICS)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    fingerprint: str | None = Field(default=None, max_length=MAX_FINGERPRINT)
    started_at: datetime | None = None
    require_approval: bool = False
    dry_run: bool = False

    @property
    def incident_key(self) -> str:
        """Return the key that identifies one incident across repeated notifications."""
        if self.fingerprint and self.source == Source.IOT:
            # A device's fingerprints are its own: one device can never name another's incident.
            basis = f"iot:{self.device_id}:fp:{self.fingerprint}"
        elif self.fingerprint:
            basis = f"fp:{self.fingerprint}"
        else:
            basis = f"dev:{self.device_id}:{self.error}"
        return hashlib.sha256(basis.encode()).hexdigest()[:16]


class Enrichment(Document):
    """What the inventory knows about the device an alert came from."""

    device_id: str
    known: bool
    site: str | None = None
    # The id of the device through which this one connects (the topology the grouping rules use).
    gateway: str | None = None
    kind: str | None = None
    model: str | None = None
    firmware: str | None = None
    criticality: str | None = None
    owner_team: str | None = None
    source: str = "inventory-file"


class Analysis(Document):
    """The AI steps' verdict; the same schema whether an LLM or the rules answered."""

    severity: Severity
    summary: str = Field(min_length=1, max_length=2000)
    diagnosis: str = Field(min_length=1, max_length=4000)
    recommended_action: str = Field(min_length=1, max_length=64)
    confidence: float = Field(ge=0.0, le=1.0)
    analyzer: Annotated[str, StringConstraints(pattern=r"^(llm|rules)$")]
    runbook: str = Field(min_length=1, max_length=64)


class ApprovalOutcome(Document):
    """What `wait_for_approval` hands to `approval_decision`."""

    approval_id: str
    state: ApprovalState
    decided_by: list[str] = Field(default_factory=list)
