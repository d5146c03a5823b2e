"""What every resilience policy shares: the call protocol, decorators, durations.

A policy is a pure state machine (its decisions depend only on its state, the
injected clock and what it is told) wrapped by two thin shells, ``call`` for sync
callables and ``acall`` for coroutines, that only sleep, lock and do I/O. The
decorator form is derived from those two, so no policy writes it again.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, Protocol, TypeVar, overload, runtime_checkable

from agentkeel._errors import ConfigurationError

P = ParamSpec("P")
R = TypeVar("R")


def as_seconds(
    value: float | timedelta, name: str, *, allow_zero: bool = True, allow_inf: bool = False
) -> float:
    """A duration given as seconds or a ``timedelta``; negative or NaN is a ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"{name} must be a number of seconds or a timedelta, got {value!r}"
        )
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "positive" if not allow_zero else "zero or positive"
        raise ConfigurationError(f"{name} must be {bound}, got {value!r}")
    if math.isinf(seconds) and not allow_inf:
        raise ConfigurationError(f"{name} must be finite, got {value!r}")
    return seconds


def check_rate(value: float, name: str) -> float:
    """A fraction in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def check_count(value: int, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@runtime_checkable
class Policy(Protocol):
    """Something that can run a callable under its rules, sync or async."""

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R: ...

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R: ...


class PolicyBase:
    """Gives a policy with ``call``/``acall`` its decorator form.

    ``@policy`` on a ``def`` uses ``call``; on an ``async def`` it uses ``acall``.
    Signatures and names are kept (``functools.wraps``, ``ParamSpec``).
    """

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        raise NotImplementedError

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        raise NotImplementedError

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return async_guarded

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call(fn, *args, **kwargs)

        return guarded
