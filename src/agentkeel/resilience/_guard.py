"""One way to put several policies around a call, in a fixed, documented order.

The order is resilience4j's, with fallback outermost and failure tracking just
inside the retry so that every attempt is recorded::

    fallback( retry( track( breaker( rate_limiter( timeout( bulkhead( fn )))))))

- the retry sees every failure, including breaker refusals and timeouts, and can
  back off on them;
- the breaker counts each attempt (a retried call is several calls to the
  dependency) and refuses before the rate limiter spends a token;
- the timeout bounds one attempt, the retry's own ``timeout`` bounds them all;
- the bulkhead limits calls actually running, not calls waiting for a token.

Each attempt's failure goes to the failure tracker; when a later attempt or a
fallback answers, those failures are marked recovered. One ``tool.end`` event per
guarded call carries its duration, status, attempts and who answered.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import EventType, Severity
from agentkeel.resilience._base import PolicyBase
from agentkeel.resilience._breaker import CircuitBreaker
from agentkeel.resilience._breaker_registry import get_circuit_breaker
from agentkeel.resilience._bulkhead import Bulkhead
from agentkeel.resilience._errors import CircuitOpenError
from agentkeel.resilience._fallback import Fallback
from agentkeel.resilience._naming import describe
from agentkeel.resilience._rate_limiter import RateLimiter
from agentkeel.resilience._retry import Retry
from agentkeel.resilience._timeout import Timeout
from agentkeel.tracking import FailureTracker, current_node, get_failure_tracker
from agentkeel.tracking._tracker import recorded_failure

P = ParamSpec("P")
R = TypeVar("R")


class Guard(PolicyBase):
    """Policies around a callable, applied in the module's documented order.

    Every argument is optional; give the ones you need::

        guard = Guard(
            name="weather",
            retry=Retry(on=(ConnectionError, TimeoutError), attempts=3),
            breaker="weather-api",          # a name (shared registry) or a CircuitBreaker
            timeout=2.0,                    # seconds, a timedelta or a Timeout
            fallback=[cached_weather],      # callables or (name, callable) pairs, or a Fallback
        )
        forecast = guard.call(get_weather, city="Lisbon")

        @guard                               # or as a decorator, sync or async
        async def get_weather(city: str) -> dict: ...

    ``event`` is the kind of end event each call emits (``"tool"``, ``"llm"``, or
    ``None`` when the callable emits its own). ``track=False`` turns failure
    tracking off; ``tracker`` pins a tracker (default:
    :func:`agentkeel.tracking.get_failure_tracker` at call time).
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        retry: Retry | None = None,
        breaker: CircuitBreaker | str | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: Timeout | float | timedelta | None = None,
        bulkhead: Bulkhead | int | None = None,
        fallback: Fallback | Sequence[Any] | None = None,
        track: bool = True,
        tracker: FailureTracker | None = None,
        graph_node: str | None = None,
        event: Literal["tool", "llm"] | None = "tool",
    ) -> None:
        if event not in ("tool", "llm", None):
            raise ConfigurationError(f"event must be 'tool', 'llm' or None, got {event!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty string or None, got {name!r}")
        _expect(retry, Retry, "retry", "Retry(on=..., attempts=...)")
        _expect(rate_limiter, RateLimiter, "rate_limiter", "RateLimiter(rate, per=...)")
        if tracker is not None and not isinstance(tracker, FailureTracker):
            raise ConfigurationError(f"tracker must be a FailureTracker or None, got {tracker!r}")
        self.name = name
        self.retry = retry
        self.breaker = get_circuit_breaker(breaker) if isinstance(breaker, str) else breaker
        _expect(self.breaker, CircuitBreaker, "breaker", "a CircuitBreaker or a breaker name")
        self.rate_limiter = rate_limiter
        self.timeout = (
            timeout if isinstance(timeout, Timeout) or timeout is None else Timeout(timeout)
        )
        if isinstance(bulkhead, int) and not isinstance(bulkhead, bool):
            bulkhead = Bulkhead(bulkhead)
        _expect(bulkhead, Bulkhead, "bulkhead", "a Bulkhead or a maximum concurrency")
        self.bulkhead: Bulkhead | None = bulkhead  # type: ignore[assignment]
        if fallback is None or isinstance(fallback, Fallback):
            self.fallback = fallback
        elif isinstance(fallback, Sequence) and not isinstance(fallback, str):
            self.fallback = Fallback(*fallback)
        else:
            raise ConfigurationError(
                f"fallback must be a Fallback or a list of alternatives, got {fallback!r}"
            )
        self.track = bool(track)
        self.tracker = tracker
        self.graph_node = graph_node
        # One end event per guarded call; None when the callable emits its own.
        self.event_type = {
            "tool": EventType.TOOL_CALL_END,
            "llm": EventType.LLM_CALL_END,
            None: None,
        }[event]
        # The inner chain is fixed at construction: a call only walks it.
        inner: list[PolicyBase] = [
            p
            for p in (self.breaker, self.rate_limiter, self.timeout, self.bulkhead)
            if p is not None
        ]
        self._inner_sync = tuple(p.call for p in inner)
        self._inner_async = tuple(p.acall for p in inner)
        self._attempt_fn = self._make_attempt()

    def __repr__(self) -> str:
        parts = [
            f"{label}={value!r}"
            for label, value in (
                ("name", self.name),
                ("fallback", self.fallback),
                ("retry", self.retry),
                ("breaker", self.breaker),
                ("rate_limiter", self.rate_limiter),
                ("timeout", self.timeout),
                ("bulkhead", self.bulkhead),
            )
            if value is not None
        ]
        return f"Guard({', '.join(parts)})"

    # ------------------------------------------------------------------ sync
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn``; its name is worked out once, not on every call."""
        if inspect.iscoroutinefunction(fn):
            return super().__call__(fn)
        name = self.name or describe(fn)
        run = self._run

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            return run(fn, name, args, kwargs)

        return guarded

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return self._run(fn, self.name or describe(fn), args, kwargs)  # type: ignore[no-any-return]

    def _run(
        self, fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.fallback is not None:
            return self._run_with_fallback(fn, name, args, kwargs)
        # The per-call state is made only if an attempt fails: a clean call pays for a
        # one-item list, not an object.
        holder: list[_GuardedCall | None] = [None]
        event = self.event_type is not None
        started = time.perf_counter() if event else 0.0
        try:
            if self.retry is not None:
                result = self.retry.call(self._attempt_fn, holder, fn, name, *args, **kwargs)
            else:
                result = self._attempt_fn(holder, fn, name, *args, **kwargs)
        except BaseException as exc:
            _GuardedCall.of(holder, self, fn, name).finish(started, exc)
            raise
        call = holder[0]
        if call is not None:
            call.finish(started, None)
        elif event:  # clean first attempt: no state to settle, just the end event
            self.emit_end(name, (time.perf_counter() - started) * 1000, 1, None, None)
        return result

    def emit_end(
        self,
        name: str,
        duration_ms: float,
        attempts: int,
        answered_by: str | None,
        error: BaseException | None,
    ) -> None:
        """The guarded call's one end event (``tool.end`` or ``llm.end``), if wanted."""
        event_type = self.event_type
        if event_type is None:
            return
        attributes: dict[str, Any] = {
            "duration_ms": duration_ms,
            "status": "succeeded" if error is None else "failed",
            "attempts": attempts,
        }
        if answered_by is not None:
            attributes["answered_by"] = answered_by
        if error is not None:
            attributes["error_type"] = type(error).__name__
        get_pipeline().emit(
            event_type,
            name=name,
            severity=Severity.INFO if error is None else Severity.LOW,
            attributes=attributes,
        )

    def _make_attempt(self) -> Callable[..., Any]:
        """One attempt through the inner chain; failures are recorded on the call's state."""
        inner = self._inner_sync

        def attempt(
            holder: list[_GuardedCall | None],
            fn: Callable[..., Any],
            name: str,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            call = holder[0]
            if call is not None:
                call.attempts += 1
            try:
                if inner:
                    return inner[0](*inner[1:], fn, *args, **kwargs)
                return fn(*args, **kwargs)
            except Exception as exc:
                _GuardedCall.of(holder, self, fn, name).record(exc)
                raise

        # The retry names its events and learned success rates after this function.
        attempt.__qualname__ = attempt.__name__ = self.name or "guard"
        return attempt

    def _run_with_fallback(
        self, fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        assert self.fallback is not None  # checked by the caller
        call = _GuardedCall(self, fn, name)
        started = time.perf_counter()
        try:
            result, source = self.fallback.call_with_source(
                _Named(name, call.run_retried), *args, **kwargs
            )
            call.answered_by = source
        except BaseException as exc:
            call.finish(started, exc)
            raise
        call.finish(started, None)
        return result

    # ----------------------------------------------------------------- async
    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        call = _GuardedCall(self, fn, self.name or describe(fn))
        started = time.perf_counter()
        try:
            if self.fallback is not None:
                result, source = await self.fallback.acall_with_source(
                    _Named(call.name, call.arun_retried), *args, **kwargs
                )
                call.answered_by = source
            else:
                result = await call.arun_retried(*args, **kwargs)
        except BaseException as exc:
            call.finish(started, exc)
            raise
        call.finish(started, None)
        return result  # type: ignore[no-any-return]

    async def _aattempt(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        inner = self._inner_async
        if not inner:
            return await fn(*args, **kwargs)
        return await inner[0](*inner[1:], fn, *args, **kwargs)


class _GuardedCall:
    """The state of one guarded call: its attempts and the failures they left."""

    __slots__ = ("answered_by", "attempts", "failures", "fn", "guard", "inner", "name")

    def __init__(self, guard: Guard, fn: Callable[..., Any], name: str) -> None:
        self.guard = guard
        self.fn = fn
        self.inner = guard._inner_sync  # the guard's own chain, fixed at construction
        self.name = name
        self.attempts = 0
        # (tracker, failure ID): ours, or recorded already by a tracked tool inside.
        # Made on the first failure: most calls never need it.
        self.failures: list[tuple[FailureTracker, str]] | None = None
        self.answered_by: str | None = None

    @classmethod
    def of(
        cls, holder: list[_GuardedCall | None], guard: Guard, fn: Callable[..., Any], name: str
    ) -> _GuardedCall:
        """The call's state, made on first need (the first failure) by the fast path."""
        call = holder[0]
        if call is None:
            call = holder[0] = cls(guard, fn, name)
            call.attempts = 1
        return call

    def record(self, exc: Exception) -> None:
        self._record(exc)

    # One attempt, tracked; the retry (if any) calls these again.
    def attempt(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        inner = self.inner
        try:
            if inner:
                return inner[0](*inner[1:], self.fn, *args, **kwargs)
            return self.fn(*args, **kwargs)
        except Exception as exc:
            self._record(exc)
            raise

    async def aattempt(self, *args: Any, **kwargs: Any) -> Any:
        self.attempts += 1
        try:
            return await self.guard._aattempt(self.fn, args, kwargs)
        except Exception as exc:
            self._record(exc)
            raise

    def run_retried(self, *args: Any, **kwargs: Any) -> Any:
        retry = self.guard.retry
        if retry is None:
            return self.attempt(*args, **kwargs)
        return retry.call(self.attempt, *args, **kwargs)

    async def arun_retried(self, *args: Any, **kwargs: Any) -> Any:
        retry = self.guard.retry
        if retry is None:
            return await self.aattempt(*args, **kwargs)
        return await retry.acall(self.aattempt, *args, **kwargs)

    # ------------------------------------------------------------- tracking
    def _tracker(self) -> FailureTracker | None:
        guard = self.guard
        if not guard.track:
            return None
        return guard.tracker if guard.tracker is not None else get_failure_tracker()

    def _record(self, exc: Exception) -> None:
        if isinstance(exc, CircuitOpenError):
            # A refusal is not a new failure of the tool: the failures that opened the
            # breaker are recorded, the refusal itself is a circuit.rejected event.
            return
        try:
            tracker = self._tracker()
            if tracker is None:
                return
            earlier = recorded_failure(exc)
            if self.failures is None:
                self.failures = []
            if earlier is not None:  # a tracked tool inside recorded it: recover it later
                self.failures.append(earlier)
                return
            record = tracker.record_failure(
                exc,
                tool_name=self.name,
                graph_node=self.guard.graph_node or current_node(),
                attributes={"attempt": self.attempts},
            )
            self.failures.append((tracker, record.failure_id))
        except Exception as error:  # noqa: BLE001 - tracking must never hide the agent's error
            _internal.report_internal_error("guard.track", error, reraise=False)

    def finish(self, started: float, error: BaseException | None) -> None:
        """Mark recovered failures and emit the call's one ``tool.end`` event."""
        duration_ms = (time.perf_counter() - started) * 1000
        try:
            if error is None and self.failures:
                action = (
                    f"fallback: answered by {self.answered_by}"
                    if self.answered_by not in (None, self.name)
                    else f"retried: attempt {self.attempts} succeeded"
                )
                for tracker, failure_id in self.failures:
                    tracker.mark_recovered(failure_id, action)
            self.guard.emit_end(self.name, duration_ms, self.attempts, self.answered_by, error)
        except Exception as exc:  # noqa: BLE001 - telemetry must not change the outcome
            _internal.report_internal_error("guard.finish", exc, reraise=error is None)


class _Named:
    """A callable that the fallback's events name after the guarded operation."""

    __slots__ = ("__qualname__", "_fn")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.__qualname__ = name
        self._fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


def _expect(value: object, cls: type, what: str, hint: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise ConfigurationError(f"{what} must be {hint}, got {value!r}")


def guard(
    fn: Callable[..., Any] | None = None,
    /,
    **options: Any,
) -> Any:
    """Build a :class:`Guard`; with a function, decorate it at once.

    ``@guard(retry=..., breaker=...)`` and ``guarded = guard(fn, retry=...)`` both work.
    """
    policy = Guard(**options)
    return policy if fn is None else policy(fn)
