"""LlmHook against the loopback fake: headers, request body, retries, Retry-After, timeouts and budgets."""

# The fixtures are imported into this module (not conftest.py); their use as parameters is not a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from incident_ops.hooks.llm import (
    LlmHook,
    LlmPermanentError,
    LlmUnavailableError,
    RetryBudget,
)
from include.http_retry import parse_retry_after
from tests.fakes.llm_fixtures import llm_connection, llm_server  # noqa: F401
from tests.fakes.llm_server import DEFAULT_TEST_KEY, FakeLlmServer, Reply

MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {"type": "object"}}}


class Sleeps(list):
    """Record the waits instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 4))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _hook(sleeps: Sleeps) -> LlmHook:
    return LlmHook(sleep=sleeps, jitter=lambda: 1.0)


def test_the_request_carries_model_options_schema_and_only_real_headers(llm_server, llm_connection, sleeps):
    llm_connection(temperature=0.3, max_tokens=321, redact_ips=True, **{"X-Team": "ops"})

    result = _hook(sleeps).chat(MESSAGES, response_format=FORMAT)

    [request] = llm_server.requests
    assert result.requests == 1 and "choices" in result.body
    assert request.path == "/v1/chat/completions"
    assert request.authorization == f"Bearer {DEFAULT_TEST_KEY}"
    assert request.body == {
        "model": "fake-gpt",
        "messages": MESSAGES,
        "temperature": 0.3,
        "max_tokens": 321,
        "response_format": FORMAT,
    }
    assert request.header("X-Team") == "ops"  # the HTTP provider's convention: other extra keys are headers
    sent = {k.lower() for k in request.headers}
    for setting in ("model", "temperature", "max_tokens", "redact_ips", "timeout", "headers", "max_wait"):
        assert setting not in sent


def test_max_completion_tokens_for_newer_models(llm_server, llm_connection, sleeps):
    llm_connection(max_tokens_field="max_completion_tokens", max_tokens=100)

    _hook(sleeps).chat(MESSAGES)

    body = llm_server.requests[0].body
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body and "response_format" not in body


def test_top_level_authorization_header_works(llm_server, monkeypatch, sleeps):
    conn = json.loads(llm_server.connection_json())
    conn["extra"].pop("headers")
    conn["extra"]["Authorization"] = f"Bearer {DEFAULT_TEST_KEY}"
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(conn))

    _hook(sleeps).chat(MESSAGES)

    assert llm_server.requests[0].authorization == f"Bearer {DEFAULT_TEST_KEY}"


def test_a_password_without_login_is_the_bearer_key(llm_server, monkeypatch, sleeps):
    conn = json.loads(llm_server.connection_json())
    conn["extra"].pop("headers")
    conn["password"] = DEFAULT_TEST_KEY
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", json.dumps(conn))

    _hook(sleeps).chat(MESSAGES)

    assert llm_server.requests[0].authorization == f"Bearer {DEFAULT_TEST_KEY}"


def test_429_waits_what_retry_after_says_then_succeeds(llm_server, llm_connection, sleeps):
    llm_server.enqueue(Reply.error(429, retry_after=0.25))

    result = _hook(sleeps).chat(MESSAGES)

    assert result.requests == 2 and result.failures == ("rate_limited",)
    assert sleeps == [0.25]


def test_retry_after_beyond_the_cap_gives_up_at_once(llm_server, llm_connection, sleeps):
    llm_connection(backoff_max=5)
    llm_server.enqueue(Reply.error(429, retry_after=60))

    with pytest.raises(LlmUnavailableError) as info:
        _hook(sleeps).chat(MESSAGES)

    assert (info.value.reason, info.value.requests, info.value.retry_after) == ("rate_limited", 1, 60.0)
    assert sleeps == [] and len(llm_server.requests) == 1


def test_5xx_backs_off_exponentially_with_a_cap(llm_server, llm_connection, sleeps):
    llm_connection(max_attempts=4, backoff_initial=0.1, backoff_max=0.15, max_wait=5)
    llm_server.enqueue(Reply.error(500), Reply.error(502), Reply.error(503))

    result = _hook(sleeps).chat(MESSAGES)

    assert result.requests == 4 and result.failures == ("http_500", "http_502", "http_503")
    assert sleeps == [0.1, 0.15, 0.15]


def test_jitter_only_shortens_a_backoff(llm_server, llm_connection, sleeps):
    llm_connection(backoff_initial=0.2)
    llm_server.enqueue(Reply.error(500))

    LlmHook(sleep=sleeps, jitter=lambda: 0.0).chat(MESSAGES)

    assert sleeps == [0.1]


def test_persistent_5xx_ends_after_max_attempts(llm_server, llm_connection, sleeps):
    llm_server.default = Reply.error(500)

    with pytest.raises(LlmUnavailableError) as info:
        _hook(sleeps).chat(MESSAGES)

    assert (info.value.reason, info.value.requests) == ("http_500", 3)
    assert info.value.failures == ("http_500",) * 3
    assert len(llm_server.requests) == 3 and len(sleeps) == 2


def test_total_wait_is_bounded_by_max_wait(llm_server, llm_connection, sleeps):
    llm_connection(max_attempts=10, backoff_initial=0.2, backoff_max=0.2, max_wait=0.5)
    llm_server.default = Reply.error(503)

    with pytest.raises(LlmUnavailableError):
        _hook(sleeps).chat(MESSAGES)

    assert sum(sleeps) <= 0.5
    assert sleeps == [0.2, 0.2, 0.1]


def test_the_wait_budget_is_shared_by_the_calls_of_a_step(llm_server, llm_connection, sleeps):
    llm_connection(backoff_initial=0.3, backoff_max=0.3, max_wait=0.5)
    llm_server.enqueue(Reply.error(500), Reply.error(500))
    hook = _hook(sleeps)
    budget = hook.budget()

    hook.chat(MESSAGES, budget=budget)
    hook.chat(MESSAGES, budget=budget)

    assert sleeps == [0.3, 0.2] and budget.wait_left == pytest.approx(0.0)


def test_client_errors_are_not_retried(llm_server, llm_connection, sleeps):
    llm_server.enqueue(Reply.error(400))

    with pytest.raises(LlmPermanentError) as info:
        _hook(sleeps).chat(MESSAGES)

    assert (info.value.reason, info.value.requests) == ("http_400", 1)
    assert sleeps == []


def test_a_wrong_key_is_permanent(llm_server, llm_connection, sleeps):
    llm_connection(headers={"Authorization": "Bearer sk-wrong-000000000000000000"})

    with pytest.raises(LlmPermanentError, match="http_401"):
        _hook(sleeps).chat(MESSAGES)
    assert len(llm_server.requests) == 1


def test_no_answer_times_out_per_request_and_is_retried(llm_server, llm_connection, sleeps):
    llm_connection(timeout=0.2)
    llm_server.enqueue(Reply.no_answer(3), Reply.no_answer(3))

    result = _hook(sleeps).chat(MESSAGES)

    assert result.requests == 3 and result.failures == ("timeout", "timeout")


def test_the_deadline_stops_new_attempts(llm_server, llm_connection, sleeps):
    llm_connection(timeout=0.2)
    llm_server.default = Reply.no_answer(3)
    hook = _hook(sleeps)
    budget = RetryBudget(deadline=0.0, wait_left=1.0)  # monotonic time is always past 0

    with pytest.raises(LlmUnavailableError, match="deadline"):
        hook.chat(MESSAGES, budget=budget)
    assert llm_server.requests == []


def test_a_refused_connection_is_transient(monkeypatch, sleeps):
    with FakeLlmServer() as server:
        conn = server.connection_json(max_attempts=2)
    monkeypatch.setenv("AIRFLOW_CONN_LLM_DEFAULT", conn)  # the server is gone: nothing listens there

    with pytest.raises(LlmUnavailableError) as info:
        _hook(sleeps).chat(MESSAGES)

    assert (info.value.reason, info.value.requests) == ("connection_error", 2)


def test_a_non_json_body_is_transient(llm_server, llm_connection, sleeps):
    llm_server.enqueue(Reply.error(200, body="not a completion"))

    result = _hook(sleeps).chat(MESSAGES)

    assert result.failures == ("bad_body",) and result.requests == 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers, expected):
    assert parse_retry_after(headers) == expected


def test_retry_after_as_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=12), usegmt=True)

    assert parse_retry_after({"Retry-After": later}, now=now) == 12.0
