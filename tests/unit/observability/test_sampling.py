"""Adaptive sampling (SamplingManager) and tail sampling (TailSampler)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentkeel
from agentkeel import ConfigurationError, Event, EventType, Severity
from agentkeel.observability import (
    ERROR_EVENT_TYPES,
    SamplingConfig,
    SamplingManager,
    SamplingStrategy,
    TailSampler,
    get_sampling_manager,
    is_error_event,
)
from agentkeel.pipeline import Pipeline

_seq = itertools.count(1)


def ev(type_: str, run_id: str | None = None, **fields: Any) -> Event:
    seq = next(_seq)
    fields.setdefault("wall_ns", 1_700_000_000_000_000_000 + seq * 1_000)
    return Event(type_, run_id=run_id, seq=seq, origin="t", **fields)


def run_events(
    run_id: str, *, fail: bool, tools: int = 3, parent: str | None = None
) -> list[Event]:
    """The events of one run; a failing run fails its last tool call."""
    start_attrs = {"parent_run_id": parent} if parent else {}
    events = [ev(EventType.AGENT_START, run_id, name="agent", attributes=start_attrs)]
    events.append(ev(EventType.STEP_START, run_id, name="executor"))
    for i in range(tools):
        events.append(ev(EventType.TOOL_CALL_START, run_id, name=f"tool{i}"))
        failed = fail and i == tools - 1
        status = {"status": "failed", "error_type": "ConnectionError"} if failed else {}
        events.append(ev(EventType.TOOL_CALL_END, run_id, name=f"tool{i}", attributes=status))
        if failed:
            events.append(ev(EventType.FAILURE, run_id, name=f"tool{i}", severity=Severity.MEDIUM))
    events.append(ev(EventType.STEP_END, run_id, name="executor"))
    events.append(ev(EventType.AGENT_END, run_id, name="agent"))
    return events


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.calls = 0
        self.closed = False

    def __call__(self, batch: Sequence[Event], /) -> None:
        self.calls += 1
        self.events.extend(batch)

    def close(self) -> None:
        self.closed = True

    def by_run(self) -> Counter[str | None]:
        return Counter(e.run_id for e in self.events)


def fixed(rate: float, **kwargs: Any) -> SamplingManager:
    """A manager with a fixed rate (no adaptation)."""
    return SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.IMPORTANCE_BASED,
            base_sampling_rate=rate,
            min_sampling_rate=rate,
            max_sampling_rate=rate,
            **kwargs,
        )
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_sampling_rate": 1.5}, "base_sampling_rate"),
        ({"min_sampling_rate": -0.1}, "min_sampling_rate"),
        ({"base_sampling_rate": 0.01, "min_sampling_rate": 0.1}, "min_sampling_rate <="),
        ({"max_sampling_rate": 0.5}, "max_sampling_rate"),
        ({"max_overhead_ms": 0}, "max_overhead_ms"),
        ({"max_overhead_ms": 1.0, "target_overhead_ms": 2.0}, "must not exceed"),
        ({"adaptation_window": 0}, "adaptation_window"),
        ({"batch_size": 0}, "batch_size"),
        ({"target_events_per_second": 0}, "target_events_per_second"),
        ({"strategy": "fastest"}, "unknown sampling strategy"),
        ({"high_priority_events": "agent.error"}, "not one string"),
        ({"base_sampling_rate": True}, "base_sampling_rate"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SamplingConfig(**kwargs)


def test_config_normalises_values() -> None:
    config = SamplingConfig(
        strategy="performance_aware",  # type: ignore[arg-type]
        max_overhead_ms=timedelta(milliseconds=4),
        high_priority_events=[EventType.DECISION_START, "my.event"],
    )
    assert config.strategy is SamplingStrategy.PERFORMANCE_AWARE
    assert config.max_overhead_ms == 4.0
    assert config.target_overhead_ms == 2.0  # half the maximum by default
    assert config.high_priority_events == frozenset({"decision.start", "my.event"})
    with pytest.raises(AttributeError):
        config.base_sampling_rate = 0.5  # type: ignore[misc]


# ---------------------------------------------------------------- decisions
def test_errors_are_never_dropped_even_at_rate_zero() -> None:
    manager = fixed(0.0)
    errors = [ev(t, "run-1") for t in ERROR_EVENT_TYPES] + [
        ev(EventType.TOOL_CALL_END, "run-1", attributes={"status": "failed"}),
        ev(EventType.CUSTOM, "run-1", severity=Severity.HIGH),
        ev(EventType.CUSTOM, None, severity=Severity.CRITICAL),
    ]
    for event in errors:
        assert is_error_event(event), event
        assert manager.should_sample(event), event
    assert not manager.should_sample(ev(EventType.TOOL_CALL_END, "run-1"))
    assert not is_error_event(ev(EventType.TOOL_CALL_END, "run-1", attributes={"status": "ok"}))


def test_high_priority_events_and_importance_by_strategy() -> None:
    importance = fixed(0.0, high_priority_events=[EventType.DECISION_START])
    assert importance.should_sample(ev(EventType.DECISION_START, "r"))
    assert importance.should_sample(ev(EventType.CUSTOM, "r", severity=Severity.LOW))
    assert not importance.should_sample(ev(EventType.DECISION_COMPLETE, "r"))
    volume = SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.ADAPTIVE_RATE, base_sampling_rate=0.0, min_sampling_rate=0.0
        )
    )
    assert not volume.should_sample(ev(EventType.CUSTOM, "r", severity=Severity.LOW))
    assert volume.should_sample(ev(EventType.CUSTOM, "r", severity=Severity.MEDIUM))
    assert volume.should_sample(ev(EventType.CIRCUIT_OPENED, "r"))  # a default high priority


def test_a_runs_events_share_one_decision_and_the_rate_holds() -> None:
    manager = fixed(0.1)
    kept_runs = 0
    for i in range(20_000):
        run_id = f"run-{i:06d}"
        answers = {manager.should_sample(ev(t, run_id)) for t in ("step.start", "tool.end")}
        assert len(answers) == 1
        assert manager.sample_run(run_id) in answers
        kept_runs += answers.pop()
    assert 0.09 < kept_runs / 20_000 < 0.11


def test_events_outside_runs_are_thinned_evenly() -> None:
    manager = fixed(0.25)
    kept = sum(manager.should_sample(ev(EventType.CUSTOM)) for _ in range(20_000))
    assert 0.23 < kept / 20_000 < 0.27


def test_statistics_and_reset() -> None:
    manager = fixed(0.0)
    for _ in range(10):
        manager.should_sample(ev(EventType.CUSTOM, "run-x"))
    manager.should_sample(ev(EventType.FAILURE, "run-x"))
    manager.record_overhead(0.002, events=1)
    stats = manager.get_sampling_statistics()
    assert stats["strategy"] == "importance_based"
    assert stats["total_events"] == 11
    assert stats["sampled_events"] == 1
    assert stats["dropped_events"] == 10
    assert stats["sampling_rate"] == 0.0
    assert stats["overhead_per_event_ms"] == pytest.approx(2.0 / 11)
    assert stats["cost_per_sampled_event_ms"] == pytest.approx(2.0)
    assert stats["tail"]["runs_kept"] == 0
    manager.reset_metrics()
    stats = manager.get_sampling_statistics()
    assert (stats["total_events"], stats["sampled_events"], stats["overhead_per_event_ms"]) == (
        0,
        0,
        0.0,
    )


def test_update_configuration_restarts_at_the_base_rate() -> None:
    manager = SamplingManager()
    assert manager.sampling_rate == 1.0
    manager.update_configuration(
        SamplingConfig(base_sampling_rate=0.5, min_sampling_rate=0.1, max_overhead_ms=5.0)
    )
    assert manager.sampling_rate == 0.5
    assert manager.config.max_overhead_ms == 5.0
    with pytest.raises(ConfigurationError):
        manager.update_configuration({"base_sampling_rate": 0.5})  # type: ignore[arg-type]
    assert repr(manager) == "SamplingManager(strategy=hybrid, rate=0.5)"


def test_process_wide_manager() -> None:
    assert get_sampling_manager() is get_sampling_manager()


# --------------------------------------------------------------- adaptation
def test_adaptive_rate_follows_the_volume() -> None:
    clock = FakeClock()
    manager = SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.ADAPTIVE_RATE,
            min_sampling_rate=0.05,
            target_events_per_second=1000,
            adaptation_window=1000,
        ),
        clock=clock,
    )
    event = ev(EventType.CUSTOM, "run-a")
    for _ in range(10):  # 10,000 events per second: keep a tenth
        clock.now += 0.1
        for _ in range(1000):
            manager.should_sample(event)
    assert manager.sampling_rate == pytest.approx(0.1)
    assert manager.get_sampling_statistics()["events_per_second"] == pytest.approx(10_000)
    for _ in range(10):  # 100,000 per second: held at the minimum
        clock.now += 0.01
        for _ in range(1000):
            manager.should_sample(event)
    assert manager.sampling_rate == 0.05
    rates = []
    for _ in range(12):  # quiet again: back up, by halves
        clock.now += 10
        for _ in range(1000):
            manager.should_sample(event)
        rates.append(manager.sampling_rate)
    assert rates[0] == pytest.approx(0.05 + 0.95 / 2)
    assert rates == sorted(rates)
    assert rates[-1] == 1.0


def test_performance_aware_keeps_cost_near_target_and_cuts_at_once_when_over() -> None:
    clock = FakeClock()
    manager = SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.PERFORMANCE_AWARE,
            max_overhead_ms=3.0,
            target_overhead_ms=0.5,
            min_sampling_rate=0.01,
            adaptation_window=100,
        ),
        clock=clock,
    )
    manager.record_overhead(0.002, events=1)  # 2 ms per kept event: under the maximum
    assert manager.sampling_rate == 1.0
    for _ in range(100):
        clock.now += 0.01
        manager.should_sample(ev(EventType.CUSTOM, "r"))
    assert manager.sampling_rate == pytest.approx(0.25)  # 0.25 * 2 ms = the 0.5 ms target
    manager.record_overhead(timedelta(milliseconds=500), events=10)  # 50 ms each: way over
    assert manager.sampling_rate < 0.25
    assert manager.sampling_rate >= 0.01


def test_importance_based_ignores_volume_and_hybrid_takes_the_lower() -> None:
    importance = SamplingManager(
        SamplingConfig(strategy=SamplingStrategy.IMPORTANCE_BASED, adaptation_window=10),
        clock=FakeClock(),
    )
    hybrid = SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.HYBRID,
            adaptation_window=10,
            target_events_per_second=100,
            target_overhead_ms=1.0,
            max_overhead_ms=100.0,
            min_sampling_rate=0.0,
        ),
        clock=FakeClock(),
    )
    hybrid.record_overhead(0.004, events=1)  # 4 ms per event: cost alone says 0.25
    for manager in (importance, hybrid):
        clock = manager._clock
        assert isinstance(clock, FakeClock)
        for _ in range(10):
            clock.now += 0.001  # 1,000 events per second: volume alone says 0.1
            manager.should_sample(ev(EventType.CUSTOM, "r"))
    assert importance.sampling_rate == 1.0
    assert hybrid.sampling_rate == pytest.approx(0.1)


# -------------------------------------------------------------- tail sampler
def interleave(runs: list[list[Event]], width: int, rng: random.Random) -> list[Event]:
    """Events of ``width`` runs at a time, interleaved, each run's order kept."""
    out: list[Event] = []
    pending = list(runs)
    active: list[list[Event]] = []
    while pending or active:
        while pending and len(active) < width:
            active.append(list(pending.pop(0)))
        run = rng.choice(active)
        out.append(run.pop(0))
        if not run:
            active.remove(run)
    return out


def test_failed_runs_keep_every_event_at_one_percent_over_thousands_of_runs() -> None:
    rng = random.Random(42)
    runs: dict[str, list[Event]] = {}
    failed: set[str] = set()
    for _ in range(5_000):
        run_id = f"run-{rng.getrandbits(64):016x}"
        fail = rng.random() < 0.1
        runs[run_id] = run_events(run_id, fail=fail, tools=rng.randint(1, 6))
        if fail:
            failed.add(run_id)
    stream = interleave(list(runs.values()), width=50, rng=rng)
    sink = Collect()
    manager = fixed(0.01)
    tail = TailSampler(sink, manager, max_buffered_events=2_000, max_runs=200)
    for start in range(0, len(stream), 300):  # batches as the pipeline would deliver
        tail(stream[start : start + 300])
    tail.flush()

    kept = sink.by_run()
    assert len(sink.events) == len(set(map(id, sink.events)))  # nothing delivered twice
    assert {run_id for run_id in failed if kept[run_id] == len(runs[run_id])} == failed
    healthy = [r for r in runs if r not in failed]
    kept_healthy = [r for r in healthy if kept[r]]
    assert all(kept[r] == len(runs[r]) for r in kept_healthy)  # kept whole, or not at all
    expected = sum(manager.sample_run(r) for r in healthy)
    assert len(kept_healthy) == expected
    # ~4,500 healthy runs at 1 %: 45 expected, a binomial sd of 6.7.
    assert 15 <= len(kept_healthy) <= 80
    stats = tail.stats()
    assert stats.failed_runs_kept == len(failed) > 400
    assert stats.runs_decided_early == 0
    assert stats.max_events_held <= 2_000
    assert (stats.runs_held, stats.events_held) == (0, 0)
    totals = manager.get_sampling_statistics()
    assert totals["total_events"] == len(stream)
    assert totals["sampled_events"] == len(sink.events)
    assert totals["tail"]["failed_runs_kept"] == len(failed)


def test_memory_bound_decides_the_oldest_runs_early_and_keeps_errors() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(0.0), max_buffered_events=20, max_runs=4)
    stream = interleave(
        [run_events(f"run-{i}", fail=i % 3 == 0, tools=5) for i in range(30)],
        width=10,
        rng=random.Random(1),
    )
    for event in stream:
        tail([event])
        assert tail.stats().events_held <= 20
        assert tail.stats().runs_held <= 4
    stats = tail.stats()
    assert stats.runs_decided_early > 0
    assert stats.max_events_held <= 20
    assert stats.late_events > 0
    delivered = {id(e) for e in sink.events}
    assert all(id(e) in delivered for e in stream if is_error_event(e))


def test_runs_held_too_long_are_decided() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(1.0), max_hold=timedelta(seconds=1))
    tail([ev(EventType.AGENT_START, "slow", wall_ns=0)])
    tail([ev(EventType.AGENT_START, "fresh", wall_ns=int(0.8e9))])
    assert sink.events == []
    tail([ev(EventType.STEP_START, "fresh", wall_ns=int(1.5e9))])
    assert [e.run_id for e in sink.events] == ["slow"]  # sampled (rate 1): kept
    assert tail.stats().runs_decided_early == 1


def test_nested_runs_are_kept_with_their_root() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(0.0))
    outer = run_events("outer", fail=False)
    inner = run_events("inner", fail=True, parent="outer")
    tail(outer[:2] + inner + outer[2:])
    assert sink.by_run() == {"outer": len(outer), "inner": len(inner)}
    sink.events.clear()
    outer2 = run_events("outer2", fail=False)
    inner2 = run_events("inner2", fail=False, parent="outer2")
    tail(outer2[:2] + inner2 + outer2[2:])
    assert sink.events == []


def test_dropped_runs_still_deliver_their_high_priority_events() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(0.0, high_priority_events=[EventType.DECISION_START]))
    events = run_events("r", fail=False)
    decision = ev(EventType.DECISION_START, "r")
    tail([*events[:-1], decision, events[-1]])
    assert sink.events == [decision]
    assert tail.stats().runs_dropped == 1


def test_events_without_a_run_are_decided_one_by_one() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(0.0))
    error = ev(EventType.FAILURE)
    tail([ev(EventType.CUSTOM), error, ev(EventType.CUSTOM)])
    assert sink.events == [error]


def test_late_events_follow_the_runs_decision() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(0.0))
    tail(run_events("done", fail=False))
    late_error = ev(EventType.FAILURE, "done")
    tail([ev(EventType.CUSTOM, "done"), late_error])
    assert sink.events == [late_error]
    assert tail.stats().late_events == 2
    # Started again under the same ID (resumed): held afresh.
    again = run_events("done", fail=True)
    tail(again)
    assert sink.events[1:] == again


def test_a_failing_downstream_is_retried_without_duplicates() -> None:
    class Flaky(Collect):
        def __init__(self) -> None:
            super().__init__()
            self.failures = 2

        def __call__(self, batch: Sequence[Event], /) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("exporter down")
            super().__call__(batch)

    sink = Flaky()
    pipeline = Pipeline(sinks=[TailSampler(sink, fixed(1.0))], retry_backoff=0.001)
    for i in range(3):
        for event in run_events(f"run-{i}", fail=False):
            pipeline.submit(event)
    assert pipeline.flush()  # two failures, then the pipeline's third try succeeds
    assert len(sink.events) == 3 * len(run_events("x", fail=False))
    assert len({(e.origin, e.seq) for e in sink.events}) == len(sink.events)
    pipeline.close()


def test_the_owed_events_stay_bounded_while_the_downstream_is_down() -> None:
    def down(batch: Sequence[Event], /) -> None:
        raise ConnectionError("down")

    tail = TailSampler(down, fixed(1.0), max_buffered_events=10)
    for i in range(5):
        with pytest.raises(ConnectionError):
            tail(run_events(f"run-{i}", fail=False))
    assert len(tail._outbox) == 10
    assert tail.stats().events_lost == 5 * len(run_events("x", fail=False)) - 10


def test_batches_to_downstream_are_bounded_and_close_flushes() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(1.0, batch_size=4))
    tail(run_events("r", fail=False, tools=5))
    assert sink.calls == 4  # 14 events, 4 at a time
    tail([ev(EventType.AGENT_START, "open")])
    tail.close()
    assert sink.events[-1].run_id == "open"
    assert sink.closed


def test_tail_sampler_validates() -> None:
    with pytest.raises(ConfigurationError, match="downstream"):
        TailSampler("not a sink")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_runs"):
        TailSampler(Collect(), max_runs=0)
    with pytest.raises(ConfigurationError, match="max_hold"):
        TailSampler(Collect(), max_hold=0)


def test_with_the_real_pipeline_and_runs_at_one_percent() -> None:
    sink = Collect()
    manager = fixed(0.01)
    agentkeel.configure(store="none", sinks=[TailSampler(sink, manager)], flush_interval=0.01)
    failed, healthy = [], []
    for i in range(2_000):
        try:
            with agentkeel.run("job") as scope, agentkeel.step("work"):
                agentkeel.emit(EventType.TOOL_CALL_START, name="t")
                agentkeel.emit(EventType.TOOL_CALL_END, name="t")
                if i % 10 == 0:
                    raise ValueError("bad input")
            healthy.append(scope.run_id)
        except ValueError:
            failed.append(scope.run_id)
    assert agentkeel.flush()
    kept = sink.by_run()
    # failed: start, step start, tool start/end, step end, agent.error, agent end
    assert {r: kept[r] for r in failed} == dict.fromkeys(failed, 7)
    kept_healthy = [r for r in healthy if kept[r]]
    assert all(kept[r] == 6 for r in kept_healthy)
    assert len(kept_healthy) == sum(manager.sample_run(r or "") for r in healthy)
    assert len(kept_healthy) <= 50  # 1,800 at 1 %: 18 expected


# ----------------------------------------------------------------- property
run_plans = st.lists(
    st.tuples(st.booleans(), st.integers(min_value=0, max_value=4)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    plans=run_plans,
    rate=st.sampled_from([0.0, 0.01, 0.5, 1.0]),
    max_events=st.integers(min_value=1, max_value=60),
    max_runs=st.integers(min_value=1, max_value=10),
    width=st.integers(min_value=1, max_value=8),
    batch=st.integers(min_value=1, max_value=50),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_tail_sampling_invariants(
    plans: list[tuple[bool, int]],
    rate: float,
    max_events: int,
    max_runs: int,
    width: int,
    batch: int,
    seed: int,
) -> None:
    runs = {
        f"run-{seed}-{i}": run_events(f"run-{seed}-{i}", fail=fail, tools=tools)
        for i, (fail, tools) in enumerate(plans)
    }
    stream = interleave(list(runs.values()), width=width, rng=random.Random(seed))
    sink = Collect()
    manager = fixed(rate)
    tail = TailSampler(sink, manager, max_buffered_events=max_events, max_runs=max_runs)
    for start in range(0, len(stream), batch):
        tail(stream[start : start + batch])
        stats = tail.stats()
        assert stats.events_held <= max_events
        assert stats.runs_held <= max_runs
    tail.flush()
    delivered = [id(e) for e in sink.events]
    assert len(delivered) == len(set(delivered))  # never twice
    kept = set(delivered)
    assert all(id(e) in kept for e in stream if manager.is_priority(e))  # errors: never dropped
    if tail.stats().runs_decided_early == 0:
        for events in runs.values():
            if any(is_error_event(e) for e in events):
                assert all(id(e) in kept for e in events)  # failed runs: whole
    if rate == 1.0:
        assert len(kept) == len(stream)


def test_odd_corners_of_the_tail() -> None:
    sink = Collect()
    tail = TailSampler(sink, fixed(1.0), remember_runs=2)
    for i in range(4):
        tail(run_events(f"r{i}", fail=False, tools=0))
    assert len(tail._decided) == 2
    # A nested run whose parent was decided already follows the parent's decision.
    tail([ev(EventType.AGENT_START, "child", attributes={"parent_run_id": "r3"})])
    assert sink.events[-1].run_id == "child"
    assert tail.stats().as_dict()["late_events"] == 1
    assert repr(tail).startswith("TailSampler(")
