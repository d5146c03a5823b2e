"""Backoff strategies, jitter, and the Retry-After extractor.

A backoff is a small frozen object answering one question: how long to wait
after the ``n``-th failed attempt (``n`` counts from 1). Backoffs add up with
``+`` (``fixed(1) + exponential()`` waits one second more than the exponential
alone), and a user's own strategy only needs a ``delay`` method (:class:`Backoff`).

Jitter is applied afterwards and separately, so every strategy gets it the same
way and tests can switch it off (``jitter=None``) or seed it (``rng=``).
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from agentkeel._errors import ConfigurationError
from agentkeel.resilience._base import as_seconds, check_rate
from agentkeel.tracking._classify import retry_after_of

__all__ = [
    "Adaptive",
    "Backoff",
    "BackoffSum",
    "Exponential",
    "Fixed",
    "Jitter",
    "JitterMode",
    "Linear",
    "RetryAfterExtractor",
    "adaptive",
    "default_retry_after",
    "exponential",
    "fixed",
    "linear",
]

Seconds: TypeAlias = float | timedelta
RetryAfterExtractor: TypeAlias = Callable[[BaseException], float | None]


@runtime_checkable
class Backoff(Protocol):
    """How long to wait after the ``attempt``-th failure (``attempt`` >= 1).

    ``success_rate`` is the learned rate at which retries of this operation and
    error type eventually succeed (``None`` when unknown); only adaptive
    strategies look at it.
    """

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float: ...


class _Combinable:
    """The strategies' base: ``a + b`` waits for the sum of both delays."""

    __slots__ = ()

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
        raise NotImplementedError

    def __add__(self, other: Backoff) -> BackoffSum:
        if not isinstance(other, Backoff):
            return NotImplemented
        return BackoffSum(self, other)


def _finite(value: Seconds, name: str) -> float:
    return as_seconds(value, name)


@dataclass(frozen=True, slots=True)
class Exponential(_Combinable):
    """``initial * multiplier^(attempt - 1)``, never more than ``max``."""

    initial: float
    multiplier: float
    max: float

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
        try:
            grown = self.initial * self.multiplier ** (attempt - 1)
        except OverflowError:  # attempt 5000 with multiplier 2: the cap is the answer
            return self.max
        return grown if grown < self.max else self.max


@dataclass(frozen=True, slots=True)
class Linear(_Combinable):
    """``initial + increment * (attempt - 1)``, never more than ``max``."""

    initial: float
    increment: float
    max: float

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
        grown = self.initial + self.increment * (attempt - 1)
        return grown if grown < self.max else self.max


@dataclass(frozen=True, slots=True)
class Fixed(_Combinable):
    """The same wait every time."""

    seconds: float

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
        return self.seconds


@dataclass(frozen=True, slots=True)
class Adaptive(_Combinable):
    """``base``'s delay, stretched when retries of this operation rarely succeed.

    The delay is multiplied by ``1 + slowdown * (1 - success_rate)``: with a perfect
    record it is ``base``'s delay, with no success at all ``1 + slowdown`` times that,
    and never more than ``max``. An unknown rate (too few samples) counts as perfect,
    so a new operation is not penalised for having no history.
    """

    base: Backoff
    slowdown: float
    max: float

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
        delay = self.base.delay(attempt, success_rate)
        if success_rate is not None:
            delay *= 1.0 + self.slowdown * (1.0 - success_rate)
        return delay if delay < self.max else self.max


@dataclass(frozen=True, slots=True)
class BackoffSum(_Combinable):
    """Two backoffs added together."""

    first: Backoff
    second: Backoff

    def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
        return self.first.delay(attempt, success_rate) + self.second.delay(attempt, success_rate)


def exponential(
    *, initial: Seconds = 0.1, multiplier: float = 2.0, max: Seconds = 30.0
) -> Exponential:
    """Waits that double (by default) after every failure: 0.1, 0.2, 0.4 … up to 30 s."""
    start = _finite(initial, "exponential(initial=...)")
    cap = _finite(max, "exponential(max=...)")
    if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
        raise ConfigurationError(
            f"exponential(multiplier=...) must be a number, got {multiplier!r}"
        )
    if not math.isfinite(multiplier) or multiplier < 1:
        raise ConfigurationError(
            f"exponential(multiplier=...) must be >= 1 (waits that shrink are not backoff), "
            f"got {multiplier!r}"
        )
    _check_cap("exponential", start, cap)
    return Exponential(initial=start, multiplier=float(multiplier), max=cap)


def linear(*, initial: Seconds = 0.5, increment: Seconds = 0.5, max: Seconds = 30.0) -> Linear:
    """Waits that grow by ``increment`` after every failure: 0.5, 1.0, 1.5 … up to 30 s."""
    start = _finite(initial, "linear(initial=...)")
    step = _finite(increment, "linear(increment=...)")
    cap = _finite(max, "linear(max=...)")
    _check_cap("linear", start, cap)
    return Linear(initial=start, increment=step, max=cap)


def fixed(delay: Seconds = 1.0) -> Fixed:
    """The same wait after every failure."""
    return Fixed(seconds=_finite(delay, "fixed(delay)"))


def adaptive(
    base: Backoff | None = None, *, slowdown: float = 4.0, max: Seconds = 60.0
) -> Adaptive:
    """``base`` (by default :func:`exponential`) stretched by a poor learned success rate.

    Needs ``Retry(learner=SuccessRateLearner(...))`` to learn the rate from.
    """
    if isinstance(slowdown, bool) or not isinstance(slowdown, int | float):
        raise ConfigurationError(f"adaptive(slowdown=...) must be a number, got {slowdown!r}")
    if not math.isfinite(slowdown) or slowdown < 0:
        raise ConfigurationError(
            f"adaptive(slowdown=...) must be zero or positive and finite, got {slowdown!r}"
        )
    if base is not None and not isinstance(base, Backoff):
        raise ConfigurationError(
            f"adaptive(base=...) must be a backoff such as exponential(), got {base!r}"
        )
    return Adaptive(
        base=base if base is not None else exponential(),
        slowdown=float(slowdown),
        max=_finite(max, "adaptive(max=...)"),
    )


def _check_cap(what: str, start: float, cap: float) -> None:
    if cap < start:
        raise ConfigurationError(
            f"{what}(max=...) is {cap:g} s, less than initial={start:g} s: "
            f"raise max or lower initial"
        )


def uses_learning(backoff: Backoff) -> bool:
    """Whether ``backoff`` reads the learned success rate (so needs a learner)."""
    if isinstance(backoff, Adaptive):
        return True
    if isinstance(backoff, BackoffSum):
        return uses_learning(backoff.first) or uses_learning(backoff.second)
    return False


class JitterMode(enum.StrEnum):
    """How a delay is randomised so that many clients do not retry in lockstep."""

    FULL = "full"  # uniform in [0, delay]
    EQUAL = "equal"  # uniform in [delay/2, delay]
    NONE = "none"


_EQUAL = JitterMode.EQUAL  # module constants: Enum class attributes are slow to look up
_FULL = JitterMode.FULL


@dataclass(frozen=True, slots=True)
class Jitter:
    """Randomises a delay: a :class:`JitterMode`, or ± ``fraction`` of the delay."""

    mode: JitterMode
    fraction: float = 0.0

    def apply(self, delay: float, rng: random.Random) -> float:
        if self.mode is _EQUAL:
            half = delay / 2.0
            return half + rng.random() * half
        if self.mode is _FULL:
            return rng.random() * delay
        if self.fraction:
            return delay * (1.0 + self.fraction * (2.0 * rng.random() - 1.0))
        return delay

    @classmethod
    def parse(cls, value: JitterSpec) -> Jitter | None:
        """``True`` (equal jitter), ``False``/``None``/``"none"``, a mode, or a fraction."""
        if value is None or value is False:
            return None
        if value is True:
            # Equal jitter by default: it spreads a herd of clients over half the
            # interval yet never retries at once (full jitter can draw ~0, which
            # against a rate-limited provider is a wasted call).
            return cls(JitterMode.EQUAL)
        if isinstance(value, Jitter):
            return None if value.mode is JitterMode.NONE and not value.fraction else value
        if isinstance(value, str):
            try:
                mode = JitterMode(value.strip().lower())
            except ValueError:
                pass
            else:
                return None if mode is JitterMode.NONE else cls(mode)
        elif isinstance(value, int | float):
            fraction = check_rate(value, "jitter (as a fraction of the delay)")
            return cls(JitterMode.NONE, fraction) if fraction else None
        raise ConfigurationError(
            f"jitter must be True, False, 'full', 'equal', 'none' or a fraction in [0, 1], "
            f"got {value!r}"
        )


JitterSpec: TypeAlias = bool | float | Literal["full", "equal", "none"] | JitterMode | Jitter | None


# Where a wait request can live: our errors' ``retry_after``, HTTP clients' ``response``
# and ``headers``. Remembered per class, so that a plain ConnectionError is passed over
# in a dictionary lookup instead of half a dozen failed attribute probes.
_CARRIER_ATTRS = ("retry_after", "response", "headers")
_CARRIER_CLASSES: dict[type[BaseException], bool] = {}
_MAX_CLASSES = 1024


def _may_carry(exc: BaseException) -> bool:
    cls = type(exc)
    by_class = _CARRIER_CLASSES.get(cls)
    if by_class is None:
        if len(_CARRIER_CLASSES) >= _MAX_CLASSES:
            _CARRIER_CLASSES.clear()  # classes made on the fly must not pile up
        by_class = _CARRIER_CLASSES[cls] = any(hasattr(cls, a) for a in _CARRIER_ATTRS)
    if by_class:
        return True
    attrs: dict[str, object] | None = getattr(exc, "__dict__", None)  # SDK errors set these
    if not attrs:  # in __init__; (spelt out below: a generator costs more than the lookups)
        return False
    return "retry_after" in attrs or "response" in attrs or "headers" in attrs


def default_retry_after(exc: BaseException) -> float | None:
    """Seconds the error asks us to wait, or ``None``.

    Understands ``exc.retry_after`` (ours: ``CircuitOpenError``, ``RateLimitExceededError``)
    and ``Retry-After`` / ``retry-after-ms`` headers on ``exc.response`` or ``exc.headers``
    (OpenAI and Anthropic SDK errors, ``httpx.HTTPStatusError``, ``requests.HTTPError``),
    as seconds or as an HTTP date. If the error says nothing, its ``__cause__`` is asked.
    """
    if _may_carry(exc):
        found = retry_after_of(exc)
        if found is not None:
            return found
    cause = exc.__cause__
    if cause is not None and cause is not exc and _may_carry(cause):
        return retry_after_of(cause)
    return None
