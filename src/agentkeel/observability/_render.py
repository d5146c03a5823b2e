"""One log entry → one JSON object. Shared by our writer and by :class:`JsonFormatter`.

The shape, in this key order::

    {"timestamp": "2025-01-15T09:30:00.123Z", "level": "INFO", "message": "...",
     "logger": "app.tools", "component": "planner", "correlation_id": "...",
     "run_id": "run-…", "span_id": "…", "metadata": {...}, "exception": "Traceback …"}

``component`` and ``correlation_id`` are always present (``null`` when unset);
``run_id`` and ``span_id`` only inside a run or step; ``exception`` only with
``exc_info``. Values are made safe here: secrets redacted, long strings cut, odd
objects turned into a bounded ``repr`` (redacted too: the ``repr`` of a settings
object is a classic way to leak a key).

Redaction in two passes, because scanning every string costs more than rendering
the line: keys are checked as the entry is built (a cached verdict per key), then
the finished JSON line gets one substring pre-check. Only a line that may hold a
credential-shaped value is rebuilt with every string scanned by the regex. (JSON
escaping never touches the characters the pre-check looks for.) Strings too long
to keep whole are always scanned before they are cut, so a cut cannot hide half a key.
"""

from __future__ import annotations

import datetime as _dt
import enum
import time
import traceback
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from types import TracebackType
from typing import Any, Final

from agentkeel._encoding import MAX_REPR, MAX_STRING, safe_repr, to_json, truncate
from agentkeel.observability._redact import (
    REDACTED,
    is_sensitive_key,
    may_hold_secret,
    redact_text,
)

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50
LEVEL_NAMES: dict[int, str] = {
    DEBUG: "DEBUG",
    INFO: "INFO",
    WARNING: "WARNING",
    ERROR: "ERROR",
    CRITICAL: "CRITICAL",
}
MAX_MESSAGE = MAX_STRING
MAX_EXCEPTION = 32_768  # characters of traceback kept: the tail, where the error is
MAX_ITEMS = 1_000  # entries kept of one container
MAX_DEPTH = 12

ExcTuple = tuple[type[BaseException], BaseException, TracebackType | None]
# A rendered line for the outputs, as a plain tuple (a NamedTuple costs 7x more to
# build, on every line): (levelno, ts, logger name, entry, JSON line with "\n",
# caller's (thread ident, thread name) or None, came from stdlib logging).
Rendered = tuple[int, float, str, dict[str, Any], bytes, "tuple[int, str] | None", bool]
R_LINE: Final = 4

# The last formatted millisecond, as one tuple in a list: swapped whole, so
# concurrent formatters never see a torn pair. Bursts share milliseconds.
_ms_cache: list[tuple[int, str]] = [(-1, "")]
_PLAIN = frozenset({int, float, bool, type(None)})
_ENCODED_AS_IS = (_dt.datetime, _dt.date, _dt.time, uuid.UUID, enum.Enum, PurePath)


def level_name(levelno: int) -> str:
    return LEVEL_NAMES.get(levelno) or f"LEVEL{levelno}"


def format_timestamp(ts: float) -> str:
    """Seconds since the epoch as ISO-8601 UTC with milliseconds: ``…T09:30:00.123Z``."""
    ms = int(ts * 1000)
    cached = _ms_cache[0]
    if cached[0] == ms:
        return cached[1]
    second, milli = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{milli:03d}Z"
    _ms_cache[0] = (ms, text)
    return text


def format_exception(exc: ExcTuple) -> str:
    """The full traceback text (cut and redacted later, with the rest of the entry)."""
    try:
        return "".join(traceback.format_exception(exc[0], exc[1], exc[2])).rstrip("\n")
    except Exception as error:  # noqa: BLE001 - a broken __str__ must not lose the line
        return f"{exc[0].__name__}: <traceback could not be formatted: {error!r}>"


def as_text(value: object) -> str:
    """``str(value)`` that survives a broken ``__str__``."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - the user's object, not our bug
        return safe_repr(value)


class _Cleaner:
    """Makes values JSON-ready; ``keys``: redact secret keys, ``text``: scan strings."""

    __slots__ = ("keys", "text")

    def __init__(self, *, keys: bool, text: bool) -> None:
        self.keys = keys
        self.text = text

    def string(self, value: str, limit: int = MAX_STRING) -> str:
        if len(value) > limit:
            # Scan before the cut: a key straddling it would otherwise leak its start.
            return truncate(redact_text(value) if self.keys else value, limit)
        return redact_text(value) if self.text else value

    def value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            return self.string(value)
        if kind in _PLAIN:  # exact types first: this runs for every metadata value
            return value
        if kind is dict:
            return self.mapping(value, depth)
        return self._other(value, depth)

    def _other(self, value: Any, depth: int) -> Any:  # noqa: PLR0911 - one return per kind
        if isinstance(value, str):
            return self.string(str(value))
        if isinstance(value, bool | int | float) or value is None:
            return value
        if depth >= MAX_DEPTH:
            return self.string(safe_repr(value))
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            seq = list(value) if isinstance(value, list | tuple) else sorted(value, key=safe_repr)
            items = [self.value(v, depth + 1) for v in seq[:MAX_ITEMS]]
            if len(seq) > MAX_ITEMS:
                items.append(f"…[{len(seq) - MAX_ITEMS} more items truncated]")
            return items
        if isinstance(value, bytes | bytearray):
            return self.string(bytes(value[: MAX_STRING * 4]).decode("utf-8", "replace"))
        if isinstance(value, _ENCODED_AS_IS):
            return value  # msgspec (or our encoder hook) writes these exactly
        if isinstance(value, BaseException):
            return self.string(f"{type(value).__name__}: {as_text(value)}")
        return self.string(safe_repr(value, MAX_REPR))

    def mapping(
        self, value: Mapping[Any, Any], depth: int, *, owned: bool = False
    ) -> dict[str, Any]:
        """``owned``: a dict nobody else mutates (our copy of the metadata), walked in
        place; any other mapping is snapshotted first (``list()`` of a dict's items
        runs in C, so another thread cannot change it under our feet)."""
        if depth >= MAX_DEPTH:
            return {"repr": self.string(safe_repr(value))}
        if owned and type(value) is dict and len(value) <= MAX_ITEMS:
            items: Any = value.items()
        else:
            try:
                items = list(value.items())
            except Exception:  # noqa: BLE001 - a broken mapping: keep what we can say about it
                return {"repr": self.string(safe_repr(value))}
        n = len(items)
        if n > MAX_ITEMS:
            items = items[:MAX_ITEMS]
        out: dict[str, Any] = {}
        keys = self.keys
        text = self.text
        for k, v in items:
            key = k if type(k) is str else safe_repr(k, 200)
            if keys and is_sensitive_key(key):
                out[key] = REDACTED
            elif type(v) is str and not text and len(v) <= MAX_STRING:
                out[key] = v  # the common case, inlined
            elif type(v) in _PLAIN:
                out[key] = v
            else:
                out[key] = self.value(v, depth + 1)
        if n > MAX_ITEMS:
            out["…"] = f"[{n - MAX_ITEMS} more items truncated]"
        return out

    def exception(self, text: str) -> str:
        if self.text or (self.keys and len(text) > MAX_EXCEPTION):
            text = redact_text(text)
        if len(text) > MAX_EXCEPTION:
            cut = len(text) - MAX_EXCEPTION
            text = f"…[truncated {cut} chars]" + text[cut:]
        return text


_PLAIN_CLEANER = _Cleaner(keys=False, text=False)
_KEY_CLEANER = _Cleaner(keys=True, text=False)
_FULL_CLEANER = _Cleaner(keys=True, text=True)


def clean(value: Any, *, redacting: bool) -> Any:
    """A JSON-ready copy of ``value``: cut to size, odd objects repr'd, secrets redacted.

    It is :func:`agentkeel._encoding.bound` with redaction folded into the walk.
    """
    return (_FULL_CLEANER if redacting else _PLAIN_CLEANER).value(value, 0)


def render(
    *,
    ts: float,
    levelno: int,
    message: object,
    logger: str,
    component: str | None,
    correlation_id: str | None,
    run_id: str | None,
    span_id: str | None,
    metadata: Mapping[str, Any] | None,
    exception: str | None,
    redacting: bool,
    level: str | None = None,
    owned: bool = False,
) -> tuple[dict[str, Any], bytes]:
    """The entry (a dict in the documented key order) and its JSON line with ``"\\n"``.

    ``owned``: ``metadata`` is a private copy that may be walked in place.
    """
    text = as_text(message)
    timestamp = format_timestamp(ts)
    name = level or level_name(levelno)
    cleaner = _KEY_CLEANER if redacting else _PLAIN_CLEANER
    while True:
        entry: dict[str, Any] = {
            "timestamp": timestamp,
            "level": name,
            "message": cleaner.string(text, MAX_MESSAGE),
            "logger": logger,
            "component": component,
            "correlation_id": correlation_id,
        }
        if run_id is not None:
            entry["run_id"] = run_id
        if span_id is not None:
            entry["span_id"] = span_id
        entry["metadata"] = cleaner.mapping(metadata, 0, owned=owned) if metadata else {}
        if exception is not None:
            entry["exception"] = cleaner.exception(exception)
        line = to_json(entry)
        # str, not bytes: ``in`` on str is ten times faster here than on bytes.
        if cleaner is not _KEY_CLEANER or not may_hold_secret(line.decode("utf-8")):
            return entry, line + b"\n"
        cleaner = _FULL_CLEANER  # something looks like a credential: scan every string
