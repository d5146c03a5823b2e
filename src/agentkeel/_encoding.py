"""JSON encoding that never fails: odd objects become a safe repr, huge values are cut.

Everything agentkeel writes (store attributes, JSONL failure logs, log lines) goes
through here, so a non-serialisable metadata value or a 50 MB tool output can
neither crash the writer nor bloat the store.
"""

from __future__ import annotations

import datetime as _dt
import enum
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import msgspec

MAX_STRING = 8_192  # characters kept of one string value
MAX_REPR = 512  # characters kept of the repr of an unknown object
TRUNCATION_MARKER = "…[truncated {n} chars]"


def truncate(text: str, limit: int = MAX_STRING) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(n=len(text) - limit)


def safe_repr(value: object, limit: int = MAX_REPR) -> str:
    """``repr(value)`` that survives a broken ``__repr__``."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a user's broken __repr__ must not break us
        text = f"<{type(value).__name__} object (repr failed: {type(exc).__name__})>"
    return truncate(text, limit)


def _enc_hook(value: object) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {truncate(str(value), MAX_REPR)}"
    if isinstance(value, set | frozenset):
        return sorted(safe_repr(v) for v in value)
    return safe_repr(value)


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def bound(value: Any, *, depth: int = 0, max_items: int = 1_000) -> Any:  # noqa: PLR0911
    """A copy of ``value`` with long strings cut and deep or wide containers capped."""
    if isinstance(value, str):
        return truncate(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 12:
        return safe_repr(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= max_items:
                out["…"] = f"[{len(value) - max_items} more items truncated]"
                break
            out[k if isinstance(k, str) else safe_repr(k, 200)] = bound(v, depth=depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [bound(v, depth=depth + 1) for v in value[:max_items]]
        if len(value) > max_items:
            items.append(f"…[{len(value) - max_items} more items truncated]")
        return items
    if isinstance(value, bytes | bytearray):
        return truncate(value.decode("utf-8", "replace"))
    return value  # left to the encoder's hook


def to_json(value: Any) -> bytes:
    """Encode as JSON; never raises for odd objects, cuts what is too big."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        pass
    try:
        return _encoder.encode(bound(value))
    except Exception:  # noqa: BLE001 - last resort: a string we know encodes
        return _encoder.encode(safe_repr(value))


def to_json_bounded(value: Any) -> bytes:
    """Like :func:`to_json`, but long strings and huge containers are always cut."""
    return to_json(bound(value))


def from_json(data: bytes | str) -> Any:
    return msgspec.json.decode(data)
