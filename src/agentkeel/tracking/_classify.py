"""Classify an exception into a failure category and severity, and fingerprint it.

Classification looks at three things, most reliable first: the exception's type
(``isinstance`` on stdlib types), an HTTP status code it carries, and the names of
the classes in its MRO (so ``httpx.ReadTimeout`` or ``openai.RateLimitError`` are
understood without importing those libraries). When the exception itself says
nothing useful, its ``__cause__`` is consulted once: ``raise ToolError(...) from
TimeoutError()`` is a timeout.

The rules, in the order they are tried:

=================  =======================================================  ========
category           matched by                                               severity
=================  =======================================================  ========
resource           MemoryError, RecursionError, OSError ENOSPC/EMFILE/...   critical
rate_limit         status 429, ``*RateLimit*`` names, "rate limit" text     medium
auth               status 401/403, PermissionError, ``*Authentication*``    high
timeout            TimeoutError, ``*Timeout``/``*TimedOut`` names, 408/504  high
network            ConnectionError, socket errors, ``*Connection*`` names   high
network            any other 5xx status                                     high
parsing            json.JSONDecodeError, ``*Parse*``/``*Decode*`` names     medium
validation         ``*ValidationError`` names, status 400/422               medium
tool_not_found     KeyError, LookupError                                    medium
validation         ValueError, TypeError                                    medium
unknown            anything else                                            medium
=================  =======================================================  ========

Rate limits, timeouts and network errors are retryable; the rest are not.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import errno
import hashlib
import json
import math
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentkeel.events import Category, Severity

__all__ = [
    "DEFAULT_SEVERITY",
    "Classification",
    "classify_error",
    "fingerprint",
    "normalize_message",
    "parse_retry_after",
]


@dataclass(frozen=True, slots=True)
class Classification:
    """What kind of failure an exception is, and whether trying again may help."""

    category: Category
    severity: Severity
    retryable: bool
    status_code: int | None = None
    retry_after: float | None = None


DEFAULT_SEVERITY: dict[Category, Severity] = {
    Category.NETWORK: Severity.HIGH,
    Category.TIMEOUT: Severity.HIGH,
    Category.RATE_LIMIT: Severity.MEDIUM,
    Category.AUTH: Severity.HIGH,
    Category.VALIDATION: Severity.MEDIUM,
    Category.PARSING: Severity.MEDIUM,
    Category.TOOL_NOT_FOUND: Severity.MEDIUM,
    Category.RESOURCE: Severity.CRITICAL,
    Category.LLM: Severity.MEDIUM,
    Category.STATE: Severity.MEDIUM,
    Category.LOOP: Severity.HIGH,
    Category.CONFIGURATION: Severity.HIGH,
    Category.UNKNOWN: Severity.MEDIUM,
}
_RETRYABLE = frozenset({Category.NETWORK, Category.TIMEOUT, Category.RATE_LIMIT})
_RESOURCE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EMFILE", "ENFILE", "ENOMEM", "EDQUOT")
    if hasattr(errno, name)
)
# Only the start of a message is searched: a 1 MB error text must not cost 1 MB of scanning.
_MESSAGE_SCAN = 2_000
_RATE_LIMIT_TEXT = ("rate limit", "rate-limit", "ratelimit", "too many requests")

# Class-name patterns, matched against every class in the exception's MRO.
_RATE_LIMIT_NAME = re.compile(r"RateLimit|TooManyRequests|Throttl", re.IGNORECASE)
_AUTH_NAME = re.compile(
    r"Authenticat|AuthError|Unauthori[sz]ed|Forbidden|PermissionDenied|InvalidApiKey|AccessDenied",
    re.IGNORECASE,
)
_TIMEOUT_NAME = re.compile(r"(Timeout|TimeoutError|TimedOut)$", re.IGNORECASE)
_NETWORK_NAME = re.compile(
    r"Connection|Connect(Error)?$|Network|Socket|RemoteProtocol|ProtocolError|DNS",
    re.IGNORECASE,
)
# Case-sensitive on purpose: "Pars" must not match inside "SparseMatrixError".
_VALIDATION_NAME = re.compile(r"Validation")
_PARSING_NAME = re.compile(r"Pars(e|ing|er)|Decod")
# Base classes whose names say nothing about the failure.
_GENERIC_BASES = frozenset({"object", "BaseException", "Exception"})


def classify_error(exc: BaseException) -> Classification:
    """Classify ``exc`` (then, if that says nothing, its ``__cause__``). Never raises."""
    result = _classify_one(exc)
    cause = exc.__cause__
    if result.category is Category.UNKNOWN and cause is not None and cause is not exc:
        from_cause = _classify_one(cause)
        if from_cause.category is not Category.UNKNOWN:
            return from_cause
    return result


def _plain(category: Category) -> Classification:
    return Classification(
        category=category,
        severity=DEFAULT_SEVERITY[category],
        retryable=category in _RETRYABLE,
    )


_BY_VALUE = {category.value: category for category in Category}
# Immutable, so the common answers (no status code, no Retry-After) are built once.
_PLAIN = {category: _plain(category) for category in Category}


def _make(
    category: Category, status: int | None, retry_after: float | None = None
) -> Classification:
    if status is None and retry_after is None:
        return _PLAIN[category]
    return Classification(
        category=category,
        severity=DEFAULT_SEVERITY[category],
        retryable=category in _RETRYABLE,
        status_code=status,
        retry_after=retry_after,
    )


_TRAITS: dict[type[BaseException], frozenset[str]] = {}
_MAX_TRAITS = 1024  # exception classes remembered; a program rarely raises more kinds


def _traits(cls: type[BaseException]) -> frozenset[str]:
    """What the class alone says, computed once per exception class.

    Matching class names against the patterns is most of the work of
    classification, and it depends only on the class, not the instance.
    """
    found = _TRAITS.get(cls)
    if found is None:
        if len(_TRAITS) >= _MAX_TRAITS:
            _TRAITS.clear()  # classes made on the fly (in a loop, say) must not pile up
        found = _TRAITS[cls] = _compute_traits(cls)
    return found


def _compute_traits(cls: type[BaseException]) -> frozenset[str]:
    names = [c.__name__ for c in cls.__mro__ if c.__name__ not in _GENERIC_BASES]

    def named(pattern: re.Pattern[str]) -> bool:
        return any(pattern.search(n) for n in names)

    checks = {
        "resource": issubclass(cls, MemoryError | RecursionError),
        "oserror": issubclass(cls, OSError),
        "rate_limit": named(_RATE_LIMIT_NAME),
        "auth": issubclass(cls, PermissionError) or named(_AUTH_NAME),
        "timeout": issubclass(cls, TimeoutError) or named(_TIMEOUT_NAME),
        "network": issubclass(cls, ConnectionError | socket.gaierror | socket.herror)
        or named(_NETWORK_NAME),
        "json": issubclass(cls, json.JSONDecodeError),
        # Checked before the parse/decode names: msgspec.ValidationError derives from
        # DecodeError, yet means "well-formed but the wrong shape".
        "validation_own": bool(names) and bool(_VALIDATION_NAME.search(names[0])),
        "parsing": named(_PARSING_NAME),
        "validation": named(_VALIDATION_NAME),
        "lookup": issubclass(cls, LookupError),
        "value": issubclass(cls, ValueError | TypeError),
    }
    return frozenset(name for name, matched in checks.items() if matched)


def _classify_one(exc: BaseException) -> Classification:  # noqa: PLR0911 - a return per rule
    # Exceptions may declare their category (agentkeel's own policy errors do, so this
    # room needs no import from the rooms above it): ``keel_category = "network"``.
    declared = getattr(type(exc), "keel_category", None)
    if isinstance(declared, str) and declared in _BY_VALUE:
        return _make(_BY_VALUE[declared], None, getattr(exc, "retry_after", None))
    traits = _traits(type(exc))
    status = status_code_of(exc)
    if "resource" in traits or (
        "oserror" in traits and getattr(exc, "errno", None) in _RESOURCE_ERRNOS
    ):
        return _make(Category.RESOURCE, status)
    if status == 429 or "rate_limit" in traits or _says_rate_limited(exc):
        return _make(Category.RATE_LIMIT, status, retry_after_of(exc))
    if status in (401, 403) or "auth" in traits:
        return _make(Category.AUTH, status)
    if status in (408, 504) or "timeout" in traits:
        return _make(Category.TIMEOUT, status)
    if "network" in traits or (status is not None and 500 <= status <= 599):
        return _make(Category.NETWORK, status)
    if "json" in traits:
        return _make(Category.PARSING, status)
    if "validation_own" in traits:
        return _make(Category.VALIDATION, status)
    if "parsing" in traits:
        return _make(Category.PARSING, status)
    if "validation" in traits or status in (400, 422):
        return _make(Category.VALIDATION, status)
    if "lookup" in traits:
        return _make(Category.TOOL_NOT_FOUND, status)
    if "value" in traits:
        return _make(Category.VALIDATION, status)
    return _make(Category.UNKNOWN, status)


def _says_rate_limited(exc: BaseException) -> bool:
    try:
        text = str(exc)[:_MESSAGE_SCAN].lower()
    except Exception:  # noqa: BLE001 - a broken __str__ just means "no clue here"
        return False
    return any(marker in text for marker in _RATE_LIMIT_TEXT)


def _attr(obj: object, name: str) -> Any:
    """``getattr`` that survives properties which raise (common on lazy HTTP responses)."""
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a third-party property must not break classification
        return None


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, from the attributes HTTP clients use."""
    for name in ("status_code", "status", "code"):
        status = _as_status(_attr(exc, name))
        if status is not None:
            return status
    response = _attr(exc, "response")
    if response is not None:
        for name in ("status_code", "status"):
            status = _as_status(_attr(response, name))
            if status is not None:
                return status
    return None


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds to wait, from ``exc.retry_after`` or a ``Retry-After`` header."""
    value = parse_retry_after(_attr(exc, "retry_after"))
    if value is not None:
        return value
    for holder in (_attr(_attr(exc, "response"), "headers"), _attr(exc, "headers")):
        if holder is None:
            continue
        ms = parse_retry_after(_header(holder, "retry-after-ms"))
        if ms is not None:
            return ms / 1000.0
        value = parse_retry_after(_header(holder, "retry-after"))
        if value is not None:
            return value
    return None


def _header(headers: object, name: str) -> object:
    get: Callable[[str], object] | None = _attr(headers, "get")
    if get is None:
        return None
    try:
        # Case-insensitive mappings (httpx, requests) answer either; plain dicts need a guess.
        for key in (name, name.title(), name.upper()):
            value = get(key)
            if value is not None:
                return value
    except Exception:  # noqa: BLE001 - odd header containers just yield nothing
        return None
    return None


def _finite_seconds(seconds: float) -> float | None:
    return max(0.0, seconds) if math.isfinite(seconds) else None


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value: a number, a timedelta, or an HTTP date.

    Returns ``None`` if the value is missing or unreadable; never negative.
    ``now`` (seconds since the epoch) is for tests; it defaults to ``time.time()``.
    """
    if isinstance(value, _dt.timedelta):
        return _finite_seconds(value.total_seconds())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _finite_seconds(float(value))
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return _finite_seconds(float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)  # HTTP dates are GMT by definition
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


# Placeholders that make repeats of one failure look alike, applied in this order.
_NORMALISERS = (
    (re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    # Long hex runs with both a digit and a letter are IDs (hashes, request IDs): not
    # words ("facade"), and not plain numbers, which must group with shorter numbers.
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)
_FINGERPRINT_SCAN = 1_000


def normalize_message(message: str) -> str:
    """``message`` with numbers, hex IDs, UUIDs and quoted strings replaced by placeholders."""
    text = message[:_FINGERPRINT_SCAN]
    for pattern, placeholder in _NORMALISERS:
        text = pattern.sub(placeholder, text)
    return text.strip()


def fingerprint(
    error_type: str,
    category: str,
    node: str | None,
    tool: str | None,
    message: str,
) -> str:
    """A stable 12-hex-digit ID shared by repeats of the same failure.

    Two failures share a fingerprint when they have the same error type, category,
    node and tool, and messages that differ only in numbers, IDs or quoted values.
    """
    key = "\x1f".join(
        (error_type, str(category), node or "", tool or "", normalize_message(message))
    )
    return hashlib.sha1(key.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()[:12]
