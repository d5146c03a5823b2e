"""The circuit breaker's configuration: resilience4j's settings, plus the names seed users know.

Everything is validated here, at construction, so a breaker never discovers a bad
setting in the middle of a call. The frozen dataclass keeps what the user wrote
(durations converted to seconds, exception lists to tuples); what the state
machine actually runs on, with the seed-style shorthands mapped onto resilience4j
settings, lives in ``resolved``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from agentkeel._errors import ConfigurationError
from agentkeel.resilience._base import as_seconds, check_count, check_rate

SlidingWindow = Literal["count", "time"]
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]

_DEFAULT_RATE = 0.5
_DEFAULT_MINIMUM_CALLS = 10
_DEFAULT_WINDOW: SlidingWindow = "count"
_DEFAULT_WINDOW_SIZE = 100
_DEFAULT_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class ResolvedBreakerConfig:
    """The numbers the state machine runs on; ``inf`` stands for "not set"."""

    failure_rate_threshold: float
    slow_call_rate_threshold: float
    minimum_calls: int
    time_window: bool
    window_size: int
    slow_call_duration: float
    failure_duration: float
    wait_in_open: float
    half_open_max_calls: int
    success_threshold: int
    max_wait_in_half_open: float
    record_exceptions: tuple[type[BaseException], ...]
    ignore_exceptions: tuple[type[BaseException], ...]
    max_memory_usage: int | None
    max_cpu_usage: float | None

    def summary(self) -> dict[str, Any]:
        """The effective settings, for ``get_status()`` and logs."""

        def finite(value: float) -> float | None:
            return None if math.isinf(value) else value

        return {
            "failure_rate_threshold": self.failure_rate_threshold,
            "slow_call_rate_threshold": self.slow_call_rate_threshold,
            "minimum_calls": self.minimum_calls,
            "sliding_window": "time" if self.time_window else "count",
            "window_size": self.window_size,
            "slow_call_duration": finite(self.slow_call_duration),
            "timeout": finite(self.failure_duration),
            "wait_in_open": self.wait_in_open,
            "half_open_max_calls": self.half_open_max_calls,
            "success_threshold": self.success_threshold,
            "max_wait_in_half_open": finite(self.max_wait_in_half_open),
            "record_exceptions": [t.__qualname__ for t in self.record_exceptions],
            "ignore_exceptions": [t.__qualname__ for t in self.ignore_exceptions],
            "max_memory_usage": self.max_memory_usage,
            "max_cpu_usage": self.max_cpu_usage,
        }

    def fingerprint(self) -> str:
        """A stable text that differs when two processes would run different rules."""
        parts = self.summary()
        return "|".join(f"{key}={parts[key]}" for key in sorted(parts))


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreakerConfig:
    """How a circuit breaker decides to open, wait, test and close.

    resilience4j's settings (rates are fractions in (0, 1], durations are seconds or
    ``timedelta``):

    * ``failure_rate_threshold`` — open when this fraction of the calls in the
      window failed (and the window holds at least ``minimum_calls``).
    * ``minimum_calls`` — no verdict before the window holds this many calls. For a
      count window it is capped at ``window_size``, as resilience4j does.
    * ``sliding_window`` — ``"count"``: the last ``window_size`` calls;
      ``"time"``: the calls of the last ``window_size`` seconds (per-second buckets).
    * ``slow_call_duration`` / ``slow_call_rate_threshold`` — a call that takes
      longer than the duration is slow; open when this fraction of the window is slow.
    * ``wait_in_open`` — how long an open breaker refuses calls before it lets
      trial calls through (half-open).
    * ``half_open_max_calls`` — how many trial calls half-open admits in total.
    * ``success_threshold`` — how many of those must succeed (and not be slow) to
      close; default all of them. Half-open reopens as soon as that can no longer
      happen, i.e. after ``half_open_max_calls - success_threshold + 1`` bad trials.
    * ``max_wait_in_half_open`` — reopen if half-open has not decided by then
      (trial calls that never finish); default wait for them forever.
    * ``record_exceptions`` / ``ignore_exceptions`` — which exceptions count as
      failures. Ignored wins; an exception in neither list counts as a success.
      ``BaseException`` outside ``Exception`` (cancellation, ``KeyboardInterrupt``)
      is never counted.

    Seed-style names, mapped onto the above:

    * ``failure_threshold=N`` — N consecutive failures open the breaker: a count
      window of N calls, ``minimum_calls=N`` and ``failure_rate_threshold=1.0``.
    * ``recovery_timeout`` — same as ``wait_in_open``.
    * ``success_threshold`` — already a native setting.
    * ``max_response_time`` — same as ``slow_call_duration``.
    * ``timeout`` — a call that returns after longer than this is recorded as a
      *failure* (it still returns its result: the breaker does not cut calls short;
      put a timeout policy inside the breaker for that).
    * ``max_memory_usage`` (bytes of resident memory of this process) and
      ``max_cpu_usage`` (fraction of one CPU used by this process since the last
      check; 0.5 = half a core) — checked at most once a second after a call; when
      exceeded the breaker opens with reason ``"resource"``.
    """

    failure_rate_threshold: float = _DEFAULT_RATE
    minimum_calls: int = _DEFAULT_MINIMUM_CALLS
    sliding_window: SlidingWindow = _DEFAULT_WINDOW
    window_size: int | timedelta = _DEFAULT_WINDOW_SIZE
    slow_call_duration: float | timedelta | None = None
    slow_call_rate_threshold: float = 1.0
    wait_in_open: float | timedelta = _DEFAULT_WAIT
    half_open_max_calls: int = 3
    success_threshold: int | None = None
    max_wait_in_half_open: float | timedelta | None = None
    record_exceptions: ExceptionTypes = (Exception,)
    ignore_exceptions: ExceptionTypes = ()
    # The names seed 000 users already write.
    failure_threshold: int | None = None
    recovery_timeout: float | timedelta | None = None
    timeout: float | timedelta | None = None
    max_response_time: float | timedelta | None = None
    max_memory_usage: int | None = None
    max_cpu_usage: float | None = None
    resolved: ResolvedBreakerConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        # Durations and exception lists are stored normalised, so configs that mean
        # the same compare equal (the registry relies on it) and ``replace`` works.
        wait = as_seconds(self.wait_in_open, "wait_in_open")
        set_(self, "wait_in_open", wait)
        slow = _optional_seconds(self.slow_call_duration, "slow_call_duration")
        set_(self, "slow_call_duration", slow)
        max_half_open = _optional_seconds(self.max_wait_in_half_open, "max_wait_in_half_open")
        set_(self, "max_wait_in_half_open", max_half_open)
        recovery = _optional_seconds(self.recovery_timeout, "recovery_timeout")
        set_(self, "recovery_timeout", recovery)
        timeout = _optional_seconds(self.timeout, "timeout")
        set_(self, "timeout", timeout)
        max_response = _optional_seconds(self.max_response_time, "max_response_time")
        set_(self, "max_response_time", max_response)
        record = _exception_types(self.record_exceptions, "record_exceptions")
        ignore = _exception_types(self.ignore_exceptions, "ignore_exceptions")
        set_(self, "record_exceptions", record)
        set_(self, "ignore_exceptions", ignore)

        failure_rate = _check_threshold(self.failure_rate_threshold, "failure_rate_threshold")
        slow_rate = _check_threshold(self.slow_call_rate_threshold, "slow_call_rate_threshold")
        minimum_calls = check_count(self.minimum_calls, "minimum_calls")
        if self.sliding_window not in ("count", "time"):
            raise ConfigurationError(
                f"sliding_window must be 'count' or 'time', got {self.sliding_window!r}"
            )
        time_window = self.sliding_window == "time"
        window_size = _window_size(self.window_size, time_window)
        set_(self, "window_size", window_size)

        if self.failure_threshold is not None:
            n = check_count(self.failure_threshold, "failure_threshold")
            _no_conflict(
                "failure_threshold",
                n,
                failure_rate_threshold=(self.failure_rate_threshold, _DEFAULT_RATE, 1.0),
                minimum_calls=(self.minimum_calls, _DEFAULT_MINIMUM_CALLS, n),
                window_size=(window_size, _DEFAULT_WINDOW_SIZE, n),
                sliding_window=(self.sliding_window, _DEFAULT_WINDOW, "count"),
            )
            failure_rate, minimum_calls, window_size, time_window = 1.0, n, n, False
        if recovery is not None:
            _no_conflict("recovery_timeout", recovery, wait_in_open=(wait, _DEFAULT_WAIT, recovery))
            wait = recovery
        if max_response is not None:
            _no_conflict(
                "max_response_time",
                max_response,
                slow_call_duration=(slow, None, max_response),
            )
            slow = max_response
        if not time_window:
            minimum_calls = min(minimum_calls, window_size)

        trials = check_count(self.half_open_max_calls, "half_open_max_calls")
        needed = trials
        if self.success_threshold is not None:
            needed = check_count(self.success_threshold, "success_threshold")
            if needed > trials:
                raise ConfigurationError(
                    f"success_threshold ({needed}) is larger than half_open_max_calls "
                    f"({trials}): half-open could never close; raise half_open_max_calls "
                    "or lower success_threshold"
                )
        memory = self.max_memory_usage
        if memory is not None:
            memory = check_count(memory, "max_memory_usage (bytes)")
        cpu = self.max_cpu_usage
        if cpu is not None and (
            isinstance(cpu, bool)
            or not isinstance(cpu, int | float)
            or not 0 < cpu < math.inf  # also rejects NaN
        ):
            raise ConfigurationError(
                f"max_cpu_usage must be a positive fraction of one CPU (0.5 = half a core), "
                f"got {cpu!r}"
            )
        set_(
            self,
            "resolved",
            ResolvedBreakerConfig(
                failure_rate_threshold=failure_rate,
                slow_call_rate_threshold=slow_rate,
                minimum_calls=minimum_calls,
                time_window=time_window,
                window_size=window_size,
                slow_call_duration=math.inf if slow is None else slow,
                failure_duration=math.inf if timeout is None else timeout,
                wait_in_open=wait,
                half_open_max_calls=trials,
                success_threshold=needed,
                max_wait_in_half_open=math.inf if max_half_open is None else max_half_open,
                record_exceptions=record,
                ignore_exceptions=ignore,
                max_memory_usage=memory,
                max_cpu_usage=None if cpu is None else float(cpu),
            ),
        )


def _optional_seconds(value: float | timedelta | None, name: str) -> float | None:
    return None if value is None else as_seconds(value, name)


def _check_threshold(value: float, name: str) -> float:
    rate = check_rate(value, name)
    if rate == 0:
        raise ConfigurationError(
            f"{name} must be above 0 (a threshold of 0 would open the breaker with no "
            f"failures at all), got {value!r}"
        )
    return rate


def _window_size(value: int | timedelta, time_window: bool) -> int:
    if isinstance(value, timedelta):
        if not time_window:
            raise ConfigurationError(
                "window_size is a number of calls for sliding_window='count'; "
                f"a timedelta ({value}) only makes sense with sliding_window='time'"
            )
        seconds = value.total_seconds()
        if seconds != int(seconds) or seconds < 1:
            raise ConfigurationError(
                f"window_size must be a whole number of seconds >= 1, got {value}"
            )
        return int(seconds)
    unit = "seconds" if time_window else "calls"
    return check_count(value, f"window_size ({unit})")


def _exception_types(value: object, name: str) -> tuple[type[BaseException], ...]:
    items: Iterable[object]
    if isinstance(value, type):
        items = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = value
    else:
        raise ConfigurationError(
            f"{name} must be an exception class or a tuple of them, got {value!r}"
        )
    types: list[type[BaseException]] = []
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(f"{name} must hold exception classes, got {item!r}")
        types.append(item)
    return tuple(types)


def _no_conflict(alias: str, value: object, **targets: tuple[object, object, object]) -> None:
    """A seed-style alias and an explicit resilience4j setting must agree.

    Each target is (given, default, what the alias implies): a target left at its
    default, or set to what the alias implies anyway, is no conflict.
    """
    for name, (given, default, implied) in targets.items():
        if given not in (default, implied):
            raise ConfigurationError(
                f"{alias}={value!r} and {name}={given!r} disagree ({alias} implies "
                f"{name}={implied!r}); give one of them"
            )
