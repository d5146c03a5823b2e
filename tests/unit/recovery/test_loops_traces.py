"""Realistic traces: legitimate work must never look like a loop; real loops must be caught.

Each trace is replayed twice, through ``record_step`` (judged after each step) and
through ``guard`` (judged before each step too), with the default configuration.
The false-positive count over the legitimate set is asserted to be zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from _loop_support import FakeClock

from agentkeel.recovery import LoopDetectedError, LoopDetectionConfig, LoopDetector, LoopKind


@dataclass
class Step:
    action: str
    arguments: Any = None
    result: Any = None
    error: BaseException | None = None
    state: Any = None
    wait: float = 1.0  # seconds of (fake) time the step takes


@dataclass
class Trace:
    name: str
    steps: list[Step]
    loop: LoopKind | None = None
    caught_at: int | None = None  # 1-based step that must be stopped (guard: refused)
    tags: list[str] = field(default_factory=list)


def paging() -> list[Step]:
    return [
        Step("list_orders", {"page": p, "size": 50}, [f"order-{p}-{i}" for i in range(3)])
        for p in range(1, 21)
    ] + [Step("list_orders", {"page": 21, "size": 50}, [])]


def cursor_paging() -> list[Step]:
    cursors = ["", "eyJvZmZzZXQiOjUwfQ", "eyJvZmZzZXQiOjEwMH0", "eyJvZmZzZXQiOjE1MH0"]
    return [
        Step("fetch", {"cursor": c}, {"items": [i], "next": i + 1}) for i, c in enumerate(cursors)
    ]


def polling() -> list[Step]:
    steps = []
    for n in range(1, 11):
        steps.append(Step("job_status", {"job": "j-42"}, {"state": "running", "progress": n * 10}))
        steps.append(Step("sleep", {"seconds": 2}, None, wait=2))
    steps.append(Step("job_status", {"job": "j-42"}, {"state": "done", "progress": 100}))
    return steps


def polling_two_jobs() -> list[Step]:
    steps = []
    for n in range(8):
        steps.append(Step("job_status", {"job": 1}, {"progress": n}))
        steps.append(Step("job_status", {"job": 2}, {"progress": n * 2}))
    return steps


def retries_with_backoff() -> list[Step]:
    return [
        Step("http_get", {"url": "https://api/x"}, error=ConnectionError("connection reset")),
        Step("sleep", {"seconds": 0.5}),
        Step("http_get", {"url": "https://api/x"}, error=ConnectionError("connection reset")),
        Step("sleep", {"seconds": 1.0}),
        Step("http_get", {"url": "https://api/x"}, {"status": 200}),
        Step("parse", {"body": "ok"}, {"value": 1}),
    ]


def retries_with_fixed_delay() -> list[Step]:
    return [
        Step("http_get", {"url": "u"}, error=TimeoutError("timed out after 5s")),
        Step("sleep", {"seconds": 1}),
        Step("http_get", {"url": "u"}, error=TimeoutError("timed out after 5s")),
        Step("sleep", {"seconds": 1}),
        Step("http_get", {"url": "u"}, {"status": 200}),
    ]


def retry_policy_gives_up_then_fallback() -> list[Step]:
    failing = [Step("llm", {"prompt": "p"}, error=TimeoutError("read timed out")) for _ in range(3)]
    return [*failing, Step("fallback_llm", {"prompt": "p"}, "answer")]


def repeated_rate_limits_then_success() -> list[Step]:
    steps = []
    for wait in (1, 2, 4):
        steps.append(Step("search", {"q": "x"}, error=RuntimeError("429 Too Many Requests")))
        steps.append(Step("sleep", {"seconds": wait}, wait=wait))
    steps.append(Step("search", {"q": "x"}, ["hit"]))
    return steps


def refining_search() -> list[Step]:
    queries = [
        "python asyncio",
        "python asyncio timeout",
        "asyncio wait_for timeout example",
        "asyncio.timeout context manager python 3.11",
    ]
    return [Step("search", {"q": q}, [f"r{i}"]) for i, q in enumerate(queries)]


def file_by_file() -> list[Step]:
    steps = []
    for name in ("a.py", "b.py", "c.py", "d.py"):
        steps.append(Step("read_file", {"path": name}, f"source of {name}"))
        steps.append(Step("summarize", {"text": f"source of {name}"}, f"summary of {name}"))
    return steps


def relisting_between_reads() -> list[Step]:
    steps = []
    done: list[str] = []
    for name in ("a", "b", "c", "d"):
        steps.append(Step("list_files", None, ["a", "b", "c", "d"], state={"done": list(done)}))
        steps.append(Step("read", {"name": name}, f"text {name}", state={"done": list(done)}))
        done.append(name)
    return steps


def batch_processing() -> list[Step]:
    return [Step("process", {"item_id": i}, "ok") for i in range(100)]


def bulk_email() -> list[Step]:
    body = "Hello,\nthe weekly report is attached. Regards, the agent.\n" * 10
    people = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]
    return [Step("send_email", {"to": f"{p}@example.com", "body": body}, "sent") for p in people]


def crud() -> list[Step]:
    return [
        Step("create", {"id": "x"}, {"id": "x", "v": 1}),
        Step("get", {"id": "x"}, {"id": "x", "v": 1}),
        Step("update", {"id": "x", "v": 2}, {"id": "x", "v": 2}),
        Step("get", {"id": "x"}, {"id": "x", "v": 2}),
        Step("update", {"id": "x", "v": 3}, {"id": "x", "v": 3}),
        Step("get", {"id": "x"}, {"id": "x", "v": 3}),
    ]


def conversation() -> list[Step]:
    history: list[str] = []
    steps = []
    for turn in range(8):
        history.append(f"user: question {turn}")
        steps.append(Step("llm", {"messages": list(history)}, f"answer {turn}"))
        history.append(f"assistant: answer {turn}")
    return steps


def plan_execute_check() -> list[Step]:
    steps = []
    for task in range(5):
        steps.append(Step("plan", {"task": task}, f"plan {task}", state={"task": task}))
        steps.append(Step("execute", {"task": task}, f"done {task}", state={"task": task}))
        steps.append(Step("check", {"task": task}, True, state={"task": task}))
    return steps


LEGITIMATE = [
    Trace("paging with page numbers", paging()),
    Trace("paging with cursors", cursor_paging()),
    Trace("polling with changing progress", polling()),
    Trace("polling two jobs in turn", polling_two_jobs()),
    Trace("retries with exponential back-off", retries_with_backoff()),
    Trace("retries with a fixed delay", retries_with_fixed_delay()),
    Trace("a retry policy gives up, then a fallback", retry_policy_gives_up_then_fallback()),
    Trace("rate limits, back-off, success", repeated_rate_limits_then_success()),
    Trace("refining a search", refining_search()),
    Trace("reading and summarising file by file", file_by_file()),
    Trace("re-listing between reads, with state", relisting_between_reads()),
    Trace("processing a batch of 100 items", batch_processing()),
    Trace("the same email to 7 people", bulk_email()),
    Trace("create, get, update, get", crud()),
    Trace("a conversation with growing history", conversation()),
    Trace("plan, execute, check per task", plan_execute_check()),
]

LOOPS = [
    Trace("the same tool call", [Step("search", {"q": "x"}, ["r"])] * 5, LoopKind.EXACT_REPEAT, 3),
    Trace(
        "A, B, A, B",
        [Step("search", {"q": "x"}, ["r"]), Step("open", {"url": "u"}, "page")] * 3,
        LoopKind.CYCLE,
        4,
    ),
    Trace(
        "A, B, C, A, B, C",
        [Step("plan", 1, "p"), Step("act", 1, "a"), Step("reflect", 1, "r")] * 3,
        LoopKind.CYCLE,
        6,
    ),
    Trace(
        "rephrasing the same query",
        [
            Step("search", {"q": q}, [])
            for q in (
                "cheap flights paris",
                "Cheap flights Paris",
                "cheap  flights paris?",
                "cheap flights, paris",
                "CHEAP FLIGHTS PARIS",
            )
        ],
        LoopKind.NEAR_DUPLICATE,
        4,
    ),
    Trace(
        "the same error over and over",
        [
            Step("db_query", {"sql": f"select {i}"}, error=ConnectionError("refused"))
            for i in range(6)
        ],
        LoopKind.REPEATING_ERROR,
        4,
    ),
    Trace(
        "bouncing between two states",
        [Step("go", i, i, state=s) for i, s in enumerate(["A", "B", "A", "B", "A", "B"])],
        LoopKind.STATE_REVISIT,
        5,
    ),
    Trace(
        "polling that never changes",
        [Step("job_status", {"job": 1}, {"state": "queued"})] * 4,
        LoopKind.EXACT_REPEAT,
        3,
    ),
]


def replay_recorded(trace: Trace) -> tuple[int | None, LoopKind | None]:
    """(1-based step at which a loop was found, its kind) using record_step."""
    clock = FakeClock()
    detector = LoopDetector(LoopDetectionConfig(emit_events=False), clock=clock)
    for n, step in enumerate(trace.steps, 1):
        verdict = detector.record_step(
            "agent",
            step.action,
            step.arguments,
            result=step.result,
            error=step.error,
            state=step.state,
        )
        clock.advance(step.wait)
        if verdict is not None:
            return n, verdict.kind
    return None, None


def replay_guarded(trace: Trace) -> tuple[int | None, LoopKind | None]:
    """The same through guard(): a step may be refused before it runs."""
    clock = FakeClock()
    detector = LoopDetector(LoopDetectionConfig(emit_events=False), clock=clock)
    for n, step in enumerate(trace.steps, 1):
        try:
            with detector.guard("agent", step.action, step.arguments, state=step.state) as g:
                if step.error is not None:
                    raise step.error
                g.result = step.result
        except LoopDetectedError as exc:
            return n, exc.verdict.kind
        except Exception as exc:  # the step's own failure, recorded and passed on
            if exc is not step.error:
                raise
        finally:
            clock.advance(step.wait)
    return None, None


REPLAYS: dict[str, Callable[[Trace], tuple[int | None, LoopKind | None]]] = {
    "recorded": replay_recorded,
    "guarded": replay_guarded,
}


@pytest.mark.parametrize("mode", sorted(REPLAYS))
def test_no_legitimate_trace_is_taken_for_a_loop(mode: str) -> None:
    false_positives = {}
    for trace in LEGITIMATE:
        at, kind = REPLAYS[mode](trace)
        if at is not None:
            false_positives[trace.name] = (at, kind)
    assert len(LEGITIMATE) == 16
    assert false_positives == {}, f"{len(false_positives)} false positives: {false_positives}"


@pytest.mark.parametrize("mode", sorted(REPLAYS))
@pytest.mark.parametrize("trace", LOOPS, ids=[t.name for t in LOOPS])
def test_every_loop_is_caught_by_the_stated_step(mode: str, trace: Trace) -> None:
    at, kind = REPLAYS[mode](trace)
    assert (at, kind) == (trace.caught_at, trace.loop)
