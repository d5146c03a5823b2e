from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import email.utils
import errno
import json
import socket
from typing import Any

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkeel.events import Category, Severity
from agentkeel.tracking import classify_error, fingerprint, normalize_message, parse_retry_after

# --------------------------------------------------------- look-alike client errors
# Named like the errors of httpx, requests, openai and anthropic, without importing them.


class APIConnectionError(Exception):
    pass


class APITimeoutError(APIConnectionError):
    pass


class ReadTimeout(Exception):
    pass


class RateLimitError(Exception):
    pass


class AuthenticationError(Exception):
    pass


class ParseError(Exception):
    pass


class SparseMatrixError(Exception):
    """Contains "pars" in lower case: must not count as a parsing error."""


class Response:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class HTTPStatusError(Exception):
    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response


class StatusError(Exception):
    def __init__(self, message: str, **attrs: Any) -> None:
        super().__init__(message)
        for key, value in attrs.items():
            setattr(self, key, value)


class ExplodingProperty(Exception):
    @property
    def status_code(self) -> int:
        raise RuntimeError("lazy response not loaded")

    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


def _msgspec_decode_error() -> Exception:
    try:
        msgspec.json.decode(b"{")
    except msgspec.DecodeError as exc:
        return exc
    raise AssertionError("unreachable")


def _msgspec_validation_error() -> Exception:
    try:
        msgspec.json.decode(b'"x"', type=int)
    except msgspec.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def _pydantic_error() -> Exception:
    class Model(pydantic.BaseModel):
        n: int

    try:
        Model.model_validate({"n": "nope"})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def _json_error() -> Exception:
    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


CASES: list[tuple[str, BaseException, Category, Severity, bool]] = [
    ("KeyError", KeyError("search"), Category.TOOL_NOT_FOUND, Severity.MEDIUM, False),
    ("IndexError", IndexError("x"), Category.TOOL_NOT_FOUND, Severity.MEDIUM, False),
    ("TimeoutError", TimeoutError("slow"), Category.TIMEOUT, Severity.HIGH, True),
    # The aliases are what users catch and raise, so test them by their own names.
    ("asyncio timeout", asyncio.TimeoutError(), Category.TIMEOUT, Severity.HIGH, True),  # noqa: UP041
    ("futures timeout", concurrent.futures.TimeoutError(), Category.TIMEOUT, Severity.HIGH, True),
    ("socket.timeout", socket.timeout("t"), Category.TIMEOUT, Severity.HIGH, True),  # noqa: UP041
    ("*Timeout name", ReadTimeout("r"), Category.TIMEOUT, Severity.HIGH, True),
    ("APITimeoutError", APITimeoutError("t"), Category.TIMEOUT, Severity.HIGH, True),
    ("ConnectionError", ConnectionError("down"), Category.NETWORK, Severity.HIGH, True),
    ("ConnectionReset", ConnectionResetError(), Category.NETWORK, Severity.HIGH, True),
    ("gaierror", socket.gaierror(-2, "Name unknown"), Category.NETWORK, Severity.HIGH, True),
    ("APIConnectionError", APIConnectionError("x"), Category.NETWORK, Severity.HIGH, True),
    ("RateLimitError", RateLimitError("slow down"), Category.RATE_LIMIT, Severity.MEDIUM, True),
    ("429", StatusError("x", status_code=429), Category.RATE_LIMIT, Severity.MEDIUM, True),
    (
        "rate limit text",
        RuntimeError("Rate limit exceeded"),
        Category.RATE_LIMIT,
        Severity.MEDIUM,
        True,
    ),
    ("too many text", Exception("Too Many Requests"), Category.RATE_LIMIT, Severity.MEDIUM, True),
    ("401", StatusError("x", status_code=401), Category.AUTH, Severity.HIGH, False),
    ("403 status", StatusError("x", status=403), Category.AUTH, Severity.HIGH, False),
    ("PermissionError", PermissionError("no"), Category.AUTH, Severity.HIGH, False),
    ("AuthenticationError", AuthenticationError("k"), Category.AUTH, Severity.HIGH, False),
    ("JSONDecodeError", _json_error(), Category.PARSING, Severity.MEDIUM, False),
    ("msgspec decode", _msgspec_decode_error(), Category.PARSING, Severity.MEDIUM, False),
    (
        "UnicodeDecodeError",
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
        Category.PARSING,
        Severity.MEDIUM,
        False,
    ),
    ("ParseError", ParseError("p"), Category.PARSING, Severity.MEDIUM, False),
    (
        "msgspec validation",
        _msgspec_validation_error(),
        Category.VALIDATION,
        Severity.MEDIUM,
        False,
    ),
    ("pydantic", _pydantic_error(), Category.VALIDATION, Severity.MEDIUM, False),
    ("ValueError", ValueError("bad"), Category.VALIDATION, Severity.MEDIUM, False),
    ("TypeError", TypeError("bad"), Category.VALIDATION, Severity.MEDIUM, False),
    ("422", StatusError("x", code=422), Category.VALIDATION, Severity.MEDIUM, False),
    ("MemoryError", MemoryError(), Category.RESOURCE, Severity.CRITICAL, False),
    ("RecursionError", RecursionError(), Category.RESOURCE, Severity.CRITICAL, False),
    ("ENOSPC", OSError(errno.ENOSPC, "full"), Category.RESOURCE, Severity.CRITICAL, False),
    ("EMFILE", OSError(errno.EMFILE, "fds"), Category.RESOURCE, Severity.CRITICAL, False),
    ("500", StatusError("x", status_code=500), Category.NETWORK, Severity.HIGH, True),
    (
        "503 on response",
        HTTPStatusError("x", Response(503)),
        Category.NETWORK,
        Severity.HIGH,
        True,
    ),
    ("504", StatusError("x", status_code=504), Category.TIMEOUT, Severity.HIGH, True),
    ("RuntimeError", RuntimeError("?"), Category.UNKNOWN, Severity.MEDIUM, False),
    ("SparseMatrixError", SparseMatrixError("?"), Category.UNKNOWN, Severity.MEDIUM, False),
    ("plain OSError", OSError(errno.EIO, "io"), Category.UNKNOWN, Severity.MEDIUM, False),
]


@pytest.mark.parametrize(
    ("exc", "category", "severity", "retryable"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classification_table(
    exc: BaseException, category: Category, severity: Severity, retryable: bool
) -> None:
    result = classify_error(exc)
    assert (result.category, result.severity, result.retryable) == (category, severity, retryable)


def test_status_code_is_reported() -> None:
    assert classify_error(HTTPStatusError("x", Response(502))).status_code == 502
    assert classify_error(StatusError("x", code=429)).status_code == 429
    # Not an HTTP status: ignored.
    assert classify_error(StatusError("x", code=7)).status_code is None
    assert classify_error(StatusError("x", status_code=True)).status_code is None


def test_cause_is_consulted_when_the_error_itself_says_nothing() -> None:
    class ToolError(Exception):
        pass

    def call_tool() -> None:
        try:
            raise TimeoutError("upstream")
        except TimeoutError as inner:
            raise ToolError("weather failed") from inner

    with pytest.raises(ToolError) as info:
        call_tool()
    assert classify_error(info.value).category is Category.TIMEOUT


def test_specific_error_wins_over_its_cause() -> None:
    exc = ValueError("bad date")
    exc.__cause__ = ConnectionError()
    assert classify_error(exc).category is Category.VALIDATION


def test_cause_is_walked_only_once() -> None:
    top, middle = RuntimeError("a"), RuntimeError("b")
    top.__cause__ = middle
    middle.__cause__ = TimeoutError()
    assert classify_error(top).category is Category.UNKNOWN


def test_broken_properties_and_str_do_not_break_classification() -> None:
    assert classify_error(ExplodingProperty()).category is Category.UNKNOWN


def test_retry_after_from_attribute_and_headers() -> None:
    assert classify_error(StatusError("x", status_code=429, retry_after=3)).retry_after == 3.0
    err = HTTPStatusError("x", Response(429, {"Retry-After": "7"}))
    assert classify_error(err).retry_after == 7.0
    err = StatusError("rate limited", headers={"retry-after-ms": "1500"})
    assert classify_error(err).retry_after == 1.5
    assert classify_error(RateLimitError("x")).retry_after is None


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    err = HTTPStatusError("x", Response(429, {"retry-after": email.utils.formatdate(usegmt=True)}))
    retry_after = classify_error(err).retry_after
    assert retry_after is not None
    assert 0.0 <= retry_after <= 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12.0),
        (" 1.5 ", 1.5),
        (b"4", 4.0),
        (2, 2.0),
        (dt.timedelta(seconds=9), 9.0),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        ("inf", None),
        (object(), None),
    ],
)
def test_parse_retry_after(value: object, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


@given(st.builds(Exception, st.text()))
def test_classification_never_raises(exc: Exception) -> None:
    assert classify_error(exc).category in Category


# ------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_short() -> None:
    fp = fingerprint("TimeoutError", "timeout", "executor", "weather", "timed out after 8s")
    assert fp == fingerprint("TimeoutError", "timeout", "executor", "weather", "timed out after 8s")
    assert len(fp) == 12
    assert all(c in "0123456789abcdef" for c in fp)
    # Pinned: a changed fingerprint would split existing failure groups in the store.
    assert fp == fingerprint("TimeoutError", "timeout", "executor", "weather", "timed out after 9s")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("timed out after 8034.5 ms", "timed out after 12 ms"),
        ("request 5f1c2a9e0b7d4e3f failed", "request 0a1b2c3d4e5f6789 failed"),
        (
            "run 123e4567-e89b-12d3-a456-426614174000 lost",
            "run 9f0c1d2e-3a4b-5c6d-7e8f-90a1b2c3d4e5 lost",
        ),
        ("missing field 'destination'", "missing field 'origin'"),
        ("object at 0x7f3a2b1c lost", "object at 0xdeadbeef lost"),
        ("a  b\n c", "a b c"),
    ],
)
def test_repeats_share_a_fingerprint(a: str, b: str) -> None:
    assert fingerprint("E", "unknown", None, None, a) == fingerprint("E", "unknown", None, None, b)


def test_different_failures_differ() -> None:
    base = fingerprint("E", "network", "n", "t", "connection refused")
    assert base != fingerprint("F", "network", "n", "t", "connection refused")
    assert base != fingerprint("E", "timeout", "n", "t", "connection refused")
    assert base != fingerprint("E", "network", "m", "t", "connection refused")
    assert base != fingerprint("E", "network", "n", "u", "connection refused")
    assert base != fingerprint("E", "network", "n", "t", "host unreachable")


def test_normalize_message_keeps_words() -> None:
    assert normalize_message("Weather API timeout after 8 seconds") == (
        "Weather API timeout after <n> seconds"
    )
    assert normalize_message("decade facade") == "decade facade"  # hex-like words stay


@given(st.text(max_size=200), st.integers(min_value=0), st.integers(min_value=0))
def test_numbers_never_split_a_group(prefix: str, x: int, y: int) -> None:
    clean = "".join(ch for ch in prefix if not ch.isdigit() and ch not in "'\"")
    a = fingerprint("E", "unknown", None, None, f"{clean} id {x}")
    b = fingerprint("E", "unknown", None, None, f"{clean} id {y}")
    assert a == b
