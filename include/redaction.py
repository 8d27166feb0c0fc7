"""Redaction of secrets (and, when asked, personal data) from everything that leaves the product.

One entry point, :func:`redact_value`, for whatever is sent out: prompts, Slack messages, reports,
tickets and pages. It walks structured values before they are encoded: a value under a key such as
``password``, ``api_key`` or ``token`` is a secret whatever it looks like, and every string is scanned
for secret formats (tokens, keys, credentials in URLs and headers, ``key=value`` pairs). The incident
store keeps the original alert; only what leaves is redacted.

Why hand-written patterns rather than Yelp's ``detect-secrets`` (1.5.0, still its latest; Bridgecrew's
fork bc-detect-secrets 1.5.52 is the same): it is a scanner for source files, not a redactor.
``scan_line`` reports values, not spans, under process-wide settings. Its detectors miss formats alerts
carry (``redis://:pw@host``, ``github_pat_``, ``xapp-``, ``AIza``, ``DB_PASS=``, ``pass:``) and every
shape a security review later found passing here (of ``app:Sup3r@Secret!@db`` it reports ``Sup3r``, the
same partial leak; nothing of a ``\\u``-escaped key); only its entropy detectors fire on them, as readily
as on every ordinary word and on Alertmanager's hex fingerprint. Its JWT pattern takes 11 s on
``"eyJ-" * 40000`` (160 kB): not linear. So no dependency: every pattern here runs in linear time (a
unit test per pattern on 1 MB of adversarial input); the formats are one table below, with the corpus
tests as their specification.

How the patterns stay linear: each one starts at a literal or behind a look-behind that refuses a start
inside a run of the same characters (so a long run is scanned from its start only), repeats only
character classes, and either bounds each repetition or makes it possessive (``++``, ``*+``), so a
failed attempt never backtracks.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["PATTERNS", "Redacted", "Redactor", "is_secret_key", "redact", "redact_value"]

T = TypeVar("T")
PLACEHOLDER_PREFIX = "[REDACTED:"


def _placeholder(kind: str) -> str:
    return f"{PLACEHOLDER_PREFIX}{kind}]"


def _is_placeholder(value: str) -> bool:
    return value.strip("\\\"'").startswith(PLACEHOLDER_PREFIX)


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def _looks_like_password(value: str) -> bool:
    """Say whether what follows `-p` is a password, not a port (`-p8080:80`) or flags (`-pxvf`)."""
    letters = sum(c.isalpha() for c in value)
    mixed = any(c.isupper() for c in value) or any(not c.isalpha() for c in value)
    return letters > 0 and (mixed or len(value) >= 8)


def _looks_like_aws_secret(value: str) -> bool:
    """Say whether 40 base64 characters look random: both cases and a digit, few "/" (not a path)."""
    return (
        any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() for c in value)
        and value.count("/") <= 4
    )


def _is_basic_credential(value: str) -> bool:
    """Say whether base64 `value` decodes to ``user:password`` (so "Basic troubleshooting" stays)."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return False
    return ":" in decoded and decoded.isprintable()


@dataclass(frozen=True)
class _Pattern:
    """A secret format: the part replaced (`group`) and, when given, a check that a candidate is one."""

    kind: str
    regex: re.Pattern[str]
    group: str | int = 0
    is_secret: Callable[[str], bool] | None = None


_TOKEN = "A-Za-z0-9_-"  # base64url and the usual token alphabets
_NOT_IN_TOKEN = rf"(?<![{_TOKEN}])"
_SEP = r"(?:\s|\\[nr])"  # a newline, also written as "\n" inside a label or a JSON dump
_PEM_HEADER = r"(?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----"
_URL_PART = r"(?:[^\s@\"'<>/]|/(?!/)){1,256}+"  # a run of a URL password between its "@"s
# The names a secret goes by in `key=value` pairs and command-line flags.
_SECRET_WORDS = r"""(?:(?<![a-z])(?:pass|pwd|auth|sig)
               |password|passwd|passphrase|secret|token|signature|cookie|credentials?
               |api[_-]?key|(?:access|secret|private|account|shared[_-]?access)[_-]?key|session[_-]?id)"""
# A word of a value written without quotes.
_WORD = r"""[^\s,;&"'}\]\\]"""

# Ordered: whole tokens first (a bearer JWT is one secret, not a JWT plus a word), then headers and
# key=value pairs (their keys stay readable), then personal data (in Redactor.redact, when asked).
_SECRETS: dict[str, _Pattern] = {
    # The body is the base64 lines (and PEM headers) after BEGIN, with or without an END line.
    "private_key": _Pattern(
        "private_key",
        re.compile(
            rf"-----BEGIN {_PEM_HEADER}"
            rf"(?:{_SEP}++(?:[A-Za-z0-9+/=]{{16,}}+|(?:Proc-Type|DEK-Info|Comment):[^\n\\]{{0,256}}+))*+"
            rf"(?:{_SEP}++[A-Za-z0-9+/]{{1,15}}+={{0,2}}(?={_SEP}*+-----END))?"
            rf"(?:{_SEP}*+-----END {_PEM_HEADER})?"
        ),
    ),
    # scheme://user:password@host, also redis://:password@host and passwords containing "/" or "@" (the
    # host is what follows the authority's last "@"). A password never holds "//", so an attempt ends
    # at the next "://": a run of them is scanned once; each "@" of the password is tried once.
    "credentials": _Pattern(
        "credentials",
        re.compile(
            rf"://[^\s/@:\"'<>]{{0,256}}+:(?P<secret>{_URL_PART}(?:@{_URL_PART})*?)"
            rf"(?=@[^\s@/?#\"'<>),;}}]{{1,256}}+(?:[\s/?#\"'<>),;}}]|$))"
        ),
        group="secret",
    ),
    "slack_webhook": _Pattern(
        "slack_webhook",
        re.compile(r"hooks\.slack\.com/(?P<secret>(?:services|workflows|triggers)/[A-Za-z0-9/_-]{8,}+)"),
        group="secret",
    ),
    "bearer": _Pattern(
        "bearer",
        re.compile(rf"(?i){_NOT_IN_TOKEN}bearer\s{{1,8}}(?P<secret>[A-Za-z0-9._~+/-]{{8,}}+=*+)"),
        group="secret",
        is_secret=_has_digit,  # "Bearer information" is prose; tokens carry digits
    ),
    "basic": _Pattern(
        "basic",
        re.compile(rf"(?i){_NOT_IN_TOKEN}basic\s{{1,8}}(?P<secret>[A-Za-z0-9+/]{{8,}}+={{0,2}})"),
        group="secret",
        is_secret=_is_basic_credential,
    ),
    # Authorization: <scheme> <credential>, whatever the scheme.
    "authorization": _Pattern(
        "authorization",
        re.compile(
            r"(?i)\b(?:proxy-)?authorization[\"']?\s{0,8}[:=]\s{0,8}[\"']?"
            r"(?:(?:basic|bearer|token|digest|negotiate|apikey|sso-key)\s{1,8})?"
            r"(?P<secret>[^\s\"',;]{1,4096}+)"
        ),
        group="secret",
    ),
    "jwt": _Pattern(
        "jwt", re.compile(rf"{_NOT_IN_TOKEN}eyJ[{_TOKEN}]{{4,}}+\.[{_TOKEN}]{{4,}}+\.[{_TOKEN}]*+")
    ),
    "slack_token": _Pattern(
        "slack_token", re.compile(rf"{_NOT_IN_TOKEN}(?:xox[abposre]|xapp)-[A-Za-z0-9-]{{8,}}+")
    ),
    "github_token": _Pattern(
        "github_token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{22,}+)"),
    ),
    "stripe_key": _Pattern(
        "stripe_key",
        re.compile(r"(?<![A-Za-z0-9_])(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}+|whsec_[A-Za-z0-9]{20,}+)"),
    ),
    "api_key": _Pattern("api_key", re.compile(rf"{_NOT_IN_TOKEN}sk-[{_TOKEN}]{{16,}}+")),
    "google_api_key": _Pattern(
        "google_api_key", re.compile(rf"{_NOT_IN_TOKEN}AIza[{_TOKEN}]{{35}}(?![{_TOKEN}])")
    ),
    "aws_access_key": _Pattern(
        "aws_access_key",
        re.compile(
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}"
            r"(?![A-Za-z0-9])"
        ),
    ),
    # Tokens known by a fixed prefix: GitLab, npm, PyPI, SendGrid, Hugging Face, Grafana, DigitalOcean,
    # Shopify, Postman, New Relic, Sentry, Atlassian and Databricks.
    "api_token": _Pattern(
        "api_token",
        re.compile(
            rf"{_NOT_IN_TOKEN}(?:gl(?:pat|dt|rt|ptt|ft|soat|imt|agent)-[{_TOKEN}]{{20,}}+"
            rf"|npm_[A-Za-z0-9]{{36,}}+|pypi-AgE[{_TOKEN}]{{50,}}+|SG\.[{_TOKEN}]{{22}}\.[{_TOKEN}]{{43}}"
            r"|(?:hf|api_org)_[A-Za-z0-9]{30,}+|gl(?:sa|c)_[A-Za-z0-9_+/=]{32,}+|do[opr]_v1_[a-f0-9]{64}"
            r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}|NRAK-[A-Z0-9]{27}"
            r"|sntr[ysu]s?_[A-Za-z0-9+/=_]{40,}+|ATATT[A-Za-z0-9_=-]{50,}+|dapi[a-f0-9]{32})"
        ),
    ),
    # An AWS secret access key on its own: 40 characters of base64 with upper and lower case and digits
    # (a hex digest, lower case only, stays). Only a run of exactly 40 counts; it is scanned from its start.
    "aws_secret_key": _Pattern(
        "aws_secret_key",
        re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        is_secret=_looks_like_aws_secret,
    ),
    # `password = correct horse battery staple`: a value after "= " or ": " runs over its words, to the
    # end of the line, a `,;&`, or the next `key:` / `key=`. Only for passwords (tokens have no spaces);
    # `password=x on PUMP-07B`, written without the space, stays one word (the "secret" pattern).
    "passphrase": _Pattern(
        "secret",
        re.compile(
            rf"""(?ix)
            (?:(?<![a-z])(?:pass|pwd)|password|passwd|passphrase|secret)
            (?:\\?["'])?[ \t]{{0,8}}[:=][ \t]{{1,8}}+
            (?P<secret>{_WORD}{{1,512}}+
              (?:[ \t]{{1,8}}+(?![\w.-]{{1,64}}+[ \t]{{0,8}}[:=]){_WORD}{{1,128}}+){{1,8}}+)
            """
        ),
        group="secret",
    ),
    # Command lines: `--password hunter2`, `--db-token=x`, `-pHunter2pw` (MySQL's password flag). A flag
    # that only ends in the word (`--password-file`) or a value that is a flag (`--no-password -v`) stays.
    "flag": _Pattern(
        "secret",
        re.compile(
            rf"""(?ix)
            (?<![\w-])--?(?:[a-z0-9]{{1,32}}[-_]){{0,4}}{_SECRET_WORDS}[ \t]{{1,8}}+
            (?P<secret>(?!-)(?:"[^"\n]{{1,512}}+"|'[^'\n]{{1,512}}+'|{_WORD}{{1,512}}+))
            """
        ),
        group="secret",
    ),
    "short_password_flag": _Pattern(
        "secret",
        re.compile(r"(?<![\w-])-p(?P<secret>[^\s\-\"'][^\s\"']{2,511}+)"),
        group="secret",
        is_secret=_looks_like_password,
    ),
    # `password=hunter2`, `DB_PASS=x`, `pass: x`, `"api_key": "abc"`, `AccountKey=...;`, also inside an
    # encoded JSON string (`\"token\": \"abc\"`): the key stays, the value goes. The keyword must end
    # the key (`max_tokens: 800` stays); the short ones must also start it (`bypass: on` stays).
    # Whatever precedes a long one (`aws_secret_access_`) is kept as is.
    "secret": _Pattern(
        "secret",
        re.compile(
            rf"""(?ix)
            {_SECRET_WORDS}
            (?:\\?["'])?\s{{0,8}}[:=]\s{{0,8}}
            (?P<secret>"[^"\n]{{1,512}}+"|'[^'\n]{{1,512}}+'|\\"[^"\\\n]{{1,512}}+\\"|["']?{_WORD}{{1,512}}+)
            """
        ),
        group="secret",
    ),
}
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
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

# A letter, digit, "_" or "-" written as a JSON or JavaScript escape (also inside an encoded string,
# `\\u0070`), a Python escape or a URL's percent-encoding.
_ESCAPE = re.compile(
    r"\\{1,8}+u00(?P<u>[0-9A-Fa-f]{2})|\\{1,8}+x(?P<x>[0-9A-Fa-f]{2})|%(?P<pct>[0-9A-Fa-f]{2})"
)
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# Every pattern applied to alert text, by name (the linear-time tests run each one).
PATTERNS: dict[str, re.Pattern[str]] = {
    **{name: pattern.regex for name, pattern in _SECRETS.items()},
    "escape": _ESCAPE,
    "email": _EMAIL,
    "ipv4": _IPV4,
    "ipv6": _IPV6,
}

# Keys whose value is a secret whatever it looks like (compared without case, "-", "_" or ".").
_SECRET_KEY_ENDINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "accountkey",
    "credential",
    "credentials",
    "authorization",
    "cookie",
    "sessionid",
    "signature",
)
# Short keywords count only as the key's last word: `db_pass`, `auth`, but not `bypass` or `oauth`.
_SHORT_SECRET_KEY = re.compile(r"(?i)(?:^|[^a-z])(?:pass|pwd|auth|sig)$")


def is_secret_key(key: str) -> bool:
    """Say whether a value stored under `key` is a secret by name (``password``, ``x-api-key``, ...)."""
    tail = key[-64:]
    compact = re.sub(r"[-_.\s]", "", tail).lower()
    return compact.endswith(_SECRET_KEY_ENDINGS) or bool(_SHORT_SECRET_KEY.search(tail))


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
    """Remove secrets, and e-mail addresses and IP addresses when asked, from text and structured values.

    :param redact_ips: Also replace IPv4 and IPv6 addresses.
    :param redact_emails: Replace e-mail addresses.
    """

    redact_ips: bool = False
    redact_emails: bool = True

    def redact(self, text: str) -> Redacted:
        """Return `text` with every recognised secret replaced by a placeholder naming its kind."""
        counts: Counter[str] = Counter()
        return Redacted(text=self._text(text, counts), counts=dict(counts))

    def redact_value(self, value: T, counts: Counter[str] | None = None) -> T:
        """Return `value` redacted: strings scanned, dicts by key and content, lists and tuples item by item.

        Other values (numbers, booleans, None) are kept, except under a secret key. Removed items are
        added to `counts` by kind when it is given.
        """
        redacted: T = self._walk(value, Counter() if counts is None else counts, secret=False)
        return redacted

    def _walk(self, value: Any, counts: Counter[str], *, secret: bool) -> Any:
        if isinstance(value, str):
            if secret and value and not _is_placeholder(value):
                counts["secret"] += 1
                return _placeholder("secret")
            return self._text(value, counts)
        if isinstance(value, Mapping):
            walked: dict[Any, Any] = {}
            for key, item in value.items():
                by_name = isinstance(key, str) and (is_secret_key(key) or is_secret_key(_unescaped(key)))
                # A key is text too: a secret used as a label name goes like any other.
                name = self._text(key, counts) if isinstance(key, str) else key
                while name in walked:  # two keys redacted alike stay two entries
                    name = f"{name}'"
                walked[name] = self._walk(item, counts, secret=secret or by_name)
            return walked
        if isinstance(value, (list, tuple)):
            return type(value)(self._walk(item, counts, secret=secret) for item in value)
        if secret and isinstance(value, (int, float)) and not isinstance(value, bool):
            counts["secret"] += 1
            return _placeholder("secret")
        return value

    def _text(self, text: str, counts: Counter[str]) -> str:
        found: Counter[str] = Counter()
        redacted = self._scan(text, found)
        plain = _unescaped(text)
        if plain != text:
            # `"pass\u0077ord": "x"`, `pass%77ord=x`: letters written as escapes hide a key's name. The
            # text is read with them decoded, and kept as it was unless that finds more.
            found_plain: Counter[str] = Counter()
            redacted_plain = self._scan(plain, found_plain)
            if found_plain.total() > found.total():
                redacted, found = redacted_plain, found_plain
        counts.update(found)
        return redacted

    def _scan(self, text: str, counts: Counter[str]) -> str:
        for pattern in _SECRETS.values():

            def replace(match: re.Match[str], p: Any = pattern) -> str:
                return _replace(p, match, counts)

            text = pattern.regex.sub(replace, text)
        if self.redact_emails:
            text = _sub("email", _EMAIL, text, counts)
        if self.redact_ips:
            text = _sub("ip", _IPV4, text, counts)
            text = _sub("ip", _IPV6, text, counts)
        return text


def _unescaped(text: str) -> str:
    """Return `text` with escaped letters, digits, "_" and "-" written plainly (other escapes stay)."""
    if "\\" not in text and "%" not in text:
        return text

    def plain(match: re.Match[str]) -> str:
        char = chr(int(match.group("u") or match.group("x") or match.group("pct"), 16))
        return char if char in _NAME_CHARS else match.group(0)

    return _ESCAPE.sub(plain, text)


def _replace(pattern: _Pattern, match: re.Match[str], counts: Counter[str]) -> str:
    candidate = match.group(pattern.group)
    # Redacting twice changes nothing and counts nothing: a placeholder is never a secret.
    if _is_placeholder(candidate) or (pattern.is_secret is not None and not pattern.is_secret(candidate)):
        return match.group(0)
    counts[pattern.kind] += 1
    # Keep what surrounds the secret in the match (the key, the host) and a quoted value's quotes.
    start, end = match.span(pattern.group)
    quote = _quote_of(candidate)
    whole, offset = match.group(0), match.start()
    return f"{whole[: start - offset]}{quote}{_placeholder(pattern.kind)}{quote}{whole[end - offset :]}"


def _quote_of(value: str) -> str:
    """Return the quotes around a quoted value (``"``, ``'`` or an encoded ``\\"``), to keep them."""
    for quote in ('\\"', '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return quote
    return ""


def _sub(kind: str, regex: re.Pattern[str], text: str, counts: Counter[str]) -> str:
    text, n = regex.subn(_placeholder(kind), text)
    if n:
        counts[kind] += n
    return text


def redact(text: str, *, redact_ips: bool = False) -> str:
    """Return `text` with secrets and e-mail addresses (and IPs when asked) replaced."""
    return Redactor(redact_ips=redact_ips).redact(text).text


def redact_value(value: T, *, redact_emails: bool = True, redact_ips: bool = False) -> T:
    """Return `value` (a string, or dicts and lists of them) with every secret replaced by a placeholder.

    Use it on whatever leaves the product: a dict's values under secret keys (``password``, ``token``,
    ``api_key``, ...) are replaced whole, every string is scanned for secret formats, and e-mail
    addresses (and IP addresses, when asked) are replaced too. The structure is kept, and keys unless a
    secret is used as one.
    """
    return Redactor(redact_ips=redact_ips, redact_emails=redact_emails).redact_value(value)
