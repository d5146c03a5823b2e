"""The retry state machine against a model small enough to be obviously right.

Hypothesis drives many calls through one :class:`Retry` (its iterator form, so a
step can fail or succeed one attempt at a time) with a fake clock, and checks after
every step that the policy retried, waited and gave up exactly when the model says.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from fake_clock import FakeClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import agentkeel
from agentkeel.resilience._budget import RetryBudget
from agentkeel.resilience._retry import Retry, RetryAttempt, RetryDetails
from agentkeel.resilience._retry_strategies import Backoff, exponential, fixed, linear


class Retryable(ConnectionError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


class NotRetryable(Exception):
    pass


class RetryModel(RuleBasedStateMachine):
    """One policy, many calls; the model is a few lines of arithmetic per failure."""

    @initialize(
        attempts=st.integers(1, 5),
        timeout=st.one_of(st.none(), st.floats(0.5, 50)),
        backoff=st.sampled_from(["fixed", "exponential", "linear"]),
        initial=st.floats(0, 5),
        budget=st.one_of(
            st.none(), st.tuples(st.sampled_from([0.0, 0.25, 0.5]), st.integers(0, 3))
        ),
    )
    def setup(
        self,
        attempts: int,
        timeout: float | None,
        backoff: str,
        initial: float,
        budget: tuple[float, int] | None,
    ) -> None:
        self.clock = FakeClock(0.0, wall_offset=0.0)
        self.backoff: Backoff = {
            "fixed": fixed(initial),
            "exponential": exponential(initial=initial, multiplier=2, max=initial * 4),
            "linear": linear(initial=initial, increment=1, max=initial + 3),
        }[backoff]
        self.ratio, self.floor = budget if budget is not None else (0.0, 0)
        # A window far longer than any run: the model need not slide it.
        self.budget = (
            RetryBudget(
                ratio=self.ratio, min_retries_per_window=self.floor, window=1e9, clock=self.clock
            )
            if budget is not None
            else None
        )
        self.heard: list[RetryDetails] = []
        self.retry = Retry(
            on=ConnectionError,
            attempts=attempts,
            timeout=timeout,
            backoff=self.backoff,
            jitter=False,
            budget=self.budget,
            clock=self.clock,
            sleep=self.clock.sleep,
            on_retry=self.heard.append,
        )
        self.max_attempts = attempts
        self.timeout = timeout
        # The model's state.
        self.loop: Iterator[RetryAttempt] | None = None
        self.attempt: RetryAttempt | None = None
        self.number = 0
        self.started = 0.0
        self.calls = 0
        self.retries = 0
        self.expected_sleep = 0.0

    def _model_delay(self, error: Exception) -> tuple[bool, float]:
        """Whether the model retries after ``error``, and after how long."""
        if not isinstance(error, ConnectionError):
            return False, 0.0
        if self.number >= self.max_attempts:
            return False, 0.0
        delay = self.backoff.delay(self.number)
        asked = getattr(error, "retry_after", None)
        if asked is not None and asked > delay:
            delay = asked
        elapsed = self.clock.now - self.started
        if self.timeout is not None and elapsed + delay >= self.timeout:
            return False, 0.0
        allowed = math.floor(self.ratio * self.calls) + self.floor
        if self.budget is not None and self.retries >= allowed:
            return False, 0.0
        return True, delay

    @precondition(lambda self: self.loop is None)
    @rule()
    def start_call(self) -> None:
        self.loop = self.retry.attempts(name="model")
        self.attempt = next(self.loop)
        self.number = 1
        self.started = self.clock.now
        self.calls += 1

    @precondition(lambda self: self.loop is not None)
    @rule(
        work=st.floats(0, 10),
        retryable=st.booleans(),
        retry_after=st.one_of(st.none(), st.floats(0, 20)),
    )
    def fail(self, work: float, retryable: bool, retry_after: float | None) -> None:
        assert self.loop is not None
        assert self.attempt is not None
        assert self.attempt.number == self.number
        self.clock.now += work
        error: Exception = Retryable(retry_after) if retryable else NotRetryable()
        retries, delay = self._model_delay(error)
        heard_before = len(self.heard)
        try:
            with self.attempt:
                raise error
        except Exception as raised:
            assert not retries, "the policy gave up where the model retries"
            assert raised is error  # noqa: PT017 - the original, never wrapped
            self.loop = self.attempt = None
            assert len(self.heard) == heard_before
            return
        assert retries, "the policy retried where the model gives up"
        self.attempt = next(self.loop)
        self.retries += 1
        self.expected_sleep += delay
        self.number += 1
        (details,) = self.heard[heard_before:]
        assert details.attempt == self.number - 1
        assert details.delay == delay

    @precondition(lambda self: self.loop is not None)
    @rule(work=st.floats(0, 10))
    def succeed(self, work: float) -> None:
        assert self.loop is not None
        assert self.attempt is not None
        self.clock.now += work
        with self.attempt:
            pass
        with pytest.raises(StopIteration):
            next(self.loop)
        self.loop = self.attempt = None

    @invariant()
    def waited_as_the_model_says(self) -> None:
        assert self.clock.slept == pytest.approx(self.expected_sleep)

    @invariant()
    def the_budget_is_never_exceeded(self) -> None:
        if self.budget is not None:
            stats = self.budget.stats()
            assert stats.calls == self.calls
            assert stats.retries == self.retries
            assert stats.retries <= math.floor(self.ratio * stats.calls) + self.floor

    @invariant()
    def attempts_never_exceed_the_limit(self) -> None:
        assert self.number <= self.max_attempts


RetryModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class TestRetryModel(RetryModel.TestCase):  # type: ignore[misc,valid-type]
    def setUp(self) -> None:
        # Events go nowhere (the suite's fixture shuts the pipeline down afterwards).
        agentkeel.configure(store="none")
