"""Rate limiting with a token bucket: a pure state machine and thin sync/async shells.

The bucket holds up to ``burst`` tokens and gains ``rate / per`` tokens a second;
each call spends one. :class:`TokenBucket` does only arithmetic on the times it is
given, so it is tested against a model with a fake clock. :class:`RateLimiter` adds
the lock, the clock and the sleeping.

A call that finds the bucket empty may wait up to ``max_wait`` seconds. It does so by
*reserving* its token (the bucket goes into debt) and sleeping until the token is
due, so waiters are served in order and never wake up just to find the token taken.
A waiter interrupted in its sleep gives its token back only if nobody has taken or
reserved a token since: a later waiter's turn was computed with that token spent,
and returning it could let two calls through where the rate allows one.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, Severity
from agentkeel.resilience._base import PolicyBase, as_seconds
from agentkeel.resilience._errors import RateLimitExceededError
from agentkeel.resilience._naming import describe

__all__ = ["RateLimiter", "RateLimiterStats", "TokenBucket"]

R = TypeVar("R")

REJECTED_EVENT = "ratelimit.rejected"


def _positive(value: float, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive, finite number, got {value!r}")
    return float(value)


class TokenBucket:
    """A token bucket driven by the times it is given (seconds on a monotonic clock).

    ``rate`` is tokens gained per second, ``capacity`` the most it holds. It starts
    full unless ``tokens`` says otherwise. Not thread-safe: the caller holds a lock.
    """

    __slots__ = ("capacity", "rate", "ticket", "tokens", "updated")

    def __init__(
        self, *, rate: float, capacity: float, now: float, tokens: float | None = None
    ) -> None:
        self.rate = _positive(rate, "rate")
        self.capacity = _positive(capacity, "capacity")
        self.tokens = self.capacity if tokens is None else min(float(tokens), self.capacity)
        self.updated = float(now)
        # Counts every take; a refund is honoured only for the latest one (see refund).
        self.ticket = 0

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self.rate:g}/s, capacity={self.capacity:g}, tokens={self.tokens:g})"
        )

    def _refill(self, now: float) -> None:
        # A clock that steps back (it should not) is treated as standing still.
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (negative while reservations are owed)."""
        self._refill(now)
        return self.tokens

    def try_acquire(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` if they are there and return 0.0; else take nothing and
        return how many seconds until they will be."""
        self._refill(now)
        if self.tokens >= tokens:
            self.tokens -= tokens
            self.ticket += 1
            return 0.0
        return (tokens - self.tokens) / self.rate

    def reserve(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` now, going into debt if need be; return the seconds until
        they are due (0.0 if they are there already). ``ticket`` then names this take."""
        self._refill(now)
        self.tokens -= tokens
        self.ticket += 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def refund(self, now: float, tokens: float, ticket: int) -> bool:
        """Give back the ``tokens`` of reservation ``ticket`` before they are due.

        Honoured (True) only if it is still the latest take and its tokens are not yet
        due: then the bucket is exactly as if it had never been made. Otherwise a later
        take was computed with these tokens spent, and returning them could grant more
        than the rate allows.
        """
        self._refill(now)
        if ticket != self.ticket or self.tokens >= 0:
            return False
        self.tokens += tokens
        return True


@dataclass(frozen=True, slots=True)
class RateLimiterStats:
    """A snapshot of a rate limiter's counters."""

    name: str | None
    rate_per_second: float
    burst: float
    available: float
    granted: int
    """Calls let through, including those that waited."""
    waited: int
    """Calls that slept for their token."""
    rejected: int


class RateLimiter(PolicyBase):
    """Allow ``rate`` calls per ``per`` seconds, with bursts of up to ``burst``.

    ``RateLimiter(10, per=60)`` allows 10 calls a minute, all 10 at once if they come
    together (``burst`` defaults to ``max(1, rate)``). A call that finds no token waits
    up to ``max_wait`` seconds for one (sleeping with ``sleep``/``async_sleep``), else
    raises :class:`RateLimitExceededError` with ``retry_after``. Thread-safe.

    Use ``call``/``acall``, the decorator form, ``with limiter:`` / ``async with
    limiter:``, or ``acquire(tokens)`` / ``aacquire(tokens)`` / ``try_acquire(tokens)``.
    """

    def __init__(
        self,
        rate: float,
        per: float | timedelta = 1.0,
        *,
        burst: float | None = None,
        max_wait: float | timedelta = 0.0,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.rate = _positive(rate, "rate")
        self.per = as_seconds(per, "per", allow_zero=False)
        self.burst = max(1.0, self.rate) if burst is None else _positive(burst, "burst")
        if self.burst < 1:
            raise ConfigurationError(f"burst must be at least 1 (one call's token), got {burst!r}")
        self.max_wait = as_seconds(max_wait, "max_wait")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty string or None, got {name!r}")
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()
        self._bucket = TokenBucket(
            rate=self.rate / self.per, capacity=self.burst, now=clock.monotonic()
        )
        self._granted = 0
        self._waited = 0
        self._rejected = 0

    def __repr__(self) -> str:
        return (
            f"RateLimiter({self.rate:g}, per={self.per:g}, burst={self.burst:g}, "
            f"max_wait={self.max_wait:g}, name={self.name!r})"
        )

    def stats(self) -> RateLimiterStats:
        with self._lock:
            return RateLimiterStats(
                name=self.name,
                rate_per_second=self._bucket.rate,
                burst=self.burst,
                available=self._bucket.available(self._clock.monotonic()),
                granted=self._granted,
                waited=self._waited,
                rejected=self._rejected,
            )

    # ------------------------------------------------------------------ decisions
    def _check(self, tokens: float) -> float:
        if tokens == 1:
            return 1.0
        value = _positive(tokens, "tokens")
        if value > self.burst:
            raise ConfigurationError(
                f"{value:g} tokens can never be granted by a bucket that holds {self.burst:g}: "
                "ask for fewer or raise burst"
            )
        return value

    def _decide(self, tokens: float, what: Callable[..., Any] | None) -> tuple[float, int]:
        """Take or reserve ``tokens``: the seconds to sleep first and the bucket's ticket.

        Raises when the wait would exceed ``max_wait``.
        """
        with self._lock:
            bucket = self._bucket
            now = self._clock.monotonic()
            wait = bucket.try_acquire(now, tokens)
            if wait == 0.0:
                self._granted += 1
                return 0.0, 0
            if wait > self.max_wait:
                self._rejected += 1
            else:
                bucket.reserve(now, tokens)
                self._granted += 1
                self._waited += 1
                return wait, bucket.ticket
        raise self._refused(what, wait)

    def _give_back(self, tokens: float, ticket: int) -> None:
        with self._lock:
            self._bucket.refund(self._clock.monotonic(), tokens, ticket)
            self._granted -= 1

    def _refused(
        self, what: Callable[..., Any] | None, retry_after: float
    ) -> RateLimitExceededError:
        name = self.name or (describe(what) if what is not None else "rate limiter")
        get_pipeline().emit(
            REJECTED_EVENT,
            name=name,
            severity=Severity.LOW,
            category=Category.RATE_LIMIT,
            attributes={"retry_after_s": retry_after, "max_wait_s": self.max_wait},
        )
        return RateLimitExceededError(name, retry_after)

    # ------------------------------------------------------------------ shells
    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if they are there now; never waits, never raises for lack."""
        tokens = self._check(tokens)
        with self._lock:
            if self._bucket.try_acquire(self._clock.monotonic(), tokens) == 0.0:
                self._granted += 1
                return True
            self._rejected += 1
            return False

    def acquire(self, tokens: float = 1.0) -> None:
        """Take ``tokens``, sleeping up to ``max_wait``; else ``RateLimitExceededError``."""
        self._acquire(self._check(tokens), None)

    async def aacquire(self, tokens: float = 1.0) -> None:
        """Like :meth:`acquire`, sleeping with ``async_sleep``."""
        await self._aacquire(self._check(tokens), None)

    def _acquire(self, tokens: float, what: Callable[..., Any] | None) -> None:
        wait, ticket = self._decide(tokens, what)
        if wait:
            try:
                self._sleep(wait)
            except BaseException:
                self._give_back(tokens, ticket)  # interrupted: the call does not happen
                raise

    async def _aacquire(self, tokens: float, what: Callable[..., Any] | None) -> None:
        wait, ticket = self._decide(tokens, what)
        if wait:
            try:
                await self._async_sleep(wait)
            except BaseException:
                self._give_back(tokens, ticket)  # cancelled: the call does not happen
                raise

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        self._acquire(1.0, fn)
        return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        await self._aacquire(1.0, fn)
        return await fn(*args, **kwargs)

    def __enter__(self) -> RateLimiter:
        self._acquire(1.0, None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        await self._aacquire(1.0, None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
