#!/usr/bin/env python3
"""What recording a LangGraph agent costs: agentkeel's handler against the peers' tracers.

One ``create_react_agent`` run on a scripted fake chat model: 4 model calls, 3 tool
calls (31 LangChain runs, 62 callbacks; about 5 ms bare). Measured in ONE process,
the variants interleaved: each round takes one sample of every variant:

* ``bare``: no callbacks at all;
* ``noop_handler``: a ``BaseCallbackHandler`` that does nothing (LangChain's own
  callback machinery, the floor any tracer pays);
* ``agentkeel``: ``instrument_langchain()``, events into the real default pipeline
  and SQLite store in a temporary KEEL_HOME, its background writer running as in
  real use (it also builds the events from the callbacks' queue); the flush happens
  outside the wall timer, inside the "drained" and CPU timers;
* ``openinference``: OpenInference's ``LangChainInstrumentor`` on an OpenTelemetry SDK
  ``TracerProvider`` with a ``BatchSpanProcessor`` and a count-and-drop exporter
  (the setup of ../shared/bench/anchors/peer_overhead.py); flushed outside the timer;
* ``langfuse``: Langfuse 5's LangChain ``CallbackHandler``, its client on its own
  ``TracerProvider`` with the same count-and-drop exporter, no network.

Each sample times ``--runs`` agent runs; the order of the variants is shuffled in
every round. Reported: the median over ``--samples`` rounds (ms per agent run, wall
time on the agent's thread), and the overhead over bare as the median of each round's
difference to that round's bare sample, with its 95 % confidence interval
(distribution-free, from the order statistics). On a shared 2-core VM one sample varies
by a millisecond or more, so even a hundred rounds leave an interval 8 to 16 points
wide. ``drained`` is the wall time until each tracer has also flushed (its background
work charged to the agent in full, as if none of it overlapped the runs), ``cpu`` the
CPU time of the whole process per run, background flushes included.

    python bench/langchain_overhead.py            # full run
    python bench/langchain_overhead.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

warnings.filterwarnings("ignore")  # create_react_agent's deprecation notice
logging.getLogger("langfuse").setLevel(logging.ERROR)  # "could not parse the model" per run

os.environ.setdefault("KEEL_HOME", tempfile.mkdtemp(prefix="keel-bench-lc-"))
os.environ.pop("KEEL_STORE", None)
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ["OTEL_SDK_DISABLED"] = "false"

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.prebuilt import create_react_agent  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

import agentkeel  # noqa: E402
from agentkeel.integrations.langchain import instrument_langchain  # noqa: E402

INPUT = {"messages": [("user", "add some numbers")]}


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model that can be handed tools (the agent binds them)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def script() -> list[AIMessage]:
    usage = {"input_tokens": 120, "output_tokens": 12, "total_tokens": 132}
    calls = [
        AIMessage(
            content="",
            tool_calls=[{"name": "add", "args": {"a": i, "b": 1}, "id": f"call-{i}"}],
            usage_metadata=usage,  # type: ignore[arg-type]
        )
        for i in range(3)
    ]
    return [*calls, AIMessage(content="the sums are 1, 2 and 3", usage_metadata=usage)]  # type: ignore[arg-type]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class DoNothing(BaseCallbackHandler):
    """The floor: LangChain calls it for every event, it does nothing."""


class CountingDropExporter(SpanExporter):
    """Accepts and drops spans, counting them (as the anchors' exporter does)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


@dataclass
class Variant:
    name: str
    desc: str
    config: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[], None] = lambda: None
    # Waits until the tracer has handed everything on: outside the wall timer, inside
    # the "drained" one and the CPU one.
    flush: Callable[[], object] = lambda: None
    teardown: Callable[[], None] = lambda: None  # outside the wall timer, inside the CPU one
    wall: list[float] = field(default_factory=list)
    drained: list[float] = field(default_factory=list)
    thread: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def build_variants(notes: dict[str, Any]) -> list[Variant]:
    variants = [
        Variant("bare", "no callbacks"),
        Variant("noop_handler", "a do-nothing BaseCallbackHandler", {"callbacks": [DoNothing()]}),
    ]

    handle: list[Any] = []

    def keel_setup() -> None:
        handle.append(instrument_langchain())

    def keel_teardown() -> None:
        handle.pop().uninstrument()

    variants.append(
        Variant(
            "agentkeel",
            "instrument_langchain(): default pipeline + SQLite store, writer thread running",
            setup=keel_setup,
            flush=agentkeel.flush,
            teardown=keel_teardown,
        )
    )

    try:
        from openinference.instrumentation.langchain import LangChainInstrumentor

        oi_exporter = CountingDropExporter()
        oi_provider = TracerProvider()
        oi_processor = BatchSpanProcessor(oi_exporter)
        oi_provider.add_span_processor(oi_processor)
        instrumentor = LangChainInstrumentor()

        def oi_setup() -> None:
            instrumentor.instrument(tracer_provider=oi_provider)

        def oi_teardown() -> None:
            instrumentor.uninstrument()

        variants.append(
            Variant(
                "openinference",
                "LangChainInstrumentor, SDK TracerProvider + BatchSpanProcessor, drop exporter",
                setup=oi_setup,
                flush=oi_processor.force_flush,
                teardown=oi_teardown,
            )
        )
        notes["openinference_exporter"] = oi_exporter
    except ImportError as exc:
        notes["openinference"] = f"not installed: {exc}"

    try:
        from langfuse import Langfuse
        from langfuse.langchain import CallbackHandler

        lf_exporter = CountingDropExporter()
        client = Langfuse(
            public_key="pk-lf-bench",
            secret_key="sk-lf-bench",
            base_url="http://127.0.0.1:9",
            tracer_provider=TracerProvider(),
            span_exporter=lf_exporter,
        )
        variants.append(
            Variant(
                "langfuse",
                "langfuse.langchain.CallbackHandler, own TracerProvider, drop exporter",
                {"callbacks": [CallbackHandler(public_key="pk-lf-bench")]},
                flush=client.flush,
            )
        )
        notes["langfuse_exporter"] = lf_exporter
    except ImportError as exc:
        notes["langfuse"] = f"not installed: {exc}"
    return variants


def sample(agent: Any, variant: Variant, runs: int) -> None:
    variant.setup()
    gc.collect()
    c0 = time.process_time_ns()
    th0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    for _ in range(runs):
        agent.invoke(INPUT, variant.config)
    wall = time.perf_counter_ns() - t0
    thread = time.thread_time_ns() - th0
    variant.flush()
    drained = time.perf_counter_ns() - t0
    variant.teardown()
    cpu = time.process_time_ns() - c0
    variant.wall.append(wall / runs / 1e6)
    variant.drained.append(drained / runs / 1e6)
    variant.thread.append(thread / runs / 1e6)
    variant.cpu.append(cpu / runs / 1e6)


def check(agent: Any, variants: list[Variant], notes: dict[str, Any]) -> str:
    """One run per variant: the same answer everywhere, and each tracer really recorded."""
    answers = set()
    for variant in variants:
        variant.setup()
        result = agent.invoke(INPUT, variant.config)
        variant.flush()
        variant.teardown()
        answers.add(result["messages"][-1].content)
    if len(answers) != 1:
        raise SystemExit(f"variants disagree on the answer: {answers}")
    store = agentkeel.get_store()
    runs = store.list_runs(limit=1)
    events = store.count_events(run_id=runs[0].run_id) if runs else 0
    lines = [f"agentkeel stored {events} events for one run (run {runs[0].run_id})"]
    for key in ("openinference_exporter", "langfuse_exporter"):
        exporter = notes.get(key)
        if exporter is not None:
            lines.append(f"{key.split('_')[0]} exported {exporter.count} spans for one run")
    return "; ".join(lines)


def _paired(samples: list[float], bare: list[float]) -> float:
    """The median over rounds of (this variant's sample - the bare sample of that round)."""
    return statistics.median(a - b for a, b in zip(samples, bare, strict=True))


def _paired_interval(samples: list[float], bare: list[float]) -> tuple[float, float]:
    """A 95 % confidence interval for :func:`_paired`, from the order statistics.

    The median lies between the k-th smallest and the k-th largest of n differences
    with k = n/2 - 1.96 sqrt(n)/2 (the binomial's normal approximation): no
    assumption about the shape of the noise.
    """
    diffs = sorted(a - b for a, b in zip(samples, bare, strict=True))
    n = len(diffs)
    k = max(0, math.floor(n / 2 - 1.96 * math.sqrt(n) / 2))
    return diffs[k], diffs[n - 1 - k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="rounds (samples per variant)")
    parser.add_argument("--runs", type=int, default=20, help="agent runs per sample")
    parser.add_argument("--quick", action="store_true", help="8 samples of 10 runs")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.runs = 8, 10

    load = os.getloadavg()
    notes: dict[str, Any] = {}
    agent = create_react_agent(ScriptedModel(messages=itertools.cycle(script())), [add])
    variants = build_variants(notes)
    print(check(agent, variants, notes))
    for variant in variants:  # warm-up
        sample(agent, variant, 3)
        variant.wall.clear()
        variant.drained.clear()
        variant.thread.clear()
        variant.cpu.clear()
    # Shuffled in every round, so that no variant always follows another (a peer's
    # exporter thread still busy, a writer mid-batch) and inherits its aftermath.
    order = random.Random(0)
    for _ in range(args.samples):
        for variant in order.sample(variants, len(variants)):
            sample(agent, variant, args.runs)

    print(
        f"\nLangGraph create_react_agent, 4 model + 3 tool calls; {args.samples} samples "
        f"x {args.runs} runs per variant, interleaved; python {sys.version.split()[0]}; "
        f"load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'variant':<15}{'wall ms':>9}{'+ms':>8}{'+%':>8}"
        f"{'thread ms':>11}{'+ms':>8}{'+%':>8}{'drained':>9}{'+%':>8}{'cpu ms':>9}"
    )
    print(header)
    print("-" * len(header))
    wall = {v.name: statistics.median(v.wall) for v in variants}
    thread = {v.name: statistics.median(v.thread) for v in variants}
    drained = {v.name: statistics.median(v.drained) for v in variants}
    # Overheads are medians of paired differences: each variant against the bare sample
    # of the same round, so a slow stretch of the machine cancels out instead of
    # landing on whichever variant happened to run during it.
    bare_variant = variants[0]
    extra_wall = {v.name: _paired(v.wall, bare_variant.wall) for v in variants}
    extra_thread = {v.name: _paired(v.thread, bare_variant.thread) for v in variants}
    extra_drained = {v.name: _paired(v.drained, bare_variant.drained) for v in variants}
    for variant in variants:
        name = variant.name
        print(
            f"{name:<15}{wall[name]:>9.3f}{extra_wall[name]:>+8.3f}"
            f"{100 * extra_wall[name] / wall['bare']:>+7.1f}%"
            f"{thread[name]:>11.3f}{extra_thread[name]:>+8.3f}"
            f"{100 * extra_thread[name] / thread['bare']:>+7.1f}%"
            f"{drained[name]:>9.3f}{100 * extra_drained[name] / drained['bare']:>+7.1f}%"
            f"{statistics.median(variant.cpu):>9.3f}"
        )
    print()
    for variant in variants:
        print(f"  {variant.name:<15}{variant.desc}")
    print(
        "\n  wall: median wall time per agent run; thread: CPU time of the agent's thread per "
        "run\n  (what the agent pays, immune to other processes taking the CPU); drained: wall "
        "time per\n  run until the tracer has also flushed everything (the whole cost, as if "
        "none of its\n  background work overlapped the agent); cpu: CPU of the whole process "
        "per run,\n  background writers and flushes included"
    )
    keel = next(v for v in variants if v.name == "agentkeel")
    for label, figures, extra, field_ in (
        ("wall", wall, extra_wall, "wall"),
        ("thread", thread, extra_thread, "thread"),
        ("drained", drained, extra_drained, "drained"),
    ):
        bare = figures["bare"]
        ours = extra["agentkeel"]
        machinery = extra["noop_handler"]
        low, high = _paired_interval(getattr(keel, field_), getattr(bare_variant, field_))
        line = (
            f"\n{label}: agentkeel +{ours:.3f} ms per run (+{100 * ours / bare:.1f} %, 95 % CI "
            f"{100 * low / bare:+.1f} to {100 * high / bare:+.1f} %; target <= +15 %); "
            f"LangChain's callback machinery (noop_handler) {machinery:+.3f} ms, "
            f"the handler itself {ours - machinery:+.3f} ms"
        )
        peers = {k: extra[k] for k in ("openinference", "langfuse") if k in extra}
        if peers:
            best_name, best = min(peers.items(), key=lambda item: item[1])
            ratio = best / ours if ours > 0 else float("inf")
            line += (
                f"\n{label}: best peer {best_name} +{best:.3f} ms; best peer overhead / ours = "
                f"{ratio:.1f}x (target >= 15x)"
            )
        print(line)
    versions = []
    for dist in (
        "langchain-core",
        "langgraph",
        "openinference-instrumentation-langchain",
        "langfuse",
    ):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    print("versions: " + ", ".join(versions))
    print(
        "note: wall time is the agent's thread; agentkeel builds and stores its events on "
        "its writer thread (drained and cpu include that: flushed inside those timers)"
    )
    agentkeel.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
