"""Retry: try a failed call again, within bounds, and say why it stopped.

The rules, checked after every failure in this order (the first that says no wins):

1. the error must match ``on=`` (exception classes, error types, or a predicate);
2. fewer attempts than allowed (``attempts``, or the error type's own rule);
3. the learner, if any, has not learned that retries of this error never work;
4. the next delay — the backoff's, jittered, or longer if the error carries a
   Retry-After — must end before the total ``timeout``;
5. the retry budget, if any, has a retry left.

Then the shell sleeps and calls again. When the rules say no, the *original*
exception is re-raised, untouched. Every retry and the final give-up are events
(``EventType.RETRY``).

The decision (:meth:`Retry.decide`) and each call's progress (``_RetryState``)
are shared by the three shells — :meth:`Retry.call`, :meth:`Retry.acall` and the
iterator forms :meth:`Retry.attempts` / :meth:`Retry.aattempts` — which only
call, sleep and loop. A call that succeeds the first time builds no state at
all: it costs a clock read and a ``try``.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, NamedTuple, ParamSpec, Protocol, TypeAlias, TypeVar, overload

from agentkeel import _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, EventType, Severity
from agentkeel.resilience._adaptive import SuccessRateLearner
from agentkeel.resilience._base import PolicyBase, as_seconds, check_count
from agentkeel.resilience._budget import RetryBudget
from agentkeel.resilience._error_types import ErrorType, classify_in_full
from agentkeel.resilience._naming import describe
from agentkeel.resilience._prompt import (
    PromptAdjuster,
    PromptBinding,
    PromptBindings,
    PromptStrategy,
)
from agentkeel.resilience._retry_strategies import (
    Backoff,
    Jitter,
    JitterSpec,
    RetryAfterExtractor,
    default_retry_after,
    exponential,
    uses_learning,
)

__all__ = [
    "ErrorTypeRule",
    "Retry",
    "RetryAttempt",
    "RetryDecision",
    "RetryDetails",
    "RetryHook",
    "RetryReason",
    "set_retry_testing",
]

P = ParamSpec("P")
R = TypeVar("R")

OnSpec: TypeAlias = (
    type[BaseException]
    | ErrorType
    | Iterable[type[BaseException] | ErrorType]
    | Callable[[BaseException], bool]
)


class RetryReason(enum.StrEnum):
    """Why a retry was made, or why it was not."""

    BACKOFF = "backoff"  # retrying after the backoff's delay
    RETRY_AFTER = "retry_after"  # retrying after the (longer) delay the error asked for
    NOT_RETRYABLE = "not_retryable"  # the error does not match on=
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    DEADLINE = "deadline"  # the next attempt would start after the total timeout
    LEARNED = "learned"  # retries of this error have (almost) never worked
    BUDGET = "budget"  # the retry budget is spent


class RetryDecision(NamedTuple):
    """What to do after a failure: retry after ``delay`` seconds, or give up.

    (Immutable like a frozen dataclass, but a tuple: cheaper to make and to unpack.)
    """

    retry: bool
    delay: float
    reason: RetryReason
    error_type: ErrorType


@dataclass(frozen=True, slots=True)
class ErrorTypeRule:
    """How one :class:`ErrorType` is retried, overriding the policy's defaults."""

    backoff: Backoff | None = None
    attempts: int | None = None  # total attempts, the first included; 1 means never retry

    def __post_init__(self) -> None:
        if self.attempts is not None:
            check_count(self.attempts, "ErrorTypeRule(attempts=...)")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ConfigurationError(
                f"ErrorTypeRule(backoff=...) must be a backoff such as exponential(), "
                f"got {self.backoff!r}"
            )


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """What a :class:`RetryHook` is told before the policy sleeps and tries again."""

    name: str
    attempt: int  # the attempt that failed (1 for the first call)
    delay: float  # seconds until the next attempt
    elapsed: float  # seconds since the first attempt started
    error: BaseException
    error_type: ErrorType
    reason: RetryReason
    prompt_strategy: PromptStrategy | None  # how the next attempt's prompt is adjusted


class RetryHook(Protocol):
    """Called before each retry; a plain function ``def hook(details): ...`` will do."""

    def __call__(self, details: RetryDetails, /) -> None: ...


class _Testing:
    __slots__ = ("attempts", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self.attempts = 1


_TESTING = _Testing()


def set_retry_testing(testing: bool = True, *, attempts: int = 1) -> None:
    """Test mode for every :class:`Retry`: never sleep, and allow at most ``attempts``.

    For the tests of code that uses retries (ours use a fake clock instead):
    ``set_retry_testing(True, attempts=2)`` makes a failing call fail fast.
    """
    _TESTING.attempts = check_count(attempts, "attempts")
    _TESTING.enabled = bool(testing)


_MESSAGE_LIMIT = 500  # characters of an error message kept in an event
# Enum members as module constants (attribute access on an Enum class is slow) and
# ``member._value_`` rather than ``.value`` (a property): these run on every failure.
_BACKOFF = RetryReason.BACKOFF
_RETRY_AFTER = RetryReason.RETRY_AFTER
_NOT_RETRYABLE = RetryReason.NOT_RETRYABLE
_ATTEMPTS_EXHAUSTED = RetryReason.ATTEMPTS_EXHAUSTED
_DEADLINE = RetryReason.DEADLINE
_LEARNED = RetryReason.LEARNED
_BUDGET = RetryReason.BUDGET
_LEARNABLE_FAILURES = frozenset({_ATTEMPTS_EXHAUSTED, _DEADLINE, _NOT_RETRYABLE})
_UNKNOWN_ERROR = ErrorType.UNKNOWN_ERROR
_UNKNOWN_CATEGORY = Category.UNKNOWN
_RETRY_EVENT = EventType.RETRY.value
_LOW = int(Severity.LOW)
_MEDIUM = int(Severity.MEDIUM)


def _message(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the real error
        return f"<unprintable {type(error).__name__}>"
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _compile_on(
    on: OnSpec, overrides: Mapping[type[BaseException], ErrorType] | None
) -> Callable[[BaseException], bool]:
    """``on=`` as one predicate. Exception classes are tested with a single ``isinstance``."""
    if on is None or (isinstance(on, str | bytes) and not isinstance(on, ErrorType)):
        raise ConfigurationError(
            f"on= must say which errors to retry: exception classes, ErrorTypes, or a "
            f"predicate (for example on=(httpx.TransportError, TimeoutError)), got {on!r}"
        )
    items: Iterable[Any]
    if isinstance(on, type | ErrorType):
        items = (on,)
    elif callable(on):
        return on
    elif isinstance(on, Iterable):
        items = tuple(on)
    else:
        raise ConfigurationError(f"on= must be exception classes, ErrorTypes or a callable: {on!r}")
    classes: list[type[BaseException]] = []
    kinds: set[ErrorType] = set()
    for item in items:
        if isinstance(item, ErrorType):
            kinds.add(item)
        elif isinstance(item, type) and issubclass(item, BaseException):
            classes.append(item)
        else:
            raise ConfigurationError(
                f"on= holds {item!r}, which is neither an exception class nor an ErrorType"
            )
    if not classes and not kinds:
        raise ConfigurationError("on= is empty: name at least one exception class or ErrorType")
    class_tuple = tuple(classes)
    if not kinds:
        return lambda exc: isinstance(exc, class_tuple)
    frozen_kinds = frozenset(kinds)
    return lambda exc: (
        isinstance(exc, class_tuple) or classify_in_full(exc, overrides)[0] in frozen_kinds
    )


class _RetryState:
    """One call's progress through its attempts. One per call; never shared."""

    __slots__ = (
        "attempt",
        "binding",
        "category",
        "error",
        "error_type",
        "operation",
        "policy",
        "retried",
        "started",
        "strategy",
    )

    def __init__(self, policy: Retry, operation: str, started: float) -> None:
        self.policy = policy
        self.operation = operation
        self.started = started
        self.attempt = 1  # the attempt running now, or that just failed
        # Error types that led to a retry, for the learner (so only kept if there is one).
        self.retried: set[ErrorType] | None = set() if policy._learner is not None else None
        self.error: BaseException | None = None
        self.error_type = _UNKNOWN_ERROR  # of the last failure
        self.category = _UNKNOWN_CATEGORY  # likewise, for events
        self.strategy: PromptStrategy | None = None  # for the attempt about to run
        self.binding: PromptBinding | None = None  # set when the shell adjusts prompts

    def failed(self, error: BaseException) -> float | None:
        """Decide about the current attempt's failure, report it, count it.

        Returns the seconds to wait before the next attempt, or ``None`` to give up.
        """
        policy = self.policy
        elapsed = policy._monotonic() - self.started
        retry, delay, reason, error_type, category = policy._decide(
            self.attempt, elapsed, error, self.operation
        )
        if retry and policy._budget is not None and not policy._budget.try_acquire():
            retry, delay, reason = False, 0.0, _BUDGET
        self.error_type = error_type
        self.category = category
        if retry:
            self.error = error  # kept for the prompt adjuster
            if self.retried is not None:
                self.retried.add(error_type)
            adjuster = policy._prompt_adjuster
            if adjuster is not None:
                self.strategy = adjuster.choose(error_type, self.attempt + 1)
            policy._report(self, error, elapsed, delay, reason, giving_up=False)
            self.attempt += 1
            return delay
        # A first failure that on= does not cover is simply not ours: no event.
        if self.attempt > 1 or reason is not _NOT_RETRYABLE:
            policy._report(self, error, elapsed, 0.0, reason, giving_up=True)
        if reason in _LEARNABLE_FAILURES:
            self._learn(succeeded=False)
        self.error = None  # see succeeded()
        return None

    def succeeded(self) -> None:
        self.error = None  # the traceback holds the shell's frame, which holds this state
        if self.attempt > 1:
            self._learn(succeeded=True)

    def _learn(self, *, succeeded: bool) -> None:
        learner = self.policy._learner
        if learner is not None and self.retried:
            for error_type in self.retried:
                learner.record(self.operation, error_type, succeeded)

    def adjust(self, prompt: str) -> str:
        """``prompt`` as the current attempt should see it."""
        adjuster = self.policy._prompt_adjuster
        if adjuster is None or self.attempt == 1 or self.error is None:
            return prompt
        return adjuster.adjust(
            prompt,
            error=self.error,
            error_type=self.error_type,
            attempt=self.attempt,
            strategy=self.strategy,
        )

    def arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The next attempt's arguments, with the adjusted prompt if prompts are adjusted."""
        binding = self.binding
        if binding is None:
            return args, kwargs
        adjuster = self.policy._prompt_adjuster
        assert adjuster is not None  # a binding is only made for an adjuster
        original = binding.original(adjuster, args, kwargs)
        if not isinstance(original, str):
            return args, kwargs  # chat message lists and the like are passed unchanged
        return binding.deliver(self.adjust(original), args, kwargs)


class RetryAttempt:
    """One attempt of the iterator form; use it as ``with attempt: ...``.

    Leaving the block with an error the policy retries swallows that error (the loop
    then sleeps and yields the next attempt); any other error propagates.
    """

    __slots__ = ("_delay", "_state", "number")

    def __init__(self, state: _RetryState) -> None:
        self._state = state
        self.number = state.attempt
        self._delay: float | None = None  # set when this attempt failed and will be retried

    def __repr__(self) -> str:
        return f"<RetryAttempt {self.number} of {self._state.operation!r}>"

    def adjust_prompt(self, prompt: str) -> str:
        """``prompt``, rewritten by the policy's :class:`PromptAdjuster` on retries."""
        return self._state.adjust(prompt)

    def __enter__(self) -> RetryAttempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self._state.succeeded()
            return False
        if not isinstance(exc, Exception):  # KeyboardInterrupt, CancelledError: never ours
            return False
        self._delay = self._state.failed(exc)
        return self._delay is not None


class Retry(PolicyBase):
    """Retries a call that failed with an error ``on=`` names, within bounds.

    ``on`` (required) says which errors are retried: exception classes, :class:`ErrorType`
    members, a mix of both, or a predicate ``(exc) -> bool``. ``attempts`` counts the
    first call; ``timeout`` bounds the total time (``None`` only bounds attempts);
    ``backoff`` is :func:`exponential` unless given; ``jitter`` is on by default.
    ``per_error_type`` overrides backoff or attempts per :class:`ErrorType`;
    ``error_types`` maps your exception classes to error types. ``retry_after``
    extracts a wait the error asks for (``None`` ignores such requests). ``learner``,
    ``budget`` and ``prompt_adjuster`` switch on success-rate learning, a shared retry
    budget and prompt adjustment. ``name`` names the operation in events and in the
    learner (by default the callable's qualified name; name shared learners' operations
    explicitly, as two modules may both have a ``search``).
    """

    __slots__ = (
        "_backoff",
        "_bindings",
        "_budget",
        "_clock",
        "_jitter",
        "_learner",
        "_matches",
        "_monotonic",
        "_needs_rate",
        "_prompt_adjuster",
        "_retry_after",
        "_rng",
        "_rules",
        "_type_overrides",
        "async_sleep",
        "attempts_allowed",
        "name",
        "on_retry",
        "sleep",
        "timeout",
    )

    def __init__(
        self,
        *,
        on: OnSpec,
        attempts: int = 3,
        timeout: float | timedelta | None = 60.0,
        backoff: Backoff | None = None,
        jitter: JitterSpec = True,
        per_error_type: Mapping[ErrorType, ErrorTypeRule | Backoff] | None = None,
        error_types: Mapping[type[Any], ErrorType] | None = None,
        retry_after: RetryAfterExtractor | None = default_retry_after,
        learner: SuccessRateLearner | None = None,
        budget: RetryBudget | None = None,
        prompt_adjuster: PromptAdjuster | None = None,
        prompt_kwarg: str | None = None,
        name: str | None = None,
        on_retry: RetryHook | Iterable[RetryHook] = (),
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._type_overrides = _parse_overrides(error_types)
        self._matches = _compile_on(on, self._type_overrides)
        self.attempts_allowed = check_count(attempts, "attempts")
        self.timeout = None if timeout is None else as_seconds(timeout, "timeout", allow_zero=False)
        if backoff is not None and not isinstance(backoff, Backoff):
            raise ConfigurationError(
                f"backoff must be exponential(), linear(), fixed(), adaptive() or an object "
                f"with a delay(attempt) method, got {backoff!r}"
            )
        self._backoff: Backoff = backoff if backoff is not None else exponential()
        self._jitter = Jitter.parse(jitter)
        self._rules = _parse_rules(per_error_type)
        if retry_after is not None and not callable(retry_after):
            raise ConfigurationError(
                f"retry_after must be a callable (exc) -> seconds or None, got {retry_after!r}"
            )
        self._retry_after = retry_after
        _check_instance(learner, SuccessRateLearner, "learner")
        _check_instance(budget, RetryBudget, "budget")
        _check_instance(prompt_adjuster, PromptAdjuster, "prompt_adjuster")
        self._learner = learner
        self._budget = budget
        backoffs = [self._backoff, *(r.backoff for r in self._rules.values() if r.backoff)]
        self._needs_rate = any(uses_learning(b) for b in backoffs)
        if self._needs_rate and learner is None:
            raise ConfigurationError(
                "adaptive() backoff reads learned success rates: pass "
                "learner=SuccessRateLearner(...) (success_rate_threshold=0 to only slow down)"
            )
        if prompt_kwarg is not None and (not isinstance(prompt_kwarg, str) or not prompt_kwarg):
            raise ConfigurationError(f"prompt_kwarg must be a parameter name, got {prompt_kwarg!r}")
        if prompt_kwarg is not None and prompt_adjuster is None:
            raise ConfigurationError(
                "prompt_kwarg is set but there is no prompt_adjuster to adjust the prompt"
            )
        self._prompt_adjuster = prompt_adjuster
        self._bindings = (
            PromptBindings(prompt_adjuster, prompt_kwarg) if prompt_adjuster is not None else None
        )
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        hooks = (on_retry,) if callable(on_retry) else tuple(on_retry)
        if not all(callable(hook) for hook in hooks):
            raise ConfigurationError("on_retry must be a callable (details) -> None, or several")
        self.on_retry: tuple[RetryHook, ...] = hooks
        self._clock = clock
        # The system clock's bound method costs a Python call; time.monotonic does not.
        self._monotonic = time.monotonic if clock is SYSTEM_CLOCK else clock.monotonic
        self.sleep = sleep
        self.async_sleep = async_sleep
        self._rng = rng if rng is not None else random.Random()

    def __repr__(self) -> str:
        return (
            f"Retry(name={self.name!r}, attempts={self.attempts_allowed}, "
            f"timeout={self.timeout}, backoff={self._backoff!r})"
        )

    # -- the decision ------------------------------------------------------------

    def decide(
        self, attempt: int, elapsed: float, error: BaseException, *, operation: str | None = None
    ) -> RetryDecision:
        """Whether to retry after attempt number ``attempt`` failed with ``error``.

        ``elapsed`` is the time since the first attempt started; ``operation`` names the
        operation for the learner. The budget is not consulted (asking would spend it);
        the learner's probe count may advance.
        """
        retry, delay, reason, error_type, _ = self._decide(attempt, elapsed, error, operation)
        return RetryDecision(retry, delay, reason, error_type)

    def _decide(
        self, attempt: int, elapsed: float, error: BaseException, operation: str | None
    ) -> tuple[bool, float, RetryReason, ErrorType, Category]:
        # A plain tuple, not a RetryDecision: this runs on every failure (see RetryDecision).
        error_type, category = classify_in_full(error, self._type_overrides)
        if not self._matches(error):
            return False, 0.0, _NOT_RETRYABLE, error_type, category
        rule = self._rules.get(error_type) if self._rules else None
        limit = self.attempts_allowed
        if rule is not None and rule.attempts is not None:
            limit = rule.attempts
        if _TESTING.enabled and _TESTING.attempts < limit:
            limit = _TESTING.attempts
        if attempt >= limit:
            return False, 0.0, _ATTEMPTS_EXHAUSTED, error_type, category
        op = operation if operation is not None else self.name or "retry"
        learner = self._learner
        if learner is not None and not learner.should_retry(op, error_type):
            return False, 0.0, _LEARNED, error_type, category
        backoff = rule.backoff if rule is not None and rule.backoff is not None else self._backoff
        rate = learner.success_rate(op, error_type) if self._needs_rate and learner else None
        delay = backoff.delay(attempt, rate)
        if self._jitter is not None:
            delay = self._jitter.apply(delay, self._rng)
        reason = _BACKOFF
        if self._retry_after is not None:
            asked = self._asked_delay(self._retry_after, error)
            if asked is not None and asked > delay:
                delay, reason = asked, _RETRY_AFTER
        if self.timeout is not None and elapsed + delay >= self.timeout:
            # Sleeping past the deadline only to fail later helps no one: stop now.
            return False, 0.0, _DEADLINE, error_type, category
        return True, delay, reason, error_type, category

    @staticmethod
    def _asked_delay(extract: RetryAfterExtractor, error: BaseException) -> float | None:
        try:
            asked = extract(error)
        except Exception as exc:  # noqa: BLE001 - a broken extractor means "no request"
            _internal.report_internal_error("retry.retry_after", exc)
            return None
        if asked is None or not isinstance(asked, int | float) or not asked >= 0:
            return None
        return float(asked)

    def _report(
        self,
        state: _RetryState,
        error: BaseException,
        elapsed: float,
        delay: float,
        reason: RetryReason,
        *,
        giving_up: bool,
    ) -> None:
        """The RETRY event, and the hooks for a retry."""
        attributes: dict[str, Any] = {
            "attempt": state.attempt,
            "delay_s": delay,
            "elapsed_s": elapsed,
            "error_type": state.error_type._value_,
            "error_class": type(error).__qualname__,
            "error_message": _message(error),
            "reason": reason._value_,
        }
        if giving_up:
            attributes["giving_up"] = True
        if state.strategy is not None and not giving_up:
            attributes["prompt_strategy"] = state.strategy._value_
        get_pipeline().emit(
            _RETRY_EVENT,
            name=state.operation,
            severity=_MEDIUM if giving_up else _LOW,
            category=state.category._value_,
            attributes=attributes,
        )
        if giving_up or not self.on_retry:
            return
        details = RetryDetails(
            name=state.operation,
            attempt=state.attempt,
            delay=delay,
            elapsed=elapsed,
            error=error,
            error_type=state.error_type,
            reason=reason,
            prompt_strategy=state.strategy,
        )
        for hook in self.on_retry:
            try:
                hook(details)
            except Exception as exc:  # noqa: BLE001 - a broken hook must not stop the retry
                _internal.report_internal_error("retry.on_retry", exc)

    # -- the shells --------------------------------------------------------------

    def _state(self, fn: Callable[..., Any], started: float) -> _RetryState:
        state = _RetryState(self, self.name or describe(fn), started)
        if self._bindings is not None:
            state.binding = self._bindings.get(fn)
        return state

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``fn(*args, **kwargs)``, retried as the policy says."""
        if self._budget is not None:
            self._budget.record_call()
        if self._bindings is not None:
            self._bindings.get(fn)  # a callable that cannot take the prompt fails up front
        started = self._monotonic()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            error: BaseException = exc
        state = self._state(fn, started)
        sleep = self.sleep
        while True:
            delay = state.failed(error)
            if delay is None:
                try:
                    raise error
                finally:
                    del error  # no frame <-> traceback cycle left behind
            del error  # likewise; a failing attempt sets it again
            if delay > 0 and not _TESTING.enabled:
                sleep(delay)
            if state.binding is not None:
                next_args, next_kwargs = state.arguments(args, kwargs)
            else:
                next_args, next_kwargs = args, kwargs
            try:
                result = fn(*next_args, **next_kwargs)
            except Exception as exc:  # noqa: BLE001 - decide() sorts it; the rest is re-raised
                error = exc
                continue
            state.succeeded()
            return result

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """``await fn(*args, **kwargs)``, retried as the policy says."""
        if self._budget is not None:
            self._budget.record_call()
        if self._bindings is not None:
            self._bindings.get(fn)
        started = self._monotonic()
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if not self._matches(exc):
                raise
            error: BaseException = exc
        state = self._state(fn, started)
        sleep = self.async_sleep
        while True:
            delay = state.failed(error)
            if delay is None:
                try:
                    raise error
                finally:
                    del error
            del error
            if delay > 0 and not _TESTING.enabled:
                await sleep(delay)
            if state.binding is not None:
                next_args, next_kwargs = state.arguments(args, kwargs)
            else:
                next_args, next_kwargs = args, kwargs
            try:
                result = await fn(*next_args, **next_kwargs)
            except Exception as exc:  # noqa: BLE001 - decide() sorts it; the rest is re-raised
                error = exc
                continue
            state.succeeded()
            return result

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """The decorator form. With a prompt adjuster, ``fn``'s signature is checked now."""
        if self._bindings is not None:
            self._bindings.get(fn)
        return super().__call__(fn)

    def attempts(self, *, name: str | None = None) -> Iterator[RetryAttempt]:
        """The iterator form, for code that is not a single call::

        for attempt in retry.attempts(name="fetch"):
            with attempt:
                fetch()
        """
        state = self._start(name)
        while True:
            attempt = RetryAttempt(state)
            yield attempt
            delay = attempt._delay
            if delay is None:
                return  # succeeded (or the error is propagating)
            if delay > 0 and not _TESTING.enabled:
                self.sleep(delay)

    async def aattempts(self, *, name: str | None = None) -> AsyncIterator[RetryAttempt]:
        """The iterator form for async code: ``async for attempt in retry.aattempts(): ...``."""
        state = self._start(name)
        while True:
            attempt = RetryAttempt(state)
            yield attempt
            delay = attempt._delay
            if delay is None:
                return
            if delay > 0 and not _TESTING.enabled:
                await self.async_sleep(delay)

    def _start(self, name: str | None) -> _RetryState:
        if self._budget is not None:
            self._budget.record_call()
        return _RetryState(self, name or self.name or "retry", self._monotonic())


def _check_instance(value: object, cls: type, what: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise ConfigurationError(f"{what} must be a {cls.__name__}, got {value!r}")


def _parse_rules(
    rules: Mapping[ErrorType, ErrorTypeRule | Backoff] | None,
) -> dict[ErrorType, ErrorTypeRule]:
    parsed: dict[ErrorType, ErrorTypeRule] = {}
    for key, value in (rules or {}).items():
        try:
            error_type = ErrorType(key)
        except ValueError:
            names = ", ".join(t.name for t in ErrorType)
            raise ConfigurationError(
                f"per_error_type has key {key!r}, which is not an ErrorType: use one of {names}"
            ) from None
        if isinstance(value, ErrorTypeRule):
            parsed[error_type] = value
        elif isinstance(value, Backoff):
            parsed[error_type] = ErrorTypeRule(backoff=value)
        else:
            raise ConfigurationError(
                f"per_error_type[{error_type.name}] must be an ErrorTypeRule or a backoff, "
                f"got {value!r}"
            )
    return parsed


def _parse_overrides(
    overrides: Mapping[type[Any], ErrorType] | None,
) -> dict[type[BaseException], ErrorType] | None:
    if not overrides:
        return None
    parsed: dict[type[BaseException], ErrorType] = {}
    for cls, error_type in overrides.items():
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise ConfigurationError(f"error_types keys must be exception classes, got {cls!r}")
        try:
            parsed[cls] = ErrorType(error_type)
        except ValueError:
            raise ConfigurationError(
                f"error_types[{cls.__name__}] must be an ErrorType, got {error_type!r}"
            ) from None
    return parsed
