"""The recovery guide's scenarios, run for real on an in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine

import agentkeel
from agentkeel.recovery import ErrorHandlingSystem, LoopDetectedError

Say = Callable[[str], None]


async def _no_wait(_seconds: float) -> None:
    return None


def _system() -> ErrorHandlingSystem:
    # Back-off waits are skipped so the examples run in a blink; real agents keep them.
    return ErrorHandlingSystem(
        {"retry": {"max_retries": 3, "base_delay": 0.5}},
        sleep=lambda _s: None,
        async_sleep=_no_wait,
    )


async def simple_retry(say: Say) -> None:
    system = _system()
    tries = {"n": 0}

    async def flaky_model_call(adjusted_prompt: str | None = None) -> str:
        tries["n"] += 1
        if tries["n"] < 3:
            raise ConnectionError("model endpoint reset the connection")
        return "a three-line summary"

    result = await system.handle_error(
        ConnectionError("model endpoint reset the connection"),
        {"agent_id": "writer", "task_id": "summary", "prompt": "Summarise the meeting notes"},
        flaky_model_call,
    )
    say(
        f"strategy {result['strategy']}, success {result['success']} after "
        f"{result['attempts']} attempts: {result['result']!r}"
    )
    await system.shutdown()


async def rollback(say: Say) -> None:
    system = _system()
    good = {"plan": ["search flights", "book hotel"], "step": 1}
    sid = await system.rollback_system.create_snapshot(
        agent_id="planner", task_id="trip", state_data=good, metadata={"why": "before booking"}
    )
    say(f"snapshot {sid} taken before a risky step")
    result = await system.handle_error(
        ValueError("plan lost its steps"), {"agent_id": "planner", "state_corrupted": True}
    )
    say(
        f"strategy {result['strategy']}: restored {result['result']} "
        f"(equal to the snapshot: {result['result'] == good})"
    )
    await system.shutdown()


async def loop_detection(say: Say) -> None:
    system = _system()
    detector = system.loop_detector
    try:
        for attempt in range(1, 10):
            with detector.guard("researcher", "web_search", {"q": "agentkeel"}) as step:
                step.result = "the same page"
            say(f"search #{attempt}")
    except LoopDetectedError as exc:
        say(f"stopped: {exc}")
    say(
        f"paused: {await detector.is_agent_paused('researcher')}; "
        f"patterns: {[p.kind.value for p in await detector.get_loop_patterns('researcher')]}"
    )
    await detector.reset_agent("researcher")
    say(f"after reset, paused: {await detector.is_agent_paused('researcher')}")
    await system.shutdown()


async def escalation(say: Say) -> None:
    system = _system()
    escalations = system.escalation_system
    ticket = await escalations.create_escalation(
        {
            "error": "disk full while writing the report",
            "agent_id": "reporter",
            "error_type": "resource_error",
        },
        recovery_attempts=3,
    )
    report = await escalations.get_escalation_report(ticket)
    say(f"ticket {ticket}: level {report.ticket.level}, priority {report.ticket.priority}")
    for line in report.recommendations[:3]:
        say(f"  recommendation: {line}")
    escalations.acknowledge(ticket, actor="on-call", note="looking")
    done = escalations.resolve(ticket, resolution="freed 20 GB", actor="on-call")
    say(f"ticket {ticket} is {done.status}: {done.resolution}")
    await system.shutdown()


async def history(say: Say) -> None:
    system = _system()
    h = system.history_manager
    v1 = await h.record_state(
        agent_id="trainer", task_id="fit", state_data={"epoch": 1, "lr": 0.01, "notes": ["warm-up"]}
    )
    v2 = await h.record_state(
        agent_id="trainer",
        task_id="fit",
        state_data={"epoch": 2, "lr": 0.005, "notes": ["warm-up", "lr halved"], "best": 0.91},
    )
    diff = await h.compare_versions("trainer", "fit", v1, v2)
    say(
        f"{v1} → {v2}: {diff.total_changes} changes; added {diff.added}, "
        f"changed {[c.path for c in diff.changed]}"
    )
    await system.shutdown()


async def system_health(say: Say) -> None:
    system = _system()

    async def ok() -> str:
        return "done"

    await system.handle_error(TimeoutError("slow tool"), {"agent_id": "a"}, ok)
    await system.handle_error(PermissionError("bad API key"), {"agent_id": "b"}, ok)
    health = await system.get_system_health()
    stats = health["stats"]
    say(
        f"errors {stats['total_errors']}, recovered {stats['successful_recoveries']}, "
        f"escalated {stats['escalations']}, by strategy {stats['by_strategy']}"
    )
    say(
        "subsystems: "
        + ", ".join(f"{k} {v['status']}" for k, v in health["subsystem_status"].items())
    )
    await system.shutdown()


SCENARIOS: dict[str, Callable[[Say], Coroutine[None, None, None]]] = {
    "simple retry": simple_retry,
    "rollback": rollback,
    "loop detection with auto-pause": loop_detection,
    "escalation workflow": escalation,
    "history comparison": history,
    "system health": system_health,
}


def main(say: Say = print) -> int:
    agentkeel.configure(store="memory://")
    for title, scenario in SCENARIOS.items():
        say(f"\n== {title}")
        asyncio.run(scenario(say))
    agentkeel.shutdown()
    return 0
