"""A corpus of alerts as senders write them: every secret is gone, ordinary alert text stays readable."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from include.models import Alert
from include.redaction import Redactor, is_secret_key, redact_value

PEM_BODY = (
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n"
    "+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQz\n"
    "uVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwdW1wLWdhdGV3YXkiLCJleHAiOjE3MTQ1NjAwMDB9"
    ".3q2-7wPjBvR0c8a1Xg9ZkqN4mLzYt5sHdUeWfIoVbCA"
)

# (text as it arrives in a message, label or annotation; the secrets in it)
CORPUS = [
    ('login failed: password="Tr0ub4dor&3" for svc-scada', ["Tr0ub4dor&3"]),
    ("retrying with password='correct horse battery'", ["correct horse battery"]),
    ('payload {"api_key": "k-93f1c0a2d4", "site": "north"} rejected', ["k-93f1c0a2d4"]),
    ('collector label token="t-5d1e9b77aa" stale', ["t-5d1e9b77aa"]),
    ("GET /metrics 401; Authorization: Basic c2NyYXBlcjpzM2NyM3QtcGFzcw==", ["c2NyYXBlcjpzM2NyM3QtcGFzcw=="]),
    ("probe sent authorization: Bearer 7f9a2c4e1b8d6f3a0c5e", ["7f9a2c4e1b8d6f3a0c5e"]),
    ("probe sent Authorization: Token 3c1d9e0f7a2b", ["3c1d9e0f7a2b"]),
    ("curl -H 'Authorization: Bearer abcdefghijklmnopqrst' failed", ["abcdefghijklmnopqrst"]),
    (f"gateway token {JWT} expired", [JWT]),
    ("cache down: redis://:Rds-pa55@cache-1.plant.local:6379/0", ["Rds-pa55"]),
    ("dsn postgres://historian:p/a/ss+w0rd@db-2:5432/tags refused", ["p/a/ss+w0rd"]),
    ("mongodb+srv://ops:Mng%40pw1@cluster0.example.net/telemetry timeout", ["Mng%40pw1"]),
    ("amqp://iot:Q7!rabbit@mq:5672/%2f connection reset", ["Q7!rabbit"]),
    (
        "Server=tcp:sql.plant.local,1433;Database=mes;User ID=svc;Password=Winter2024!;Encrypt=True",
        ["Winter2024!"],
    ),
    (
        "DefaultEndpointsProtocol=https;AccountName=plantlogs;AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==;"
        "EndpointSuffix=core.windows.net",
        ["Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA=="],
    ),
    ("jdbc:postgresql://db:5432/mes?user=svc&password=jdbcPw77&ssl=true", ["jdbcPw77"]),
    (
        f"deploy key leaked:\n-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----",
        [PEM_BODY],
    ),
    (f"truncated -----BEGIN PRIVATE KEY-----\n{PEM_BODY[:150]}", [PEM_BODY[:64], PEM_BODY[101:150]]),
    (
        "env dump: -----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\\n"
        "-----END OPENSSH PRIVATE KEY-----",
        ["b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"],
    ),
    ("ci token github_pat_11AB2CD3E0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789abcd", ["github_pat_11AB2CD3E0"]),
    (
        "old token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 revoked",
        ["ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"],
    ),
    ("socket mode xapp-1-A0123ABCD-1234567890123-0a1b2c3d4e5f60718293a4b5c6d7e8f9", ["xapp-1-A0123ABCD"]),
    ("bot xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx posted", ["xoxb-1234567890"]),
    (
        "notify https://hooks.slack.com/services/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 -> 404",
        ["q8W2e4R6t8"],
    ),
    ("billing sk_live_51HcDeFgHiJkLmNoPqRsTuVwXyZ0123 failed", ["sk_live_51HcDeFgHiJkLmNoPqRsTuVwXyZ0123"]),
    ("webhook secret whsec_AbCdEfGhIjKlMnOpQrStUvWx01", ["whsec_AbCdEfGhIjKlMnOpQrStUvWx01"]),
    ("maps AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q quota", ["AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"]),
    ("model key sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12 refused", ["sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12"]),
    ("s3 upload as AKIAIOSFODNN7EXAMPLE denied", ["AKIAIOSFODNN7EXAMPLE"]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["wJalrXUtnFEMI/K7MDENG"]),
    ('"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', ["wJalrXUtnFEMI/K7MDENG"]),
    ("container env DB_PASS=hist0rian! MYSQL_PWD=m7sql", ["hist0rian!", "m7sql"]),
    ("ftp pass: letmein42 user: anonymous", ["letmein42"]),
    ("client_secret = s3cr3t-v4lue;other=1", ["s3cr3t-v4lue"]),
    ("x-api-key:0123abcd9876", ["0123abcd9876"]),
    ("registry glpat-AbCdEfGhIjKlMnOpQrSt12 expired", ["glpat-AbCdEfGhIjKlMnOpQrSt12"]),
    ("npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 in .npmrc", ["npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"]),
    ("session_id=9f8e7d6c5b4a cookie: sid=abc123def", ["9f8e7d6c5b4a", "sid=abc123def"]),
]

# Alert text that must come out exactly as it went in.
ORDINARY = [
    "PRESSURE_SPIKE_DETECTED on pump PUMP-07B at Plant North",
    "Discharge pressure rose from 5.1 to 9.4 bar in 12 seconds",
    "Outlet temperature 96 C, fan running at 1450 rpm",
    "max_tokens: 800, tokens: 5, author: Bob",
    "the token bucket refilled; password reset requested by the operator",
    "Basic troubleshooting steps were followed; bypass: open",
    "Bearer of bad news: line 3 stopped",
    "firmware 4.2.1 rebooted at 12:30:45; mac aa:bb:cc:dd:ee:ff",
    "see https://grafana.plant.local/d/abc123/pumps?orgId=1&var-site=north",
    "fingerprint 4f2a9c81d0e3b7a6 repeated 3 times; alertname HighPressure",
    "oauth flow ok; auth service healthy; passes 12 of 12 checks",
    "runbook step 2: isolate the pump, then open the bypass valve",
    "disk /var/lib/historian at 91%, inode use 40%",
]


@pytest.mark.parametrize(("text", "secrets"), CORPUS, ids=[t[:40] for t, _ in CORPUS])
def test_every_secret_of_the_corpus_is_gone(text, secrets):
    result = Redactor().redact(text)

    for secret in secrets:
        assert secret not in result.text
    assert "[REDACTED:" in result.text and result.total >= 1


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_alert_text_stays_as_it_is(text):
    result = Redactor(redact_emails=True, redact_ips=False).redact(text)

    assert result.text == text and result.total == 0


def test_keys_keep_readable_and_only_the_value_goes():
    text = 'login failed: password="Tr0ub4dor&3" for svc-scada; DB_PASS=x1'

    assert (
        redact_value(text)
        == 'login failed: password="[REDACTED:secret]" for svc-scada; DB_PASS=[REDACTED:secret]'
    )


def test_a_structured_alert_is_redacted_by_key_and_by_content_before_it_is_encoded():
    alert = Alert(
        device_id="PUMP-07B",
        error="PRESSURE_SPIKE_DETECTED",
        message='scraper said {"api_key": "k-93f1c0a2d4"} and password="a b c"',
        labels={"token": "plain-looking", "site": "plant-north", "db_password": "x", "dsn": "redis://:pw9@c"},
        metrics={"pressure_bar": 9.4, "token_count": 3},
    )
    original = alert.to_xcom()

    clean = redact_value(original)
    encoded = json.dumps(clean)

    for secret in ("k-93f1c0a2d4", "a b c", "plain-looking", "pw9"):
        assert secret not in encoded
    assert (
        clean["labels"]["token"] == "[REDACTED:secret]"
        and clean["labels"]["db_password"] == "[REDACTED:secret]"
    )
    assert clean["labels"]["site"] == "plant-north"
    assert clean["metrics"] == {"pressure_bar": 9.4, "token_count": 3}
    assert clean["device_id"] == "PUMP-07B" and clean["error"] == "PRESSURE_SPIKE_DETECTED"
    # The caller's value (what the incident store keeps) is left as it was.
    assert original == alert.to_xcom() and original["labels"]["token"] == "plain-looking"


def test_lists_tuples_and_nested_secret_keys_are_walked():
    value = {
        "steps": ["ok", "password=p1"],
        "auth": {"user": "u", "pin": 1234},
        "pair": ("sk-" + "a" * 20, 1),
    }

    clean = redact_value(value)

    assert clean["steps"] == ["ok", "password=[REDACTED:secret]"]
    assert clean["auth"] == {"user": "[REDACTED:secret]", "pin": "[REDACTED:secret]"}
    assert clean["pair"] == ("[REDACTED:api_key]", 1)


def test_counts_are_kept_by_kind():
    counts: Counter[str] = Counter()
    Redactor().redact_value({"password": "x", "note": "mail ops@example.org"}, counts)

    assert counts == {"secret": 1, "email": 1}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("DB_PASS", True),
        ("x-api-key", True),
        ("SecretAccessKey", True),
        ("slack.token", True),
        ("auth", True),
        ("client_secret", True),
        ("Authorization", True),
        ("max_tokens", False),
        ("bypass", False),
        ("oauth_provider", False),
        ("token_count", False),
        ("site", False),
        ("passes", False),
    ],
)
def test_secret_keys_are_recognised_by_their_last_word(key, secret):
    assert is_secret_key(key) is secret
