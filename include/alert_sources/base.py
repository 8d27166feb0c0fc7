"""What the normaliser returns and raises: notifications, batches and payload errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from include.models import Alert
from include.vocabulary import AlertStatus, Source

FIRING, RESOLVED, ACKNOWLEDGED = AlertStatus.FIRING, AlertStatus.RESOLVED, AlertStatus.ACKNOWLEDGED


class PayloadError(ValueError):
    """A notification body that cannot be understood.

    :param where: The offending field, as a path into the body (e.g. ``alerts[2].labels``).
    :param problem: What is wrong with it, in words the sender's operator can act on.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class TooManyAlertsError(PayloadError):
    """A notification carries more alerts than one request may start runs for.

    :param count: How many alerts the body carries.
    :param limit: The most one notification may carry (``MAX_ALERTS_PER_NOTIFICATION``).
    """

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            "alerts",
            f"{count} alerts in one notification; the limit is {limit} (MAX_ALERTS_PER_NOTIFICATION): "
            "split the group (Alertmanager's max_alerts, or a finer group_by)",
        )
        self.count = count
        self.limit = limit


@dataclass(frozen=True)
class Notification:
    """One alert of a notification, normalised.

    :param source: The sender (``alertmanager``, ``grafana``, ``pagerduty``, ``generic``).
    :param status: ``firing``, ``resolved`` or ``acknowledged`` (PagerDuty only).
    :param alert: The alert as the DAG run's conf will carry it.
    :param episode: What tells one firing of a fingerprint from the next one (the alert's start time),
        or None when the sender does not say (PagerDuty): then a resolve ends the episode.
    """

    source: Source
    status: AlertStatus
    alert: Alert
    episode: str | None = None

    @property
    def incident_key(self) -> str:
        """Return the key that makes repeats of this alert one incident."""
        return self.alert.incident_key

    @property
    def conf(self) -> dict[str, Any]:
        """Return the DAG run conf: the alert, flat, without empty optional fields."""
        return self.alert.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Batch:
    """What one request carried.

    :param notifications: The alerts, in the sender's order.
    :param truncated: Alerts the sender left out of the body (Alertmanager's ``truncatedAlerts``).
    :param ignored_fields: Unknown generic fields dropped because unknown conf keys are allowed.
    """

    notifications: list[Notification]
    truncated: int = 0
    ignored_fields: list[str] = field(default_factory=list)
