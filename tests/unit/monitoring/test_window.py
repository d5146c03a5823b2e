"""Reading a time window out of a store by bisecting store_seq, and summarising it."""

from __future__ import annotations

from typing import Any

import pytest

from agentkeel import EventType
from agentkeel.monitoring._window import (
    breaker_states,
    iter_events,
    last_store_seq,
    percentile,
    pipeline_reports,
    seq_before,
    summarize_window,
)
from agentkeel.store import Store

NOW = 1_800_000_000.0


@pytest.fixture(params=["store", "sqlite_store"])
def any_store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_last_seq_of_empty_and_filled_stores(any_store: Store, events: Any) -> None:
    assert last_store_seq(any_store) == 0
    for batch in range(7):
        any_store.write_events([events.make("x", at=NOW + batch * 10 + i) for i in range(700)])
    assert last_store_seq(any_store) == 4900


@pytest.mark.parametrize("count", [1, 2, 3, 1025, 3000])
def test_last_seq_gallops_and_bisects(store: Store, events: Any, count: int) -> None:
    store.write_events([events.make("x", at=NOW + i) for i in range(count)])
    assert last_store_seq(store) == count


def test_seq_before_finds_the_window_start(any_store: Store, events: Any) -> None:
    any_store.write_events([events.make("x", at=NOW + i) for i in range(1000)])
    # events at NOW+0 … NOW+999 have store_seq 1 … 1000
    assert seq_before(any_store, NOW + 500) == 500
    assert seq_before(any_store, NOW - 10) == 0
    assert seq_before(any_store, NOW + 5000) == 1000
    after = [e for _, e in iter_events(any_store, types=None, after_seq=500, max_events=3)]
    assert [int(e.timestamp - NOW) for e in after] == [500, 501, 502]


def test_summary_of_a_window(store: Store, events: Any) -> None:
    old = [events.make(EventType.TOOL_CALL_END, "t", at=NOW - 7200, duration_ms=9999.0)]
    recent = [
        *[
            events.make(
                EventType.TOOL_CALL_END,
                "weather",
                at=NOW - 60,
                duration_ms=float(ms),
                status="succeeded",
            )
            for ms in range(1, 101)
        ],
        events.make(
            EventType.TOOL_CALL_END, "weather", at=NOW - 50, duration_ms=5.0, status="failed"
        ),
        events.make(
            EventType.LLM_CALL_END,
            "m",
            at=NOW - 40,
            duration_ms=300.0,
            **{"gen_ai.request.model": "m1", "gen_ai.usage.input_tokens": 7},
        ),
        events.make(EventType.FAILURE, "weather", at=NOW - 30, severity=3, category="network"),
        events.make(EventType.FAILURE, "weather", at=NOW - 30, severity=2, category="parsing"),
        events.make(EventType.FAILURE_RECOVERED, "weather", at=NOW - 20, category="network"),
        events.make(EventType.RETRY, "fetch", at=NOW - 20),
        events.make(EventType.RETRY, "fetch", at=NOW - 20, giving_up=True),
        events.make(EventType.CIRCUIT_OPENED, "weather", at=NOW - 10),
        events.make(EventType.LOOP_DETECTED, "planner", at=NOW - 10),
        events.make(EventType.AGENT_END, "trip", at=NOW - 5, status="failed"),
        events.make(EventType.AGENT_END, "trip", at=NOW - 5, status="succeeded"),
        events.make("step.start", "noise", at=NOW - 5),
    ]
    store.write_events(old + recent)
    summary = summarize_window(store, minutes=60, now=NOW).to_dict()
    assert summary["events"]["total"] == len(recent)
    assert summary["events"]["per_second"] == pytest.approx(len(recent) / 3600)
    assert summary["tools"]["calls"] == 101
    assert summary["tools"]["failed"] == 1
    assert summary["tools"]["by_tool"]["weather"]["p95_latency_ms"] == pytest.approx(95.0)
    assert summary["llm"]["by_model"]["m1"]["calls"] == 1
    assert summary["llm"]["input_tokens"] == 7
    assert summary["calls"]["total"] == 102
    assert summary["calls"]["error_rate"] == pytest.approx(1 / 102)
    assert summary["failures"] == {
        "total": 2,
        "by_category": {"network": 1, "parsing": 1},
        "by_severity": {"high": 1, "medium": 1},
        "recovered": 1,
        "recovery_rate": 50.0,
    }
    assert summary["retries"] == {"total": 1, "by_operation": {"fetch": 1}, "gave_up": 1}
    assert summary["circuit_breakers"]["transitions"] == {"open": 1}
    assert summary["loops_detected"] == 1
    assert summary["runs"] == {"finished": 2, "failed": 1, "failure_rate": 0.5}


def test_a_huge_window_is_summarised_from_its_start_and_says_so(store: Store, events: Any) -> None:
    store.write_events([events.make(EventType.TIMEOUT, "t", at=NOW - 1) for _ in range(50)])
    summary = summarize_window(store, minutes=1, now=NOW, max_events=10)
    assert summary.truncated
    assert summary.timeouts == 10


def test_breaker_states_and_pipeline_reports(store: Store, events: Any) -> None:
    store.write_events(
        [
            events.make(EventType.CIRCUIT_OPENED, "a", at=NOW - 100),
            events.make(EventType.CIRCUIT_CLOSED, "a", at=NOW - 50),
            events.make(EventType.CIRCUIT_OPENED, "b", at=NOW - 10, failure_rate=0.7),
            events.make(
                "pipeline.stats",
                "pipeline",
                at=NOW - 30,
                emitted=10,
                dropped=1,
                dropped_by_reason={"buffer_full": 1},
            ),
            events.make("pipeline.stats", "pipeline", at=NOW - 20, emitted=20),
        ]
    )
    states = breaker_states(store)
    assert {n: s.state for n, s in states.items()} == {"a": "closed", "b": "open"}
    assert states["b"].attributes == {"failure_rate": 0.7}
    assert set(breaker_states(store, since=NOW - 20)) == {"b"}
    reports = pipeline_reports(store, since=NOW - 3600)
    assert list(reports) == ["proc0001"]
    assert reports["proc0001"].emitted == 20


def test_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
