"""Success-rate learning, adaptive backoff and the retry budget."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _policy_events import CapturedEvents
from fake_clock import FakeClock
from hypothesis import given
from hypothesis import strategies as st

from agentkeel import ConfigurationError, EventType, _internal
from agentkeel.resilience._adaptive import (
    JsonFileLearnerStore,
    LearnerStore,
    SuccessRateLearner,
    SuccessRateStats,
)
from agentkeel.resilience._budget import BudgetStats, RetryBudget
from agentkeel.resilience._error_types import ErrorType
from agentkeel.resilience._retry import Retry
from agentkeel.resilience._retry_strategies import adaptive, fixed

COMM = ErrorType.COMMUNICATION_ERROR
TIMEOUT = ErrorType.TIMEOUT_ERROR


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0, wall_offset=0.0)


def always_failing() -> None:
    raise ConnectionError("down")


class FailTimes:
    def __init__(self, times: int, error: type[Exception] = ConnectionError) -> None:
        self.left = times
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.error("flaky")
        return "ok"


# -- the learner ---------------------------------------------------------------------


def test_the_rate_is_unknown_until_min_samples() -> None:
    learner = SuccessRateLearner(min_samples=3)
    learner.record("op", COMM, True)
    learner.record("op", COMM, False)
    assert learner.success_rate("op", COMM) is None
    learner.record("op", COMM, False)
    assert learner.success_rate("op", COMM) == pytest.approx(1 / 3)
    assert learner.success_rate("other", COMM) is None


def test_retries_stop_below_the_threshold_and_resume_above() -> None:
    learner = SuccessRateLearner(success_rate_threshold=0.5, min_samples=2, window=4, probe_every=0)
    assert learner.should_retry("op", COMM)  # nothing known
    learner.record("op", COMM, False)
    learner.record("op", COMM, False)
    assert not learner.should_retry("op", COMM)
    assert learner.should_retry("op", TIMEOUT)  # another error type is another story
    learner.record("op", COMM, True)
    learner.record("op", COMM, True)
    assert learner.should_retry("op", COMM)  # 2 of 4 = 0.5: at the threshold is enough


def test_one_refusal_in_probe_every_is_let_through() -> None:
    learner = SuccessRateLearner(success_rate_threshold=0.5, min_samples=1, probe_every=3)
    learner.record("op", COMM, False)
    answers = [learner.should_retry("op", COMM) for _ in range(9)]
    assert answers == [False, False, True] * 3
    (row,) = learner.stats()
    assert row.refusals == 9
    assert row.probes == 3


def test_the_window_forgets_old_outcomes() -> None:
    learner = SuccessRateLearner(min_samples=1, window=3)
    for outcome in (True, True, True, False, False):
        learner.record("op", COMM, outcome)
    assert learner.success_rate("op", COMM) == pytest.approx(1 / 3)


@given(outcomes=st.lists(st.booleans(), max_size=60), window=st.integers(1, 10))
def test_the_rate_is_the_share_of_successes_in_the_window(
    outcomes: list[bool], window: int
) -> None:
    learner = SuccessRateLearner(min_samples=1, window=window)
    for outcome in outcomes:
        learner.record("op", COMM, outcome)
    recent = outcomes[-window:]
    expected = sum(recent) / len(recent) if recent else None
    assert learner.success_rate("op", COMM) == expected


def test_without_an_error_type_the_operation_is_pooled() -> None:
    learner = SuccessRateLearner(min_samples=2)
    learner.record("op", COMM, True)
    learner.record("op", TIMEOUT, False)
    learner.record("other", COMM, False)
    assert learner.success_rate("op") == 0.5
    assert learner.success_rate("nothing") is None


def test_stats_list_everything_learned() -> None:
    learner = SuccessRateLearner(success_rate_threshold=0.5, min_samples=2, probe_every=0)
    learner.record("b", COMM, True)
    learner.record("a", TIMEOUT, False)
    learner.record("a", TIMEOUT, False)
    learner.record("a", COMM, True)
    learner.should_retry("a", TIMEOUT)
    assert learner.stats() == [
        SuccessRateStats("a", COMM, 1, 1, None, 0, 0, True),
        SuccessRateStats("a", TIMEOUT, 2, 0, 0.0, 1, 0, False),
        SuccessRateStats("b", COMM, 1, 1, None, 0, 0, True),
    ]
    assert "keys=3" in repr(learner)


def test_reset_forgets() -> None:
    learner = SuccessRateLearner(min_samples=1)
    learner.record("a", COMM, False)
    learner.record("b", COMM, False)
    learner.reset("a")
    assert [row.operation for row in learner.stats()] == ["b"]
    learner.reset()
    assert learner.stats() == []


def test_the_oldest_key_is_forgotten_past_max_keys() -> None:
    learner = SuccessRateLearner(min_samples=1, max_keys=2)
    for op in ("a", "b", "c"):
        learner.record(op, COMM, True)
    assert [row.operation for row in learner.stats()] == ["b", "c"]


def test_snapshot_and_restore_round_trip() -> None:
    learner = SuccessRateLearner(min_samples=1, window=5)
    for outcome in (True, False, False):
        learner.record("op", COMM, outcome)
    learner.record("op", TIMEOUT, True)
    snapshot = learner.snapshot()
    assert snapshot == {
        "version": 1,
        "outcomes": {"op": {"communication_error": "100", "timeout_error": "1"}},
    }
    json.dumps(snapshot)  # JSON-ready
    other = SuccessRateLearner(min_samples=1, window=2)
    other.restore(snapshot)
    assert other.success_rate("op", COMM) == 0.0  # only the last two fit the smaller window
    assert other.success_rate("op", TIMEOUT) == 1.0


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"version": 2, "outcomes": {}},
        {"version": 1},
        {"version": 1, "outcomes": {"op": "101"}},
        {"version": 1, "outcomes": {"op": {"no_such_type": "1"}}},
        {"version": 1, "outcomes": {"op": {"timeout_error": "1x1"}}},
        {"version": 1, "outcomes": {"op": {"timeout_error": 1}}},
    ],
)
def test_restore_rejects_what_is_not_a_snapshot(data: Any) -> None:
    with pytest.raises(ConfigurationError, match="snapshot"):
        SuccessRateLearner().restore(data)


def test_a_json_file_keeps_what_was_learned(tmp_path: Path) -> None:
    store = JsonFileLearnerStore(tmp_path / "sub" / "learner.json")
    assert isinstance(store, LearnerStore)
    learner = SuccessRateLearner(min_samples=1, store=store)
    assert learner.stats() == []  # no file yet
    learner.record("op", COMM, False)
    learner.save()
    assert list((tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "learner.json"]  # no temp left
    again = SuccessRateLearner(min_samples=1, store=store)
    assert again.success_rate("op", COMM) == 0.0


def test_save_without_a_store_does_nothing() -> None:
    SuccessRateLearner().save()


def test_a_failed_save_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "learner.json"
    store = JsonFileLearnerStore(path)
    store.save({"version": 1, "outcomes": {}})
    with pytest.raises(TypeError):
        store.save({"version": 1, "bad": object()})
    assert json.loads(path.read_text()) == {"version": 1, "outcomes": {}}
    assert [p.name for p in tmp_path.iterdir()] == ["learner.json"]


def test_a_corrupt_file_starts_the_learner_afresh(tmp_path: Path) -> None:
    path = tmp_path / "learner.json"
    path.write_text("{not json")
    with pytest.raises(json.JSONDecodeError):  # strict mode: the internal error is raised
        SuccessRateLearner(store=JsonFileLearnerStore(path))
    _internal.set_strict(False)
    _internal.reset()
    learner = SuccessRateLearner(store=JsonFileLearnerStore(path))
    assert learner.stats() == []
    assert _internal.internal_error_counts()["retry.learner.load"] == 1
    path.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="learner snapshot"):
        JsonFileLearnerStore(path).load()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"success_rate_threshold": 1.5}, "success_rate_threshold"),
        ({"success_rate_threshold": -0.1}, "success_rate_threshold"),
        ({"min_samples": 0}, "min_samples"),
        ({"window": 0}, "window"),
        ({"min_samples": 10, "window": 5}, "min_samples"),
        ({"probe_every": -1}, "probe_every"),
        ({"max_keys": 0}, "max_keys"),
        ({"store": "learner.json"}, "store"),
    ],
)
def test_bad_learner_settings_fail(options: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SuccessRateLearner(**options)


# -- the learner inside Retry ----------------------------------------------------------


def test_errors_that_never_succeed_on_retry_stop_being_retried(
    clock: FakeClock, events: CapturedEvents
) -> None:
    learner = SuccessRateLearner(success_rate_threshold=0.3, min_samples=3, probe_every=0)
    retry = Retry(
        on=(ConnectionError, TimeoutError),
        attempts=3,
        backoff=fixed(1),
        jitter=False,
        learner=learner,
        name="search",
        clock=clock,
        sleep=clock.sleep,
    )
    for _ in range(3):
        with pytest.raises(ConnectionError):
            retry.call(always_failing)
    assert learner.success_rate("search", COMM) == 0.0
    calls_before = len(clock.sleeps)

    fn = FailTimes(5)
    with pytest.raises(ConnectionError):
        retry.call(fn)
    assert fn.calls == 1  # not retried at all
    assert len(clock.sleeps) == calls_before
    give_up = events.of_type(EventType.RETRY)[-1]
    assert give_up.attributes["reason"] == "learned"
    assert give_up.attributes["giving_up"] is True

    # Timeouts of the same operation have their own record and are still retried.
    assert retry.call(FailTimes(1, TimeoutError)) == "ok"
    assert learner.success_rate("search", TIMEOUT) is None
    (timeout_row,) = [row for row in learner.stats() if row.error_type is TIMEOUT]
    assert (timeout_row.samples, timeout_row.successes) == (1, 1)


def test_a_call_that_succeeds_after_retries_counts_as_a_success(clock: FakeClock) -> None:
    learner = SuccessRateLearner(min_samples=1)
    retry = Retry(on=ConnectionError, learner=learner, name="op", clock=clock, sleep=clock.sleep)
    assert retry.call(FailTimes(2)) == "ok"
    assert retry.call(FailTimes(0)) == "ok"  # first-try successes teach nothing about retries
    assert learner.success_rate("op", COMM) == 1.0
    assert learner.stats()[0].samples == 1


def test_the_iterator_form_teaches_the_learner_too(clock: FakeClock) -> None:
    learner = SuccessRateLearner(min_samples=1)
    retry = Retry(on=ConnectionError, learner=learner, clock=clock, sleep=clock.sleep)
    fn = FailTimes(1)
    for attempt in retry.attempts(name="block"):
        with attempt:
            fn()
    assert learner.success_rate("block", COMM) == 1.0


def test_stops_for_the_budget_or_learner_teach_nothing(clock: FakeClock) -> None:
    learner = SuccessRateLearner(min_samples=1)
    budget = RetryBudget(ratio=0, min_retries_per_window=1, clock=clock)
    retry = Retry(
        on=ConnectionError,
        attempts=5,
        learner=learner,
        budget=budget,
        name="op",
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(ConnectionError):
        retry.call(FailTimes(10))  # one retry granted, then the budget says no
    assert learner.stats() == []


def test_adaptive_backoff_slows_down_when_retries_rarely_work(clock: FakeClock) -> None:
    learner = SuccessRateLearner(success_rate_threshold=0, min_samples=2)
    retry = Retry(
        on=ConnectionError,
        attempts=2,
        backoff=adaptive(fixed(1), slowdown=3, max=60),
        jitter=False,
        learner=learner,
        name="op",
        clock=clock,
        sleep=clock.sleep,
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            retry.call(always_failing)
    assert clock.sleeps == [1.0, 1.0]  # nothing known yet: the base delay
    with pytest.raises(ConnectionError):
        retry.call(always_failing)  # threshold 0: still retried, but slowly
    assert clock.sleeps[-1] == 4.0


# -- the budget ------------------------------------------------------------------------


def test_the_floor_allows_a_few_retries_without_calls(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_window=2, clock=clock)
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]
    assert budget.stats() == BudgetStats(calls=0, retries=2, allowed=2, rejected=1, window_s=60.0)
    assert budget.stats().available == 0


def test_retries_are_capped_to_a_share_of_calls(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_window=0, clock=clock)
    for _ in range(50):
        budget.record_call()
    granted = sum(budget.try_acquire() for _ in range(100))
    assert granted == 10
    stats = budget.stats()
    assert (stats.calls, stats.retries, stats.allowed, stats.rejected) == (50, 10, 10, 90)


def test_the_window_slides(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=1.0, min_retries_per_window=0, window=10, clock=clock)
    budget.record_call()
    clock.now += 5
    budget.record_call()
    assert budget.try_acquire()
    assert budget.try_acquire()
    assert not budget.try_acquire()
    clock.now += 5.5  # the first call's bucket (and nothing else) has slid out
    stats = budget.stats()
    assert (stats.calls, stats.retries) == (1, 2)
    clock.now += 1_000  # everything has slid out
    assert budget.stats() == BudgetStats(calls=0, retries=0, allowed=0, rejected=1, window_s=10.0)


@given(
    ops=st.lists(
        st.one_of(
            st.just(("call", 0.0)),
            st.just(("retry", 0.0)),
            st.tuples(st.just("wait"), st.floats(0, 30)),
        ),
        max_size=80,
    ),
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0]),
    floor=st.integers(0, 3),
)
def test_the_budget_matches_a_naive_model(
    ops: list[tuple[str, float]], ratio: float, floor: int
) -> None:
    clock = FakeClock(500.0, wall_offset=0.0)
    budget = RetryBudget(ratio=ratio, min_retries_per_window=floor, window=10, clock=clock)
    width = 1.0  # ten buckets of a ten-second window
    log: list[tuple[int, str]] = []  # (bucket, what) for every call and granted retry

    def in_window() -> list[str]:
        now = math.floor(clock.now / width)
        return [what for bucket, what in log if bucket > now - 10]

    for op, seconds in ops:
        bucket = math.floor(clock.now / width)
        if op == "call":
            budget.record_call()
            log.append((bucket, "call"))
        elif op == "retry":
            recent = in_window()
            allowed = math.floor(ratio * recent.count("call")) + floor
            expected = recent.count("retry") < allowed
            assert budget.try_acquire() is expected
            if expected:
                log.append((bucket, "retry"))
        else:
            clock.now += seconds
        recent = in_window()
        stats = budget.stats()
        assert (stats.calls, stats.retries) == (recent.count("call"), recent.count("retry"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ratio": 1.5}, "ratio"),
        ({"ratio": -0.1}, "ratio"),
        ({"min_retries_per_window": -1}, "min_retries_per_window"),
        ({"window": 0}, "window"),
        ({"window": -5}, "window"),
    ],
)
def test_bad_budget_settings_fail(options: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryBudget(**options)


def test_a_spent_budget_stops_retries(clock: FakeClock, events: CapturedEvents) -> None:
    budget = RetryBudget(ratio=0.0, min_retries_per_window=1, clock=clock)
    retry = Retry(
        on=ConnectionError, attempts=5, budget=budget, name="op", clock=clock, sleep=clock.sleep
    )
    assert retry.call(FailTimes(1)) == "ok"  # the one retry
    fn = FailTimes(1)
    with pytest.raises(ConnectionError):
        retry.call(fn)
    assert fn.calls == 1
    give_up = events.of_type(EventType.RETRY)[-1]
    assert give_up.attributes["reason"] == "budget"
    assert budget.stats().calls == 2
    assert "ratio=0.0" in repr(budget)


def test_every_call_counts_towards_the_budget(clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_window=0, clock=clock)
    retry = Retry(on=ConnectionError, budget=budget, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        retry.call(FailTimes(0))
    for attempt in retry.attempts():
        with attempt:
            pass
    assert budget.stats().calls == 5
    assert retry.call(FailTimes(2)) == "ok"  # 6 calls allow 3 retries
    assert budget.stats().retries == 2
