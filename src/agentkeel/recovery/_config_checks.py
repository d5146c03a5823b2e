"""Validation shared by the escalation and loop-detection configurations.

Every check raises :class:`ConfigurationError` naming the setting, what it got and
what is allowed, so a bad value is caught when the config is built, not in the
middle of an incident.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from agentkeel._errors import ConfigurationError

C = TypeVar("C")


def seconds(
    value: float | timedelta, name: str, *, allow_zero: bool = False, allow_inf: bool = False
) -> float:
    """A duration in seconds or a ``timedelta``, as float seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"{name} must be a number of seconds or a timedelta, got {value!r}"
        )
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if math.isnan(result) or result < 0 or (result == 0 and not allow_zero):
        bound = "zero or positive" if allow_zero else "positive"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")
    if math.isinf(result) and not allow_inf:
        raise ConfigurationError(f"{name} must be finite, got {value!r}")
    return result


def count(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def names(value: object, name: str) -> tuple[str, ...]:
    """A list of non-empty strings (a single string is one name, not its letters)."""
    items: Iterable[object] = (value,) if isinstance(value, str) else _iterable(value, name)
    result = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{name} must hold non-empty strings, got {item!r}")
        result.append(item.strip())
    return tuple(result)


def points(value: object, name: str, *, keys: Iterable[str] | None = None) -> dict[str, int]:
    """A mapping of names to integer points; with ``keys``, only those names are allowed."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a mapping of name to points, got {value!r}")
    allowed = set(keys) if keys is not None else None
    result: dict[str, int] = {}
    for key, item in value.items():
        label = str(getattr(key, "value", key)).strip().lower()
        if allowed is not None and label not in allowed:
            raise ConfigurationError(
                f"{name} has an unknown key {key!r}: use {', '.join(sorted(allowed))}"
            )
        if isinstance(item, bool) or not isinstance(item, int):
            raise ConfigurationError(f"{name}[{key!r}] must be an integer, got {item!r}")
        result[label] = item
    return result


def _iterable(value: object, name: str) -> Iterable[object]:
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        return value
    raise ConfigurationError(f"{name} must be a list of strings, got {value!r}")


def from_mapping(cls: type[C], data: Mapping[str, Any], *, label: str) -> C:
    """Build the dataclass ``cls`` from ``data``, rejecting keys it does not know."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{label} must be a mapping, got {type(data).__name__}")
    allowed = sorted(f.name for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise ConfigurationError(
            f"unknown {label} setting(s) {', '.join(unknown)}: allowed are {', '.join(allowed)}"
        )
    return cls(**data)
