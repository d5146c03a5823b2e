"""Chaos mode: inject failures, latency, hangs and malformed output into tools.

Each fault is reproducible: whether the k-th call of tool T misbehaves, and how,
depends only on ``(seed, T, k)``, never on timing or on the order in which threads
happen to call. So a run that broke under chaos can be replayed with the same seed.

Injected errors subclass both :class:`agentkeel.ChaosError` and the stdlib type a
real failure of that kind would raise, so code under test, retry policies and
:func:`classify_error` all treat them like the real thing:

==============  ===========================================================
category        exception
==============  ===========================================================
network         ChaosNetworkError(ChaosError, ConnectionError)
timeout         ChaosTimeoutError(ChaosError, TimeoutError)
rate_limit      ChaosRateLimitError: ``status_code`` 429, ``retry_after``
auth            ChaosAuthError(ChaosError, PermissionError): ``status_code`` 401
validation      ChaosValidationError(ChaosError, ValueError)
parsing         ChaosParsingError(ChaosError, json.JSONDecodeError)
tool_not_found  ChaosToolNotFoundError(ChaosError, KeyError)
resource        ChaosResourceError(ChaosError, OSError) with errno ENOSPC
==============  ===========================================================

A *malformed* fault calls the real tool and corrupts what it returns: a string is
cut in half (a JSON document then no longer parses), a mapping gets its first key
renamed, a list loses its last item, and anything else becomes ``None``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import json
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from agentkeel import _internal
from agentkeel._errors import ChaosError, ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, EventType, Severity

__all__ = [
    "INJECTABLE_CATEGORIES",
    "ChaosAuthError",
    "ChaosConfig",
    "ChaosMonkey",
    "ChaosNetworkError",
    "ChaosParsingError",
    "ChaosRateLimitError",
    "ChaosResourceError",
    "ChaosStats",
    "ChaosTimeoutError",
    "ChaosToolNotFoundError",
    "ChaosValidationError",
    "Fault",
]

P = ParamSpec("P")
R = TypeVar("R")
FaultKind = Literal["error", "latency", "hang", "malformed"]


class ChaosNetworkError(ChaosError, ConnectionError):
    """An injected network failure."""


class ChaosTimeoutError(ChaosError, TimeoutError):
    """An injected timeout."""


class ChaosRateLimitError(ChaosError):
    """An injected HTTP 429, with the ``retry_after`` seconds a server would send."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChaosAuthError(ChaosError, PermissionError):
    """An injected HTTP 401."""

    status_code = 401


class ChaosValidationError(ChaosError, ValueError):
    """Injected invalid arguments."""


class ChaosParsingError(ChaosError, json.JSONDecodeError):
    """Injected unparseable output."""


class ChaosToolNotFoundError(ChaosError, KeyError):
    """An injected missing tool."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ChaosResourceError(ChaosError, OSError):
    """An injected full disk (``errno.ENOSPC``)."""


INJECTABLE_CATEGORIES: tuple[Category, ...] = (
    Category.NETWORK,
    Category.TIMEOUT,
    Category.RATE_LIMIT,
    Category.AUTH,
    Category.VALIDATION,
    Category.PARSING,
    Category.TOOL_NOT_FOUND,
    Category.RESOURCE,
)


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigurationError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosConfig:
    """How often chaos strikes, and how.

    Each call draws one outcome: an error with probability ``failure_rate`` (its
    category drawn evenly from ``categories``), extra latency (``latency_seconds``
    ``(low, high)``, uniform) with ``latency_rate``, a hang of ``hang_seconds`` with
    ``hang_rate``, malformed output with ``malformed_rate``, otherwise nothing.
    The rates must add up to at most 1. ``seed=None`` picks a random seed, which
    :attr:`ChaosMonkey.seed` reports so the run can be replayed.
    """

    seed: int | str | None = None
    failure_rate: float = 0.0
    latency_rate: float = 0.0
    latency_seconds: tuple[float, float] = (0.05, 0.3)
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    malformed_rate: float = 0.0
    categories: tuple[Category, ...] = INJECTABLE_CATEGORIES

    def __post_init__(self) -> None:
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int | str)
        ):
            raise ConfigurationError(f"seed must be an int, a string or None, got {self.seed!r}")
        rates = [
            _rate(name, getattr(self, name))
            for name in ("failure_rate", "latency_rate", "hang_rate", "malformed_rate")
        ]
        if sum(rates) > 1 + 1e-9:
            raise ConfigurationError(
                f"failure_rate + latency_rate + hang_rate + malformed_rate must be at most 1, "
                f"got {sum(rates):g}"
            )
        bounds = self.latency_seconds
        if not isinstance(bounds, tuple | list) or len(bounds) != 2:
            raise ConfigurationError(
                f"latency_seconds must be a (low, high) pair of seconds, got {bounds!r}"
            )
        low = _seconds("latency_seconds[0]", bounds[0])
        high = _seconds("latency_seconds[1]", bounds[1])
        if low > high:
            raise ConfigurationError(
                f"latency_seconds must be (low, high) with low <= high, got {bounds!r}"
            )
        _seconds("hang_seconds", self.hang_seconds)
        if isinstance(self.categories, str) or not isinstance(self.categories, Iterable):
            raise ConfigurationError(
                f"categories must be a list of categories, got {self.categories!r}"
            )
        categories = tuple(Category.parse(c) for c in self.categories)
        if not categories:
            raise ConfigurationError("categories must name at least one category to inject")
        unsupported = [c.value for c in categories if c not in INJECTABLE_CATEGORIES]
        if unsupported:
            allowed = ", ".join(c.value for c in INJECTABLE_CATEGORIES)
            raise ConfigurationError(
                f"cannot inject {', '.join(unsupported)}: categories must be among {allowed}"
            )
        # frozen: store the normalised forms
        object.__setattr__(self, "latency_seconds", (low, high))
        object.__setattr__(self, "categories", categories)


@dataclass(frozen=True, slots=True)
class Fault:
    """What chaos does to one call. ``delay`` is in seconds (latency and hang)."""

    kind: FaultKind
    tool_name: str
    call_index: int
    category: Category | None = None
    delay: float = 0.0
    retry_after: float | None = None

    def exception(self) -> Exception:
        """The exception an ``error`` fault raises."""
        if self.category is None:
            raise ConfigurationError(f"a {self.kind} fault raises no exception")
        text = (
            f"chaos: injected {self.category.value} failure in {self.tool_name!r} "
            f"(call {self.call_index})"
        )
        return _EXCEPTIONS[self.category](text, self)


_EXCEPTIONS: dict[Category, Callable[[str, Fault], Exception]] = {
    Category.NETWORK: lambda text, _: ChaosNetworkError(text),
    Category.TIMEOUT: lambda text, _: ChaosTimeoutError(text),
    Category.RATE_LIMIT: lambda text, f: ChaosRateLimitError(
        text, retry_after=f.retry_after or 1.0
    ),
    Category.AUTH: lambda text, _: ChaosAuthError(text),
    Category.VALIDATION: lambda text, _: ChaosValidationError(text),
    # The document and position a JSON parser would report for a cut-off reply.
    Category.PARSING: lambda text, _: ChaosParsingError(text, '{"result": ', 11),
    Category.TOOL_NOT_FOUND: lambda text, _: ChaosToolNotFoundError(text),
    Category.RESOURCE: lambda text, _: ChaosResourceError(errno.ENOSPC, text),
}


@dataclass(frozen=True, slots=True)
class ChaosStats:
    """How many calls went through chaos, and what was injected."""

    calls: int
    by_kind: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)

    @property
    def injected(self) -> int:
        return sum(self.by_kind.values())


class ChaosMonkey:
    """Wraps tools so that they fail, slow down, hang or return garbage on purpose.

    ``sleep`` and ``async_sleep`` are injectable so that tests need not wait.
    """

    def __init__(
        self,
        config: ChaosConfig | None = None,
        *,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.config = config if config is not None else ChaosConfig()
        if not isinstance(self.config, ChaosConfig):
            raise ConfigurationError(f"config must be a ChaosConfig, got {config!r}")
        seed = self.config.seed
        self.seed: int | str = int.from_bytes(os.urandom(4), "big") if seed is None else seed
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._by_kind: Counter[str] = Counter()
        self._by_category: Counter[str] = Counter()

    def fault_at(self, tool_name: str, call_index: int) -> Fault | None:
        """The fault for call ``call_index`` (from 0) of ``tool_name``: a pure function."""
        cfg = self.config
        rng = random.Random(f"{self.seed}:{tool_name}:{call_index}")
        draw = rng.random()
        threshold = cfg.failure_rate
        if draw < threshold:
            category = cfg.categories[rng.randrange(len(cfg.categories))]
            retry_after = (
                round(rng.uniform(0.5, 5.0), 3) if category is Category.RATE_LIMIT else None
            )
            return Fault("error", tool_name, call_index, category, retry_after=retry_after)
        threshold += cfg.latency_rate
        if draw < threshold:
            low, high = cfg.latency_seconds
            return Fault("latency", tool_name, call_index, delay=rng.uniform(low, high))
        threshold += cfg.hang_rate
        if draw < threshold:
            return Fault("hang", tool_name, call_index, delay=cfg.hang_seconds)
        threshold += cfg.malformed_rate
        if draw < threshold:
            return Fault("malformed", tool_name, call_index)
        return None

    def decide(self, tool_name: str) -> Fault | None:
        """The fault for the next call of ``tool_name`` (counted per tool), if any."""
        with self._lock:
            index = self._calls[tool_name]
            self._calls[tool_name] = index + 1
        fault = self.fault_at(tool_name, index)
        if fault is not None:
            with self._lock:
                self._by_kind[fault.kind] += 1
                if fault.category is not None:
                    self._by_category[fault.category.value] += 1
            self._emit(fault)
        return fault

    def stats(self) -> ChaosStats:
        with self._lock:
            return ChaosStats(
                calls=sum(self._calls.values()),
                by_kind=dict(self._by_kind),
                by_category=dict(self._by_category),
            )

    def _emit(self, fault: Fault) -> None:
        attributes: dict[str, Any] = {
            "kind": fault.kind,
            "call_index": fault.call_index,
            "seed": self.seed,
        }
        if fault.category is not None:
            attributes["category"] = fault.category.value
        if fault.delay:
            attributes["delay_seconds"] = fault.delay
        try:
            get_pipeline().emit(
                EventType.CHAOS_INJECTED,
                name=fault.tool_name,
                severity=Severity.INFO,
                category=None if fault.category is None else fault.category.value,
                attributes=attributes,
            )
        except Exception as exc:  # noqa: BLE001 - reporting chaos must not add chaos
            _internal.report_internal_error("tracking.chaos", exc)

    def wrap(self, fn: Callable[P, R], name: str | None = None) -> Callable[P, R]:
        """``fn`` with chaos: sync or async, same signature. ``name`` defaults to its name."""
        if not callable(fn):
            raise ConfigurationError(f"can only wrap a callable, got {fn!r}")
        tool_name = name or getattr(fn, "__name__", None) or repr(fn)
        decide = self.decide

        if inspect.iscoroutinefunction(fn):
            async_sleep = self._async_sleep

            @functools.wraps(fn)
            async def async_chaotic(*args: P.args, **kwargs: P.kwargs) -> Any:
                fault = decide(tool_name)
                if fault is None:
                    return await fn(*args, **kwargs)
                if fault.kind == "error":
                    raise fault.exception()
                if fault.delay:
                    await async_sleep(fault.delay)
                result = await fn(*args, **kwargs)
                return corrupt(result) if fault.kind == "malformed" else result

            return async_chaotic  # type: ignore[return-value]  # same signature

        sleep = self._sleep

        @functools.wraps(fn)
        def chaotic(*args: P.args, **kwargs: P.kwargs) -> R:
            fault = decide(tool_name)
            if fault is None:
                return fn(*args, **kwargs)
            if fault.kind == "error":
                raise fault.exception()
            if fault.delay:
                sleep(fault.delay)
            result = fn(*args, **kwargs)
            return corrupt(result) if fault.kind == "malformed" else result

        return chaotic

    def wrap_all(self, tools: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
        """Every tool of a name → callable mapping, wrapped under its name."""
        return {name: self.wrap(fn, name) for name, fn in tools.items()}


def corrupt(value: object) -> Any:
    """A plausibly broken version of a tool's output (see the module docs)."""
    if isinstance(value, str | bytes) and len(value) > 1:
        return value[: len(value) // 2]
    if isinstance(value, Mapping) and value:
        items = list(value.items())
        first_key, first_value = items[0]
        broken = {f"{first_key}_corrupted": first_value}
        broken.update(items[1:])
        return broken
    if isinstance(value, list) and value:
        return value[:-1]
    return None
