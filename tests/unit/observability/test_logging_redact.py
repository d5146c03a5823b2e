"""Redaction of secrets in log lines and through the public ``redact()``."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agentkeel.observability import configure_logging, flush_logs, get_logger, redact
from agentkeel.observability._redact import is_sensitive_key, may_hold_secret, redact_text

OPENAI = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4"
OPENAI_PROJECT = "sk-proj-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56_-Qr78St90"
ANTHROPIC = "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7-_AAAA"
GITHUB_CLASSIC = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GITHUB_OAUTH = "gho_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8"
GITHUB_FINE = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH"
SLACK_BOT = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_USER = "xoxp-" + "123456789012-123456789012-123456789012-abcdef0123456789"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

VALUE_CASES = [
    ("openai", f"calling with {OPENAI} now", OPENAI),
    ("openai-project", f"key={OPENAI_PROJECT}", OPENAI_PROJECT),
    ("anthropic", f"[{ANTHROPIC}]", ANTHROPIC),
    ("github-classic", f"token {GITHUB_CLASSIC}.", GITHUB_CLASSIC),
    ("github-oauth", GITHUB_OAUTH, GITHUB_OAUTH),
    ("github-fine-grained", f"pat: {GITHUB_FINE}", GITHUB_FINE),
    ("slack-bot", f"slack {SLACK_BOT}", SLACK_BOT),
    ("slack-user", f"slack {SLACK_USER}", SLACK_USER),
    ("aws", f"aws key {AWS} used", AWS),
    ("jwt", f"session {JWT} expired", JWT),
]


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, level="DEBUG")
    yield stream
    flush_logs()
    configure_logging()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    assert flush_logs(timeout=10)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# ------------------------------------------------------------- by key
@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "apikey",
        "api-key",
        "API_KEY",
        "apiKey",
        "x-api-key",
        "openai_api_key",
        "OPENAI_API_KEY",
        "token",
        "access_token",
        "refresh_token",
        "sessionToken",
        "secret",
        "client_secret",
        "password",
        "db_password",
        "passwd",
        "authorization",
        "Authorization",
        "auth",
        "basic_auth",
        "cookie",
        "set-cookie",
        "Set-Cookie",
        "private_key",
        "ssh-private-key",
    ],
)
def test_secret_keys_are_redacted(key: str, sink: io.StringIO) -> None:
    assert is_sensitive_key(key)
    get_logger("keys").info("x", metadata={key: "hunter2", "nested": {key: {"deep": 1}}})
    meta = lines(sink)[0]["metadata"]
    assert meta[key] == "[REDACTED]"
    assert meta["nested"][key] == "[REDACTED]"


@pytest.mark.parametrize(
    "key",
    [
        "tokens",
        "max_tokens",
        "prompt_tokens",
        "author",
        "oauth_provider",
        "secretary",
        "monkey",
        "keyboard",
        "passage",
        "cookies_enabled",
        "auth_method",
    ],
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_sensitive_key(key)
    assert redact({key: "v"}) == {key: "v"}


# ----------------------------------------------------------- by shape
@pytest.mark.parametrize(("name", "text", "secret"), VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_credential_shaped_values_are_redacted_in_message_and_metadata(
    name: str, text: str, secret: str, sink: io.StringIO
) -> None:
    assert may_hold_secret(text)
    get_logger("values").info(text, metadata={"note": text, "list": [text], "d": {"x": text}})
    (line,) = lines(sink)
    raw = json.dumps(line)
    assert secret not in raw
    assert secret[8:20] not in raw  # not even a fragment
    assert "[REDACTED]" in line["message"]
    assert line["metadata"]["note"] == line["message"]
    assert line["metadata"]["list"] == [line["message"]]


def test_the_surrounding_text_is_kept() -> None:
    assert redact_text(f"calling with {OPENAI} now") == "calling with [REDACTED] now"
    assert redact_text(f"aws key {AWS} used") == "aws key [REDACTED] used"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.DEF-123_x~+/==", "Authorization: Bearer [REDACTED]"),
        ("header bearer  tok123", "header bearer  [REDACTED]"),
        (
            "GET https://api.example.com/v1?user=bob&password=hunter2&page=2",
            "GET https://api.example.com/v1?user=bob&password=[REDACTED]&page=2",
        ),
        (
            "https://x.io/cb?access_token=abc123&state=s",
            "https://x.io/cb?access_token=[REDACTED]&state=s",
        ),
        ("login token=abc def", "login token=[REDACTED] def"),
        ("client_secret=s3cr3t;", "client_secret=[REDACTED];"),
        (
            "api_key=k1 apikey=k2 api-key=k3",
            "api_key=[REDACTED] apikey=[REDACTED] api-key=[REDACTED]",
        ),
        ("PASSWORD=Secret1", "PASSWORD=[REDACTED]"),
        ("passwd=x pwd=y auth=z", "passwd=[REDACTED] pwd=[REDACTED] auth=[REDACTED]"),
    ],
)
def test_bearer_tokens_and_secret_pairs(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tool.call finished in 42 ms",
        "scikit-learn task-runner desk-top",  # "sk-" inside words
        "mytoken=visible is not a secret pair",  # only whole words or suffixes
        "max_tokens=512",
        "ghp_short",
        "AKIA-not-a-key",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_covers_exception_text(sink: io.StringIO) -> None:
    log = get_logger("exc")
    try:
        raise PermissionError(f"rejected key {OPENAI} for url ?token=abc123")
    except PermissionError as exc:
        log.error("failed", exc_info=exc)
    text = lines(sink)[0]["exception"]
    assert OPENAI not in text
    assert "abc123" not in text
    assert "PermissionError: rejected key [REDACTED] for url ?token=[REDACTED]" in text


def test_the_repr_of_an_odd_object_is_redacted(sink: io.StringIO) -> None:
    class Settings:
        def __repr__(self) -> str:
            return f"Settings(api_key='{OPENAI}')"

    get_logger("repr").info("config", metadata={"settings": Settings(), "raw": OPENAI.encode()})
    meta = lines(sink)[0]["metadata"]
    assert meta["settings"] == "Settings(api_key='[REDACTED]')"
    assert meta["raw"] == "[REDACTED]"


def test_bound_and_context_fields_are_redacted(sink: io.StringIO) -> None:
    from agentkeel.observability import log_context

    with log_context(password="p", note=f"k {AWS}"):
        get_logger("bound").bind(api_key="k", ok="fine").info("x")
    meta = lines(sink)[0]["metadata"]
    assert meta == {
        "password": "[REDACTED]",
        "note": "k [REDACTED]",
        "api_key": "[REDACTED]",
        "ok": "fine",
    }


def test_a_secret_at_the_cut_is_redacted_before_cutting(sink: io.StringIO) -> None:
    text = "x" * 8_184 + " " + OPENAI
    get_logger("cut").info(text, metadata={"v": text})
    (line,) = lines(sink)
    for value in (line["message"], line["metadata"]["v"]):
        assert "…[truncated" in value
        assert "sk-A1b2" not in value
        assert "A1b2" not in value


def test_redaction_can_be_turned_off() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, redact=False)
    try:
        get_logger("plain").info(f"key {OPENAI}", metadata={"password": "hunter2"})
        (line,) = lines(stream)
        assert line["message"] == f"key {OPENAI}"
        assert line["metadata"] == {"password": "hunter2"}
    finally:
        configure_logging()


def test_redact_is_public_and_keeps_types_without_mutating() -> None:
    original = {
        "token": "t",
        "items": [f"a {AWS}", ("b", OPENAI)],
        "set": frozenset({"plain"}),
        "n": 3,
        "obj": None,
    }
    result = redact(original)
    assert result == {
        "token": "[REDACTED]",
        "items": ["a [REDACTED]", ("b", "[REDACTED]")],
        "set": frozenset({"plain"}),
        "n": 3,
        "obj": None,
    }
    assert original["token"] == "t"  # a copy, the input is untouched
    assert redact(f"plain {JWT}") == "plain [REDACTED]"
    assert redact(42) == 42


def test_redaction_stays_linear_on_adversarial_text() -> None:
    hostile = "a_" * 500_000 + "=" + "b-" * 250_000  # long runs the patterns could backtrack on
    start = time.perf_counter()
    redact_text(hostile)
    redact_text("token" * 200_000)
    assert time.perf_counter() - start < 5.0
