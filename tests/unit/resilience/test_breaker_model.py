"""Hypothesis drives the breaker and a deliberately naive model side by side.

The model keeps every outcome in a plain list and recomputes the window from
scratch; the breaker uses deques, ring positions, per-second buckets and
generations. Any difference in what they admit, count or decide is a bug in one
of them. Calls that finish at once go through the real ``CircuitBreaker.call``
with a fake clock; calls held open across steps use the state machine's own
permits, so that out-of-order completion and state changes mid-call are covered.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from fake_clock import FakeClock
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agentkeel.resilience._breaker import CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig, ResolvedBreakerConfig
from agentkeel.resilience._breaker_machine import BreakerMachine, Permit
from agentkeel.resilience._errors import CircuitOpenError

# What each kind of exception means under the config below.
EXCEPTIONS: dict[str, type[BaseException]] = {
    "recorded": ConnectionError,  # an OSError: a failure
    "ignored": FileNotFoundError,  # an OSError too, but ignored wins
    "other": ValueError,  # in neither list: counts as a success
    "cancelled": asyncio.CancelledError,  # not an Exception: not counted
}


@dataclass
class Model:
    """The rules, written as plainly as possible."""

    cfg: ResolvedBreakerConfig
    now: float
    state: str = "closed"
    generation: int = 0
    changed_at: float = 0.0
    retry_at: float = 0.0
    forced: bool = False
    outcomes: list[tuple[int, bool, bool]] = field(default_factory=list)  # (second, failed, slow)
    admitted: int = 0
    good: int = 0
    bad: int = 0
    successes: int = 0
    failures: int = 0
    slow: int = 0
    ignored: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        self.changed_at = self.retry_at = self.now

    def window(self, now: float) -> list[tuple[int, bool, bool]]:
        if self.cfg.time_window:
            newest = math.floor(now)
            return [o for o in self.outcomes if o[0] > newest - self.cfg.window_size]
        return self.outcomes[-self.cfg.window_size :]

    def enter(self, state: str, now: float, *, retry_at: float | None = None) -> None:
        if state != "open":
            self.outcomes = []
        self.state = state
        self.generation += 1
        self.changed_at = now
        self.forced = False
        self.admitted = self.good = self.bad = 0
        if state == "open":
            self.retry_at = now + self.cfg.wait_in_open if retry_at is None else retry_at
        else:
            self.retry_at = now

    def advance(self, now: float) -> None:
        if self.state == "open" and now >= self.retry_at:
            self.enter("half_open", now)
        elif self.state == "half_open" and now >= self.changed_at + self.cfg.max_wait_in_half_open:
            self.enter("open", now)

    def acquire(self, now: float) -> int | None:
        self.advance(now)
        if self.state == "closed":
            return self.generation
        if self.state == "half_open" and self.admitted < self.cfg.half_open_max_calls:
            self.admitted += 1
            return self.generation
        self.rejected += 1
        return None

    def finish(self, generation: int | None, now: float, duration: float, kind: str) -> None:
        if kind in ("ignored", "cancelled"):
            self.ignored += 1
            if generation == self.generation and self.state == "half_open" and self.admitted > 0:
                self.admitted -= 1
            return
        failed = kind == "recorded" or duration > self.cfg.failure_duration
        slow = duration > self.cfg.slow_call_duration
        self.record(generation, now, failed, slow)

    def record(self, generation: int | None, now: float, failed: bool, slow: bool) -> None:
        if failed:
            self.failures += 1
        else:
            self.successes += 1
        if slow:
            self.slow += 1
        if generation is not None and generation != self.generation:
            return
        if self.state == "closed":
            self.outcomes.append((math.floor(now), failed, slow))
            window = self.window(now)
            if len(window) >= self.cfg.minimum_calls:
                failure_rate = sum(o[1] for o in window) / len(window)
                slow_rate = sum(o[2] for o in window) / len(window)
                if (
                    failure_rate >= self.cfg.failure_rate_threshold
                    or slow_rate >= self.cfg.slow_call_rate_threshold
                ):
                    self.enter("open", now)
        elif self.state == "half_open":
            self.outcomes.append((math.floor(now), failed, slow))
            if failed or slow:
                self.bad += 1
                allowed = self.cfg.half_open_max_calls - self.cfg.success_threshold
                if self.bad > allowed:
                    self.enter("open", now)
            else:
                self.good += 1
                if self.good >= self.cfg.success_threshold:
                    self.enter("closed", now)

    def trip(self, now: float) -> None:
        if self.state != "open":
            self.enter("open", now)

    def force_open(self, now: float, duration: float) -> None:
        self.enter("open", now, retry_at=now + duration)
        self.forced = True

    def reset(self, now: float) -> None:
        self.successes = self.failures = self.slow = self.ignored = self.rejected = 0
        self.enter("closed", now)


configs = st.builds(
    CircuitBreakerConfig,
    failure_rate_threshold=st.sampled_from([0.25, 0.5, 2 / 3, 1.0]),
    minimum_calls=st.integers(1, 6),
    sliding_window=st.sampled_from(["count", "time"]),
    window_size=st.integers(1, 5),
    slow_call_duration=st.sampled_from([None, 1.0]),
    slow_call_rate_threshold=st.sampled_from([0.5, 1.0]),
    wait_in_open=st.sampled_from([0.0, 1.0, 4.0]),
    half_open_max_calls=st.integers(1, 3),
    max_wait_in_half_open=st.sampled_from([None, 6.0]),
    timeout=st.sampled_from([None, 2.5]),
    record_exceptions=st.just((OSError,)),
    ignore_exceptions=st.just((FileNotFoundError,)),
).flatmap(
    lambda c: st.builds(
        lambda s: CircuitBreakerConfig(**{**_fields(c), "success_threshold": s}),
        st.integers(1, c.half_open_max_calls),
    )
)


def _fields(config: CircuitBreakerConfig) -> dict[str, Any]:
    names = [
        "failure_rate_threshold",
        "minimum_calls",
        "sliding_window",
        "window_size",
        "slow_call_duration",
        "slow_call_rate_threshold",
        "wait_in_open",
        "half_open_max_calls",
        "max_wait_in_half_open",
        "timeout",
        "record_exceptions",
        "ignore_exceptions",
    ]
    return {name: getattr(config, name) for name in names}


durations = st.sampled_from([0.0, 0.5, 1.5, 3.0])
kinds = st.sampled_from(["none", *EXCEPTIONS])


class BreakerVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(100.0, wall_offset=0.0)
        self.held: list[tuple[Permit, int]] = []

    @initialize(config=configs)
    def start(self, config: CircuitBreakerConfig) -> None:
        self.breaker = CircuitBreaker("model", config, clock=self.clock)
        self.machine: BreakerMachine = self.breaker._machine
        self.model = Model(config.resolved, self.clock.now)

    @rule(seconds=st.sampled_from([0.0, 0.4, 1.0, 2.5, 7.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(duration=durations, kind=kinds)
    def call(self, duration: float, kind: str) -> None:
        expected = self.model.acquire(self.clock.now)
        ran = False

        def tool() -> str:
            nonlocal ran
            ran = True
            self.clock.now += duration
            if kind != "none":
                raise EXCEPTIONS[kind]("from the tool")
            return "result"

        try:
            assert self.breaker.call(tool) == "result"
        except CircuitOpenError:
            pass
        except (OSError, ValueError, asyncio.CancelledError):
            assert kind != "none"
        assert ran == (expected is not None)
        if expected is not None:
            self.model.finish(expected, self.clock.now, duration, kind)

    @rule()
    def start_held_call(self) -> None:
        expected = self.model.acquire(self.clock.now)
        self.machine.advance(self.clock.now)
        decision = self.machine.acquire(self.clock.now)
        assert (expected is None) == decision.rejected
        if isinstance(decision, Permit):
            assert expected is not None
            self.held.append((decision, expected))

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 10), duration=durations, kind=kinds)
    def finish_held_call(self, index: int, duration: float, kind: str) -> None:
        permit, generation = self.held.pop(index % len(self.held))
        now = self.clock.now
        if kind == "none":
            self.machine.on_success(permit, now, duration)
        else:
            self.machine.on_failure(permit, now, duration, EXCEPTIONS[kind]("x"))
        self.model.finish(generation, now, duration, kind)

    @rule(failed=st.booleans())
    def record_by_hand(self, failed: bool) -> None:
        if failed:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        self.model.record(None, self.clock.now, failed, False)

    @rule()
    def trip(self) -> None:
        self.machine.trip(self.clock.now, "resource")
        self.model.trip(self.clock.now)

    @rule(duration=st.sampled_from([math.inf, 3.0]))
    def force_open(self, duration: float) -> None:
        self.breaker.force_open(None if math.isinf(duration) else duration)
        self.model.force_open(self.clock.now, duration)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.reset(self.clock.now)

    @invariant()
    def same_state_and_numbers(self) -> None:
        if not hasattr(self, "model"):
            return
        now = self.clock.now
        # Reading the state applies the clock (open -> half-open) on both sides.
        self.model.advance(now)
        assert self.breaker.state.value == self.model.state
        snap = self.machine.snapshot(now)
        model = self.model
        window = model.window(now)
        assert (snap.successes, snap.failures, snap.slow, snap.ignored, snap.rejected) == (
            model.successes,
            model.failures,
            model.slow,
            model.ignored,
            model.rejected,
        )
        assert (snap.window_calls, snap.window_failed, snap.window_slow) == (
            len(window),
            sum(o[1] for o in window),
            sum(o[2] for o in window),
        )
        assert (snap.half_open_admitted, snap.half_open_good, snap.half_open_bad) == (
            model.admitted,
            model.good,
            model.bad,
        )
        assert snap.forced == model.forced
        assert snap.changed_at == model.changed_at
        if model.state == "open":
            assert snap.retry_at == model.retry_at

    @invariant()
    def half_open_never_admits_more_than_its_quota(self) -> None:
        if not hasattr(self, "model"):
            return
        if self.machine.state.value == "half_open":
            current = [p for p, _ in self.held if p.generation == self.machine.generation]
            assert len(current) <= self.model.cfg.half_open_max_calls


BreakerVersusModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_breaker_matches_the_model = BreakerVersusModel.TestCase


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thousands of transitions become events; nobody needs them on disk here.
    monkeypatch.setenv("KEEL_STORE", "none")
