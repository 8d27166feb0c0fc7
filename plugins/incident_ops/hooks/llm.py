"""An OpenAI-compatible chat completions endpoint through an Airflow HTTP connection (`llm_default`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from airflow.providers.http.hooks.http import HttpHook

from incident_ops.hooks.errors import (
    LlmError,
    LlmPermanentError,
    LlmTransientError,
    LlmUnavailableError,
)
from include.http_retry import is_transient_status, parse_retry_after
from include.llm_settings import OPTION_KEYS, LlmSettings
from include.names import LLM_CONN_ID

__all__ = [
    "ChatResult",
    "LlmError",
    "LlmHook",
    "LlmPermanentError",
    "LlmTransientError",
    "LlmUnavailableError",
    "RetryBudget",
]


@dataclass
class RetryBudget:
    """Limits shared by every model call of one step.

    :param deadline: Monotonic time after which no request starts.
    :param wait_left: Seconds of backoff the step may still sleep.
    """

    deadline: float
    wait_left: float


@dataclass(frozen=True)
class ChatResult:
    """A completion body and what it took to get it."""

    body: dict[str, Any]
    requests: int
    latency_s: float
    waited_s: float = 0.0
    failures: tuple[str, ...] = field(default_factory=tuple)


class LlmHook(HttpHook):
    """
    Call ``/v1/chat/completions`` on the host of an HTTP connection, retrying what may succeed later.

    The connection's extra holds the headers (``{"headers": {"Authorization": "Bearer ..."}}``, or the
    HTTP provider's convention of top-level header keys) and the model settings of
    :class:`include.llm_settings.LlmSettings` (``model``, ``temperature``, ``timeout``, ``max_tokens``...),
    which are never sent as headers. A password without a login becomes ``Authorization: Bearer``.

    :param llm_conn_id: The HTTP connection to the endpoint.
    :param settings: Settings to use instead of reading them from the connection's extra.
    :param connection: The connection, when the caller already fetched it (saves a lookup per request).
    :param sleep: Called to wait between attempts (tests pass a recorder).
    :param clock: Monotonic clock for deadlines.
    :param jitter: Returns a factor in [0, 1] mixed into backoffs so workers do not retry in step.
    """

    conn_name_attr = "llm_conn_id"
    default_conn_name = LLM_CONN_ID
    conn_type = "http"
    hook_name = "LLM (OpenAI-compatible chat completions)"

    def __init__(
        self,
        llm_conn_id: str = default_conn_name,
        *,
        settings: LlmSettings | None = None,
        connection: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(method="POST", http_conn_id=llm_conn_id)
        self.llm_conn_id = llm_conn_id
        self._settings = settings
        self._connection = connection
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def _llm_connection(self) -> Any:
        if self._connection is None:
            self._connection = self.get_connection(self.llm_conn_id)
        return self._connection

    @cached_property
    def settings(self) -> LlmSettings:
        """Return the model settings (from the connection's extra unless given)."""
        if self._settings is not None:
            return self._settings
        return LlmSettings.from_extra(self._llm_connection().extra_dejson)

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """Return a session whose headers are the connection's headers only, never its model settings."""
        session = super().get_conn(headers, extra_options)
        connection = self._llm_connection()
        extra = connection.extra_dejson
        # The HTTP provider turns every extra key into a header; ours are settings, not headers.
        for key in (*OPTION_KEYS, "headers"):
            session.headers.pop(key, None)
        nested = extra.get("headers")
        if isinstance(nested, dict):
            session.headers.update({str(k): str(v) for k, v in nested.items()})
        if connection.password and not connection.login and "Authorization" not in session.headers:
            session.headers["Authorization"] = f"Bearer {connection.password}"
        if headers:
            session.headers.update(headers)
        return session

    def budget(self) -> RetryBudget:
        """Return a fresh budget for one step, from the settings' deadline and max_wait."""
        return RetryBudget(deadline=self._clock() + self.settings.deadline, wait_left=self.settings.max_wait)

    def request_body(
        self, messages: list[dict[str, str]], response_format: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Return the chat completion request for `messages`."""
        settings = self.settings
        body: dict[str, Any] = {
            "model": settings.model,
            "messages": messages,
            "temperature": settings.temperature,
            settings.max_tokens_field: settings.max_tokens,
        }
        if response_format is not None:
            body["response_format"] = response_format
        return body

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
        budget: RetryBudget | None = None,
    ) -> ChatResult:
        """Post one chat completion; retry 429, 5xx, timeouts and connection errors with capped backoff."""
        settings = self.settings
        budget = budget or self.budget()
        body = self.request_body(messages, response_format)
        started, waited = self._clock(), 0.0
        failures: list[str] = []
        for attempt in range(1, settings.max_attempts + 1):
            remaining = budget.deadline - self._clock()
            if remaining <= 0:
                raise LlmUnavailableError("deadline", requests=attempt - 1, failures=tuple(failures))
            try:
                answer = self._post(body, timeout=min(settings.timeout, remaining))
                return ChatResult(
                    body=answer,
                    requests=attempt,
                    latency_s=self._clock() - started,
                    waited_s=waited,
                    failures=tuple(failures),
                )
            except LlmPermanentError as exc:
                exc.requests, exc.failures = attempt, (*failures, exc.reason)
                raise
            except LlmTransientError as exc:
                failures.append(exc.reason)
                last = attempt == settings.max_attempts
                delay = None if last else self._delay(attempt, exc.retry_after, budget)
                if delay is None:
                    raise LlmUnavailableError(
                        exc.reason,
                        status_code=exc.status_code,
                        retry_after=exc.retry_after,
                        requests=attempt,
                        failures=tuple(failures),
                    ) from None
                self.log.info(
                    "LLM call failed (%s), attempt %d of %d; retrying in %.2fs",
                    exc.reason,
                    attempt,
                    settings.max_attempts,
                    delay,
                )
                budget.wait_left -= delay
                waited += delay
                self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: float | None, budget: RetryBudget) -> float | None:
        """Return how long to wait before the next attempt, or None when the budget cannot cover it."""
        settings = self.settings
        room = min(budget.wait_left, budget.deadline - self._clock())
        if retry_after is not None:
            # The server said when; waiting less is wasted, waiting past our caps is not allowed.
            if retry_after > settings.backoff_max or retry_after > room:
                return None
            return retry_after
        backoff = min(settings.backoff_max, settings.backoff_initial * 2 ** (attempt - 1))
        backoff *= 0.5 + 0.5 * self._jitter()
        if room <= 0:
            return None
        return min(backoff, room)

    def _post(self, body: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Make one HTTP request and classify any failure."""
        import requests

        try:
            # check_response off: we read 429/5xx ourselves, and the provider would log the body.
            response = self.run(
                self.settings.endpoint, json=body, extra_options={"timeout": timeout, "check_response": False}
            )
        except requests.exceptions.Timeout:
            raise LlmTransientError("timeout") from None
        except requests.exceptions.ConnectionError:
            raise LlmTransientError("connection_error") from None
        status = response.status_code
        if is_transient_status(status):
            reason = "rate_limited" if status == 429 else f"http_{status}"
            retry_after = parse_retry_after(response.headers)
            raise LlmTransientError(reason, status_code=status, retry_after=retry_after)
        if not 200 <= status < 300:
            raise LlmPermanentError(f"http_{status}", status_code=status)
        try:
            answer = response.json()
        except ValueError:
            raise LlmTransientError("bad_body", status_code=status) from None
        if not isinstance(answer, dict):
            raise LlmTransientError("bad_body", status_code=status)
        return answer
