"""Retry: the shells (call, acall, decorator, iterators), the rules, events and hooks."""

from __future__ import annotations

import asyncio
import random
import traceback
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from _policy_events import CapturedEvents, async_test
from fake_clock import FakeClock

from agentkeel import ConfigurationError, EventType, _internal
from agentkeel.events import Event, Severity
from agentkeel.resilience._adaptive import SuccessRateLearner
from agentkeel.resilience._error_types import ErrorType
from agentkeel.resilience._retry import (
    ErrorTypeRule,
    Retry,
    RetryDecision,
    RetryDetails,
    RetryReason,
    set_retry_testing,
)
from agentkeel.resilience._retry_strategies import adaptive, exponential, fixed, linear


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def policy(clock: FakeClock, **options: Any) -> Retry:
    options.setdefault("on", ConnectionError)
    options.setdefault("jitter", False)
    return Retry(clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **options)


class Flaky:
    """Raises the given errors in turn, then returns ``result``."""

    def __init__(
        self,
        *errors: BaseException,
        result: Any = "ok",
        clock: FakeClock | None = None,
        takes: float = 0.0,
    ) -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0
        self.clock = clock
        self.takes = takes

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.takes
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def retries(events: CapturedEvents) -> list[Event]:
    return events.of_type(EventType.RETRY)


# -- the sync shell ----------------------------------------------------------------


def test_a_call_that_succeeds_is_called_once_and_leaves_no_trace(
    clock: FakeClock, events: CapturedEvents
) -> None:
    fn = Flaky()
    assert policy(clock).call(fn, 1, key="v") == "ok"
    assert fn.calls == 1
    assert clock.sleeps == []
    assert retries(events) == []


def test_retries_until_success_with_the_backoffs_delays(
    clock: FakeClock, events: CapturedEvents
) -> None:
    fn = Flaky(ConnectionError("a"), ConnectionError("b"))
    retry = policy(clock, attempts=3, backoff=exponential(initial=1, max=10), name="search")
    assert retry.call(fn) == "ok"
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    first, second = retries(events)
    assert first.name == "search"
    assert first.severity == Severity.LOW
    assert first.category == "network"
    assert first.attributes["attempt"] == 1
    assert first.attributes["delay_s"] == 1.0
    assert first.attributes["error_type"] == "communication_error"
    assert first.attributes["error_class"] == "ConnectionError"
    assert first.attributes["error_message"] == "a"
    assert first.attributes["reason"] == "backoff"
    assert "giving_up" not in first.attributes
    assert second.attributes["attempt"] == 2
    assert second.attributes["delay_s"] == 2.0
    assert second.attributes["elapsed_s"] == 1.0


def test_when_attempts_run_out_the_original_exception_is_reraised(
    clock: FakeClock, events: CapturedEvents
) -> None:
    last = ConnectionError("third")
    fn = Flaky(ConnectionError("first"), ConnectionError("second"), last)
    with pytest.raises(ConnectionError) as caught:
        policy(clock, attempts=3, backoff=fixed(0.5)).call(fn)
    assert caught.value is last
    # The traceback still reaches into the callable that raised it.
    assert "__call__" in "".join(traceback.format_tb(caught.value.__traceback__))
    assert fn.calls == 3
    assert clock.sleeps == [0.5, 0.5]
    *_, give_up = retries(events)
    assert give_up.attributes["giving_up"] is True
    assert give_up.attributes["reason"] == "attempts_exhausted"
    assert give_up.attributes["attempt"] == 3
    assert give_up.attributes["delay_s"] == 0.0
    assert give_up.severity == Severity.MEDIUM


def test_an_error_outside_on_is_not_retried_and_not_reported(
    clock: FakeClock, events: CapturedEvents
) -> None:
    error = ValueError("bad input")
    fn = Flaky(error)
    with pytest.raises(ValueError) as caught:
        policy(clock).call(fn)
    assert caught.value is error
    assert fn.calls == 1
    assert retries(events) == []


def test_an_error_outside_on_after_retries_gives_up_as_not_retryable(
    clock: FakeClock, events: CapturedEvents
) -> None:
    fn = Flaky(ConnectionError("a"), KeyError("gone"))
    with pytest.raises(KeyError):
        policy(clock, attempts=5).call(fn)
    assert fn.calls == 2
    *_, give_up = retries(events)
    assert give_up.attributes["reason"] == "not_retryable"
    assert give_up.attributes["error_type"] == "tool_failure"


def test_base_exceptions_are_never_retried(clock: FakeClock) -> None:
    fn = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        policy(clock, on=BaseException).call(fn)
    assert fn.calls == 1


def test_attempts_one_means_a_single_try(clock: FakeClock, events: CapturedEvents) -> None:
    fn = Flaky(ConnectionError("a"))
    with pytest.raises(ConnectionError):
        policy(clock, attempts=1).call(fn)
    assert fn.calls == 1
    (give_up,) = retries(events)
    assert give_up.attributes["reason"] == "attempts_exhausted"


def test_arguments_reach_every_attempt(clock: FakeClock) -> None:
    seen: list[tuple[Any, ...]] = []

    def fn(a: int, *, b: str) -> str:
        seen.append((a, b))
        if len(seen) < 2:
            raise ConnectionError
        return f"{a}{b}"

    assert policy(clock).call(fn, 1, b="x") == "1x"
    assert seen == [(1, "x"), (1, "x")]


# -- on= ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "error", "retried"),
    [
        (ConnectionError, ConnectionResetError(), True),
        ((TimeoutError, ConnectionError), TimeoutError(), True),
        ([TimeoutError], ConnectionError(), False),
        (ErrorType.COMMUNICATION_ERROR, ConnectionError(), True),
        (ErrorType.COMMUNICATION_ERROR, TimeoutError(), False),
        ({ErrorType.TIMEOUT_ERROR, ErrorType.COMMUNICATION_ERROR}, TimeoutError(), True),
        ((KeyError, ErrorType.TIMEOUT_ERROR), KeyError(), True),
        ((KeyError, ErrorType.TIMEOUT_ERROR), TimeoutError(), True),
        ((KeyError, ErrorType.TIMEOUT_ERROR), ValueError(), False),
        (lambda exc: "retry me" in str(exc), RuntimeError("please retry me"), True),
        (lambda exc: "retry me" in str(exc), RuntimeError("no"), False),
    ],
)
def test_on_accepts_classes_error_types_and_predicates(
    clock: FakeClock, on: Any, error: Exception, retried: bool
) -> None:
    fn = Flaky(error)
    if retried:
        assert policy(clock, on=on).call(fn) == "ok"
        assert fn.calls == 2
    else:
        with pytest.raises(type(error)):
            policy(clock, on=on).call(fn)
        assert fn.calls == 1


@pytest.mark.parametrize("on", [None, "ConnectionError", [], [int], 3, [ConnectionError, "x"]])
def test_on_must_say_which_errors(on: Any) -> None:
    with pytest.raises(ConfigurationError, match="on="):
        Retry(on=on)


def test_on_is_required() -> None:
    with pytest.raises(TypeError):
        Retry()  # type: ignore[call-arg]


# -- total time ----------------------------------------------------------------------


def test_stops_when_the_next_delay_would_pass_the_deadline(
    clock: FakeClock, events: CapturedEvents
) -> None:
    # Each call takes 1 s; waits are 1, 2, 4 …; the deadline is 6 s after the start.
    fn = Flaky(*[ConnectionError(str(i)) for i in range(10)], clock=clock, takes=1.0)
    retry = policy(clock, attempts=10, timeout=6, backoff=exponential(initial=1, max=100))
    with pytest.raises(ConnectionError):
        retry.call(fn)
    # Fails at 1 s, waits 1; fails at 3 s, waits 2; fails at 6 s: waiting 4 would pass 6 s.
    assert clock.sleeps == [1.0, 2.0]
    assert fn.calls == 3
    *_, give_up = retries(events)
    assert give_up.attributes["reason"] == "deadline"
    assert give_up.attributes["elapsed_s"] == 6.0


def test_timeout_accepts_a_timedelta(clock: FakeClock) -> None:
    retry = policy(clock, timeout=timedelta(minutes=2))
    assert retry.timeout == 120.0


def test_no_timeout_bounds_only_attempts(clock: FakeClock) -> None:
    fn = Flaky(*[ConnectionError() for _ in range(4)])
    retry = policy(clock, attempts=5, timeout=None, backoff=fixed(3600))
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [3600.0] * 4


# -- Retry-After ---------------------------------------------------------------------


class Throttled(ConnectionError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


def test_a_longer_retry_after_wins_over_the_backoff(
    clock: FakeClock, events: CapturedEvents
) -> None:
    fn = Flaky(Throttled(5.0), Throttled(0.01))
    assert policy(clock, backoff=fixed(1), attempts=3).call(fn) == "ok"
    assert clock.sleeps == [5.0, 1.0]
    first, second = retries(events)
    assert first.attributes["reason"] == "retry_after"
    assert second.attributes["reason"] == "backoff"


def test_a_retry_after_past_the_deadline_stops_instead_of_sleeping(
    clock: FakeClock, events: CapturedEvents
) -> None:
    error = Throttled(120.0)
    with pytest.raises(Throttled) as caught:
        policy(clock, timeout=60).call(Flaky(error))
    assert caught.value is error
    assert clock.sleeps == []
    (give_up,) = retries(events)
    assert give_up.attributes["reason"] == "deadline"


def test_retry_after_can_be_ignored_or_extracted_otherwise(clock: FakeClock) -> None:
    assert policy(clock, backoff=fixed(1), retry_after=None).call(Flaky(Throttled(30))) == "ok"
    assert clock.sleeps == [1.0]

    def from_message(exc: BaseException) -> float | None:
        return 7.0 if "slow" in str(exc) else None

    clock.sleeps.clear()
    assert (
        policy(clock, backoff=fixed(1), retry_after=from_message).call(
            Flaky(ConnectionError("slow down"))
        )
        == "ok"
    )
    assert clock.sleeps == [7.0]


@pytest.mark.parametrize("odd", [-1.0, float("nan"), "3", None])
def test_unusable_retry_after_values_are_ignored(clock: FakeClock, odd: Any) -> None:
    assert (
        policy(clock, backoff=fixed(1), retry_after=lambda exc: odd).call(Flaky(ConnectionError()))
        == "ok"
    )
    assert clock.sleeps == [1.0]


def test_a_broken_extractor_is_an_internal_error(clock: FakeClock) -> None:
    def broken(exc: BaseException) -> float:
        raise RuntimeError("extractor bug")

    with pytest.raises(RuntimeError, match="extractor bug"):  # strict mode: raised
        policy(clock, retry_after=broken).call(Flaky(ConnectionError()))

    _internal.set_strict(False)
    assert (
        policy(clock, backoff=fixed(1), retry_after=broken).call(Flaky(ConnectionError())) == "ok"
    )
    assert _internal.internal_error_counts()["retry.retry_after"] == 2


# -- per error type --------------------------------------------------------------------


def test_each_error_type_can_have_its_own_backoff_and_attempts(clock: FakeClock) -> None:
    retry = policy(
        clock,
        on=(ConnectionError, TimeoutError, ValueError),
        attempts=4,
        backoff=fixed(1),
        per_error_type={
            ErrorType.TIMEOUT_ERROR: linear(initial=10, increment=10, max=100),
            "validation_error": ErrorTypeRule(attempts=1),
            ErrorType.COMMUNICATION_ERROR: ErrorTypeRule(backoff=fixed(2), attempts=6),
        },
    )
    fn = Flaky(TimeoutError(), TimeoutError(), ConnectionError())
    assert retry.call(fn) == "ok"
    assert clock.sleeps == [10.0, 20.0, 2.0]

    with pytest.raises(ValueError):
        retry.call(Flaky(ValueError("never retried")))

    clock.sleeps.clear()
    fn = Flaky(*[ConnectionError() for _ in range(5)])
    assert retry.call(fn) == "ok"  # six attempts for this type, though the default is four
    assert clock.sleeps == [2.0] * 5


@pytest.mark.parametrize(
    "rules",
    [
        {"no_such_type": fixed(1)},
        {ErrorType.TIMEOUT_ERROR: 3},
    ],
)
def test_bad_per_error_type_rules_fail(rules: Any) -> None:
    with pytest.raises(ConfigurationError):
        Retry(on=Exception, per_error_type=rules)


def test_error_type_rule_validates_itself() -> None:
    with pytest.raises(ConfigurationError, match="attempts"):
        ErrorTypeRule(attempts=-1)
    with pytest.raises(ConfigurationError, match="backoff"):
        ErrorTypeRule(backoff=1.5)  # type: ignore[arg-type]


def test_your_exception_classes_can_be_mapped_to_error_types(
    clock: FakeClock, events: CapturedEvents
) -> None:
    class PlannerConfused(Exception):
        pass

    retry = policy(
        clock,
        on=ErrorType.AGENT_FAILURE,
        error_types={PlannerConfused: ErrorType.AGENT_FAILURE},
        per_error_type={ErrorType.AGENT_FAILURE: fixed(4)},
    )
    assert retry.call(Flaky(PlannerConfused())) == "ok"
    assert clock.sleeps == [4.0]
    assert retries(events)[0].attributes["error_type"] == "agent_failure"


@pytest.mark.parametrize(
    "mapping", [{"PlannerConfused": ErrorType.AGENT_FAILURE}, {ValueError: "no_such_type"}]
)
def test_bad_error_type_mappings_fail(mapping: Any) -> None:
    with pytest.raises(ConfigurationError, match="error_types"):
        Retry(on=Exception, error_types=mapping)


# -- jitter ----------------------------------------------------------------------------


def test_jitter_is_on_by_default_and_keeps_at_least_half_the_delay(clock: FakeClock) -> None:
    retry = Retry(
        on=ConnectionError,
        attempts=50,
        backoff=fixed(1),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(3),
    )
    assert retry.call(Flaky(*[ConnectionError() for _ in range(40)])) == "ok"
    assert all(0.5 <= s <= 1.0 for s in clock.sleeps)
    assert len(set(clock.sleeps)) == 40


def test_full_jitter(clock: FakeClock) -> None:
    retry = policy(clock, attempts=50, backoff=fixed(1), jitter="full", rng=random.Random(1))
    retry.call(Flaky(*[ConnectionError() for _ in range(40)]))
    assert min(clock.sleeps) < 0.5 <= max(clock.sleeps)


# -- hooks -----------------------------------------------------------------------------


def test_hooks_hear_about_each_retry(clock: FakeClock) -> None:
    heard: list[RetryDetails] = []
    also: list[int] = []
    retry = policy(
        clock,
        backoff=fixed(2),
        name="lookup",
        on_retry=[heard.append, lambda d: also.append(d.attempt)],
    )
    error = ConnectionError("x")
    assert retry.call(Flaky(error)) == "ok"
    (details,) = heard
    assert details.name == "lookup"
    assert details.attempt == 1
    assert details.delay == 2.0
    assert details.error is error
    assert details.error_type is ErrorType.COMMUNICATION_ERROR
    assert details.reason is RetryReason.BACKOFF
    assert details.prompt_strategy is None
    assert also == [1]


def test_a_single_hook_needs_no_list(clock: FakeClock) -> None:
    heard: list[RetryDetails] = []
    policy(clock, on_retry=heard.append).call(Flaky(ConnectionError()))
    assert len(heard) == 1


def test_hooks_are_not_called_when_giving_up(clock: FakeClock) -> None:
    heard: list[RetryDetails] = []
    with pytest.raises(ConnectionError):
        policy(clock, attempts=1, on_retry=heard.append).call(Flaky(ConnectionError()))
    assert heard == []


def test_a_broken_hook_does_not_stop_the_retry(clock: FakeClock) -> None:
    def broken(details: RetryDetails) -> None:
        raise RuntimeError("hook bug")

    with pytest.raises(RuntimeError, match="hook bug"):  # strict mode: raised
        policy(clock, on_retry=broken).call(Flaky(ConnectionError()))

    _internal.set_strict(False)
    assert policy(clock, on_retry=broken).call(Flaky(ConnectionError())) == "ok"
    assert _internal.internal_error_counts()["retry.on_retry"] == 2


# -- testing mode ------------------------------------------------------------------------


def test_testing_mode_never_sleeps_and_caps_attempts() -> None:
    slept: list[float] = []
    retry = Retry(
        on=ConnectionError,
        attempts=10,
        timeout=None,
        backoff=fixed(100),
        jitter=False,
        sleep=slept.append,
    )
    set_retry_testing(True, attempts=2)
    try:
        fn = Flaky(*[ConnectionError() for _ in range(5)])
        with pytest.raises(ConnectionError):
            retry.call(fn)
        assert fn.calls == 2
        assert slept == []
    finally:
        set_retry_testing(False)
    fn = Flaky(*[ConnectionError() for _ in range(5)])
    assert retry.call(fn) == "ok"
    assert slept == [100.0] * 5


def test_testing_mode_validates_attempts() -> None:
    with pytest.raises(ConfigurationError):
        set_retry_testing(True, attempts=0)


# -- the async shell ---------------------------------------------------------------------


@async_test
async def test_acall_retries_coroutines(clock: FakeClock, events: CapturedEvents) -> None:
    fn = Flaky(ConnectionError("a"), ConnectionError("b"))

    async def work(x: int) -> str:
        return f"{fn()}{x}"

    retry = policy(clock, backoff=exponential(initial=1, max=10), name="awork")
    assert await retry.acall(work, 7) == "ok7"
    assert clock.sleeps == [1.0, 2.0]
    assert [e.attributes["attempt"] for e in retries(events)] == [1, 2]


@async_test
async def test_acall_reraises_the_original(clock: FakeClock) -> None:
    last = ConnectionError("last")
    fn = Flaky(ConnectionError(), last)

    async def work() -> str:
        return str(fn())

    with pytest.raises(ConnectionError) as caught:
        await policy(clock, attempts=2).acall(work)
    assert caught.value is last

    async def wrong() -> str:
        raise ValueError("not ours")

    with pytest.raises(ValueError, match="not ours"):
        await policy(clock).acall(wrong)


@async_test
async def test_cancellation_is_never_retried(clock: FakeClock) -> None:
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await policy(clock, on=BaseException).acall(work)
    assert calls == 1


@async_test
async def test_the_default_async_sleep_is_asyncio_sleep() -> None:
    set_retry_testing(True, attempts=3)  # no real sleeping in tests
    try:
        retry = Retry(on=ConnectionError)
        fn = Flaky(ConnectionError())

        async def work() -> Any:
            return fn()

        assert await retry.acall(work) == "ok"
        assert retry.async_sleep is asyncio.sleep
    finally:
        set_retry_testing(False)


# -- the decorator -----------------------------------------------------------------------


def test_the_decorator_keeps_name_and_docstring(clock: FakeClock) -> None:
    fn = Flaky(ConnectionError())

    @policy(clock)
    def fetch(url: str) -> str:
        """Fetch it."""
        return f"{fn()} {url}"

    assert fetch("u") == "ok u"
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch it."
    assert clock.sleeps == [0.1]


def test_the_decorator_names_the_operation_after_the_function(
    clock: FakeClock, events: CapturedEvents
) -> None:
    fn = Flaky(ConnectionError())

    @policy(clock)
    def fetch() -> str:
        return str(fn())

    fetch()
    assert retries(events)[0].name.endswith("fetch")


@async_test
async def test_the_decorator_on_async_def(clock: FakeClock) -> None:
    fn = Flaky(ConnectionError())

    @policy(clock)
    async def fetch() -> str:
        return str(fn())

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch() == "ok"
    assert clock.sleeps == [0.1]


# -- the iterator forms ------------------------------------------------------------------


def test_the_iterator_form_retries_a_block(clock: FakeClock, events: CapturedEvents) -> None:
    fn = Flaky(ConnectionError(), ConnectionError())
    numbers = []
    for attempt in policy(clock, backoff=fixed(1)).attempts(name="block"):
        with attempt:
            numbers.append(attempt.number)
            result = fn()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [1.0, 1.0]
    assert {e.name for e in retries(events)} == {"block"}
    assert "block" in repr(attempt)


def test_the_iterator_form_reraises_when_giving_up(clock: FakeClock) -> None:
    last = ConnectionError("last")
    fn = Flaky(ConnectionError(), last)
    with pytest.raises(ConnectionError) as caught:  # noqa: PT012 - the loop is under test
        for attempt in policy(clock, attempts=2).attempts():
            with attempt:
                fn()
    assert caught.value is last


def test_the_iterator_form_lets_other_errors_through(clock: FakeClock) -> None:
    runs = 0
    with pytest.raises(ValueError, match="not ours"):  # noqa: PT012 - the loop is under test
        for attempt in policy(clock).attempts():
            with attempt:
                runs += 1
                raise ValueError("not ours")
    assert runs == 1

    with pytest.raises(KeyboardInterrupt):  # noqa: PT012 - the loop is under test
        for attempt in policy(clock, on=BaseException).attempts():
            with attempt:
                raise KeyboardInterrupt


def test_the_iterator_form_stops_if_the_attempt_is_not_entered(clock: FakeClock) -> None:
    seen = list(policy(clock).attempts())
    assert len(seen) == 1


@async_test
async def test_the_async_iterator_form(clock: FakeClock) -> None:
    fn = Flaky(ConnectionError(), ConnectionError())
    numbers = []
    async for attempt in policy(clock, backoff=fixed(2)).aattempts():
        with attempt:
            numbers.append(attempt.number)
            fn()
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [2.0, 2.0]


# -- decide() ----------------------------------------------------------------------------


def test_decide_is_the_whole_rulebook(clock: FakeClock) -> None:
    retry = policy(clock, attempts=3, timeout=10, backoff=fixed(2))
    assert retry.decide(1, 0.0, ConnectionError()) == RetryDecision(
        True, 2.0, RetryReason.BACKOFF, ErrorType.COMMUNICATION_ERROR
    )
    assert retry.decide(3, 0.0, ConnectionError()).reason is RetryReason.ATTEMPTS_EXHAUSTED
    assert retry.decide(1, 8.0, ConnectionError()).reason is RetryReason.DEADLINE
    assert retry.decide(1, 7.9, ConnectionError()).retry
    refused = retry.decide(1, 0.0, ValueError())
    assert refused == RetryDecision(
        False, 0.0, RetryReason.NOT_RETRYABLE, ErrorType.VALIDATION_ERROR
    )
    assert retry.decide(1, 0.0, Throttled(9.0)) == RetryDecision(
        True, 9.0, RetryReason.RETRY_AFTER, ErrorType.COMMUNICATION_ERROR
    )


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": -2}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": "60"}, "timeout"),
        ({"backoff": 3}, "backoff"),
        ({"backoff": lambda n: n}, "backoff"),
        ({"jitter": "lots"}, "jitter"),
        ({"jitter": 2.0}, "jitter"),
        ({"learner": object()}, "learner"),
        ({"budget": 0.2}, "budget"),
        ({"prompt_adjuster": "simplify"}, "prompt_adjuster"),
        ({"prompt_kwarg": "prompt"}, "prompt_adjuster"),
        ({"name": ""}, "name"),
        ({"on_retry": [3]}, "on_retry"),
        ({"retry_after": 5}, "retry_after"),
        ({"backoff": adaptive()}, "learner"),
        ({"per_error_type": {ErrorType.TIMEOUT_ERROR: adaptive()}}, "learner"),
    ],
)
def test_invalid_configuration_fails_at_construction(options: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Retry(on=ConnectionError, **options)


def test_adaptive_backoff_with_a_learner_is_fine() -> None:
    Retry(on=ConnectionError, backoff=adaptive(), learner=SuccessRateLearner())


def test_repr_shows_the_bounds() -> None:
    text = repr(Retry(on=ConnectionError, attempts=4, timeout=9, name="x"))
    assert "attempts=4" in text
    assert "timeout=9.0" in text


def test_events_survive_unprintable_and_huge_errors(
    clock: FakeClock, events: CapturedEvents
) -> None:
    class Unprintable(ConnectionError):
        def __str__(self) -> str:
            raise RuntimeError("no")

    policy(clock, attempts=3).call(Flaky(Unprintable(), ConnectionError("x" * 10_000)))
    first, second = retries(events)
    assert first.attributes["error_message"] == "<unprintable Unprintable>"
    assert len(second.attributes["error_message"]) == 500
    assert second.attributes["error_message"].endswith("…")
