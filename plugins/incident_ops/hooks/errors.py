"""Typed delivery errors for external integrations, split into permanent and transient failures."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from include.http_retry import is_transient_status

__all__ = [
    "IncidentStoreConfigError",
    "LlmError",
    "LlmPermanentError",
    "LlmTransientError",
    "LlmUnavailableError",
    "ServiceError",
    "ServiceRejectedError",
    "ServiceUnavailableError",
    "SLACK_TRANSIENT_ERROR_CODES",
    "SlackDeliveryError",
    "SlackNotConfiguredError",
    "SlackPermanentError",
    "SlackRateLimitedError",
    "SlackTransientError",
    "slack_error_for",
]

# Slack documents these ``error`` values as "try again later"; every other ``ok: false`` answer is
# a property of the request itself (bad channel, bad token, bad blocks) and repeats on a retry.
SLACK_TRANSIENT_ERROR_CODES: frozenset[str] = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "connection_error",
        "invalid_response",
    }
)

# Non-JSON bodies (an HTML 502 page, say) arrive as a long message; only keep real Slack codes.
_ERROR_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _rebuild(cls: type[SlackDeliveryError], error_code: str, kwargs: dict[str, Any]) -> SlackDeliveryError:
    """Recreate an unpickled error (keyword-only arguments defeat the default reduce)."""
    return cls(error_code, **kwargs)


class SlackDeliveryError(Exception):
    """
    A Slack Web API call did not deliver.

    Match on the subclasses (or :attr:`permanent`), never on the message: Airflow's
    ``ExceptionRetryPolicy`` can fail fast on :class:`SlackPermanentError` and retry
    :class:`SlackTransientError`.

    :param error_code: Slack's ``error`` value (``channel_not_found``) or a local code
        (``connection_error``, ``http_502``, ``not_configured``).
    :param method: Slack API method, e.g. ``chat.postMessage``.
    :param channel: Target channel name or id (never the message body).
    :param status_code: HTTP status of the last answer, if any.
    :param retry_after: Seconds Slack asked us to wait (``Retry-After``), if any.
    """

    permanent: ClassVar[bool] = False

    def __init__(
        self,
        error_code: str,
        *,
        method: str | None = None,
        channel: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.error_code = error_code
        self.method = method
        self.channel = channel
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        """Build a message with the code and target only (no token, no message text)."""
        kind = "permanent" if self.permanent else "transient"
        parts = [f"Slack {self.method or 'API call'} failed ({kind}): {self.error_code}"]
        if self.channel:
            parts.append(f"channel={self.channel}")
        if self.status_code is not None:
            parts.append(f"http_status={self.status_code}")
        if self.retry_after is not None:
            parts.append(f"retry_after={self.retry_after:g}s")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "method": self.method,
            "channel": self.channel,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
        }
        return (_rebuild, (type(self), self.error_code, kwargs))


class SlackPermanentError(SlackDeliveryError):
    """A Slack error that a retry cannot fix (bad channel, bad token, invalid blocks...)."""

    permanent: ClassVar[bool] = True


class SlackNotConfiguredError(SlackPermanentError):
    """The Slack connection is missing or has no token; use the outbox instead."""


class SlackTransientError(SlackDeliveryError):
    """A Slack error that may succeed later (5xx, connection failure, rate limit)."""


class SlackRateLimitedError(SlackTransientError):
    """Slack kept answering HTTP 429 after the client's own retries; see :attr:`retry_after`."""


def slack_error_for(
    *,
    status_code: int | None,
    error: Any,
    method: str | None = None,
    channel: str | None = None,
    retry_after: float | None = None,
) -> SlackDeliveryError:
    """Classify a failed Slack answer into a permanent or transient error."""
    code = error if isinstance(error, str) and _ERROR_CODE_RE.match(error) else None
    if code is None:
        code = f"http_{status_code}" if status_code is not None and status_code != 200 else "invalid_response"
    kwargs: dict[str, Any] = {
        "method": method,
        "channel": channel,
        "status_code": status_code,
        "retry_after": retry_after,
    }
    if status_code == 429 or code in {"ratelimited", "rate_limited"}:
        return SlackRateLimitedError(code, **kwargs)
    if (status_code is not None and is_transient_status(status_code)) or code in SLACK_TRANSIENT_ERROR_CODES:
        return SlackTransientError(code, **kwargs)
    return SlackPermanentError(code, **kwargs)


class ServiceError(Exception):
    """A device-control or ticketing API answered with an HTTP error.

    :param conn_id: The Airflow connection of the service.
    :param status_code: The HTTP status it answered.
    """

    def __init__(self, conn_id: str, status_code: int) -> None:
        self.conn_id = conn_id
        self.status_code = status_code
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"{self.conn_id} answered HTTP {self.status_code}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.conn_id, self.status_code))


class ServiceRejectedError(ServiceError):
    """The service refused the request (4xx other than 408/429): retrying will not help."""

    def _describe(self) -> str:
        return f"{self.conn_id} refused the request with HTTP {self.status_code}"


class ServiceUnavailableError(ServiceError):
    """The service failed in a way a later attempt may fix (5xx, 408, 429)."""

    def _describe(self) -> str:
        return f"{self.conn_id} is unavailable (HTTP {self.status_code})"


class IncidentStoreConfigError(ValueError):
    """The `incident_store` connection is of a type the store cannot use."""


class LlmError(Exception):
    """A model call did not return an answer.

    :param reason: A short code for records: ``rate_limited``, ``timeout``, ``http_503``, ``deadline``...
    :param status_code: HTTP status of the last answer, if any.
    :param retry_after: Seconds the server asked us to wait, if it did.
    :param requests: HTTP requests made before giving up.
    :param failures: The reason of every failed attempt, in order.
    """

    permanent: ClassVar[bool] = False

    def __init__(
        self,
        reason: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        requests: int = 0,
        failures: tuple[str, ...] = (),
    ) -> None:
        self.reason = reason
        self.failures = failures
        self.status_code = status_code
        self.retry_after = retry_after
        self.requests = requests
        super().__init__(f"LLM call failed: {reason}")


class LlmTransientError(LlmError):
    """A failure a later attempt may get past: 429, 5xx, timeout, connection error."""


class LlmPermanentError(LlmError):
    """A failure that repeats on every attempt: a refused key, a bad request, an unknown model."""

    permanent = True


class LlmUnavailableError(LlmError):
    """Transient failures outlasted the attempts, the wait budget or the deadline."""
