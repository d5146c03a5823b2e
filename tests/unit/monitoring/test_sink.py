"""MetricsSink: agentkeel's own metrics, derived from the events the parts emit."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import agentkeel
from agentkeel import EventType, PipelineError
from agentkeel._internal import internal_error_counts, set_strict
from agentkeel.monitoring import MonitoringSystem, StoreFeed, report_pipeline_stats
from agentkeel.monitoring._sink import MAX_SERIES_PER_METRIC, OTHER, MetricsSink
from agentkeel.pipeline import Pipeline
from agentkeel.store import Store


@pytest.fixture
def sink() -> MetricsSink:
    return MetricsSink(CollectorRegistry())


def sample(sink: MetricsSink, metric: object, sample_name: str, /, **labels: str) -> float | None:
    for family in metric.collect():  # type: ignore[attr-defined]
        for s in family.samples:
            if s.name == sample_name and s.labels == labels:
                return float(s.value)
    return None


def test_every_part_of_the_event_stream_becomes_a_metric(sink: MetricsSink, events: Any) -> None:
    sink(
        [
            events.make(EventType.TOOL_CALL_END, "weather", duration_ms=120.0, status="succeeded"),
            events.make(EventType.TOOL_CALL_END, "weather", duration_ms=30.0, status="failed"),
            events.make(
                EventType.LLM_CALL_END,
                "gpt",
                duration_ms=900.0,
                **{
                    "gen_ai.request.model": "gpt-x",
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 4,
                },
            ),
            events.make(
                EventType.FAILURE, "weather", severity=3, category="network", graph_node="executor"
            ),
            events.make(EventType.FAILURE_RECOVERED, "weather", severity=1, category="network"),
            events.make(EventType.RETRY, "fetch", attempt=1),
            events.make(EventType.RETRY, "fetch", attempt=3, giving_up=True),
            events.make(EventType.TIMEOUT, "fetch"),
            events.make(EventType.FALLBACK, "fetch"),
            events.make(EventType.CIRCUIT_OPENED, "weather", severity=3, failure_rate=0.6),
            events.make(EventType.CIRCUIT_REJECTED, "weather"),
            events.make(EventType.LOOP_DETECTED, "planner", kind="repeat"),
            events.make(EventType.ESCALATION_CREATED, "ops", level="L2"),
            events.make(EventType.CHAOS_INJECTED, "hotels", kind="latency"),
            events.make(EventType.AGENT_END, "trip", duration_ms=2000.0, status="failed"),
            events.make(
                "alert.raised", "calls", attrs={"component": "calls", "severity": "warning"}
            ),
            events.make("custom.thing", "ignored"),
        ]
    )
    assert (
        sample(
            sink, sink.tool_calls, "agentkeel_tool_calls_total", tool="weather", status="succeeded"
        )
        == 1
    )
    assert sample(
        sink,
        sink.tool_duration,
        "agentkeel_tool_call_duration_seconds_sum",
        tool="weather",
        status="succeeded",
    ) == pytest.approx(0.12)
    assert (
        sample(sink, sink.llm_calls, "agentkeel_llm_calls_total", model="gpt-x", status="succeeded")
        == 1
    )
    assert (
        sample(sink, sink.llm_tokens, "agentkeel_llm_tokens_total", model="gpt-x", type="output")
        == 4
    )
    assert (
        sample(
            sink,
            sink.failures,
            "agentkeel_failures_total",
            category="network",
            severity="high",
            node="executor",
        )
        == 1
    )
    assert (
        sample(sink, sink.recoveries, "agentkeel_failures_recovered_total", category="network") == 1
    )
    assert (
        sample(sink, sink.retries, "agentkeel_retries_total", operation="fetch", outcome="retry")
        == 1
    )
    assert (
        sample(sink, sink.retries, "agentkeel_retries_total", operation="fetch", outcome="gave_up")
        == 1
    )
    assert sample(sink, sink.timeouts, "agentkeel_timeouts_total", operation="fetch") == 1
    assert sample(sink, sink.fallbacks, "agentkeel_fallbacks_total", operation="fetch") == 1
    assert (
        sample(
            sink,
            sink.breaker_transitions,
            "agentkeel_circuit_breaker_transitions_total",
            breaker="weather",
            state="open",
        )
        == 1
    )
    assert (
        sample(
            sink,
            sink.breaker_rejections,
            "agentkeel_circuit_breaker_rejections_total",
            breaker="weather",
        )
        == 1
    )
    assert sample(sink, sink.loops, "agentkeel_loops_detected_total", loop="repeat") == 1
    assert sample(sink, sink.escalations, "agentkeel_escalations_total", level="L2") == 1
    assert (
        sample(sink, sink.chaos, "agentkeel_chaos_faults_total", tool="hotels", kind="latency") == 1
    )
    assert sample(sink, sink.runs, "agentkeel_runs_total", name="trip", status="failed") == 1
    assert (
        sample(
            sink,
            sink.alerts,
            "agentkeel_alerts_raised_total",
            component="calls",
            severity="warning",
        )
        == 1
    )
    assert sink.breaker_states()["weather"].state == "open"
    assert sink.events_observed == 17


def test_breaker_state_follows_the_latest_event(sink: MetricsSink, events: Any) -> None:
    sink([events.make(EventType.CIRCUIT_OPENED, "b", at=100.0)])
    sink([events.make(EventType.CIRCUIT_CLOSED, "b", at=90.0)])  # late, older: ignored
    assert sink.breaker_states()["b"].state == "open"
    sink([events.make(EventType.CIRCUIT_HALF_OPEN, "b", at=110.0)])
    assert sink.breaker_states()["b"].state == "half_open"


def test_runaway_labels_fold_into_other(sink: MetricsSink, events: Any) -> None:
    sink([events.make(EventType.TIMEOUT, f"op-{i}") for i in range(MAX_SERIES_PER_METRIC + 5)])
    assert sample(sink, sink.timeouts, "agentkeel_timeouts_total", operation=OTHER) == 5


def test_an_odd_event_is_counted_not_fatal(sink: MetricsSink, events: Any) -> None:
    set_strict(False)
    try:
        sink(
            [events.make(EventType.FAILURE, "x", severity=99), events.make(EventType.TIMEOUT, "t")]
        )
    finally:
        set_strict(True)
    assert sample(sink, sink.timeouts, "agentkeel_timeouts_total", operation="t") == 1
    assert (
        sample(
            sink,
            sink.failures,
            "agentkeel_failures_total",
            category="unknown",
            severity="99",
            node="none",
        )
        == 1
    )


def test_a_bug_in_a_handler_surfaces_in_strict_mode(
    sink: MetricsSink, events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_event: object) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setitem(sink._handlers, EventType.TIMEOUT.value, broken)
    with pytest.raises(RuntimeError, match="handler bug"):
        sink([events.make(EventType.TIMEOUT, "t")])
    set_strict(False)
    try:
        sink([events.make(EventType.TIMEOUT, "t")])
    finally:
        set_strict(True)
    assert internal_error_counts()["monitoring.metrics_sink"] == 2


def test_installed_on_the_live_pipeline_with_tracker_events() -> None:
    agentkeel.configure(store="memory://")
    monitoring = MonitoringSystem(emit=None)
    monitoring.install()
    monitoring.install()  # twice is harmless
    from agentkeel.tracking import FailureTracker, TrackedToolRegistry

    def flaky() -> str:
        raise ConnectionError("down")

    with agentkeel.run("sink-test") as scope:
        tracker = FailureTracker(run_id=scope.run_id)
        tools = TrackedToolRegistry({"flaky": flaky, "ok": lambda: "ok"}, tracker=tracker)
        tools["ok"]()
        with pytest.raises(ConnectionError):
            tools["flaky"]()
    report_pipeline_stats()
    agentkeel.flush()
    text = monitoring.export_prometheus_metrics_sync()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    calls = {
        (s.labels["tool"], s.labels["status"]): s.value
        for s in families["agentkeel_tool_calls"].samples
        if s.name.endswith("_total")
    }
    assert calls == {("ok", "succeeded"): 1.0, ("flaky", "failed"): 1.0}
    failures = families["agentkeel_failures"].samples
    assert any(s.labels["category"] == "network" and s.value == 1 for s in failures)
    emitted = [
        s
        for s in families["agentkeel_pipeline_events_emitted"].samples
        if s.name.endswith("_total")
    ]
    assert len(emitted) == 1  # the live pipeline and its own report count once
    assert emitted[0].value >= 6
    runs = families["agentkeel_runs"].samples
    assert any(s.labels == {"name": "sink-test", "status": "succeeded"} for s in runs)


def test_install_on_a_pipeline_without_add_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    class Old:
        sinks = ()

    with pytest.raises(Exception, match="configure\\(sinks="):
        MonitoringSystem(emit=None).install(Old())  # type: ignore[arg-type]


def test_store_feed_replays_then_polls(store: Store, events: Any) -> None:
    store.write_events([events.make(EventType.TIMEOUT, "a") for _ in range(5)])
    monitoring = MonitoringSystem(emit=None)
    sink = monitoring.metrics_sink
    feed = StoreFeed(store, sink, types=sink.event_types, page_size=2)
    assert feed.poll() == 5
    store.write_events([events.make(EventType.TIMEOUT, "a"), events.make("other", "x")])
    assert feed.poll() == 1
    assert feed.poll() == 0
    assert sample(sink, sink.timeouts, "agentkeel_timeouts_total", operation="a") == 6
    tail = StoreFeed(store, sink)
    tail.skip_to_end()
    assert tail.poll() == 0


def test_store_feed_run_survives_store_errors(store: Store) -> None:
    import threading

    set_strict(False)
    stop = threading.Event()
    calls = []

    class Broken:
        def list_events(self, **_kw: object) -> list[object]:
            calls.append(1)
            if len(calls) >= 2:
                stop.set()
            raise agentkeel.StoreUnavailableError("db down")

    feed = StoreFeed(Broken(), lambda _b: None)  # type: ignore[arg-type]
    try:
        feed.run(stop, 0.01)
    finally:
        set_strict(True)
    assert feed.last_error == "StoreUnavailableError: db down"


def test_pipeline_sink_failure_in_strict_mode_is_raised() -> None:
    def bad(_batch: object) -> None:
        raise RuntimeError("boom")

    pipeline = Pipeline(sinks=[bad], sink_retries=0)
    pipeline.emit("x")
    with pytest.raises(PipelineError):
        pipeline.flush()
    pipeline.close()
