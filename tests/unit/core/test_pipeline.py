from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections.abc import Sequence

import pytest

import agentkeel
from agentkeel import Event, EventType, PipelineError, Severity, _internal
from agentkeel.pipeline import Pipeline


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, batch: Sequence[Event]) -> None:
        self.events.extend(batch)


class Stalled:
    """A sink that blocks until released: the store is down or slow."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen = 0

    def __call__(self, batch: Sequence[Event]) -> None:
        self.release.wait(30)
        self.seen += len(batch)


def test_flush_acknowledges_everything_emitted_before_it() -> None:
    sink = Collect()
    p = Pipeline(sinks=[sink], flush_interval=10)
    for i in range(5_000):
        p.emit("tool.start", name="t", attributes={"i": i})
    assert p.flush(timeout=5)
    assert [e.attributes["i"] for e in sink.events] == list(range(5_000))
    stats = p.stats()
    assert (stats.emitted, stats.written, stats.dropped, stats.buffered) == (5_000, 5_000, 0, 0)
    p.close()


def test_what_arrives_during_a_write_waits_for_the_next_interval() -> None:
    """A steady stream must become a few large batches, not a transaction per trickle."""
    batches: list[int] = []
    writing = threading.Event()
    release = threading.Event()
    second = threading.Event()

    def slow_store(batch: Sequence[Event]) -> None:
        batches.append(len(batch))
        if len(batches) == 1:
            writing.set()
            release.wait(30)
        else:
            second.set()

    p = Pipeline(sinks=[slow_store], batch_size=10, flush_interval=60)
    for i in range(11):  # the 11th finds a full batch waiting and wakes the writer
        p.emit("tool.start", name="t", attributes={"i": i})
    assert writing.wait(10)
    for i in range(3):  # arrive while the first batch is being written
        p.emit("tool.start", name="t", attributes={"i": 11 + i})
    release.set()
    assert not second.wait(0.5), "the writer wrote a 4-event batch without waiting"
    assert p.flush(timeout=5)
    assert batches == [10, 4]
    p.close()


def test_events_carry_scope_and_clocks() -> None:
    sink = Collect()
    p = Pipeline(sinks=[sink])
    agentkeel.configure(store="none")
    before = time.time_ns()
    with agentkeel.run("r", user_id="u") as scope, agentkeel.step("s") as step_scope:
        p.emit(EventType.TOOL_CALL_START, name="weather", category="network")
    p.flush()
    (event,) = sink.events
    assert event.run_id == scope.run_id
    assert event.span_id == step_scope.span_id
    assert event.parent_span_id == scope.span_id
    assert event.correlation_id == scope.run_id
    assert abs(event.wall_ns - before) < 5e9
    assert event.mono_ns > 0
    assert event.event_id.endswith(f"-{event.seq:x}")
    p.close()


def test_concurrent_emitters_lose_nothing() -> None:
    sink = Collect()
    p = Pipeline(sinks=[sink], capacity=1_000_000, batch_size=500)

    def work(k: int) -> None:
        for i in range(10_000):
            p.emit("x", attributes={"k": k, "i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert p.flush(timeout=10)
    assert len(sink.events) == 40_000
    assert len({e.seq for e in sink.events}) == 40_000
    p.close()


def test_batches_take_from_every_severity_stay_in_size_and_in_order() -> None:
    batches: list[list[int]] = []
    p = Pipeline(sinks=[lambda batch: batches.append([e.seq for e in batch])], batch_size=7)
    for i in range(10):
        p.emit("routine")
        p.emit("failure.recorded", severity=Severity.HIGH if i % 2 else Severity.LOW)
    assert p.flush(timeout=5)
    p.close()
    assert sorted(seq for batch in batches for seq in batch) == list(range(1, 21))
    assert all(0 < len(batch) <= 7 for batch in batches)
    assert all(batch == sorted(batch) for batch in batches)


def test_full_buffer_drops_routine_events_first_and_counts_them() -> None:
    sink = Stalled()
    p = Pipeline(
        sinks=[sink], capacity=100, priority_capacity=10, batch_size=10, flush_interval=0.01
    )
    p.emit("warm-up")
    time.sleep(0.05)  # the writer holds the first batch in the stalled sink
    for _ in range(1_000):
        p.emit("routine")
    for _ in range(5):
        p.emit("failure.recorded", severity=Severity.HIGH)
    stats = p.stats()
    assert stats.dropped_by_severity.get("info", 0) == 900
    assert "high" not in stats.dropped_by_severity, "failures are never displaced by routine events"
    # Lower-severity priority events are evicted for higher ones.
    for _ in range(10):
        p.emit("low", severity=Severity.LOW)
    for _ in range(10):
        p.emit("critical", severity=Severity.CRITICAL)
    stats = p.stats()
    assert stats.dropped_by_severity["low"] == 10
    assert stats.dropped_by_reason == {"buffer_full": stats.dropped}
    sink.release.set()
    assert p.flush(timeout=5)
    p.close()


def test_block_policy_waits_a_bounded_time() -> None:
    sink = Stalled()
    p = Pipeline(
        sinks=[sink],
        capacity=10,
        batch_size=5,
        overflow="block",
        block_timeout=0.05,
        flush_interval=0.01,
    )
    p.emit("warm-up")
    time.sleep(0.05)
    started = time.monotonic()
    for _ in range(20):
        p.emit("x")
    elapsed = time.monotonic() - started
    assert elapsed < 5, "blocking is bounded"
    assert p.stats().dropped >= 1
    sink.release.set()
    p.close()


def test_memory_stays_bounded_with_a_stalled_sink() -> None:
    sink = Stalled()
    p = Pipeline(sinks=[sink], capacity=10_000, batch_size=1_000)
    p.emit("warm-up")
    tracemalloc.start()
    for i in range(40_000):
        p.emit("x", attributes={"i": i})
    first, _ = tracemalloc.get_traced_memory()
    for i in range(60_000):
        p.emit("x", attributes={"i": i})
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert second < first * 1.2 + 1_000_000, (first, second)
    assert p.stats().dropped >= 80_000
    sink.release.set()
    p.close()


def test_sink_errors_are_counted_and_do_not_reach_the_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agentkeel.set_strict(False)
    calls = 0

    def broken(batch: Sequence[Event]) -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk full")

    p = Pipeline(sinks=[broken], sink_retries=2, retry_backoff=0)
    for _ in range(3):
        p.emit("x")  # never raises
    assert p.flush(timeout=5) is False
    stats = p.stats()
    assert calls == 3  # one try plus two retries
    assert stats.sink_errors == 3
    assert stats.dropped_by_reason == {"sink_failed": 3}
    assert stats.last_error == "OSError: disk full"
    p.close()


def test_strict_mode_raises_sink_failures_on_the_next_call() -> None:
    def broken(batch: Sequence[Event]) -> None:
        raise OSError("disk full")

    p = Pipeline(sinks=[broken], sink_retries=0)
    p.emit("x")
    with pytest.raises(PipelineError, match="disk full"):
        p.flush(timeout=5)
    p.close()


def test_a_retried_sink_recovers() -> None:
    attempts: list[int] = []
    got: list[Event] = []

    def flaky(batch: Sequence[Event]) -> None:
        attempts.append(len(batch))
        if len(attempts) == 1:
            raise ConnectionError("server restarting")
        got.extend(batch)

    p = Pipeline(sinks=[flaky], retry_backoff=0)
    p.emit("x")
    assert p.flush(timeout=5)
    assert len(got) == 1 and p.stats().dropped == 0
    p.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity"),
        ({"batch_size": 0}, "batch_size"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"flush_interval": float("nan")}, "flush_interval"),
        ({"overflow": "spill"}, "overflow"),
        ({"sink_retries": -1}, "sink_retries"),
        ({"priority_capacity": 0}, "priority_capacity"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(agentkeel.ConfigurationError, match=match):
        Pipeline(sinks=[], **kwargs)  # type: ignore[arg-type]


def test_close_is_idempotent_and_flushes() -> None:
    sink = Collect()
    p = Pipeline(sinks=[sink], flush_interval=60)
    p.emit("x")
    assert p.close()
    assert p.close()
    assert len(sink.events) == 1


def test_flush_from_inside_a_sink_does_not_deadlock() -> None:
    results: list[bool] = []
    holder: list[Pipeline] = []

    def reentrant(batch: Sequence[Event]) -> None:
        results.append(holder[0].flush(timeout=1))

    p = Pipeline(sinks=[reentrant])
    holder.append(p)
    p.emit("x")
    assert p.flush(timeout=5)
    assert results == [False]
    p.close()


def test_event_model_parsers() -> None:
    assert Severity.parse("high") is Severity.HIGH
    assert Severity.parse(3) is Severity.HIGH
    assert agentkeel.Category.parse("Network") is agentkeel.Category.NETWORK
    with pytest.raises(agentkeel.ConfigurationError, match="unknown severity"):
        Severity.parse("dire")
    with pytest.raises(agentkeel.ConfigurationError, match="unknown category"):
        agentkeel.Category.parse("gremlins")


# ------------------------------------------------------------ deferred producers
def test_a_deferred_event_keeps_its_stamped_place_and_time_and_flush_covers_it() -> None:
    sink = Collect()
    p = Pipeline(sinks=[sink], flush_interval=60)
    stamp = p.stamp()  # captured on the agent's thread ...
    scope = agentkeel.current_scope()
    p.emit("direct")  # ... while something else is emitted straight away
    written_by: list[str] = []

    def produce() -> None:  # ... and built on the writer
        written_by.append(threading.current_thread().name)
        p.emit_stamped(stamp, scope, "deferred", "late", 0, {"k": 1}, None, "span-1", None)

    p.defer(produce)
    assert p.flush(timeout=5)
    assert [e.type for e in sink.events] == ["deferred", "direct"]
    deferred, direct = sink.events
    assert (deferred.seq, deferred.mono_ns) == stamp
    assert deferred.mono_ns < direct.mono_ns and deferred.wall_ns < direct.wall_ns
    assert (deferred.span_id, deferred.attributes) == ("span-1", {"k": 1})
    assert written_by == ["agentkeel-writer"]
    p.close()


def test_a_stamp_that_makes_no_event_does_not_count_as_emitted() -> None:
    p = Pipeline(sinks=[Collect()])
    p.emit("x")
    p.stamp()
    p.unstamp()
    assert p.flush(timeout=5)
    assert (p.stats().emitted, p.stats().written) == (1, 1)
    p.close()


def test_a_failing_producer_is_counted_and_raised_in_strict_mode_only() -> None:
    def broken() -> None:
        raise ValueError("bad capture")

    p = Pipeline(sinks=[Collect()])
    p.defer(broken)
    with pytest.raises(PipelineError, match="bad capture"):
        p.flush(timeout=5)
    agentkeel.set_strict(False)
    before = _internal.internal_error_counts().get("pipeline.producer", 0)
    p.defer(broken)
    assert p.flush(timeout=5)  # the events already buffered are not affected
    assert _internal.internal_error_counts()["pipeline.producer"] == before + 1
    assert p.stats().last_error == "ValueError: bad capture"
    p.close()


def test_a_producer_deferred_to_a_closed_pipeline_runs_at_once() -> None:
    p = Pipeline(sinks=[Collect()])
    p.close()
    ran: list[bool] = []
    p.defer(lambda: ran.append(True))
    assert ran == [True]


def test_a_producer_on_the_writer_never_waits_for_room_only_it_could_make() -> None:
    sink = Collect()
    p = Pipeline(sinks=[sink], capacity=10, overflow="block", block_timeout=2.0, flush_interval=60)
    stamps = [p.stamp() for _ in range(3)]
    for _ in range(10):
        p.emit("fills the buffer")
    scope = agentkeel.current_scope()
    p.defer(lambda: [p.emit_stamped(s, scope, "late", "", 0, {}, None, None, None) for s in stamps])
    started = time.monotonic()
    assert p.flush(timeout=5)
    assert time.monotonic() - started < 1.0  # not 3 x block_timeout
    assert len(sink.events) == 10
    assert p.stats().dropped_by_reason == {"buffer_full": 3}
    p.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_the_producers_deferred_before_the_fork_on_flush() -> None:
    ran: list[int] = []
    p = Pipeline(sinks=[Collect()], flush_interval=60)
    p.defer(lambda: ran.append(os.getpid()))  # the writer sleeps: it has not run it yet
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 3
        try:
            code = 0 if p.flush(timeout=10) and ran == [os.getpid()] else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert p.flush(timeout=5) and ran == [os.getpid()]
    p.close()
