"""Redaction of secrets and personal data before a prompt leaves for the model."""

from __future__ import annotations

import pytest

from include.redaction import Redactor, redact

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        ("Authorization: Bearer abc123def456ghi789", "abc123def456ghi789", "bearer"),
        ("curl -H 'authorization: bearer 0a1b2c3d4e5f6a7b8c9d'", "0a1b2c3d4e5f6a7b8c9d", "bearer"),
        ("slack bot xoxb-1234567890-abcdefghijkl posted", "xoxb-1234567890-abcdefghijkl", "slack_token"),
        ("user token xoxp-99-88-77-abcdef012345", "xoxp-99-88-77-abcdef012345", "slack_token"),
        ("OPENAI_KEY sk-proj-AbCdEf0123456789xyzXYZ", "sk-proj-AbCdEf0123456789xyzXYZ", "api_key"),
        ("key sk-0123456789abcdefABCDEF0123", "sk-0123456789abcdefABCDEF0123", "api_key"),
        ("aws AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
        ("session ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", "aws_access_key"),
        (f"cookie-less token {JWT} seen", JWT, "jwt"),
        (
            "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_token",
        ),
        ("dsn postgres://app:s3cr3t!@db.internal/x", "s3cr3t!", "credentials"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", "MIIEabc", "private_key"),
    ],
)
def test_tokens_and_keys_are_replaced(text, secret, kind):
    result = Redactor().redact(text)

    assert secret not in result.text
    assert f"[REDACTED:{kind}]" in result.text
    assert result.counts.get(kind) == 1


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("login failed password=hunter2 for user", "hunter2", "password="),
        ("PASSWORD: 'correct horse'", "correct horse", "PASSWORD: '"),
        ('{"api_key": "abc-123", "site": "north"}', "abc-123", '"api_key": "'),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLE",
            "wJalrXUtnFEMI",
            "aws_secret_access_key=",
        ),
        ("client_secret = s3cr3t;other=1", "s3cr3t", "client_secret = "),
        ("x-api-key:0123abcd", "0123abcd", "x-api-key:"),
        ("pwd=p4ss&user=bob", "p4ss", "pwd="),
    ],
)
def test_password_style_pairs_keep_the_key_and_drop_the_value(text, secret, kept):
    result = Redactor().redact(text)

    assert secret not in result.text
    assert kept in result.text
    assert "[REDACTED:secret]" in result.text


def test_quoted_values_keep_their_quotes():
    assert redact('{"token": "abc"}') == '{"token": "[REDACTED:secret]"}'


def test_email_addresses_are_replaced():
    result = Redactor().redact("Escalate to jane.doe+ops@plant-north.example.com and ops@example.org.")

    assert "jane.doe" not in result.text and "ops@example.org" not in result.text
    assert result.counts == {"email": 2}


def test_email_redaction_can_be_turned_off():
    assert Redactor(redact_emails=False).redact("mail ops@example.org").text == "mail ops@example.org"


def test_ips_are_kept_unless_configured():
    text = "gateway 10.20.30.40 unreachable"

    assert redact(text) == text
    assert redact(text, redact_ips=True) == "gateway [REDACTED:ip] unreachable"


@pytest.mark.parametrize(
    "address",
    [
        "192.168.1.10",
        "10.0.0.0/8",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "::1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    ],
)
def test_ip_forms_are_recognised(address):
    result = Redactor(redact_ips=True).redact(f"from {address} today")

    assert result.text == "from [REDACTED:ip] today"


@pytest.mark.parametrize(
    "text",
    [
        "firmware 4.2.1 rebooted at 12:30:45",
        "mac aa:bb:cc:dd:ee:ff",
        "reading 999.1.2.3 is not an address",
        "pressure_bar 9.4 > 8",
        "version 1.2.3.4.5",
    ],
)
def test_things_that_only_look_like_ips_stay(text):
    assert Redactor(redact_ips=True).redact(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "PRESSURE_SPIKE_DETECTED on pump PUMP-07B at Plant North",
        "max_tokens: 800, tokens: 5, author: Bob",
        "the token bucket refilled; password reset requested",
        "Bearer of bad news",
        "sk-short",
    ],
)
def test_ordinary_text_is_untouched(text):
    result = Redactor().redact(text)

    assert result.text == text
    assert result.total == 0


def test_already_redacted_text_is_stable():
    once = redact("Authorization: Bearer abcdefghijklmnop password=x ops@example.org")

    assert redact(once) == once


def test_counts_never_hold_the_secrets():
    result = Redactor().redact("password=hunter2 sk-0123456789abcdefABCDEF")

    assert result.counts == {"api_key": 1, "secret": 1}
    assert "hunter2" not in repr(result.counts)


def test_long_input_is_handled_quickly():
    import time

    text = ("a" * 5000 + " password" + "=" * 5000 + " x@" * 2000) * 4
    started = time.perf_counter()
    Redactor(redact_ips=True).redact(text)
    assert time.perf_counter() - started < 2.0  # guards against catastrophic backtracking only
