#!/usr/bin/env python3
"""The cost of a sampling decision, and of turning events into OpenTelemetry spans.

    python bench/tracing_sampling.py            # results in bench/results/tracing_sampling.json
    python bench/tracing_sampling.py --quick

1. ``SamplingManager.should_sample(event)`` in ns per decision, by path (a routine event
   of a run hashed against the rate, the rate-1.0 shortcut, an error, an event outside
   any run), and the floor of calling a no-op with the same event. Timed with this
   thread's CPU clock (time spent descheduled by other work on the machine does not
   count), median and best of round-robin repeats. The target is ≤ 500 ns per decision.
2. Per event, on the writer thread: ``OTelSpanSink`` (SDK spans, BatchSpanProcessor,
   a counting exporter), ``TailSampler`` at 1 % in front of a counting sink, and
   both together; wall ns per event on the writer thread and CPU ns per event of the
   whole process (the span processor's export thread included, after force_flush).
   For scale: an OpenTelemetry SDK span made directly around a call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def decision_cases() -> list[tuple[str, str, Callable[[Any], bool], list[Any]]]:
    from agentkeel import Event, EventType
    from agentkeel.observability import SamplingConfig, SamplingManager, SamplingStrategy

    def manager(rate: float, strategy: SamplingStrategy) -> SamplingManager:
        return SamplingManager(
            SamplingConfig(
                strategy=strategy,
                base_sampling_rate=rate,
                min_sampling_rate=min(rate, 0.01),
                max_sampling_rate=1.0,
            )
        )

    # Fixed rates (IMPORTANCE_BASED does not adapt), and HYBRID adapting as it goes:
    # at this volume it settles at its minimum rate, re-deciding every 1,000 events.
    thin = manager(0.01, SamplingStrategy.IMPORTANCE_BASED)
    full = manager(1.0, SamplingStrategy.IMPORTANCE_BASED)
    adaptive = manager(1.0, SamplingStrategy.HYBRID)
    runs = [
        Event(EventType.TOOL_CALL_END, name="t", run_id=f"run-{i:016x}", seq=i, attributes={})
        for i in range(1024)
    ]
    errors = [
        Event(EventType.FAILURE, name="t", run_id=f"run-{i:016x}", severity=2, seq=i)
        for i in range(1024)
    ]
    loose = [Event(EventType.CUSTOM, name="t", seq=i) for i in range(1024)]

    def noop(event: Any) -> bool:
        return False

    return [
        ("floor", "noop(event): the call itself", noop, runs),
        (
            "run_event_rate_1pct",
            "tool.end of a run at 1 %: type, status, cached crc32(run_id) vs the rate",
            thin.should_sample,
            runs,
        ),
        ("run_event_rate_100pct", "the same at rate 1.0", full.should_sample, runs),
        (
            "run_event_hybrid_adapting",
            "the same, HYBRID adapting to the volume",
            adaptive.should_sample,
            runs,
        ),
        ("error_event", "failure.recorded: kept by type", thin.should_sample, errors),
        (
            "event_outside_runs",
            "routine event without a run at 1 %: hash of seq",
            thin.should_sample,
            loose,
        ),
    ]


def time_decisions(repeats: int, loops: int) -> dict[str, dict[str, float]]:
    """CPU ns per decision of this thread (time spent descheduled does not count)."""
    cases = decision_cases()
    samples: dict[str, list[float]] = {name: [] for name, _, _, _ in cases}
    gc.disable()
    try:
        for _ in range(repeats):  # round-robin, so drift hits every case alike
            for name, _, fn, events in cases:
                t0 = time.thread_time_ns()
                for _ in range(loops):
                    for event in events:
                        fn(event)
                samples[name].append((time.thread_time_ns() - t0) / (loops * len(events)))
    finally:
        gc.enable()
    floor_median = statistics.median(samples["floor"])
    floor_best = min(samples["floor"])
    print(f"{'decision (thread CPU)':<28}{'median':>8}{'net':>6}{'best':>7}{'net':>6}   what")
    out: dict[str, dict[str, float]] = {}
    for name, desc, _, _ in cases:
        median, best = statistics.median(samples[name]), min(samples[name])
        out[name] = {
            "median_ns": round(median, 1),
            "net_ns": round(median - floor_median, 1),
            "best_ns": round(best, 1),
            "best_net_ns": round(best - floor_best, 1),
        }
        print(
            f"{name:<28}{median:>8.0f}{median - floor_median:>6.0f}{best:>7.0f}"
            f"{best - floor_best:>6.0f}   {desc}"
        )
    return out


def demo_like_runs(n_runs: int, fail_every: int = 10) -> list[Any]:
    """The events of ``n_runs`` runs shaped like the demo: 3 steps, 4 tool calls, 1 LLM call."""
    from agentkeel import Event, EventType

    events: list[Event] = []
    seq = 0

    def add(type_: str, run: str, span: str, parent: str | None = None, **kw: Any) -> None:
        nonlocal seq
        seq += 1
        events.append(
            Event(
                type_,
                run_id=run,
                span_id=span,
                parent_span_id=parent,
                seq=seq,
                origin="bench",
                wall_ns=1_700_000_000_000_000_000 + seq * 10_000,
                **kw,
            )
        )

    for r in range(n_runs):
        run, root = f"run-{r:016x}", f"{r * 16 + 1:016x}"
        add(EventType.AGENT_START, run, root, name="travel-demo", attributes={"user_id": "u"})
        planner = f"{r * 16 + 2:016x}"
        add(EventType.STEP_START, run, planner, root, name="planner")
        add(
            EventType.LLM_CALL_START,
            run,
            planner,
            name="m",
            attributes={"gen_ai.request.model": "m"},
        )
        add(
            EventType.LLM_CALL_END,
            run,
            planner,
            name="m",
            attributes={"gen_ai.usage.input_tokens": 60, "gen_ai.usage.output_tokens": 170},
        )
        add(
            EventType.STEP_END,
            run,
            planner,
            root,
            name="planner",
            attributes={"status": "succeeded"},
        )
        executor = f"{r * 16 + 3:016x}"
        add(EventType.STEP_START, run, executor, root, name="executor")
        for tool in ("weather", "flights", "hotels", "currency"):
            add(EventType.TOOL_CALL_START, run, executor, name=tool)
            failed = r % fail_every == 0 and tool == "flights"
            status = {"status": "failed", "error_type": "ConnectionError"} if failed else {}
            add(EventType.TOOL_CALL_END, run, executor, name=tool, attributes=status)
            if failed:
                add(EventType.FAILURE, run, executor, name=tool, severity=3, category="network")
        add(EventType.STEP_END, run, executor, root, name="executor")
        add(EventType.AGENT_END, run, root, name="travel-demo", attributes={"status": "succeeded"})
    return events


def sink_costs(repeats: int, n_runs: int) -> dict[str, dict[str, float]]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from agentkeel.observability import (
        OTelSpanSink,
        SamplingConfig,
        SamplingManager,
        SamplingStrategy,
        TailSampler,
    )

    class CountingExporter(SpanExporter):
        def __init__(self) -> None:
            self.n = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.n += len(spans)
            return SpanExportResult.SUCCESS

    events = demo_like_runs(n_runs)
    batches = [events[i : i + 1000] for i in range(0, len(events), 1000)]

    def one_percent() -> SamplingManager:
        return SamplingManager(
            SamplingConfig(
                strategy=SamplingStrategy.IMPORTANCE_BASED,
                base_sampling_rate=0.01,
                min_sampling_rate=0.01,
                max_sampling_rate=0.01,
            )
        )

    def otel() -> tuple[Callable[[Sequence[Any]], None], Callable[[], None]]:
        provider = TracerProvider()
        processor = BatchSpanProcessor(CountingExporter(), max_queue_size=1 << 20)
        provider.add_span_processor(processor)
        return OTelSpanSink(provider), processor.force_flush

    def count_sink() -> Callable[[Sequence[Any]], None]:
        seen = [0]

        def sink(batch: Sequence[Any]) -> None:
            seen[0] += len(batch)

        return sink

    def tail_only() -> tuple[Callable[[Sequence[Any]], None], Callable[[], None]]:
        return TailSampler(count_sink(), one_percent()), lambda: None

    def tail_otel() -> tuple[Callable[[Sequence[Any]], None], Callable[[], None]]:
        sink, settle = otel()
        return TailSampler(sink, one_percent()), settle

    builders = {
        "otel_span_sink": otel,
        "tail_sampler_1pct": tail_only,
        "tail_sampler_1pct+otel_span_sink": tail_otel,
    }
    results: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in builders}
    for _ in range(repeats):
        for name, build in builders.items():
            sink, settle = build()
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            for batch in batches:
                sink(batch)
            wall = time.perf_counter_ns() - t0
            settle()
            cpu = time.process_time_ns() - c0
            results[name]["wall"].append(wall / len(events))
            results[name]["cpu"].append(cpu / len(events))
    return {
        name: {"median_ns": statistics.median(r["wall"]), "cpu_ns": statistics.median(r["cpu"])}
        for name, r in results.items()
    }


def direct_span_cost(n: int) -> float:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    processor = BatchSpanProcessor(Drop(), max_queue_size=1 << 20)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with tracer.start_as_current_span("tool.call", attributes={"a": 1}):
            pass
    wall = time.perf_counter_ns() - t0
    processor.force_flush()
    return wall / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    decisions = time_decisions(repeats=7 if args.quick else 21, loops=50 if args.quick else 200)
    sinks = sink_costs(repeats=3 if args.quick else 5, n_runs=500 if args.quick else 2_000)
    print(f"\n{'per event (writer thread)':<36}{'median ns':>12}{'cpu ns':>12}")
    for name, figures in sinks.items():
        print(f"{name:<36}{figures['median_ns']:>12.0f}{figures['cpu_ns']:>12.0f}")
    span = direct_span_cost(20_000 if args.quick else 100_000)
    print(f"{'(OTel SDK span made directly)':<36}{span:>12.0f}")
    out = Path(__file__).parent / "results" / "tracing_sampling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "decisions": decisions,
                "sinks_per_event": sinks,
                "otel_sdk_span_direct_ns": round(span, 1),
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
