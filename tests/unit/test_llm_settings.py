"""Model settings from the `llm_default` connection's extra."""

from __future__ import annotations

import pytest

from include.llm_settings import OPTION_KEYS, LlmConfigError, LlmSettings


def test_defaults_are_bounded():
    settings = LlmSettings.from_extra(None)

    assert settings.max_attempts == 3 and settings.max_wait == 30.0
    assert settings.validation_attempts == 2 and settings.response_format == "json_schema"
    assert not settings.redact_ips and settings.redact_emails


def test_extra_keys_are_read_and_coerced():
    settings = LlmSettings.from_extra(
        {
            "model": " gpt-4.1-mini ",
            "temperature": "0.2",
            "timeout": 12,
            "max_tokens": 500,
            "redact_ips": "true",
            "max_attempts": 5,
            "max_wait": 3,
            "response_format": "json_object",
            "max_tokens_field": "max_completion_tokens",
            "headers": {"Authorization": "Bearer x"},  # not a setting: ignored here
        }
    )

    assert (settings.model, settings.temperature, settings.timeout, settings.max_tokens) == (
        "gpt-4.1-mini",
        0.2,
        12.0,
        500,
    )
    assert settings.redact_ips is True and settings.max_attempts == 5 and settings.max_wait == 3.0
    assert settings.response_format == "json_object" and settings.max_tokens_field == "max_completion_tokens"


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": "hot"},
        {"temperature": 3},
        {"max_tokens": 10.5},
        {"max_tokens": 10**9},
        {"timeout": 0},
        {"max_attempts": 0},
        {"max_attempts": True},
        {"redact_ips": "maybe"},
        {"model": ""},
        {"endpoint": "v1/chat"},
        {"response_format": "xml"},
        {"deadline": float("nan")},
    ],
)
def test_bad_values_are_refused_with_the_key_named(extra):
    with pytest.raises(LlmConfigError, match=next(iter(extra))):
        LlmSettings.from_extra(extra)


def test_a_non_object_extra_is_refused():
    with pytest.raises(LlmConfigError):
        LlmSettings.from_extra(["model"])  # type: ignore[arg-type]


def test_option_keys_name_every_setting():
    assert {
        "model",
        "temperature",
        "timeout",
        "max_tokens",
        "redact_ips",
        "max_attempts",
        "max_wait",
    } <= OPTION_KEYS
    assert "headers" not in OPTION_KEYS and "Authorization" not in OPTION_KEYS
