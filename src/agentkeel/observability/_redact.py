"""Redaction of secrets: by the name of a key, and by the shape of a value.

Two rules, both precompiled once:

* A mapping key that names a secret (``api_key``, ``password``, ``authorization`` …,
  in any case, also as the last word of a longer name such as ``openai_api_key`` or
  ``sessionToken``) has its whole value replaced by ``"[REDACTED]"``.
* Inside any string, text shaped like a credential is replaced: provider keys
  (``sk-…``, ``sk-ant-…``, ``ghp_…``, ``github_pat_…``, ``xoxb-…``, ``AKIA…``), JWTs,
  ``Bearer <token>`` and ``password=…`` / ``token=…`` pairs. The scheme word or
  the key name is kept (``Bearer [REDACTED]``, ``token=[REDACTED]``) so the line
  still says what was there.

Redaction errs on the side of hiding: a false positive costs a word of a log line,
a false negative leaks a credential.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, TypeVar

REDACTED = "[REDACTED]"
T = TypeVar("T")

# Names that mark a secret. Matched against the key in snake_case (camelCase and
# dashes are normalised first) as the whole name or as its last ``_``-separated part.
_SECRET_NAMES = (
    "api_key",
    "apikey",
    "token",
    "access_token",
    "refresh_token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "auth",
    "cookie",
    "set_cookie",
    "private_key",
    "client_secret",
)
_SECRET_KEY = re.compile(r"(?:^|_)(?:" + "|".join(_SECRET_NAMES) + r")$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# One alternation, so a string is scanned once. No branch nests quantifiers, so the
# scan stays linear even on a megabyte of adversarial text.
_SECRET_VALUE = re.compile(
    r"""
    (?P<pair>(?:(?<=[_\-.])|\b)(?i:password|passwd|pwd|token|secret|api[_\-]?key|auth)=)
        [^&\s#;,"'<>]+
  | (?P<scheme>(?i:\bbearer)\s+)[A-Za-z0-9\-._~+/]+=*
  | \bsk-[A-Za-z0-9_\-]{8,}
  | \bgh[pousr]_[A-Za-z0-9]{8,}
  | \bgithub_pat_[A-Za-z0-9_]{8,}
  | \bxox[abprs]-[A-Za-z0-9\-]{8,}
  | \bAKIA[0-9A-Z]{16}\b
  | \beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*
    """,
    re.VERBOSE,
)


def _replacement(match: re.Match[str]) -> str:
    keep = match.group("pair") or match.group("scheme")
    return keep + REDACTED if keep else REDACTED


def may_hold_secret(data: str) -> bool:
    """A cheap test that is True for every text holding a credential-shaped value.

    Substring tests run in C and cost tens of nanoseconds; ``re`` walks the text a
    character at a time and costs microseconds. Every branch of the value pattern
    contains one of these substrings, so False proves there is nothing to redact.
    (Bearer is caught as "bearer", "Bearer" or "BEARER", not in stranger mixed case.)
    """
    return (
        "=" in data
        or "sk-" in data
        or "eyJ" in data
        or "earer" in data
        or "EARER" in data
        or "xox" in data
        or "AKIA" in data
        or ("_" in data and ("gh" in data or "hub_pat_" in data))
    )


def redact_text(text: str) -> str:
    """``text`` with every credential-shaped substring replaced by ``[REDACTED]``."""
    if not may_hold_secret(text):
        return text  # the common case: no regex, no copy
    return _SECRET_VALUE.sub(_replacement, text)


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Whether a mapping key names a secret (``API_KEY``, ``x-api-key``, ``sessionToken`` …)."""
    normalised = _CAMEL_BOUNDARY.sub("_", key).lower().replace("-", "_")
    return _SECRET_KEY.search(normalised) is not None


def redact(value: T, *, _depth: int = 0) -> T:
    """A copy of ``value`` with secrets replaced by ``"[REDACTED]"``.

    Strings are scanned for credential shapes; mappings have the values of secret
    keys replaced and the rest redacted recursively; lists, tuples, sets and
    frozensets are redacted item by item and keep their type (a mapping becomes a
    ``dict``). Other objects are returned unchanged: turn them into text first if
    their ``repr`` may hold a secret. Nesting deeper than 32 levels is returned as is.
    """
    return _redact(value, _depth)  # type: ignore[no-any-return]


def _redact(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth >= 32 or isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_sensitive_key(k) else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact(v, depth + 1) for v in value]
        if type(value) in (list, tuple, set, frozenset):
            return type(value)(items)
        return items  # a subclass (a namedtuple, say) may not accept one iterable
    return value
