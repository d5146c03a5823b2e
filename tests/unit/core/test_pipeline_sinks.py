"""Adding and removing sinks on a live pipeline."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from agentkeel import ConfigurationError, Event
from agentkeel.pipeline import Pipeline


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = 0

    def __call__(self, batch: Sequence[Event]) -> None:
        self.events.extend(batch)

    def close(self) -> None:
        self.closed += 1


def test_an_added_sink_gets_the_next_batches_and_is_closed_with_the_pipeline() -> None:
    first, added = Collect(), Collect()
    pipeline = Pipeline(sinks=[first], flush_interval=10)
    pipeline.emit("a")
    pipeline.add_sink(added)
    assert pipeline.sinks == (first, added)
    pipeline.emit("b")
    assert pipeline.flush()
    assert [e.type for e in first.events] == ["a", "b"]
    assert [e.type for e in added.events] == ["a", "b"]  # buffered events reach it too
    pipeline.close()
    assert added.closed == 1
    assert first.closed == 0  # sinks given at construction are the caller's to close


def test_a_removed_sink_gets_nothing_more_and_is_not_closed() -> None:
    kept, removed = Collect(), Collect()
    pipeline = Pipeline(sinks=[kept])
    pipeline.add_sink(removed)
    pipeline.emit("a")
    assert pipeline.flush()
    assert pipeline.remove_sink(removed)
    assert not pipeline.remove_sink(removed)
    pipeline.emit("b")
    assert pipeline.flush()
    assert [e.type for e in removed.events] == ["a"]
    assert [e.type for e in kept.events] == ["a", "b"]
    pipeline.close()
    assert removed.closed == 0


def test_add_sink_validates() -> None:
    sink = Collect()
    pipeline = Pipeline(sinks=[sink])
    with pytest.raises(ConfigurationError, match="callable"):
        pipeline.add_sink("nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="already"):
        pipeline.add_sink(sink)
    pipeline.close()
    with pytest.raises(ConfigurationError, match="closed"):
        pipeline.add_sink(Collect())


def test_sinks_change_while_the_writer_delivers() -> None:
    base = Collect()
    pipeline = Pipeline(sinks=[base], batch_size=50, flush_interval=0.001)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            extra = Collect()
            pipeline.add_sink(extra)
            pipeline.remove_sink(extra)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for i in range(20_000):
            pipeline.emit("e", attributes={"i": i})
        assert pipeline.flush(timeout=10)
    finally:
        stop.set()
        worker.join()
    assert [e.attributes["i"] for e in base.events] == list(range(20_000))
    pipeline.close()
