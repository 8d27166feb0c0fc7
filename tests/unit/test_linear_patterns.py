"""Every regular expression applied to alert text does work linear in its input, even on hostile input.

Measured without depending on the machine's speed: the same adversarial text at 64 kB, 256 kB and 1 MB.
Linear work grows 4x per step, quadratic 16x; a step may grow at most 8x (plus 10 ms of timer noise).
Small sizes come first, so a quadratic pattern fails in a second, not after minutes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from include.alert_sources.fields import _TIME
from include.redaction import PATTERNS, Redactor

MB = 1 << 20
SIZES = (MB // 16, MB // 4, MB)
GROWTH = 8.0
NOISE = 0.01  # seconds


def repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


def after(head: str, unit: str) -> Callable[[int], str]:
    return lambda size: head + repeat(unit)(size - len(head))


# Per pattern, inputs that start many attempts or make one attempt scan far.
ADVERSARIAL: dict[str, list[Callable[[int], str]]] = {
    "private_key": [
        repeat("-----BEGIN RSA PRIVATE KEY-----\n"),
        repeat("-----BEGIN PRIVATE KEY-----\nAAAA"),
        after("-----BEGIN RSA PRIVATE KEY-----", "\nAAAAAAAAAAAAAAA"),
    ],
    "credentials": [
        repeat("://a:"),
        repeat("://"),
        after("://a:", "b"),
        repeat("://a:b/"),
        after("://a:", "b@"),
        after("://a:", "b@c!"),
        repeat("://a:b@c@"),
    ],
    "slack_webhook": [repeat("hooks.slack.com/services/"), repeat("hooks.slack.com/services/abc")],
    "bearer": [repeat("bearer "), after("bearer ", "a")],
    "basic": [repeat("basic "), after("basic ", "A"), repeat("basic AAAAAAAA ")],
    "authorization": [
        repeat("authorization: "),
        repeat("authorization: basic "),
        after("authorization: ", "a"),
    ],
    "jwt": [repeat("eyJ-"), repeat("eyJa."), repeat("eyJaaaa.eyJaaaa.")],
    "slack_token": [repeat("xoxb-"), after("xoxb-", "1"), repeat("xapp-")],
    "github_token": [repeat("ghp_"), repeat("github_pat_")],
    "stripe_key": [repeat("sk_live_"), repeat("whsec_")],
    "api_key": [repeat("sk-"), after("sk-", "a")],
    "google_api_key": [repeat("AIza"), repeat("AIza" + "a" * 34 + "-")],
    "aws_access_key": [repeat("AKIA"), repeat("AKIA" + "A" * 15 + " ")],
    "api_token": [repeat("glpat-"), repeat("SG." + "a" * 22 + "."), repeat("npm_")],
    "passphrase": [
        repeat("password = a "),
        after("password = ", "a "),
        repeat("password: a b c d e f g h i j k: "),
        repeat("pass: " + "a" * 600 + " "),
        after("secret = a ", "b" * 200 + " "),
    ],
    "flag": [
        repeat("--password "),
        repeat("--a-b-c-d-e-token "),
        after("--password ", "a"),
        repeat("-pass-pass "),
    ],
    "short_password_flag": [repeat("-p"), after("-p", "a"), repeat("-pA-pB ")],
    "aws_secret_key": [repeat("A"), repeat("aB3/" * 10 + " "), repeat("aB3+" * 9 + "aB3")],
    "escape": [repeat("\\"), repeat("\\u00"), repeat("%"), repeat("\\\\\\\\\\x4")],
    "secret": [
        repeat("password="),
        repeat('password="' + "a" * 600),
        repeat("token: "),
        after("password=", "a"),
        repeat("pass:pass:"),
    ],
    "email": [repeat("a@"), repeat("a.a@a.a."), repeat("a@a."), lambda size: "a" * (size - 1) + "@"],
    "ipv4": [repeat("1.1.1.1."), repeat("255."), repeat("1.")],
    "ipv6": [repeat("a:"), repeat("::"), repeat("1:1:1:1:1:1:1:1:"), repeat("ffff:")],
}


def _seconds(work: Callable[[str], object], text: str) -> float:
    # CPU time of this thread, not wall time: other processes on the machine do not count.
    best = float("inf")
    for _ in range(3):  # the least disturbed of three runs
        started = time.thread_time()
        work(text)
        best = min(best, time.thread_time() - started)
    return best


def assert_linear(
    work: Callable[[str], object], make: Callable[[int], str], sizes: tuple[int, ...] = SIZES
) -> None:
    previous = _seconds(work, make(sizes[0]))
    for size in sizes[1:]:
        text = make(size)
        assert len(text) == size
        # Measured again when over: another process can slow one measurement, a quadratic pattern
        # is over every time.
        for _ in range(3):
            elapsed = _seconds(work, text)
            if elapsed <= GROWTH * previous + NOISE:
                break
        else:
            raise AssertionError(
                f"{size} chars took {elapsed:.3f} s, {elapsed / previous:.1f}x the quarter size: not linear"
            )
        previous = elapsed


def test_every_pattern_has_adversarial_inputs():
    assert set(ADVERSARIAL) == set(PATTERNS)


@pytest.mark.parametrize(
    ("name", "index"), [(name, i) for name, makers in ADVERSARIAL.items() for i in range(len(makers))]
)
def test_each_pattern_is_linear_on_adversarial_input(name, index):
    pattern: re.Pattern[str] = PATTERNS[name]
    assert_linear(lambda text: pattern.sub("", text), ADVERSARIAL[name][index])


def test_the_whole_redaction_is_linear_on_mixed_hostile_text():
    unit = (
        "eyJ-://a:password=AKIA bearer basic -----BEGIN PRIVATE KEY-----\n a@a. 1.1.1.1. ffff: "
        "--token -pX1 pass\\u0077ord = a b \\x41%41 aB3/aB3/ "
    )
    redactor = Redactor(redact_ips=True)
    assert_linear(lambda text: redactor.redact(text), repeat(unit))
    assert_linear(lambda text: redactor.redact_value({"labels": {"note": text}}), repeat(unit))


def test_the_time_pattern_is_linear():
    assert_linear(lambda text: _TIME.match(text), after("2024-05-01T10:00:00.", "1"))
    assert_linear(lambda text: _TIME.match(text), after("2024-05-01T10:00:00", " "))


def test_the_growth_check_catches_a_quadratic_pattern():
    # The pattern redaction used for JWTs before: each start scans the whole run again.
    quadratic = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
    with pytest.raises(AssertionError, match="not linear"):
        assert_linear(lambda text: quadratic.sub("", text), repeat("eyJ-"), sizes=(4096, 16384, 65536))
