"""The demo agent: planner → executor (weather, flights, hotels, currency) → summariser.

It is a small hand-written agent loop, instrumented the way we advise users to
instrument theirs: one ``run``, a tracked node per step, the tools behind a
``TrackedToolRegistry``, and each tool behind a ``Guard`` (retry, circuit breaker,
timeout, fallback). ``chaos=True`` puts a seeded ``ChaosMonkey`` between the agent
and its tools and model, so a run shows retries, a breaker opening and closing, a
fallback answering and a timeout cutting a hung call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import agentkeel
from agentkeel.demo._tools import (
    FALLBACKS,
    REQUIRED_KEYS,
    TOOLS,
    ScriptedModel,
    TripRequest,
    attractions,
)
from agentkeel.events import Event, EventType, FailureRecord
from agentkeel.recovery import EscalationManager, LoopDetectedError, LoopDetector
from agentkeel.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    Guard,
    Retry,
    Timeout,
    default_retry_after,
    exponential,
)
from agentkeel.tracking import (
    ChaosConfig,
    ChaosMonkey,
    FailureTracker,
    TrackedToolRegistry,
    set_failure_tracker,
    track_node,
)
from agentkeel.tracking._tracker import process_failure_tracker

DEFAULT_QUERY = "Plan a 3-day trip from London to Lisbon in May for two, budget 1500 EUR"
# Chaos for the demo: frequent enough that a run shows several kinds of failure,
# short hangs that the per-attempt timeout cuts, fast enough to finish in seconds.
DEMO_CHAOS: dict[str, Any] = {
    "failure_rate": 0.3,
    "latency_rate": 0.1,
    "latency_seconds": (0.01, 0.05),
    "hang_rate": 0.06,
    "hang_seconds": 1.0,
    "malformed_rate": 0.08,
}
ATTEMPT_TIMEOUT = 0.25  # seconds one tool attempt may take before it is cut
# A sensitive breaker, so a short demo run can show it open, test and close.
DEMO_BREAKER = CircuitBreakerConfig(
    failure_rate_threshold=0.5,
    minimum_calls=2,
    window_size=4,
    wait_in_open=0.05,
    half_open_max_calls=1,
)
# The events the progress display narrates, in the order they were stored.
_NARRATED = {
    EventType.RETRY,
    EventType.CIRCUIT_OPENED,
    EventType.CIRCUIT_HALF_OPEN,
    EventType.CIRCUIT_CLOSED,
    EventType.FALLBACK,
    EventType.TIMEOUT,
    EventType.LOOP_DETECTED,
    EventType.ESCALATION_CREATED,
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
    max_attempts: int = 4
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


def _short_retry_after(exc: BaseException) -> float | None:
    # The scripted provider asks for waits of seconds; the demo honours them, shortened,
    # so it stays quick. A real agent keeps `default_retry_after`.
    asked = default_retry_after(exc)
    return None if asked is None else min(asked, 0.2)


def _worth_retrying(exc: BaseException) -> bool:
    # Chaos faults are transient by nature; bad credentials never are.
    return not isinstance(exc, PermissionError)


class _Narrator:
    """A pipeline sink that keeps the policies' events for the progress display."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def __call__(self, batch: Sequence[Event], /) -> None:
        with self._lock:
            self._events.extend(e for e in batch if e.type in _NARRATED)

    def take(self) -> list[Event]:
        agentkeel.flush(timeout=5)  # what is narrated is what was stored
        with self._lock:
            taken, self._events = self._events, []
        return taken


def _describe(event: Event) -> tuple[str, bool]:  # noqa: PLR0911 - one line per event type
    a = event.attributes
    if event.type == EventType.RETRY:
        if a.get("giving_up"):
            return f"retry {event.name}: giving up ({a.get('reason')})", False
        return (
            f"retry {event.name}: attempt {a.get('attempt')} failed "
            f"({a.get('error_class')}), trying again in {float(a.get('delay_s', 0)):.3f} s",
            False,
        )
    if event.type == EventType.CIRCUIT_OPENED:
        return f"breaker {event.name} opened ({a.get('reason', 'failures')})", False
    if event.type == EventType.CIRCUIT_HALF_OPEN:
        return f"breaker {event.name} half-open: letting a trial call through", True
    if event.type == EventType.CIRCUIT_CLOSED:
        return f"breaker {event.name} closed again", True
    if event.type == EventType.FALLBACK:
        return f"fallback: {a.get('answered_by')} answered for {event.name}", True
    if event.type == EventType.LOOP_DETECTED:
        return f"loop caught: {a.get('message') or a.get('kind') or event.name}", False
    if event.type == EventType.ESCALATION_CREATED:
        return (
            f"escalated to a person: ticket {a.get('ticket_id')} ({a.get('level')}, "
            f"priority {a.get('priority')}); see keel escalations show {a.get('ticket_id')}",
            False,
        )
    return f"timeout cut {event.name} after {a.get('timeout_s', a.get('timeout', '?'))} s", False


def run_demo(
    options: DemoOptions = DemoOptions(),  # frozen, so sharing the default is safe
    *,
    on_progress: Callable[[Progress], None] | None = None,
) -> DemoResult:
    """Run the travel agent once and return what it produced and what went wrong."""
    say = on_progress or (lambda _p: None)
    request = TripRequest()
    model = ScriptedModel(request)
    monkey = ChaosMonkey(ChaosConfig(seed=options.seed, **DEMO_CHAOS)) if options.chaos else None
    raw_tools: dict[str, Callable[..., Any]] = dict(TOOLS)
    call_model: Callable[[str], str] = model.complete
    if monkey is not None:
        raw_tools = {name: monkey.wrap(fn, name=name) for name, fn in raw_tools.items()}
        call_model = monkey.wrap(model.complete, name="planner_llm")
    narrator = _Narrator()
    pipeline = agentkeel.get_pipeline()
    pipeline.add_sink(narrator)
    # The demo's tracker is process-wide while it runs (its tools run on worker threads),
    # and whatever was there before comes back after: a later run in the same process
    # must not file its failures under the demo's run.
    previous_tracker = process_failure_tracker()
    try:
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
            agent = _TravelAgent(options, tracker, tools, call_model, say, narrator)
            plan = agent.plan(options.query)
            results, blocked = agent.execute(plan)
            results += agent.research(request, confused=options.chaos)
            answer = agent.summarise(request, results, blocked)
    finally:
        set_failure_tracker(previous_tracker)
        pipeline.remove_sink(narrator)
    return DemoResult(run_id=run_id, answer=answer, blocked=blocked, tracker=tracker)


class _TravelAgent:
    def __init__(  # noqa: PLR0917 - private, built in one place
        self,
        options: DemoOptions,
        tracker: FailureTracker | None,
        tools: Any,
        call_model: Callable[[str], str],
        say: Callable[[Progress], None],
        narrator: _Narrator,
    ) -> None:
        self.options = options
        self.tracker = tracker
        self.tools = tools
        self.call_model = call_model
        self.say = say
        self.narrator = narrator
        track = tracker is not None

        def retry(name: str) -> Retry:
            return Retry(
                on=_worth_retrying,
                attempts=options.max_attempts,
                backoff=exponential(initial=0.01, max=0.08),
                timeout=10.0,
                retry_after=_short_retry_after,
                name=name,
            )

        self.guards: dict[str, Guard] = {
            tool: Guard(
                name=tool,
                retry=retry(tool),
                breaker=CircuitBreaker(f"{tool}-api", DEMO_BREAKER),
                timeout=Timeout(ATTEMPT_TIMEOUT, name=tool),
                fallback=[(FALLBACKS[tool][0], FALLBACKS[tool][1])] if tool in FALLBACKS else None,
                track=track,
                tracker=tracker,
                graph_node="executor",
                # A tracked registry inside already emits tool.start/tool.end per attempt.
                event=None if isinstance(tools, TrackedToolRegistry) else "tool",
            )
            for tool in TOOLS
        }
        self.model_guard = Guard(
            name="planner_llm",
            retry=retry("planner_llm"),
            track=track,
            tracker=tracker,
            graph_node="planner",
            event=None,
        )
        # Nodes are wrapped here so they report to this run's tracker.
        self.plan = track_node("planner", tracker=tracker)(self._plan)  # type: ignore[method-assign]
        self.execute = track_node("executor", tracker=tracker)(self._execute)  # type: ignore[method-assign]
        self.summarise = track_node("summariser", tracker=tracker)(self._summarise)  # type: ignore[method-assign]
        self.research = track_node("researcher", tracker=tracker)(self._research)  # type: ignore[method-assign]
        self.loops = LoopDetector()
        self.escalations = EscalationManager()

    def narrate(self, node: str) -> None:
        for event in self.narrator.take():
            message, ok = _describe(event)
            self.say(Progress(node, message, ok=ok))

    # -- nodes -------------------------------------------------------------
    def plan(self, query: str) -> list[dict[str, Any]]:  # replaced in __init__
        raise NotImplementedError

    def execute(self, plan: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        raise NotImplementedError

    def summarise(
        self, request: TripRequest, results: list[dict[str, Any]], blocked: list[str]
    ) -> str:
        raise NotImplementedError

    def research(self, request: TripRequest, *, confused: bool) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _research(self, request: TripRequest, *, confused: bool) -> list[dict[str, Any]]:
        """Look up sights; with chaos the model gets stuck asking the same search."""
        model = ScriptedModel(request)
        agent_id = agentkeel.current_scope().run_id or "travel-demo"
        found: list[dict[str, Any]] = []
        try:
            for query in model.research_queries(confused=confused):
                with self.loops.guard(agent_id, "attractions", {"query": query}) as step:
                    step.result = attractions(city=request.city, query=query)
                found.append({"tool": "attractions", **step.result})
                self.say(Progress("researcher", f"attractions(query={query})"))
        except LoopDetectedError as exc:
            if self.tracker is not None:
                self.tracker.record_failure(
                    exc,
                    graph_node="researcher",
                    tool_name="attractions",
                    category="loop",
                    severity="high",
                )
            self.escalations.create_escalation_sync(
                exc,
                recovery_attempts=0,
                agent_id=agent_id,
                task_id="research",
                note="the model kept asking for the same search; the loop detector stopped it",
            )
            self.loops.reset_agent_sync(agent_id)
        finally:
            self.narrate("researcher")
        return found[:1]

    def _ask_model(self, query: str) -> list[dict[str, Any]]:
        """One model call: LLM events around it, its JSON parsed (bad JSON is retried)."""
        started = time.perf_counter()
        model = {"gen_ai.request.model": ScriptedModel.name}
        agentkeel.emit(EventType.LLM_CALL_START, name=ScriptedModel.name, attributes=model)
        try:
            text = self.call_model(query)
            calls = list(json.loads(text)["calls"])
        except Exception as exc:
            agentkeel.emit(
                EventType.LLM_CALL_END,
                name=ScriptedModel.name,
                severity=1,
                attributes={
                    **model,
                    "status": "failed",
                    "error_type": type(exc).__name__,
                    "duration_ms": (time.perf_counter() - started) * 1000,
                },
            )
            raise
        agentkeel.emit(
            EventType.LLM_CALL_END,
            name=ScriptedModel.name,
            attributes={
                **model,
                "status": "succeeded",
                "gen_ai.usage.input_tokens": len(query.split()) * 4,
                "gen_ai.usage.output_tokens": len(text) // 4,
                "duration_ms": (time.perf_counter() - started) * 1000,
            },
        )
        return calls

    def _plan(self, query: str) -> list[dict[str, Any]]:
        try:
            plan = self.model_guard.call(self._ask_model, query)
        finally:
            self.narrate("planner")
        self.say(Progress("planner", f"planned {len(plan)} tool calls"))
        return plan

    def _execute(self, plan: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        results: list[dict[str, Any]] = []
        blocked: list[str] = []
        for call in plan:
            tool, args = call["tool"], call["args"]
            label = f"{tool}({', '.join(f'{k}={v}' for k, v in args.items())})"

            def attempt(tool: str = tool, **kwargs: Any) -> dict[str, Any]:
                return _check_output(tool, self.tools[tool](**kwargs))

            try:
                output = self.guards[tool].call(attempt, **args)
            except Exception as exc:  # noqa: BLE001 - the failures are recorded; the step is blocked
                self.narrate("executor")
                blocked.append(label)
                self.say(
                    Progress(
                        "executor",
                        f"{label}: blocked ({type(exc).__name__}); the summary says so",
                        ok=False,
                    )
                )
                continue
            self.narrate("executor")
            results.append({"tool": tool, **output})
            self.say(Progress("executor", label))
        return results, blocked

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
        for a in by_tool.get("attractions", []):
            lines.append(f"  see: {', '.join(a['top'])}")
        if blocked:
            lines.append(f"  not available ({len(blocked)}): " + "; ".join(blocked))
        self.say(Progress("summariser", "summary written"))
        return "\n".join(lines)
