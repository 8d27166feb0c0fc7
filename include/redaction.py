"""Redaction of secrets and personal data from text before it leaves for a model endpoint."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Redacted", "Redactor", "redact"]

# Ordered: whole-token patterns first (a bearer JWT is one secret, not a JWT plus a word), then
# key=value pairs (their keys stay readable), then personal data. Every pattern is linear-time:
# no nested quantifiers, and each repetition is over a character class.
_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private_key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]{0,10000}?-----END [A-Z ]*PRIVATE KEY-----"),
    ),
    # user:password@ in URLs (the host stays).
    ("credentials", re.compile(r"(?<=://)[^/\s:@]{1,256}:[^/\s@]{1,256}(?=@)")),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")),
    ("slack_token", re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{8,}")),
    ("api_key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    ("github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}")),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")),
)
# `password=hunter2`, `api_key: "abc"`, `"client_secret": "abc"`: keep the key, drop the value. The
# keyword must end the key (`max_tokens: 800` stays); whatever precedes it (`aws_secret_access_`) is
# kept as is, so the pattern needs no look-back and stays cheap on long prompts.
_PAIR = re.compile(
    r"""(?ix)
    (?=[pstac])  # every keyword starts with one of these: a cheap filter before the alternation
    (?P<key>(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key
           |credentials?|auth(?:orization)?|session[_-]?id|cookie)
        ["']?)
    (?P<sep>\s*[:=]\s*)
    (?P<value>"[^"\n]{1,512}"|'[^'\n]{1,512}'|[^\s,;&"'}\]]{1,512})
    """
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}\b")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?:/\d{{1,2}})?(?![\w.])")
# IPv6: the full eight groups, or a "::"-compressed form with a group on at least one side, so
# times (12:30:45) and MAC addresses stay readable.
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(
    rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}(?::{_H}){{0,6}})::(?:{_H}(?::{_H}){{0,6}})?"
    rf"|::{_H}(?::{_H}){{0,6}})(?:/\d{{1,3}})?(?![\w:])"
)


def _placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True)
class Redacted:
    """Redacted text and how many items of each kind were removed (never the items themselves)."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Return how many items were removed."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Redactor:
    """Remove tokens, keys, credentials and e-mail addresses (and IP addresses when asked) from text.

    :param redact_ips: Also replace IPv4 and IPv6 addresses.
    :param redact_emails: Replace e-mail addresses.
    """

    redact_ips: bool = False
    redact_emails: bool = True

    def redact(self, text: str) -> Redacted:
        """Return `text` with every recognised secret replaced by a placeholder naming its kind."""
        counts: Counter[str] = Counter()

        def sub(kind: str, pattern: re.Pattern[str], value: str) -> str:
            value, n = pattern.subn(_placeholder(kind), value)
            if n:
                counts[kind] += n
            return value

        for kind, pattern in _SECRET_PATTERNS:
            text = sub(kind, pattern, text)

        def pair(match: re.Match[str]) -> str:
            if match.group("value").strip("\"'").startswith("[REDACTED:"):
                return match.group(0)
            counts["secret"] += 1
            value = match.group("value")
            # Keep the quotes, so a JSON-looking prompt stays JSON-looking.
            quote = value[0] if value[0] in "\"'" else ""
            return f"{match.group('key')}{match.group('sep')}{quote}{_placeholder('secret')}{quote}"

        text = _PAIR.sub(pair, text)
        if self.redact_emails:
            text = sub("email", _EMAIL, text)
        if self.redact_ips:
            text = sub("ip", _IPV4, text)
            text = sub("ip", _IPV6, text)
        return Redacted(text=text, counts=dict(counts))


def redact(text: str, *, redact_ips: bool = False) -> str:
    """Return `text` with secrets and e-mail addresses (and IPs when asked) replaced."""
    return Redactor(redact_ips=redact_ips).redact(text).text
