"""Classes of secret shapes a security review found passing redaction, each covered by generated cases.

A bare AWS secret key; command-line password flags; multi-word passphrases; fixed-prefix tokens
(Hugging Face and others); keys written with escapes; secrets used as label names; URL passwords
holding "@". Each generator makes many instances of its class; ordinary text near each class stays.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from urllib.parse import quote

import pytest

from include.redaction import Redactor, redact_value

RNG = random.Random(20)
B64 = string.ascii_letters + string.digits + "/+"
ALNUM = string.ascii_letters + string.digits
WORDS = "correct horse battery staple orbit velvet lantern maple quartz harbor ember tundra".split()
SECRET_NAMES = ["password", "passwd", "passphrase", "secret", "db_password", "pass", "pwd"]
FLAG_NAMES = ["password", "db-password", "pass", "token", "api-key", "secret", "client_secret", "auth-token"]


def _random(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def _aws_secret() -> str:
    while True:  # as AWS makes them: base64, both cases and digits
        key = _random(B64, 40)
        if any(c.isupper() for c in key) and any(c.islower() for c in key) and any(c.isdigit() for c in key):
            return key


def _password() -> str:
    return _random(ALNUM, RNG.randint(2, 6)) + RNG.choice("!#$%*.") + _random(ALNUM, RNG.randint(3, 10))


def _gone(text: str, *secrets: str) -> str:
    out = Redactor().redact(text).text
    for secret in secrets:
        assert secret not in out, out
    assert "[REDACTED:" in out
    return out


# -- a bare AWS secret access key ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", [_aws_secret() for _ in range(25)] + ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
)
@pytest.mark.parametrize("frame", ["{}", "aws configure set {} failed", '"{}"', "key={} ", "\t{}\n"])
def test_a_bare_aws_secret_key_goes(key, frame):
    _gone(frame.format(key), key)


@pytest.mark.parametrize(
    "text",
    [hashlib.sha1(str(n).encode()).hexdigest() for n in range(5)]  # git commits, fingerprints
    + [hashlib.sha1(str(n).encode()).hexdigest().upper() for n in range(3)]
    + ["/var/lib/historian/data/north/pumps/a/b", "PRESSURE_SPIKE_DETECTED_ON_PUMP_07B_AT_NORTH"],
)
def test_40_character_digests_and_paths_stay(text):
    assert Redactor().redact(text).text == text


# -- command-line password flags ---------------------------------------------------------------------


@pytest.mark.parametrize("name", FLAG_NAMES)
@pytest.mark.parametrize("dashes", ["--", "-"])
@pytest.mark.parametrize("quoted", [False, True])
def test_password_flags_lose_their_value(name, dashes, quoted):
    secret = _password()
    value = f'"{secret} two"' if quoted else secret
    out = _gone(f"exec: psql {dashes}{name} {value} --host db-1 exited 2", secret)
    assert f"{dashes}{name} " in out and "--host db-1 exited 2" in out


@pytest.mark.parametrize("secret", [_password() for _ in range(10)] + ["Hunter2pw", "hunter2secretpw"])
@pytest.mark.parametrize("command", ["mysql -u root -p{} plant", "mysqldump -h db -p{}", "-p{}"])
def test_a_password_written_against_p_goes(secret, command):
    out = _gone(command.format(secret), secret)
    assert "-p[REDACTED:" in out


@pytest.mark.parametrize(
    "text",
    [
        "docker run -p8080:80 historian",
        "ssh -p2222 ops@gw",
        "tar -pxvf backup.tar",
        "mkdir -p /var/lib/historian",
        "cmd --password-file /run/secrets/db --token-count 5",
        "psql --no-password --host db",
    ],
)
def test_flags_that_are_not_passwords_stay(text):
    assert Redactor(redact_emails=False).redact(text).text == text


# -- multi-word passphrases --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SECRET_NAMES)
@pytest.mark.parametrize("separator", [" = ", ": ", "= ", " :  "])
@pytest.mark.parametrize("words", [2, 4, 6])
def test_every_word_of_a_passphrase_goes(name, separator, words):
    phrase = " ".join(RNG.sample(WORDS, words))
    out = _gone(f"config {name}{separator}{phrase}\nnext line stays", *phrase.split())
    assert out.endswith("\nnext line stays")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("ftp pass: letmein42 user: anonymous", "user: anonymous"),
        ("password = two words, site: north", ", site: north"),
        ("DB_PASS = a b; MYSQL_PWD=c", "; MYSQL_PWD="),
        ("login failed: password=hunter2secret on PUMP-07B", " on PUMP-07B"),
    ],
)
def test_a_passphrase_ends_at_the_next_pair_or_separator(text, kept):
    assert kept in Redactor().redact(text).text


# -- fixed-prefix tokens -----------------------------------------------------------------------------

TOKENS = {
    "hugging face": lambda: "hf_" + _random(string.ascii_letters, 34),
    "hugging face org": lambda: "api_org_" + _random(string.ascii_letters, 34),
    "grafana service account": lambda: "glsa_" + _random(ALNUM, 32) + "_" + _random("0123456789abcdef", 8),
    "gitlab deploy": lambda: "gldt-" + _random(ALNUM, 20),
    "digitalocean": lambda: "dop_v1_" + _random("0123456789abcdef", 64),
    "shopify": lambda: "shpat_" + _random("0123456789abcdef", 32),
    "new relic": lambda: "NRAK-" + _random(string.ascii_uppercase + string.digits, 27),
    "databricks": lambda: "dapi" + _random("0123456789abcdef", 32),
}


@pytest.mark.parametrize("kind", list(TOKENS))
@pytest.mark.parametrize("frame", ["{}", "HF_TOKEN {} expired", "({})", "'{}',"])
def test_fixed_prefix_tokens_go(kind, frame):
    for _ in range(5):
        token = TOKENS[kind]()
        _gone(frame.format(token), token)


# -- keys written with escapes -----------------------------------------------------------------------


def _escaped(name: str, style: str) -> str:
    picked = set(RNG.sample(range(len(name)), max(1, len(name) // 3)))
    forms = {
        "json": lambda c: f"\\u{ord(c):04x}",
        "json in a json string": lambda c: f"\\\\u{ord(c):04X}",
        "python": lambda c: f"\\x{ord(c):02x}",
        "url": lambda c: f"%{ord(c):02X}",
    }
    return "".join(forms[style](c) if i in picked else c for i, c in enumerate(name))


@pytest.mark.parametrize("name", ["password", "api_key", "token", "secret", "DB_PASS", "access_key"])
@pytest.mark.parametrize("style", ["json", "json in a json string", "python", "url"])
def test_a_key_written_with_escapes_still_names_a_secret(name, style):
    secret = _password().replace("%", "")
    key = _escaped(name, style)
    text = {
        "json": f'{{"{key}": "{secret}"}}',
        "json in a json string": f'{{\\"{key}\\": \\"{secret}\\"}}',
        "python": f"{key}={secret!r}",
        "url": f"/login?user=ops&{key}={quote(secret)}",
    }[style]
    _gone(text, secret, quote(secret))
    # As a label name, the escaped key still makes its value a secret.
    assert redact_value({key: secret}) == {key: "[REDACTED:secret]"}


def test_escapes_in_text_without_secrets_stay_as_written():
    text = 'msg "\\u0048igh pressure" at %41rea 7, path a%2Fb'
    assert Redactor().redact(text).text == text


# -- secrets used as label names ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TOKENS))
def test_a_token_used_as_a_label_name_goes(kind):
    token = TOKENS[kind]()
    labels = {token: "1", "site": "north", f"password={token[:6]}x9": ""}
    clean = redact_value({"labels": labels})
    assert token not in json.dumps(clean) and token[:6] + "x9" not in json.dumps(clean)
    assert clean["labels"]["site"] == "north" and len(clean["labels"]) == 3


def test_two_label_names_redacted_alike_stay_two_labels():
    a, b = TOKENS["hugging face"](), TOKENS["hugging face"]()
    clean = redact_value({a: "first", b: "second"})
    assert sorted(clean.values()) == ["first", "second"] and a not in str(clean) and b not in str(clean)


# -- URL passwords holding "@" -----------------------------------------------------------------------


def _url_password() -> str:
    parts = [_random(ALNUM + "!$*", RNG.randint(2, 8)) for _ in range(RNG.randint(2, 4))]
    return "@".join(parts)


@pytest.mark.parametrize("password", [_url_password() for _ in range(15)] + ["Sup3r@Secret!"])
@pytest.mark.parametrize(
    "url", ["postgresql://app:{}@db", "redis://:{}@cache-1:6379/0", "amqp://iot:{}@mq:5672/%2f stale"]
)
def test_a_url_password_holding_at_signs_goes_whole(password, url):
    text = url.format(password)
    out = _gone(text, *password.split("@"))
    host = text.rsplit("@", 1)[1]
    assert out.endswith("@" + host)


def test_the_host_after_the_last_at_stays_and_paths_are_not_the_password():
    out = Redactor().redact("see https://u:p4ss@host.local/a/@team and mailto x").text
    assert out == "see https://u:[REDACTED:credentials]@host.local/a/@team and mailto x"
