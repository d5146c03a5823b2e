#!/usr/bin/env python3
"""agentkeel against the libraries users would otherwise pick, in one process.

Cases follow ../shared/bench/anchors/peer_overhead.py: the same trivial tool, the
same peer configurations (count-and-drop span exporter, StringIO log sinks), the
same loop. Each figure is ns per logical call; ``cpu`` includes the background
threads' work for those calls (our writer threads are flushed inside the CPU timer).

    python bench/run.py                 # all cases, results in bench/results/latest.json
    python bench/run.py --quick         # fewer repeats, for a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Case, run_cases

CORRELATION_ID = "c0ffee00-0000-4000-8000-000000000001"
ATTRS = {"tool.name": "tool", "agent.id": "agent-7", "run.id": "run-0001"}
PEERS = ["structlog", "tenacity", "pybreaker", "opentelemetry-sdk", "prometheus-client", "msgspec"]


def tool(x: int) -> int:
    return x + 1


class Flaky:
    """Fails on every odd call: a tracked call that fails, or one failure then a retry."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, x: int) -> int:
        self.n += 1
        if self.n & 1:
            raise ConnectionError("transient")
        return x + 1


def build_cases(workdir: Path) -> tuple[list[Case], dict[str, Any]]:
    import agentkeel
    from agentkeel.observability import configure_logging, flush_logs, get_logger
    from agentkeel.pipeline import Pipeline
    from agentkeel.tracking import FailureTracker, TrackedToolRegistry, TrackingSettings

    notes: dict[str, Any] = {}
    cases: list[Case] = [Case("bare", "floor", "tool(x)", tool)]

    # ------------------------------------------------------------------ events
    counted = [0]

    def count_sink(batch: Sequence[Any]) -> None:
        counted[0] += len(batch)

    pipeline = Pipeline(sinks=[count_sink], capacity=1_000_000)
    # Trackers, registries and guards share the process-wide pipeline: give it the same
    # counting sink and room as the emit case, so no case measures the drop path.
    agentkeel.configure(store="none", sinks=[count_sink], capacity=1_000_000)

    def keel_emit(i: int) -> int:
        pipeline.emit("tool.start", name="tool", attributes=ATTRS)
        return tool(i)

    def settle_pipeline() -> None:
        pipeline.flush(timeout=60)
        agentkeel.flush(timeout=60)

    cases.append(
        Case(
            "keel_emit",
            "event",
            "tool + pipeline.emit(type, name, 3 attributes), count sink",
            keel_emit,
            settle=settle_pipeline,
        )
    )

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        def __init__(self) -> None:
            self.n = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.n += len(spans)
            return SpanExportResult.SUCCESS

    exporter = CountingExporter()
    provider = TracerProvider()
    processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def otel_span(i: int) -> int:
        with tracer.start_as_current_span("tool.call", attributes=ATTRS):
            return tool(i)

    cases.append(
        Case(
            "otel_span",
            "event",
            "OTel SDK span, BatchSpanProcessor, counting exporter",
            otel_span,
            settle=processor.force_flush,
        )
    )

    # ----------------------------------------------------------------- metrics
    from prometheus_client import CollectorRegistry, Counter

    from agentkeel.monitoring import MetricType, MonitoringSystem

    peer_counter = Counter(
        "bench_tool_calls", "calls", ["tool", "status"], registry=CollectorRegistry()
    )

    def prometheus_labels_inc(i: int) -> int:
        peer_counter.labels(tool="tool", status="ok").inc()
        return tool(i)

    monitoring = MonitoringSystem(emit=None)
    labels = {"tool": "tool", "status": "ok"}
    counter = MetricType.COUNTER

    def keel_record_metric_sync(i: int) -> int:
        monitoring.record_metric_sync(
            name="bench_tool_calls", value=1, metric_type=counter, labels=labels
        )
        return tool(i)

    async def keel_record_metric(i: int) -> int:
        await monitoring.record_metric(
            name="bench_tool_calls", value=1, metric_type=counter, labels=labels
        )
        return tool(i)

    cases += [
        Case(
            "prometheus_labels_inc",
            "metric",
            "prometheus_client Counter.labels(tool=, status=).inc()",
            prometheus_labels_inc,
        ),
        Case(
            "keel_record_metric_sync",
            "metric",
            "record_metric_sync(name, value, COUNTER, labels=2 keys)",
            keel_record_metric_sync,
        ),
        Case(
            "keel_record_metric",
            "metric",
            "await record_metric(name, value, COUNTER, labels=2 keys)",
            keel_record_metric,
            is_async=True,
        ),
    ]

    # -------------------------------------------------------------------- logs
    keel_sink = io.StringIO()
    configure_logging(stream=keel_sink, level="INFO")
    agentkeel.set_correlation_id(CORRELATION_ID)
    klog = get_logger("bench", component="bench")
    meta = {"tool": "tool", "attempt": 1, "ok": True}

    def keel_log(i: int) -> int:
        r = tool(i)
        klog.info("tool called", metadata=meta)
        return r

    def settle_logs() -> None:
        flush_logs(timeout=60)
        keel_sink.seek(0)
        keel_sink.truncate()

    cases.append(
        Case(
            "keel_log",
            "log",
            "tool + get_logger().info(message, metadata=3 keys) -> JSON line",
            keel_log,
            settle=settle_logs,
        )
    )

    import structlog

    struct_sink = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(struct_sink),
        cache_logger_on_first_use=True,
    )
    slog = structlog.get_logger().bind(correlation_id=CORRELATION_ID)

    def structlog_json(i: int) -> int:
        r = tool(i)
        slog.info("tool called", tool="tool", attempt=1, ok=True)
        return r

    def clear_struct() -> None:
        struct_sink.seek(0)
        struct_sink.truncate()

    cases.append(
        Case(
            "structlog_json",
            "log",
            "structlog JSON line (anchors' configuration)",
            structlog_json,
            settle=clear_struct,
        )
    )

    std_sink = io.StringIO()

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps(
                {
                    "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
                    "level": record.levelname,
                    "message": record.getMessage(),
                    "correlation_id": getattr(record, "correlation_id", None),
                    "tool": getattr(record, "tool", None),
                    "attempt": getattr(record, "attempt", None),
                    "ok": getattr(record, "ok", None),
                }
            )

    std_logger = logging.getLogger("bench.stdlib")
    std_logger.propagate = False
    handler = logging.StreamHandler(std_sink)
    handler.setFormatter(JsonFormatter())
    std_logger.addHandler(handler)
    std_logger.setLevel(logging.INFO)
    extra = {"correlation_id": CORRELATION_ID, "tool": "tool", "attempt": 1, "ok": True}

    def stdlib_json(i: int) -> int:
        r = tool(i)
        std_logger.info("tool called", extra=extra)
        return r

    def clear_std() -> None:
        std_sink.seek(0)
        std_sink.truncate()

    cases.append(
        Case(
            "stdlib_logging_json",
            "log",
            "stdlib logging, json.dumps Formatter, StreamHandler",
            stdlib_json,
            settle=clear_std,
        )
    )

    # ----------------------------------------------------------- tracked tools
    settings = TrackingSettings(failure_log_dir=workdir / "logs")
    tracker = FailureTracker(run_id="run-bench", runtime_dir=workdir, settings=settings)
    registry = TrackedToolRegistry({"tool": tool}, tracker=tracker, graph_node="executor")
    tracked = registry["tool"]
    cases.append(
        Case(
            "keel_tracked_tool",
            "tool",
            "TrackedToolRegistry call, success (start/end events)",
            tracked,
            settle=settle_pipeline,
        )
    )

    flaky = Flaky()
    failing_registry = TrackedToolRegistry({"tool": flaky}, tracker=tracker, graph_node="executor")
    tracked_flaky = failing_registry["tool"]

    def keel_tracked_failure(i: int) -> int | None:
        try:
            return tracked_flaky(i)  # odd calls fail: classified, JSONL line, failure event
        except ConnectionError:
            return None

    cases.append(
        Case(
            "keel_tracked_tool_fail50",
            "tool",
            "TrackedToolRegistry call, every 2nd call fails (recorded, JSONL, event)",
            keel_tracked_failure,
            before=lambda: setattr(flaky, "n", 0),
            settle=settle_pipeline,
        )
    )

    import pybreaker
    from tenacity import retry, stop_after_attempt, wait_exponential, wait_none

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    @retry(stop=stop_after_attempt(3), wait=wait_exponential())
    @breaker
    def tenacity_pybreaker(x: int) -> int:
        return x + 1

    cases.append(
        Case(
            "tenacity+pybreaker",
            "tool",
            "@retry(stop 3, wait_exponential) outside @breaker",
            tenacity_pybreaker,
        )
    )

    peer_flaky = Flaky()
    peer_breaker = pybreaker.CircuitBreaker(fail_max=1_000_000, reset_timeout=30)

    @retry(stop=stop_after_attempt(3), wait=wait_none(), sleep=lambda _s: None)
    @peer_breaker
    def tenacity_pybreaker_fail(x: int) -> int:
        return peer_flaky(x)

    cases.append(
        Case(
            "tenacity+pybreaker_fail_then_ok",
            "tool",
            "same stack, 1 failure then success per call, sleep=noop",
            tenacity_pybreaker_fail,
            before=lambda: setattr(peer_flaky, "n", 0),
        )
    )

    # ------------------------------------------------- guarded calls (issue 3)
    cases.extend(_guard_cases(tracker, tracer, slog))
    cases.extend(loop_detector_cases())

    notes["span_exporter"] = exporter
    notes["tracker"] = tracker
    return cases, notes


def _guard_cases(tracker: Any, tracer: Any, slog: Any) -> list[Case]:
    """Our composed policies against the stacks users assemble from the peers."""
    import pybreaker
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from tenacity import retry, stop_after_attempt, wait_exponential, wait_none

    from agentkeel.resilience import CircuitBreaker, CircuitBreakerConfig, Guard, Retry, fixed

    cases: list[Case] = []
    guarded = Guard(
        name="tool",
        retry=Retry(on=ConnectionError, attempts=3),
        breaker=CircuitBreaker("bench-guard"),
        tracker=tracker,
        event=None,
    )(tool)
    cases.append(Case("keel_guard", "guard", "Guard(retry + breaker + failure tracking)", guarded))
    observed = Guard(
        name="tool",
        retry=Retry(on=ConnectionError, attempts=3),
        breaker=CircuitBreaker("bench-guard-observed"),
        tracker=tracker,
    )(tool)
    cases.append(
        Case(
            "keel_guard_observed",
            "guard",
            "Guard(retry + breaker + tracking) + its tool.end event (store, metrics, spans)",
            observed,
        )
    )

    registry = CollectorRegistry()
    calls = Counter("peer_calls", "calls", ["tool"], registry=registry)
    latency = Histogram("peer_latency", "latency", ["tool"], registry=registry)
    full_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    @retry(stop=stop_after_attempt(3), wait=wait_exponential())
    @full_breaker
    def peer_inner(x: int) -> int:
        return x + 1

    def full_stack(i: int) -> int:
        with tracer.start_as_current_span("tool.call", attributes=ATTRS):
            started = time.perf_counter()
            r = peer_inner(i)
            calls.labels(tool="x").inc()
            latency.labels(tool="x").observe(time.perf_counter() - started)
            slog.info("tool called", tool="tool", attempt=1, ok=True)
            return r

    cases.append(
        Case(
            "peer_full_stack",
            "guard",
            "OTel span{tenacity{pybreaker{tool}}} + prometheus counter+histogram + structlog line",
            full_stack,
        )
    )

    def no_sleep(_s: float) -> None:
        return None

    retry_flaky = Flaky()
    keel_retry = Retry(
        on=ConnectionError, attempts=3, backoff=fixed(0), jitter=False, sleep=no_sleep
    )

    def keel_retry_fail_then_ok(i: int) -> int:
        return keel_retry.call(retry_flaky, i)

    cases.append(
        Case(
            "keel_retry_fail_then_ok",
            "retry-fail",
            "Retry.call: 1 failure then success, no sleep",
            keel_retry_fail_then_ok,
            before=lambda: setattr(retry_flaky, "n", 0),
        )
    )
    tenacity_flaky = Flaky()

    @retry(stop=stop_after_attempt(3), wait=wait_none(), sleep=no_sleep)
    def tenacity_fail_then_ok(x: int) -> int:
        return tenacity_flaky(x)

    cases.append(
        Case(
            "tenacity_fail_then_ok",
            "retry-fail",
            "@retry(stop 3, wait_none, sleep=noop)",
            tenacity_fail_then_ok,
            before=lambda: setattr(tenacity_flaky, "n", 0),
        )
    )
    guard_flaky = Flaky()
    flaky_guard = Guard(
        name="flaky",
        retry=Retry(on=ConnectionError, attempts=3, backoff=fixed(0), jitter=False, sleep=no_sleep),
        # Like the peer's fail_max=1_000_000: the breaker keeps books but never opens.
        breaker=CircuitBreaker(
            "bench-guard-flaky", CircuitBreakerConfig(failure_rate_threshold=1.0)
        ),
        tracker=tracker,
    )

    def keel_guard_fail_then_ok(i: int) -> int:
        return flaky_guard.call(guard_flaky, i)

    cases.append(
        Case(
            "keel_guard_fail_then_ok",
            "retry-fail",
            "Guard: 1 failure (recorded, JSONL, event) then success (marked recovered)",
            keel_guard_fail_then_ok,
            before=lambda: setattr(guard_flaky, "n", 0),
        )
    )
    return cases


def loop_detector_cases() -> list[Case]:
    """LoopDetector cost per step, with its 100-step window kept full (issue 5: <= 10 us).

    Five tools called in turn with dict arguments and results that never repeat, so
    every step is judged against a full window and none is a loop; a batch whose
    results are all "ok" (the near-duplicate check's busiest case); and guard()
    (check before + record after) around a call.
    """
    from agentkeel.recovery import LoopDetectionConfig, LoopDetector

    config = LoopDetectionConfig(max_iterations=100, emit_events=False)
    actions = ["search", "read", "summarize", "write", "plan"]
    mixed = LoopDetector(config)
    batch = LoopDetector(config)
    guarded = LoopDetector(config)
    for i in range(-200, 0):  # fill the windows before timing
        mixed.record_step("agent", actions[i % 5], {"q": "weather", "page": i}, result={"n": i})
        batch.record_step("agent", actions[i % 5], {"item": i}, result="ok")
        guarded.record_step("agent", actions[i % 5], {"q": "weather", "page": i}, result={"n": i})

    def record_mixed(i: int) -> None:
        mixed.record_step("agent", actions[i % 5], {"q": "weather", "page": i}, result={"n": i})

    def record_same_result(i: int) -> None:
        batch.record_step("agent", actions[i % 5], {"item": i}, result="ok")

    def guard_step(i: int) -> int:
        with guarded.guard("agent", actions[i % 5], {"q": "weather", "page": i}) as step:
            step.result = r = {"n": i}
        return r["n"]

    # Page numbers restart with every timing round: offset them so no call repeats.
    offset = [0]

    def shift() -> None:
        offset[0] += 10_000_000

    return [
        Case(
            "keel_loop_record_step",
            "loop",
            "LoopDetector.record_step, 100-step window, dict args+result, no loop",
            lambda i: record_mixed(i + offset[0]),
            before=shift,
        ),
        Case(
            "keel_loop_record_same_result",
            "loop",
            "record_step, 100-step window, every result 'ok' (near-duplicate checks)",
            lambda i: record_same_result(i + offset[0]),
            before=shift,
        ),
        Case(
            "keel_loop_guard",
            "loop",
            "with detector.guard(...): check before + record after, 100-step window",
            lambda i: guard_step(i + offset[0]),
            before=shift,
        ),
    ]


def store_throughput(workdir: Path, postgres_url: str | None) -> dict[str, Any]:
    """Events per second written durably, batch by batch, per backend."""
    from agentkeel.events import Event
    from agentkeel.store import open_store

    results: dict[str, Any] = {}
    urls = {"sqlite": f"sqlite:///{workdir / 'throughput.db'}"}
    if postgres_url:
        urls["postgres"] = postgres_url
    for name, url in urls.items():
        try:
            store = open_store(url)
        except Exception as exc:
            results[name] = {"error": str(exc)}
            continue
        total, batches = 0, 20
        started = time.perf_counter()
        for b in range(batches):
            batch = [
                Event(
                    type="tool.end",
                    name="tool",
                    attributes=ATTRS,
                    run_id="run-tp",
                    wall_ns=time.time_ns(),
                    mono_ns=time.perf_counter_ns(),
                    seq=b * 1000 + i,
                    origin=f"tp{os.getpid()}",
                )
                for i in range(1000)
            ]
            store.write_events(batch)
            total += len(batch)
        elapsed = time.perf_counter() - started
        store.close()
        results[name] = {
            "events": total,
            "seconds": round(elapsed, 3),
            "events_per_s": round(total / elapsed),
        }
    return results


def stalled_memory(n: int = 1_000_000) -> dict[str, Any]:
    """Emit n events while the sink is stalled: memory must stay bounded."""
    import threading

    from agentkeel.pipeline import Pipeline

    release = threading.Event()

    def stalled(_batch: Sequence[Any]) -> None:
        release.wait(600)

    pipeline = Pipeline(sinks=[stalled])
    pipeline.emit("warm-up")
    time.sleep(0.3)
    tracemalloc.start()
    checkpoints = []
    for i in range(n):
        pipeline.emit("tool.start", name="tool", attributes=ATTRS)
        if (i + 1) % (n // 4) == 0:
            checkpoints.append(round(tracemalloc.get_traced_memory()[0] / 2**20, 2))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stats = pipeline.stats()
    release.set()
    pipeline.close(timeout=5)
    return {
        "events": n,
        "traced_mib_at_quarters": checkpoints,
        "peak_mib": round(peak / 2**20, 2),
        "buffered": stats.buffered,
        "dropped": stats.dropped,
    }


def versions() -> dict[str, str]:
    out = {}
    for name in ["agentkeel", *PEERS]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


RATIOS = [
    # Must stay >= 0.67: record_metric may cost at most 1.5x prometheus_client's own call.
    (
        "metric: prometheus labels().inc() / keel await record_metric",
        "prometheus_labels_inc",
        "keel_record_metric",
        "median",
    ),
    (
        "metric: prometheus labels().inc() / keel record_metric_sync",
        "prometheus_labels_inc",
        "keel_record_metric_sync",
        "median",
    ),
    ("event: OTel SDK span / keel emit (caller)", "otel_span", "keel_emit", "median"),
    ("event: OTel SDK span / keel emit (cpu incl. writer)", "otel_span", "keel_emit", "cpu"),
    ("log: structlog JSON / keel log line (caller)", "structlog_json", "keel_log", "median"),
    ("log: structlog JSON / keel log line (cpu incl. writer)", "structlog_json", "keel_log", "cpu"),
    ("log: stdlib JSON / keel log line (caller)", "stdlib_logging_json", "keel_log", "median"),
    (
        "tool: tenacity+pybreaker / keel tracked call (caller)",
        "tenacity+pybreaker",
        "keel_tracked_tool",
        "median",
    ),
    # Issue 3 targets: >= 6x, >= 30x and >= 3x.
    (
        "guard: tenacity+pybreaker / keel Guard (caller)",
        "tenacity+pybreaker",
        "keel_guard",
        "median",
    ),
    ("guard: peer full stack / keel Guard (caller)", "peer_full_stack", "keel_guard", "median"),
    (
        "guard: peer full stack / keel Guard + event (caller)",
        "peer_full_stack",
        "keel_guard_observed",
        "median",
    ),
    (
        "guard: peer full stack / keel Guard + event (cpu incl. writer)",
        "peer_full_stack",
        "keel_guard_observed",
        "cpu",
    ),
    (
        "retry 1 failure: tenacity / keel Retry (caller)",
        "tenacity_fail_then_ok",
        "keel_retry_fail_then_ok",
        "median",
    ),
    (
        "retry 1 failure: tenacity+pybreaker / keel Guard with tracking (caller)",
        "tenacity+pybreaker_fail_then_ok",
        "keel_guard_fail_then_ok",
        "median",
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats, smaller n")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "latest.json"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    import agentkeel

    agentkeel.set_strict(False)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["KEEL_HOME"] = str(workdir)
        cases, _notes = build_cases(workdir)
        repeats, n = (3, 50_000) if args.quick else (7, 200_000)
        run_cases(cases, n=n, repeats=repeats, target_s=0.5 if args.quick else 1.0)
        floor = next(c for c in cases if c.name == "bare").median
        by_name = {c.name: c for c in cases}
        print(f"{'case':<34}{'median ns':>12}{'cpu ns':>10}{'+ns floor':>11}{'n':>9}  description")
        for c in cases:
            print(
                f"{c.name:<34}{c.median:>12,.0f}{c.cpu_median:>10,.0f}{c.median - floor:>11,.0f}"
                f"{c.n:>9,}  {c.desc}"
            )
        print()
        ratios = {}
        for label, peer, ours, field in RATIOS:
            a, b = by_name[peer], by_name[ours]
            pa = (a.median if field == "median" else a.cpu_median) - floor
            pb = (b.median if field == "median" else b.cpu_median) - floor
            ratios[label] = round(pa / pb, 2)
            print(f"{label:<58} {ratios[label]:>6.2f}x")
        print()
        throughput = store_throughput(workdir, args.postgres)
        for backend, result in throughput.items():
            print(f"store write {backend:<10} {result}")
        memory = stalled_memory(200_000 if args.quick else 1_000_000)
        print(
            f"stalled sink, {memory['events']:,} events: traced MiB at each quarter "
            f"{memory['traced_mib_at_quarters']}, buffered {memory['buffered']:,}, "
            f"dropped {memory['dropped']:,}"
        )
        results = {
            "date": dt.datetime.now(dt.UTC).isoformat(),
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()} {os.cpu_count()} cpu",
            "versions": versions(),
            "cases": {
                c.name: {
                    "median_ns": round(c.median),
                    "cpu_ns": round(c.cpu_median),
                    "over_floor_ns": round(c.median - floor),
                    "n": c.n,
                    "samples_ns": [round(s) for s in c.wall],
                    "desc": c.desc,
                }
                for c in cases
            },
            "ratios": ratios,
            "store_throughput": throughput,
            "stalled_sink_memory": memory,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
