"""The demo agent: planner → executor (weather, flights, hotels, currency) → summariser.

It is a small hand-written agent loop, instrumented the way we advise users to
instrument theirs: one ``run``, a tracked node per step, the tools behind a
``TrackedToolRegistry``, failures recorded and marked recovered when a retry works.
``chaos=True`` puts a seeded ``ChaosMonkey`` between the agent and its tools.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import agentkeel
from agentkeel.demo._tools import REQUIRED_KEYS, TOOLS, ScriptedModel, TripRequest
from agentkeel.events import EventType, FailureRecord
from agentkeel.tracking import (
    ChaosConfig,
    ChaosMonkey,
    FailureTracker,
    TrackedToolRegistry,
    classify_error,
    set_failure_tracker,
    track_node,
)

DEFAULT_QUERY = "Plan a 3-day trip from London to Lisbon in May for two, budget 1500 EUR"
# Chaos for the demo: frequent enough that a run shows several kinds of failure,
# fast enough (short latencies, no hangs until timeouts exist) to finish in seconds.
DEMO_CHAOS = {
    "failure_rate": 0.3,
    "latency_rate": 0.1,
    "latency_seconds": (0.01, 0.05),
    "malformed_rate": 0.08,
}


@dataclass(frozen=True, slots=True)
class Progress:
    """One line of progress, for whoever displays it."""

    node: str
    message: str
    ok: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    chaos: bool = False
    seed: int | None = None
    track_failures: bool = True
    track_tools: bool = True
    max_attempts: int = 3
    runtime_dir: Path | None = None
    user_id: str = "demo-user"
    query: str = DEFAULT_QUERY


@dataclass(slots=True)
class DemoResult:
    run_id: str
    answer: str
    blocked: list[str] = field(default_factory=list)
    tracker: FailureTracker | None = None

    @property
    def failures(self) -> list[FailureRecord]:
        return list(self.tracker.failures) if self.tracker is not None else []

    @property
    def log_path(self) -> Path | None:
        return self.tracker.log_path if self.tracker is not None else None


class MalformedOutputError(ValueError):
    """A tool answered, but not with what its contract promises."""


def _check_output(tool: str, output: object) -> dict[str, Any]:
    required = REQUIRED_KEYS[tool]
    if not isinstance(output, Mapping) or not required <= output.keys():
        raise MalformedOutputError(
            f"malformed output from {tool}: expected keys {sorted(required)}, got {output!r:.80}"
        )
    return dict(output)


def run_demo(
    options: DemoOptions = DemoOptions(),
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> DemoResult:
    """Run the travel agent once and return what it produced and what went wrong."""
    say = on_progress or (lambda _p: None)
    request = TripRequest()
    model = ScriptedModel(request)
    monkey = (
        ChaosMonkey(ChaosConfig(seed=options.seed, **DEMO_CHAOS))  # type: ignore[arg-type]
        if options.chaos
        else None
    )
    raw_tools: dict[str, Callable[..., Any]] = dict(TOOLS)
    call_model: Callable[[str], str] = model.complete
    if monkey is not None:
        raw_tools = {name: monkey.wrap(fn, name=name) for name, fn in raw_tools.items()}
        call_model = monkey.wrap(model.complete, name="planner_llm")

    with agentkeel.run("travel-demo", user_id=options.user_id, tags=["demo"]) as scope:
        run_id = scope.run_id or ""
        tracker: FailureTracker | None = None
        if options.track_failures:
            tracker = FailureTracker(
                run_id=run_id, user_id=options.user_id, runtime_dir=options.runtime_dir
            )
            set_failure_tracker(tracker)
        tools: Any = (
            TrackedToolRegistry(raw_tools, tracker=tracker, graph_node="executor")
            if tracker is not None and options.track_tools
            else raw_tools
        )
        agent = _TravelAgent(options, tracker, tools, call_model, say)
        plan = agent.plan(options.query)
        results, blocked = agent.execute(plan)
        answer = agent.summarise(request, results, blocked)
    return DemoResult(run_id=run_id, answer=answer, blocked=blocked, tracker=tracker)


class _TravelAgent:
    def __init__(
        self,
        options: DemoOptions,
        tracker: FailureTracker | None,
        tools: Any,
        call_model: Callable[[str], str],
        say: Callable[[Progress], None],
    ) -> None:
        self.options = options
        self.tracker = tracker
        self.tools = tools
        self.call_model = call_model
        self.say = say
        # Nodes are wrapped here so they report to this run's tracker.
        self.plan = track_node("planner", tracker=tracker)(self._plan)  # type: ignore[method-assign]
        self.execute = track_node("executor", tracker=tracker)(self._execute)  # type: ignore[method-assign]
        self.summarise = track_node("summariser", tracker=tracker)(self._summarise)  # type: ignore[method-assign]

    # -- helpers -----------------------------------------------------------
    def _record(self, exc: BaseException, *, node: str, tool: str | None) -> FailureRecord | None:
        if self.tracker is None:
            return None
        return self.tracker.record_failure(exc, graph_node=node, tool_name=tool)

    def _last_failure(self) -> FailureRecord | None:
        return (
            self.tracker.failures[-1]
            if self.tracker is not None and self.tracker.failures
            else None
        )

    def _recovered(self, failures: list[FailureRecord], attempt: int) -> None:
        if self.tracker is None:
            return
        for failure in failures:
            self.tracker.mark_recovered(failure, f"retried: attempt {attempt} succeeded")

    # -- nodes -------------------------------------------------------------
    def plan(self, query: str) -> list[dict[str, Any]]:  # replaced in __init__
        raise NotImplementedError

    def execute(self, plan: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        raise NotImplementedError

    def summarise(
        self, request: TripRequest, results: list[dict[str, Any]], blocked: list[str]
    ) -> str:
        raise NotImplementedError

    def _plan(self, query: str) -> list[dict[str, Any]]:
        failures: list[FailureRecord] = []
        for attempt in range(1, self.options.max_attempts + 1):
            started = time.perf_counter()
            agentkeel.emit(
                EventType.LLM_CALL_START,
                name=ScriptedModel.name,
                attributes={"gen_ai.request.model": ScriptedModel.name, "attempt": attempt},
            )
            try:
                text = self.call_model(query)
                plan = json.loads(text)["calls"]
            except Exception as exc:  # noqa: BLE001 - every model failure is recorded and retried
                record = self._record(exc, node="planner", tool="planner_llm")
                if record is not None:
                    failures.append(record)
                self.say(
                    Progress("planner", f"model call failed: {type(exc).__name__}: {exc}", ok=False)
                )
                continue
            agentkeel.emit(
                EventType.LLM_CALL_END,
                name=ScriptedModel.name,
                attributes={
                    "gen_ai.request.model": ScriptedModel.name,
                    "gen_ai.usage.input_tokens": len(query.split()) * 4,
                    "gen_ai.usage.output_tokens": len(text) // 4,
                    "duration_ms": (time.perf_counter() - started) * 1000,
                },
            )
            self._recovered(failures, attempt)
            self.say(Progress("planner", f"planned {len(plan)} tool calls"))
            return list(plan)
        raise RuntimeError(f"the planner failed {self.options.max_attempts} times; giving up")

    def _execute(self, plan: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        results: list[dict[str, Any]] = []
        blocked: list[str] = []
        for call in plan:
            tool, args = call["tool"], call["args"]
            label = f"{tool}({', '.join(f'{k}={v}' for k, v in args.items())})"
            output = self._call_with_retries(tool, args, label)
            if output is None:
                blocked.append(label)
                self.say(Progress("executor", f"{label}: blocked, the summary says so", ok=False))
            else:
                results.append({"tool": tool, **output})
        return results, blocked

    def _call_with_retries(
        self, tool: str, args: dict[str, Any], label: str
    ) -> dict[str, Any] | None:
        tracked = isinstance(self.tools, TrackedToolRegistry)
        failures: list[FailureRecord] = []
        for attempt in range(1, self.options.max_attempts + 1):
            record: FailureRecord | None
            try:
                output = self.tools[tool](**args)
            except Exception as exc:  # noqa: BLE001 - recorded, then retried or blocked
                # A tracked registry has recorded the failure already.
                record = (
                    self._last_failure()
                    if tracked
                    else self._record(exc, node="executor", tool=tool)
                )
                error: BaseException = exc
            else:
                try:
                    checked = _check_output(tool, output)
                except MalformedOutputError as exc:
                    record = self._record(exc, node="executor", tool=tool)
                    error = exc
                else:
                    self._recovered(failures, attempt)
                    suffix = f" (attempt {attempt})" if attempt > 1 else ""
                    self.say(Progress("executor", f"{label}{suffix}"))
                    return checked
            if record is not None:
                failures.append(record)
            self.say(Progress("executor", f"{label}: {type(error).__name__}: {error}", ok=False))
            if not classify_error(error).retryable and classify_error(error).category == "auth":
                break  # retrying bad credentials only gets the key locked
        return None

    def _summarise(
        self, request: TripRequest, results: list[dict[str, Any]], blocked: list[str]
    ) -> str:
        by_tool: dict[str, list[dict[str, Any]]] = {}
        for item in results:
            by_tool.setdefault(item["tool"], []).append(item)
        lines = [
            f"Trip to {request.city}, {request.start.isoformat()}, {request.days} days, "
            f"{request.travellers} travellers"
        ]
        for w in by_tool.get("weather", []):
            lines.append(f"  {w['date']}: {w['forecast']}, {w['low_c']}-{w['high_c']} °C")
        flights_total = sum(f["price_eur"] for f in by_tool.get("flights", []))
        hotel = by_tool.get("hotels", [])
        hotel_total = sum(h["total_eur"] for h in hotel)
        for f in by_tool.get("flights", []):
            lines.append(
                f"  flight {f['route']} on {f['date']} with {f['carrier']}: {f['price_eur']} EUR"
            )
        if hotel:
            lines.append(f"  hotel {hotel[0]['hotel']}: {hotel_total} EUR")
        total = flights_total + hotel_total
        lines.append(f"  total {total} EUR of a {request.budget_eur:.0f} EUR budget")
        for c in by_tool.get("currency", []):
            lines.append(f"  budget in {c['target']}: {c['converted']}")
        if blocked:
            lines.append(f"  not available ({len(blocked)}): " + "; ".join(blocked))
        self.say(Progress("summariser", "summary written"))
        return "\n".join(lines)
