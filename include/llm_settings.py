"""Model settings read from the `llm_default` connection's extra, checked and bounded."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["OPTION_KEYS", "LlmConfigError", "LlmSettings"]

RESPONSE_FORMATS = ("json_schema", "json_object", "none")
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


class LlmConfigError(ValueError):
    """The LLM connection's extra holds a value of the wrong type or out of range."""


def _number(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise LlmConfigError(f"{key} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LlmConfigError(f"{key} must be a number")
    if not low <= value <= high:
        raise LlmConfigError(f"{key} must be between {low:g} and {high:g}")
    return float(value)


def _integer(raw: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = _number(raw, key, default, low, high)
    if value != int(value):
        raise LlmConfigError(f"{key} must be a whole number")
    return int(value)


def _flag(raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise LlmConfigError(f"{key} must be true or false")


def _choice(raw: dict[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise LlmConfigError(f"{key} must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class LlmSettings:
    """How to call the model and how long to keep trying.

    Every field is an optional key of the connection's extra, with the same name.

    :param model: Model name sent in the request.
    :param endpoint: Path of the chat completions API under the connection's host.
    :param temperature: Sampling temperature.
    :param max_tokens: Upper bound on the answer's length, sent to the server.
    :param max_tokens_field: Request field carrying that bound (newer OpenAI models want
        ``max_completion_tokens``).
    :param timeout: Seconds one HTTP request may take (connect and read).
    :param response_format: ``json_schema`` (structured output with the allow-list as an enum),
        ``json_object`` or ``none`` for servers that refuse the first two.
    :param max_attempts: HTTP attempts per model call on 429, 5xx, timeouts and connection errors.
    :param backoff_initial: First backoff in seconds, doubled after each failed attempt.
    :param backoff_max: Cap on one backoff (and on one ``Retry-After`` we are willing to honour).
    :param max_wait: Cap on the total backoff one step may sleep.
    :param validation_attempts: Model calls per step while the answer fails validation.
    :param deadline: Seconds after which a step stops trying and falls back to the rules.
    :param redact_ips: Also redact IP addresses from prompts.
    :param redact_emails: Redact e-mail addresses from prompts.
    """

    model: str = "gpt-4o-mini"
    endpoint: str = "/v1/chat/completions"
    temperature: float = 0.0
    max_tokens: int = 800
    max_tokens_field: str = "max_tokens"
    timeout: float = 30.0
    response_format: str = "json_schema"
    max_attempts: int = 3
    backoff_initial: float = 1.0
    backoff_max: float = 10.0
    max_wait: float = 30.0
    validation_attempts: int = 2
    deadline: float = 150.0
    redact_ips: bool = False
    redact_emails: bool = True

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> LlmSettings:
        """Read the settings from a connection extra; unknown keys are left to the HTTP layer (headers)."""
        raw = extra or {}
        if not isinstance(raw, dict):
            raise LlmConfigError("the connection extra must be a JSON object")
        model = raw.get("model", cls.model)
        if not isinstance(model, str) or not model.strip() or len(model) > 200:
            raise LlmConfigError("model must be a non-empty string")
        endpoint = raw.get("endpoint", cls.endpoint)
        if not isinstance(endpoint, str) or not endpoint.startswith("/"):
            raise LlmConfigError("endpoint must be a path starting with /")
        return cls(
            model=model.strip(),
            endpoint=endpoint,
            temperature=_number(raw, "temperature", cls.temperature, 0.0, 2.0),
            max_tokens=_integer(raw, "max_tokens", cls.max_tokens, 16, 16384),
            max_tokens_field=_choice(raw, "max_tokens_field", cls.max_tokens_field, TOKEN_FIELDS),
            timeout=_number(raw, "timeout", cls.timeout, 0.05, 300.0),
            response_format=_choice(raw, "response_format", cls.response_format, RESPONSE_FORMATS),
            max_attempts=_integer(raw, "max_attempts", cls.max_attempts, 1, 10),
            backoff_initial=_number(raw, "backoff_initial", cls.backoff_initial, 0.0, 60.0),
            backoff_max=_number(raw, "backoff_max", cls.backoff_max, 0.0, 120.0),
            max_wait=_number(raw, "max_wait", cls.max_wait, 0.0, 300.0),
            validation_attempts=_integer(raw, "validation_attempts", cls.validation_attempts, 1, 5),
            deadline=_number(raw, "deadline", cls.deadline, 0.1, 600.0),
            redact_ips=_flag(raw, "redact_ips", cls.redact_ips),
            redact_emails=_flag(raw, "redact_emails", cls.redact_emails),
        )


# Keys of the extra that configure the model call rather than being sent as HTTP headers.
OPTION_KEYS = frozenset(f.name for f in fields(LlmSettings))
