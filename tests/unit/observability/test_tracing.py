"""OpenTelemetry spans from agentkeel events: structure, GenAI attributes, ours, bounds."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import agentkeel
from agentkeel import Event, EventType, Severity
from agentkeel.observability import (
    OTelSpanSink,
    SamplingConfig,
    SamplingManager,
    SamplingStrategy,
    configure_otlp,
    instrument_tracing,
    span_id_for_event,
    trace_id_for_run,
)
from agentkeel.tracking import FailureTracker, TrackedToolRegistry


class Traces:
    """A provider exporting into memory, and helpers to read the spans back."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        assert agentkeel.flush(timeout=5)
        return list(self.exporter.get_finished_spans())

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"{name}: {[s.name for s in self.spans()]}"
        return found[0]

    def named(self, name: str) -> list[ReadableSpan]:
        return sorted((s for s in self.spans() if s.name == name), key=lambda s: s.start_time or 0)


@pytest.fixture
def traces() -> Iterator[Traces]:
    agentkeel.configure(store="none", flush_interval=0.01)
    t = Traces()
    handle = instrument_tracing(t.provider)
    yield t
    handle.uninstrument()
    t.provider.shutdown()


def hexid(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# ------------------------------------------------------------------ structure
def test_run_steps_tools_and_llm_calls_form_one_trace(traces: Traces) -> None:
    tools = TrackedToolRegistry({"weather": lambda city: {"city": city}})
    with agentkeel.run("trip", session_id="s-1", user_id="u-1") as run_scope:
        with agentkeel.step("planner") as planner:
            agentkeel.emit(
                EventType.LLM_CALL_START, name="gpt-x", attributes={"gen_ai.request.model": "gpt-x"}
            )
            agentkeel.emit(
                EventType.LLM_CALL_END,
                name="gpt-x",
                attributes={
                    "gen_ai.response.model": "gpt-x-2025",
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.usage.output_tokens": 34,
                    "duration_ms": 1.5,
                },
            )
        with agentkeel.step("executor") as executor:
            tools["weather"](city="Lisbon")

    run_span = traces.one("invoke_agent trip")
    planner_span = traces.one("planner")
    executor_span = traces.one("executor")
    llm = traces.one("chat gpt-x")
    tool = traces.one("execute_tool weather")
    run_id = run_scope.run_id
    assert run_id is not None

    # One trace, its ID derived from the run ID; run and step spans keep our span IDs.
    assert {hexid(s.context.trace_id, 32) for s in traces.spans()} == {trace_id_for_run(run_id)}
    assert hexid(run_span.context.span_id, 16) == run_scope.span_id
    assert hexid(planner_span.context.span_id, 16) == planner.span_id
    assert run_span.parent is None
    assert (
        planner_span.parent is not None and planner_span.parent.span_id == run_span.context.span_id
    )
    assert llm.parent is not None and llm.parent.span_id == planner_span.context.span_id
    assert tool.parent is not None and tool.parent.span_id == executor_span.context.span_id
    assert executor.parent_span_id == run_scope.span_id

    assert attrs(run_span) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "trip",
        "gen_ai.conversation.id": "s-1",
        "user.id": "u-1",
        "agentkeel.run_id": run_id,
        "agentkeel.correlation_id": run_id,
    }
    assert attrs(llm)["gen_ai.operation.name"] == "chat"
    assert attrs(llm)["gen_ai.request.model"] == "gpt-x"
    assert attrs(llm)["gen_ai.response.model"] == "gpt-x-2025"
    assert attrs(llm)["gen_ai.usage.input_tokens"] == 12
    assert attrs(llm)["gen_ai.usage.output_tokens"] == 34
    assert "agentkeel.duration_ms" not in attrs(llm)  # the span's own timing says it
    assert llm.kind is SpanKind.CLIENT
    assert attrs(tool)["gen_ai.operation.name"] == "execute_tool"
    assert attrs(tool)["gen_ai.tool.name"] == "weather"
    assert attrs(tool)["agentkeel.run_id"] == run_id
    for span in traces.spans():
        assert span.status.status_code is StatusCode.UNSET


def test_span_times_are_the_events_times(traces: Traces) -> None:
    with agentkeel.run("r"), agentkeel.step("s"):
        agentkeel.emit(EventType.TOOL_CALL_START, name="t")
        agentkeel.emit(EventType.TOOL_CALL_END, name="t", attributes={"status": "succeeded"})
    run_span, step_span, tool = (
        traces.one("invoke_agent r"),
        traces.one("s"),
        traces.one("execute_tool t"),
    )
    assert run_span.start_time is not None and run_span.end_time is not None
    assert step_span.start_time is not None and step_span.end_time is not None
    assert tool.start_time is not None and tool.end_time is not None
    assert run_span.start_time <= step_span.start_time <= tool.start_time
    assert tool.start_time <= tool.end_time <= step_span.end_time <= run_span.end_time


def test_tool_call_id_and_namespaced_attributes_are_kept(traces: Traces) -> None:
    with agentkeel.run("r"):
        agentkeel.emit(
            EventType.TOOL_CALL_START,
            name="search",
            attributes={"tool_call_id": "call-7", "app.tenant": "acme", "query": "x", "n": [1, 2]},
        )
        agentkeel.emit(EventType.TOOL_CALL_END, name="search", attributes={"odd": {"a": 1}})
    tool = attrs(traces.one("execute_tool search"))
    assert tool["gen_ai.tool.call.id"] == "call-7"
    assert tool["app.tenant"] == "acme"
    assert tool["agentkeel.query"] == "x"
    assert tool["agentkeel.n"] == (1, 2)
    assert tool["agentkeel.odd"] == "{'a': 1}"


def test_nested_run_lives_in_its_parents_trace(traces: Traces) -> None:
    with (
        agentkeel.run("outer") as outer,
        agentkeel.step("delegate") as delegate,
        agentkeel.run("inner") as inner,
    ):
        agentkeel.emit(EventType.TOOL_CALL_START, name="t")
        agentkeel.emit(EventType.TOOL_CALL_END, name="t")
    inner_span = traces.one("invoke_agent inner")
    assert outer.run_id is not None and inner.run_id is not None
    assert hexid(inner_span.context.trace_id, 32) == trace_id_for_run(outer.run_id)
    assert inner_span.parent is not None
    assert hexid(inner_span.parent.span_id, 16) == delegate.span_id
    assert attrs(inner_span)["agentkeel.parent_run_id"] == outer.run_id
    tool = traces.one("execute_tool t")
    assert tool.parent is not None and tool.parent.span_id == inner_span.context.span_id


# -------------------------------------------------------------------- failures
def test_failed_tool_call_is_an_error_span_with_the_failure_event(
    traces: Traces, tmp_path: Path
) -> None:
    def broken(**_: Any) -> None:
        raise ConnectionError("refused")

    with agentkeel.run("r") as scope:
        tracker = FailureTracker(scope.run_id, runtime_dir=tmp_path)
        tools = TrackedToolRegistry({"flights": broken}, tracker=tracker)
        with agentkeel.step("executor"), pytest.raises(ConnectionError):
            tools["flights"]()
    tool = traces.one("execute_tool flights")
    assert tool.status.status_code is StatusCode.ERROR
    assert attrs(tool)["error.type"] == "ConnectionError"
    assert attrs(tool)["agentkeel.failure.category"] == "network"
    (failure,) = [e for e in tool.events if e.name == EventType.FAILURE]
    assert failure.attributes is not None
    assert failure.attributes["error.type"] == "ConnectionError"
    assert failure.attributes["agentkeel.error_message"] == "refused"
    assert failure.attributes["agentkeel.category"] == "network"
    # The step and the run recovered from it (the exception was caught inside the step).
    assert traces.one("executor").status.status_code is StatusCode.UNSET


def test_llm_call_without_end_ends_at_its_failure_and_the_retry_is_separate(
    traces: Traces, tmp_path: Path
) -> None:
    with agentkeel.run("r") as scope:
        tracker = FailureTracker(scope.run_id, runtime_dir=tmp_path)
        with agentkeel.step("planner"):
            for attempt in (1, 2):
                agentkeel.emit(
                    EventType.LLM_CALL_START,
                    name="model-a",
                    attributes={"gen_ai.request.model": "model-a", "attempt": attempt},
                )
                if attempt == 1:
                    tracker.record_failure(TimeoutError("slow model"), tool_name="planner_llm")
                else:
                    agentkeel.emit(EventType.LLM_CALL_END, name="model-a")
    first, second = traces.named("chat model-a")
    assert attrs(first)["agentkeel.retry.attempt"] == 1
    assert first.status.status_code is StatusCode.ERROR
    assert attrs(first)["error.type"] == "TimeoutError"
    assert [e.name for e in first.events] == [EventType.FAILURE]
    assert first.end_time == first.events[0].timestamp
    assert attrs(second)["agentkeel.retry.attempt"] == 2
    assert second.status.status_code is StatusCode.UNSET
    assert "agentkeel.unfinished" not in attrs(first)


def test_failed_step_and_run_are_error_spans_with_exception_events(traces: Traces) -> None:
    with pytest.raises(KeyError), agentkeel.run("r"), agentkeel.step("s"):
        raise KeyError("missing")
    step_span, run_span = traces.one("s"), traces.one("invoke_agent r")
    for span in (step_span, run_span):
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "KeyError"
        assert span.status.description == "KeyError: 'missing'"
    assert [e.name for e in step_span.events] == ["exception"]
    assert [e.name for e in run_span.events] == ["exception"]
    assert run_span.events[0].attributes == {
        "exception.type": "KeyError",
        "exception.message": "'missing'",
    }


def test_open_child_spans_end_with_their_parent_marked_unfinished(traces: Traces) -> None:
    with agentkeel.run("r"), agentkeel.step("s"):
        agentkeel.emit(EventType.TOOL_CALL_START, name="hangs")
    tool = traces.one("execute_tool hangs")
    assert attrs(tool)["agentkeel.unfinished"] is True
    assert tool.end_time == traces.one("s").end_time


# ---------------------------------------------------------------- our events
def test_resilience_and_recovery_events_set_our_attributes(traces: Traces) -> None:
    with agentkeel.run("r"):
        with agentkeel.step("call"):
            agentkeel.emit(EventType.TOOL_CALL_START, name="api")
            agentkeel.emit(EventType.RETRY, name="api", attributes={"attempt": 2, "delay_s": 0.25})
            agentkeel.emit(EventType.CIRCUIT_OPENED, name="api-breaker")
            agentkeel.emit(EventType.TOOL_CALL_END, name="api")
        with agentkeel.step("guard"):
            agentkeel.emit(
                EventType.LOOP_DETECTED, severity=Severity.HIGH, attributes={"verdict": "cycle"}
            )
            agentkeel.emit(
                EventType.ESCALATION_CREATED, attributes={"ticket_id": "ESC-42", "level": 2}
            )
            agentkeel.emit(EventType.RECOVERY_SUCCESS, attributes={"strategy": "rollback"})
            agentkeel.emit(EventType.FALLBACK, name="cached-answer")
    tool = traces.one("execute_tool api")
    assert attrs(tool)["agentkeel.retry.attempt"] == 2
    assert attrs(tool)["agentkeel.retry.delay_s"] == 0.25
    assert attrs(tool)["agentkeel.circuit.state"] == "open"
    assert attrs(tool)["agentkeel.circuit.name"] == "api-breaker"
    assert [e.name for e in tool.events] == [EventType.RETRY, EventType.CIRCUIT_OPENED]
    guard = attrs(traces.one("guard"))
    assert guard["agentkeel.loop.verdict"] == "cycle"
    assert guard["agentkeel.escalation.ticket"] == "ESC-42"
    assert guard["agentkeel.escalation.level"] == 2
    assert guard["agentkeel.recovery.strategy"] == "rollback"
    assert guard["agentkeel.recovery.outcome"] == "success"
    assert guard["agentkeel.fallback.used"] is True
    loop = next(e for e in traces.one("guard").events if e.name == EventType.LOOP_DETECTED)
    assert loop.attributes is not None and loop.attributes["agentkeel.severity"] == "high"


def test_events_outside_any_span(traces: Traces) -> None:
    agentkeel.emit(EventType.CUSTOM, name="routine")
    agentkeel.emit(EventType.FAILURE, name="boot", severity=Severity.HIGH, category="config")
    spans = traces.spans()
    (point,) = spans
    assert point.name == EventType.FAILURE
    assert point.status.status_code is StatusCode.ERROR
    assert point.start_time == point.end_time


# ------------------------------------------------------------ built from events
def make(type_: str, **fields: Any) -> Event:
    make.seq += 1  # type: ignore[attr-defined]
    fields.setdefault("wall_ns", 1_700_000_000_000_000_000 + make.seq * 1000)  # type: ignore[attr-defined]
    return Event(type_, seq=make.seq, origin="test", **fields)  # type: ignore[attr-defined]


make.seq = 0  # type: ignore[attr-defined]


def test_late_spans_link_to_parents_already_exported() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider)
    run_sid, step_sid = "a" * 16, "b" * 16
    sink([make(EventType.AGENT_START, name="r", run_id="run-1", span_id=run_sid)])
    sink([make(EventType.AGENT_END, name="r", run_id="run-1", span_id=run_sid)])
    # A step of that run arrives after the run span was exported.
    sink(
        [
            make(
                EventType.STEP_START,
                name="late",
                run_id="run-1",
                span_id=step_sid,
                parent_span_id=run_sid,
            ),
            make(
                EventType.STEP_END,
                name="late",
                run_id="run-1",
                span_id=step_sid,
                parent_span_id=run_sid,
            ),
        ]
    )
    late = next(s for s in t.exporter.get_finished_spans() if s.name == "late")
    assert hexid(late.context.trace_id, 32) == trace_id_for_run("run-1")
    assert late.parent is not None and hexid(late.parent.span_id, 16) == run_sid
    assert sink.stats().open_spans == 0


def test_span_ids_are_deterministic_and_documented() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider)
    start = make(EventType.TOOL_CALL_START, name="t", run_id="run-2", span_id="c" * 16)
    sink([start, make(EventType.TOOL_CALL_END, name="t", run_id="run-2", span_id="c" * 16)])
    # Held back one batch for a failure that may follow its end event.
    assert t.exporter.get_finished_spans() == ()
    sink([make(EventType.CUSTOM, name="other", run_id="run-9")])
    (tool,) = [s for s in t.exporter.get_finished_spans() if s.name == "execute_tool t"]
    assert hexid(tool.context.span_id, 16) == span_id_for_event(start)
    run_start = make(EventType.AGENT_START, run_id="run-2", span_id="0123456789abcdef")
    assert span_id_for_event(run_start) == "0123456789abcdef"


def test_open_spans_are_bounded() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider, max_open_spans=3)
    sink(
        [
            make(EventType.STEP_START, name=f"s{i}", run_id="run-3", span_id=f"{i + 1:016x}")
            for i in range(10)
        ]
    )
    stats = sink.stats()
    assert stats.open_spans == 3
    assert stats.unfinished_spans == 7
    ended = t.exporter.get_finished_spans()
    assert [s.name for s in ended] == [f"s{i}" for i in range(7)]
    assert all(attrs(s)["agentkeel.unfinished"] is True for s in ended)
    sink.close()
    assert len(t.exporter.get_finished_spans()) == 10
    sink([make(EventType.STEP_START, name="after-close", run_id="run-3", span_id="f" * 16)])
    assert sink.stats().spans_started == 10


def test_close_ends_each_open_span_once(caplog: pytest.LogCaptureFixture) -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider)
    sink(
        [
            make(EventType.AGENT_START, name="r", run_id="run-5", span_id="1" * 16),
            make(
                EventType.STEP_START,
                name="s",
                run_id="run-5",
                span_id="2" * 16,
                parent_span_id="1" * 16,
            ),
            make(EventType.TOOL_CALL_START, name="t", run_id="run-5", span_id="2" * 16),
        ]
    )
    sink.close()
    sink.close()
    assert sorted(s.name for s in t.exporter.get_finished_spans()) == [
        "execute_tool t",
        "invoke_agent r",
        "s",
    ]
    assert all(attrs(s)["agentkeel.unfinished"] for s in t.exporter.get_finished_spans())
    assert "ended span" not in caplog.text


def test_ids_are_primed_only_for_the_sinks_thread() -> None:
    t = Traces()
    OTelSpanSink(t.provider)
    tracer = t.provider.get_tracer("agentkeel", agentkeel.__version__)
    generator: Any = tracer.id_generator  # type: ignore[attr-defined]
    generator.prime(123, 456)
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(generator.generate_span_id()))
    thread.start()
    thread.join()
    assert seen[0] != 456
    assert generator.generate_span_id() == 456
    assert generator.generate_span_id() != 456  # used once


# ------------------------------------------------------------------ plumbing
def test_never_touches_the_global_provider(traces: Traces) -> None:
    before = trace.get_tracer_provider()
    with agentkeel.run("r"):
        pass
    assert traces.spans()
    assert trace.get_tracer_provider() is before
    configure_otlp(endpoint="http://127.0.0.1:9").shutdown()
    assert trace.get_tracer_provider() is before


def test_defaults_to_the_api_provider_a_no_op_until_configured() -> None:
    sink = OTelSpanSink()
    assert sink.tracer_provider is trace.get_tracer_provider()
    sink([make(EventType.AGENT_START, name="r", run_id="run-4", span_id="d" * 16)])
    sink([make(EventType.AGENT_END, name="r", run_id="run-4", span_id="d" * 16)])
    assert sink.stats().spans_ended == 1


def test_uninstrument_detaches_the_sink_and_ends_open_spans() -> None:
    pipeline = agentkeel.configure(store="none", flush_interval=0.01)
    t = Traces()
    handle = instrument_tracing(t.provider)
    assert handle.active and handle.sink in pipeline.sinks
    with agentkeel.run("r"):
        agentkeel.flush()
        handle.uninstrument()
    assert not handle.active and handle.sink not in pipeline.sinks
    (run_span,) = t.exporter.get_finished_spans()
    assert attrs(run_span)["agentkeel.unfinished"] is True
    with agentkeel.run("after"):
        pass
    agentkeel.flush()
    assert len(t.exporter.get_finished_spans()) == 1
    handle.uninstrument()  # twice is fine


def test_uninstrument_delivers_what_was_emitted_before_it() -> None:
    agentkeel.configure(store="none", flush_interval=10)
    t = Traces()
    handle = instrument_tracing(t.provider)
    with agentkeel.run("r"):
        pass
    handle.uninstrument()
    (run_span,) = t.exporter.get_finished_spans()
    assert "agentkeel.unfinished" not in attrs(run_span)


def test_tracing_with_tail_sampling_keeps_failed_runs_whole() -> None:
    agentkeel.configure(store="none", flush_interval=0.01)
    t = Traces()
    manager = SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.IMPORTANCE_BASED,
            base_sampling_rate=0.0,
            min_sampling_rate=0.0,
        )
    )
    handle = instrument_tracing(t.provider, sampling=manager)
    assert handle.sampler is not None
    with agentkeel.run("healthy"), agentkeel.step("s"):
        pass
    with pytest.raises(RuntimeError), agentkeel.run("failing"), agentkeel.step("s"):
        raise RuntimeError("boom")
    agentkeel.flush()
    names = sorted(s.name for s in t.exporter.get_finished_spans())
    assert names == ["invoke_agent failing", "s"]
    handle.uninstrument()


def test_instrument_rejects_bad_sampling() -> None:
    t = Traces()
    with pytest.raises(agentkeel.ConfigurationError, match="sampling"):
        instrument_tracing(t.provider, sampling="yes")  # type: ignore[arg-type]
    with pytest.raises(agentkeel.ConfigurationError, match="max_open_spans"):
        OTelSpanSink(t.provider, max_open_spans=0)


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ImportError, match=r"agentkeel\[otel\]"):
        OTelSpanSink()
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ImportError, match=r"agentkeel\[otel\]"):
        configure_otlp(endpoint="http://127.0.0.1:4318")


# ---------------------------------------------------------------------- OTLP
def test_configure_otlp_builds_a_private_provider() -> None:
    provider = configure_otlp(
        endpoint="http://127.0.0.1:4318",
        headers={"x-api-key": "k"},
        service_name="travel-agent",
        resource_attributes={"deployment.environment": "test"},
    )
    try:
        assert provider.resource.attributes["service.name"] == "travel-agent"
        assert provider.resource.attributes["deployment.environment"] == "test"
        processor: Any = provider._active_span_processor._span_processors[0]
        exporter = processor._batch_processor._exporter
        assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "127.0.0.1:4318"}, "http"),
        ({"endpoint": "ftp://x"}, "http"),
        ({"service_name": " "}, "service_name"),
        ({"timeout": 0}, "timeout"),
        ({"max_queue_size": 10, "max_export_batch_size": 20}, "max_export_batch_size"),
    ],
)
def test_configure_otlp_validates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(agentkeel.ConfigurationError, match=message):
        configure_otlp(**kwargs)


# ------------------------------------------------------------- odd corners
def test_attribute_values_become_what_opentelemetry_holds() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider)
    sink(
        [
            make(
                EventType.TASK_START,
                name="report",
                run_id="run-6",
                span_id="not-hex-span",
                attributes={
                    "names": ["a", "b"],
                    "flags": [True, False],
                    "mixed": [1, 2.5],
                    "odd": [1, "a"],
                    "nothing": None,
                    "long": "x" * 5000,
                },
            ),
            make(
                EventType.TASK_FAIL,
                name="report",
                run_id="run-6",
                span_id="not-hex-span",
                attributes={"error_type": "ValueError", "error_message": "bad"},
            ),
        ]
    )
    sink.flush()
    (task,) = t.exporter.get_finished_spans()
    assert task.name == "task report"
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "ValueError: bad"
    values = attrs(task)
    assert values["agentkeel.names"] == ("a", "b")
    assert values["agentkeel.flags"] == (True, False)
    assert values["agentkeel.mixed"] == (1.0, 2.5)
    assert values["agentkeel.odd"] == "[1, 'a']"
    assert "agentkeel.nothing" not in values
    assert len(values["agentkeel.long"]) == 4097  # cut, with a marker


def test_statuses_other_than_success_and_unknown_ends() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider, max_open_spans=100)
    run_sid, step_sid = "1" * 16, "2" * 16
    sink(
        [
            make(
                EventType.AGENT_START,
                name="r",
                run_id="run-7",
                span_id=run_sid,
                attributes={"tags": ["a", 1]},
            ),
            make(
                EventType.STEP_START,
                name="s",
                run_id="run-7",
                span_id=step_sid,
                parent_span_id=run_sid,
            ),
            make(EventType.TOOL_CALL_START, name="t", run_id="run-7", span_id=step_sid),
            make(
                EventType.TOOL_CALL_END,
                name="t",
                run_id="run-7",
                span_id=step_sid,
                attributes={"status": "cancelled"},
            ),
            make(EventType.TOOL_CALL_END, name="ghost", run_id="run-7", span_id=step_sid),
            make(
                EventType.STEP_END,
                name="s",
                run_id="run-7",
                span_id=step_sid,
                attributes={"status": "cancelled"},
            ),
            make(EventType.STEP_END, name="never-started", run_id="run-7", span_id="3" * 16),
            make(EventType.AGENT_START, name="no-span", run_id="run-8"),
            make(EventType.AGENT_END, name="r", run_id="run-7", span_id=run_sid),
        ]
    )
    spans = {s.name: s for s in t.exporter.get_finished_spans()}
    assert attrs(spans["execute_tool t"])["agentkeel.status"] == "cancelled"
    assert attrs(spans["s"])["agentkeel.status"] == "cancelled"
    assert attrs(spans["invoke_agent r"])["agentkeel.tags"] == ("a", "1")
    # An end without its start, a start without a span: events on what is open, or points.
    step_events = [e.name for e in spans["s"].events]
    assert step_events == [EventType.TOOL_CALL_END]
    assert [e.name for e in spans["invoke_agent r"].events] == [EventType.STEP_END]
    assert EventType.AGENT_START in spans
    assert repr(sink).startswith("OTelSpanSink(")


def test_a_failure_in_flight_ends_at_the_step_end_if_no_retry_follows(tmp_path: Path) -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider)
    sid = "4" * 16
    sink(
        [
            make(EventType.STEP_START, name="s", run_id="run-9", span_id=sid),
            make(EventType.LLM_CALL_START, name="m", run_id="run-9", span_id=sid),
            make(EventType.FAILURE, name="planner_llm", run_id="run-9", span_id=sid, wall_ns=5),
            make(EventType.STEP_END, name="s", run_id="run-9", span_id=sid),
        ]
    )
    llm = next(s for s in t.exporter.get_finished_spans() if s.name == "chat m")
    assert llm.end_time == 5
    assert "agentkeel.unfinished" not in attrs(llm)


def test_pending_spans_and_remembered_traces_are_bounded() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider, max_open_spans=2)
    batch = []
    for i in range(5):
        sid = f"{i + 10:016x}"
        batch += [
            make(EventType.AGENT_START, name=f"r{i}", run_id=f"run-b{i}", span_id=sid),
            make(EventType.TOOL_CALL_START, name="t", run_id=f"run-b{i}", span_id=sid),
            make(EventType.TOOL_CALL_END, name="t", run_id=f"run-b{i}", span_id=sid),
            make(EventType.AGENT_END, name=f"r{i}", run_id=f"run-b{i}", span_id=sid),
        ]
    sink(batch)
    assert sink.stats().open_spans == 0
    assert len(sink._traces) <= 8


def test_a_non_sdk_tracer_keeps_its_own_ids() -> None:
    class Proxy:
        """A provider whose tracer is not the SDK's (no id_generator)."""

        def __init__(self, inner: TracerProvider) -> None:
            self.inner = inner

        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            tracer = self.inner.get_tracer("other", "1")

            class Wrapped:
                def start_span(self, *a: Any, **k: Any) -> Any:
                    return tracer.start_span(*a, **k)

            return Wrapped()

    t = Traces()
    sink = OTelSpanSink(Proxy(t.provider))  # type: ignore[arg-type]
    sink(
        [
            make(EventType.AGENT_START, name="r", run_id="run-10", span_id="5" * 16),
            make(
                EventType.STEP_START,
                name="s",
                run_id="run-10",
                span_id="6" * 16,
                parent_span_id="5" * 16,
            ),
            make(
                EventType.STEP_END,
                name="s",
                run_id="run-10",
                span_id="6" * 16,
                parent_span_id="5" * 16,
            ),
            make(EventType.AGENT_END, name="r", run_id="run-10", span_id="5" * 16),
        ]
    )
    step, run_span = t.exporter.get_finished_spans()
    assert step.parent is not None and step.parent.span_id == run_span.context.span_id
    assert step.context.trace_id == run_span.context.trace_id


def test_an_internal_error_is_reported_and_raised_in_strict_mode() -> None:
    t = Traces()
    sink = OTelSpanSink(t.provider)

    class Broken(dict):  # type: ignore[type-arg]
        def get(self, *args: Any) -> Any:
            raise RuntimeError("bug")

    event = make(EventType.AGENT_START, name="r", run_id="run-11", span_id="7" * 16)
    odd = Event(event.type, name="r", run_id="run-11", span_id="7" * 16, attributes=Broken(), seq=1)
    with pytest.raises(RuntimeError, match="bug"):
        sink([odd])
    agentkeel.set_strict(False)
    try:
        sink([odd])  # logged and counted, the batch goes on
    finally:
        agentkeel.set_strict(True)
    assert sink.stats().spans_started == 0
