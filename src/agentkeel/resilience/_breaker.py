"""The circuit breaker: a thin shell around the pure state machine.

The shell only locks, reads the clock, times the call and announces transitions
(events on the pipeline, a line on the ``agentkeel.resilience.circuit_breaker``
logger); every decision is :class:`BreakerMachine`'s. While closed, the success
path takes no lock to admit a call (one attribute read) and one short lock to
record it.

With a ``store`` (:class:`RedisBreakerStore`), the machine's state lives there
instead, so every process sharing the breaker's name sees the same state: each
call then costs two round trips (admit, record), both atomic scripts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, TypeVar

from agentkeel import _runtime
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.events import Category, EventType, Severity
from agentkeel.resilience._base import PolicyBase, as_seconds
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import (
    CLOSED,
    OPEN,
    BreakerMachine,
    BreakerSnapshot,
    CircuitState,
    Permit,
    Rejection,
    Transition,
    exception_verdict,
    outcome_code,
)
from agentkeel.resilience._breaker_resources import ResourceGuard
from agentkeel.resilience._errors import CircuitOpenError

R = TypeVar("R")

_log = logging.getLogger("agentkeel.resilience.circuit_breaker")
# Rejected calls can come by the thousand per second while a breaker is open: one
# CIRCUIT_REJECTED event per breaker per interval, carrying how many it stands for.
REJECTED_EVENT_INTERVAL = 1.0


class SharedBreakerState(Protocol):
    """One breaker's state kept outside the process (see :class:`RedisBreakerStore`).

    Times are wall-clock seconds, so that processes agree on them. Provisional:
    the shape may change while there is only one implementation.
    """

    def acquire(self, now: float) -> tuple[Permit | Rejection, Transition | None]: ...
    async def aacquire(self, now: float) -> tuple[Permit | Rejection, Transition | None]: ...
    def record(self, permit: Permit | None, now: float, code: int) -> Transition | None: ...
    async def arecord(self, permit: Permit | None, now: float, code: int) -> Transition | None: ...
    def release(self, permit: Permit | None, now: float) -> None: ...
    async def arelease(self, permit: Permit | None, now: float) -> None: ...
    def trip(self, now: float, reason: str) -> Transition | None: ...
    def force_open(self, now: float, duration: float) -> Transition | None: ...
    def reset(self, now: float) -> Transition | None: ...
    def snapshot(self, now: float) -> tuple[BreakerSnapshot, Transition | None]:
        """The state after applying what the clock alone decides (and that transition)."""
        ...


class BreakerStateStore(Protocol):
    """Where breakers keep state shared by several processes."""

    def bind(self, name: str, config: CircuitBreakerConfig) -> SharedBreakerState:
        """The shared state of the breaker called ``name``, checked against ``config``."""
        ...


class _Frame:
    """One ``with breaker:`` block in progress, on a per-context stack."""

    __slots__ = ("breaker", "outer", "permit", "start", "token")

    def __init__(self, breaker: CircuitBreaker, permit: Permit, start: float) -> None:
        self.breaker = breaker
        self.permit = permit
        self.start = start
        self.outer: _Frame | None = None
        self.token: Token[_Frame | None] | None = None


# A context variable, not an attribute: the same breaker may guard blocks in many
# threads and tasks at once, and each must settle its own permit.
_frames: ContextVar[_Frame | None] = ContextVar("agentkeel_breaker_frames", default=None)


class CircuitBreaker(PolicyBase):
    """Stops calling a failing dependency for a while, then tests it carefully.

    Use it as ``breaker.call(fn, ...)``, ``await breaker.acall(fn, ...)``, as a
    decorator (``@breaker``) or as a context manager (``with breaker:`` /
    ``async with breaker:``). A refused call raises :class:`CircuitOpenError`
    (``retry_after`` says when to try again); the call's own exceptions pass
    through unchanged.
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: BreakerStateStore | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a circuit breaker needs a non-empty name, got {name!r}")
        if config is None:
            config = CircuitBreakerConfig()
        elif not isinstance(config, CircuitBreakerConfig):
            raise ConfigurationError(
                f"config must be a CircuitBreakerConfig, got {type(config).__name__}"
            )
        self.name = name
        self.config = config
        self._resolved = resolved = config.resolved
        self._clock = clock
        # The system clock's functions are called directly: a bound builtin is a
        # third of the cost of a method that calls it.
        self._now: Callable[[], float] = (
            time.monotonic if clock is SYSTEM_CLOCK else clock.monotonic
        )
        self._wall: Callable[[], float] = time.time if clock is SYSTEM_CLOCK else clock.wall
        self._lock = threading.Lock()
        self._timed = not (
            math.isinf(resolved.slow_call_duration) and math.isinf(resolved.failure_duration)
        )
        self._machine = BreakerMachine(resolved, self._now())
        self._shared = store.bind(name, config) if store is not None else None
        self._resources = (
            ResourceGuard(max_memory=resolved.max_memory_usage, max_cpu=resolved.max_cpu_usage)
            if resolved.max_memory_usage is not None or resolved.max_cpu_usage is not None
            else None
        )
        self._next_rejected_event = -math.inf
        self._unreported_rejections = 0

    def __repr__(self) -> str:
        # No round trip and no transition from a repr: shared state is not shown.
        if self._shared is not None:
            return f"CircuitBreaker({self.name!r}, shared)"
        return f"CircuitBreaker({self.name!r}, state={self._machine.state.value!r})"

    # ------------------------------------------------------------------ calls
    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` if the breaker allows it, and record how it went."""
        if self._shared is not None:
            return self._call_shared(fn, args, kwargs)
        machine = self._machine
        permit = machine.fast_permit
        if permit is None:
            permit = self._acquire_local()
        # Without duration thresholds, how long the call took does not matter: skip
        # a clock read (the duration then reads as `end`, still below infinity).
        start = self._now() if self._timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle_local(permit, start, exc)
            raise
        end = self._now()
        lock = self._lock
        # acquire/release: a third cheaper than `with lock:`, and nothing in between
        # can raise but a bug, which `finally` covers.
        lock.acquire()
        try:
            transition = machine.on_success(permit, end, end - start)
        finally:
            lock.release()
        if transition is not None:
            self._announce(transition)
        if self._resources is not None:
            self._check_resources(end)
        return result

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """Await ``fn(*args, **kwargs)`` if the breaker allows it, and record how it went."""
        if self._shared is not None:
            return await self._acall_shared(fn, args, kwargs)
        machine = self._machine
        permit = machine.fast_permit
        if permit is None:
            permit = self._acquire_local()
        start = self._now() if self._timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._settle_local(permit, start, exc)
            raise
        end = self._now()
        lock = self._lock
        lock.acquire()
        try:
            transition = machine.on_success(permit, end, end - start)
        finally:
            lock.release()
        if transition is not None:
            self._announce(transition)
        if self._resources is not None:
            self._check_resources(end)
        return result

    def __enter__(self) -> CircuitBreaker:
        if self._shared is not None:
            permit = self._acquire_shared(self._wall())
        else:
            permit = self._machine.fast_permit or self._acquire_local()
        self._push(permit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = self._pop()
        if self._shared is not None:
            self._settle_shared(frame.permit, frame.start, exc)
        else:
            self._settle_local(frame.permit, frame.start, exc, ok=exc is None)

    async def __aenter__(self) -> CircuitBreaker:
        if self._shared is not None:
            permit = await self._aacquire_shared(self._wall())
        else:
            permit = self._machine.fast_permit or self._acquire_local()
        self._push(permit)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = self._pop()
        if self._shared is not None:
            await self._asettle_shared(frame.permit, frame.start, exc)
        else:
            self._settle_local(frame.permit, frame.start, exc, ok=exc is None)

    # ------------------------------------------------------------------ by hand
    def record_success(self, duration: float | timedelta = 0.0) -> None:
        """Record a call made without the breaker's permission (seed 001's style)."""
        seconds = as_seconds(duration, "duration")
        code = outcome_code(self._resolved, seconds, False)
        self._record_by_hand(code)

    def record_failure(
        self, exc: BaseException | None = None, duration: float | timedelta = 0.0
    ) -> None:
        """Record a failed call made without the breaker's permission.

        With ``exc``, the configured record/ignore lists decide how it counts.
        """
        seconds = as_seconds(duration, "duration")
        verdict = True if exc is None else exception_verdict(self._resolved, exc)
        if verdict is None:
            if self._shared is not None:
                self._shared.release(None, self._wall())
            else:
                with self._lock:
                    self._machine.release(None)
            return
        self._record_by_hand(outcome_code(self._resolved, seconds, verdict))

    @property
    def state(self) -> CircuitState:
        """The current state; an open breaker whose wait is over reads as half-open."""
        if self._shared is not None:
            snap, transition = self._shared.snapshot(self._wall())
            if transition is not None:
                self._announce(transition)
            return snap.state
        with self._lock:
            transition = self._machine.advance(self._now())
            state = self._machine.state
        if transition is not None:
            self._announce(transition)
        return state

    def get_status(self) -> dict[str, Any]:
        """State, counters and rates, as a plain dict (JSON-ready).

        ``metrics`` counts calls since the breaker was made or reset
        (``total_calls`` = successful + failed; rejected and ignored calls apart);
        ``failure_rate`` and ``slow_call_rate`` are over the current window (the
        trial calls while half-open), 0.0 when it is empty.
        """
        if self._shared is not None:
            wall = self._wall()
            snap, transition = self._shared.snapshot(wall)
            changed_wall = snap.changed_at
            retry_after = max(0.0, snap.retry_at - wall) if snap.state is OPEN else 0.0
        else:
            with self._lock:
                now = self._now()
                transition = self._machine.advance(now)
                snap = self._machine.snapshot(now)
            wall = self._wall()
            changed_wall = wall - (now - snap.changed_at)
            retry_after = max(0.0, snap.retry_at - now) if snap.state is OPEN else 0.0
        if transition is not None:
            self._announce(transition)
        return {
            "name": self.name,
            "state": snap.state.value,
            "forced": snap.forced,
            "reason": snap.reason,
            "shared": self._shared is not None,
            "metrics": {
                "total_calls": snap.successes + snap.failures,
                "successful_calls": snap.successes,
                "failed_calls": snap.failures,
                "slow_calls": snap.slow,
                "rejected_calls": snap.rejected,
                "ignored_calls": snap.ignored,
                "failure_rate": snap.failure_rate,
                "slow_call_rate": snap.slow_call_rate,
                "window_calls": snap.window_calls,
                "window_failed_calls": snap.window_failed,
                "window_slow_calls": snap.window_slow,
                "half_open_calls": snap.half_open_admitted,
            },
            "last_state_change": datetime.fromtimestamp(changed_wall, UTC).isoformat(),
            "last_state_change_ts": changed_wall,
            "retry_after": retry_after,
            "config": self._resolved.summary(),
        }

    def reset(self) -> None:
        """Closed again, window and counters emptied (also for every sharing process)."""
        if self._shared is not None:
            transition = self._shared.reset(self._wall())
        else:
            with self._lock:
                transition = self._machine.reset(self._now())
        if transition is not None:
            self._announce(transition)

    def force_open(self, duration: float | timedelta | None = None) -> None:
        """Refuse every call for ``duration`` (default: until :meth:`reset`)."""
        seconds = math.inf if duration is None else as_seconds(duration, "duration", allow_inf=True)
        if self._shared is not None:
            transition = self._shared.force_open(self._wall(), seconds)
        else:
            with self._lock:
                transition = self._machine.force_open(self._now(), seconds)
        if transition is not None:
            self._announce(transition)

    # ------------------------------------------------------------------ local state
    def _acquire_local(self) -> Permit:
        with self._lock:
            now = self._now()
            transition = self._machine.advance(now)
            decision = self._machine.acquire(now)
        if transition is not None:
            self._announce(transition)
        if isinstance(decision, Rejection):
            raise self._rejected(decision, now)
        return decision

    def _settle_local(
        self, permit: Permit, start: float, exc: BaseException | None, *, ok: bool = False
    ) -> None:
        end = self._now()
        with self._lock:
            if ok:
                transition = self._machine.on_success(permit, end, end - start)
            else:
                transition = self._machine.on_failure(permit, end, end - start, exc)
        if transition is not None:
            self._announce(transition)
        if self._resources is not None:
            self._check_resources(end)

    def _record_by_hand(self, code: int) -> None:
        if self._shared is not None:
            transition = self._shared.record(None, self._wall(), code)
        else:
            with self._lock:
                transition = self._machine.record(None, self._now(), code)
        if transition is not None:
            self._announce(transition)

    # ------------------------------------------------------------------ shared state
    def _acquire_shared(self, now: float) -> Permit:
        assert self._shared is not None
        decision, transition = self._shared.acquire(now)
        return self._admit(decision, transition, now)

    async def _aacquire_shared(self, now: float) -> Permit:
        assert self._shared is not None
        decision, transition = await self._shared.aacquire(now)
        return self._admit(decision, transition, now)

    def _admit(
        self, decision: Permit | Rejection, transition: Transition | None, now: float
    ) -> Permit:
        if transition is not None:
            self._announce(transition)
        if isinstance(decision, Rejection):
            raise self._rejected(decision, now)
        return decision

    def _call_shared(self, fn: Callable[..., R], args: Any, kwargs: Any) -> R:
        permit = self._acquire_shared(self._wall())
        start = self._now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle_shared(permit, start, exc)
            raise
        self._settle_shared(permit, start, None)
        return result

    async def _acall_shared(self, fn: Callable[..., Awaitable[R]], args: Any, kwargs: Any) -> R:
        permit = await self._aacquire_shared(self._wall())
        start = self._now()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._asettle_shared(permit, start, exc)
            raise
        await self._asettle_shared(permit, start, None)
        return result

    def _outcome(self, start: float, exc: BaseException | None) -> tuple[float, int | None]:
        # (Shared calls are timed always: two round trips dwarf a clock read.)
        end = self._now()
        failed = False if exc is None else exception_verdict(self._resolved, exc)
        code = None if failed is None else outcome_code(self._resolved, end - start, failed)
        return end, code

    def _settle_shared(self, permit: Permit, start: float, exc: BaseException | None) -> None:
        assert self._shared is not None
        end, code = self._outcome(start, exc)
        if code is None:
            self._shared.release(permit, self._wall())
            return
        transition = self._shared.record(permit, self._wall(), code)
        if transition is not None:
            self._announce(transition)
        if self._resources is not None:
            self._check_resources(end)

    async def _asettle_shared(
        self, permit: Permit, start: float, exc: BaseException | None
    ) -> None:
        assert self._shared is not None
        end, code = self._outcome(start, exc)
        if code is None:
            await self._shared.arelease(permit, self._wall())
            return
        transition = await self._shared.arecord(permit, self._wall(), code)
        if transition is not None:
            self._announce(transition)
        if self._resources is not None:
            self._check_resources(end)

    # ------------------------------------------------------------------ reporting
    def _rejected(self, rejection: Rejection, now: float) -> CircuitOpenError:
        retry_after = rejection.retry_after(now)
        self._unreported_rejections += 1  # a sampling hint only; exact counts are the machine's
        if now >= self._next_rejected_event:
            self._next_rejected_event = now + REJECTED_EVENT_INTERVAL
            count, self._unreported_rejections = self._unreported_rejections, 0
            _runtime.emit(
                EventType.CIRCUIT_REJECTED,
                name=self.name,
                severity=Severity.LOW,
                attributes={
                    "breaker": self.name,
                    "rejected": count,
                    "retry_after": retry_after,
                    "half_open": rejection.half_open,
                },
            )
        if rejection.half_open:
            message = (
                f"circuit breaker {self.name!r} is half-open and its "
                f"{self._resolved.half_open_max_calls} trial call(s) are taken; try again shortly"
            )
        elif math.isinf(retry_after):
            message = f"circuit breaker {self.name!r} was forced open; reset() closes it"
        else:
            message = None
        return CircuitOpenError(self.name, retry_after, message)

    def _announce(self, transition: Transition) -> None:
        state = transition.state
        attributes: dict[str, Any] = {
            "breaker": self.name,
            "from_state": transition.previous.value,
            "to_state": state.value,
            "reason": transition.reason,
            "failure_rate": transition.failure_rate,
            "slow_call_rate": transition.slow_call_rate,
            "calls": transition.calls,
        }
        category: str | None = None
        if state is OPEN:
            event_type, severity, level = EventType.CIRCUIT_OPENED, Severity.HIGH, logging.WARNING
            attributes["retry_after"] = transition.retry_after
            if transition.reason == "resource":
                category = Category.RESOURCE
        elif state is CLOSED:
            event_type, severity, level = EventType.CIRCUIT_CLOSED, Severity.LOW, logging.INFO
        else:
            event_type, severity, level = EventType.CIRCUIT_HALF_OPEN, Severity.MEDIUM, logging.INFO
        _log.log(
            level,
            "circuit breaker %r: %s -> %s (%s; failure rate %.0f%%, slow %.0f%% of %d calls)",
            self.name,
            transition.previous.value,
            state.value,
            transition.reason,
            transition.failure_rate * 100,
            transition.slow_call_rate * 100,
            transition.calls,
        )
        _runtime.emit(
            event_type, name=self.name, severity=severity, category=category, attributes=attributes
        )

    def _check_resources(self, now: float) -> None:
        assert self._resources is not None
        exceeded = self._resources.check(now)
        if exceeded is None:
            return
        _log.warning("circuit breaker %r: %s", self.name, exceeded)
        if self._shared is not None:
            transition = self._shared.trip(self._wall(), "resource")
        else:
            with self._lock:
                transition = self._machine.trip(self._now(), "resource")
        if transition is not None:
            self._announce(transition)

    # ------------------------------------------------------------------ with-blocks
    def _push(self, permit: Permit) -> None:
        frame = _Frame(self, permit, self._now() if self._timed else 0.0)
        frame.outer = _frames.get()
        frame.token = _frames.set(frame)

    def _pop(self) -> _Frame:
        frame = _frames.get()
        if frame is None or frame.breaker is not self or frame.token is None:
            raise RuntimeError(
                f"circuit breaker {self.name!r}: __exit__ without a matching __enter__ in this "
                "thread or task; enter and leave a `with breaker:` block in the same one"
            )
        _frames.reset(frame.token)
        return frame
