"""Argument checks shared by the monitoring classes: one message style for all."""

from __future__ import annotations

import math
from datetime import timedelta

from agentkeel._errors import ConfigurationError


def duration(value: float | timedelta, name: str, *, allow_zero: bool = False) -> float:
    """Seconds from a number or a ``timedelta``; negative, NaN or infinite is an error."""
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"{name} must be a number of seconds or a timedelta, got {value!r}"
        )
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(f"{name} must be a finite duration {bound}, got {value!r}")
    return seconds


def non_negative(value: float | None, name: str) -> float | None:
    """A finite number >= 0, or None (the check is off)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number or None, got {value!r}")
    if value < 0:
        raise ConfigurationError(f"{name} must be zero or more (None turns it off), got {value!r}")
    return float(value)


def fraction(value: float | None, name: str) -> float | None:
    """A number in [0, 1], or None (the check is off)."""
    checked = non_negative(value, name)
    if checked is not None and checked > 1:
        raise ConfigurationError(
            f"{name} is a fraction between 0 and 1 (0.1 means 10%), got {value!r}"
        )
    return checked


def positive_int(value: int, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
