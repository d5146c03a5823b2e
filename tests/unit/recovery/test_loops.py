"""The loop detector's rules, one by one, and what it does when one fires."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from _loop_support import FakeClock, detector, detector_with_events

from agentkeel import ConfigurationError, EventType, Severity
from agentkeel.recovery import (
    AgentPausedError,
    LoopDetectedError,
    LoopDetectionConfig,
    LoopDetector,
    LoopKind,
    LoopVerdict,
)

# --------------------------------------------------------------- exact repeats


def test_an_identical_call_is_stopped_by_its_third_occurrence() -> None:
    d = detector()
    assert d.record_step("a", "search", {"q": "x"}, result=["r"]) is None
    assert d.record_step("a", "search", {"q": "x"}, result=["r"]) is None
    verdict = d.record_step("a", "search", {"q": "x"}, result=["r"])
    assert verdict is not None
    assert verdict.kind is LoopKind.EXACT_REPEAT
    assert verdict.count == 3
    assert verdict.actions == ("search",)
    assert verdict.step == 3
    assert verdict.arguments == '{"q":"x"}'
    assert not verdict.predicted
    assert d.is_agent_paused_sync("a")


def test_the_guard_refuses_the_third_identical_call_before_it_runs() -> None:
    d = detector()
    calls = []

    def search(q: str) -> str:
        calls.append(q)
        return "same"

    d.call("a", search, "x")
    d.call("a", search, "x")
    with pytest.raises(LoopDetectedError) as caught:
        d.call("a", search, "x")
    assert calls == ["x", "x"]  # the third never ran
    verdict = caught.value.verdict
    assert verdict.kind is LoopKind.EXACT_REPEAT and verdict.predicted and verdict.count == 3
    assert "repeated 3 times" in str(caught.value) and "resume_agent" in str(caught.value)
    with pytest.raises(AgentPausedError, match="resume_agent"):
        d.call("a", search, "y")
    assert d.resume_agent("a")
    assert d.call("a", search, "x") == "same"  # the evidence was forgotten on resume


def test_argument_order_does_not_make_a_call_new() -> None:
    d = detector()
    d.record_step("a", "f", {"x": 1, "y": 2}, result=1)
    d.record_step("a", "f", {"y": 2, "x": 1}, result=1)
    assert d.record_step("a", "f", {"x": 1, "y": 2}, result=1) is not None


def test_a_new_result_is_progress_not_a_repeat() -> None:
    d = detector()
    for progress in range(10):
        assert d.record_step("a", "poll", {"job": 7}, result={"done": progress}) is None


def test_a_repeat_after_a_failure_is_a_retry() -> None:
    d = detector()
    assert d.record_step("a", "fetch", "u", error=ConnectionError("reset")) is None
    assert d.record_step("a", "fetch", "u", error=ConnectionError("reset")) is None
    assert d.record_step("a", "fetch", "u", result="page") is None


def test_per_action_limits_and_ignored_actions() -> None:
    d = detector(max_repeats_by_action={"poll": 5}, ignore_actions=["sleep"])
    for _ in range(4):
        assert d.record_step("a", "poll", None, result="running") is None
        assert d.record_step("a", "sleep", 1.0) is None
    verdict = d.record_step("a", "poll", None, result="running")
    assert verdict is not None and verdict.count == 5
    assert d.check_step("b", "sleep") is None


def test_the_same_call_in_a_new_state_is_not_a_repeat() -> None:
    d = detector()
    for files_read in range(5):
        assert d.record_step("a", "list_files", None, result=["a", "b"], state=files_read) is None
        assert d.record_step("a", "read", files_read, result="text", state=files_read) is None


# ---------------------------------------------------------------------- cycles


def test_an_a_b_cycle_is_stopped_by_its_second_cycle() -> None:
    d = detector()
    assert d.record_step("a", "A", 1, result="a") is None
    assert d.record_step("a", "B", 1, result="b") is None
    assert d.record_step("a", "A", 1, result="a") is None
    verdict = d.record_step("a", "B", 1, result="b")
    assert verdict is not None and verdict.kind is LoopKind.CYCLE
    assert verdict.cycle == ("A", "B") and verdict.count == 2


def test_the_guard_stops_the_agent_at_the_end_of_the_second_cycle() -> None:
    d = detector()
    ran = []
    for action in ("A", "B", "A"):
        with d.guard("a", action, {"n": 1}) as step:
            ran.append(action)
            step.result = action.lower()

    def run_b() -> None:
        with d.guard("a", "B", {"n": 1}) as step:
            ran.append("B")
            step.result = "b"

    with pytest.raises(LoopDetectedError) as caught:
        run_b()
    # B's one earlier result is no evidence it would repeat, so B ran; its result did.
    assert ran == ["A", "B", "A", "B"]
    assert caught.value.verdict.kind is LoopKind.CYCLE and not caught.value.verdict.predicted
    with pytest.raises(AgentPausedError), d.guard("a", "A", {"n": 1}):
        ran.append("A")
    assert len(ran) == 4


def test_the_guard_refuses_a_third_cycle_of_steps_with_stable_results() -> None:
    d = detector(cycle_repeats=3, max_repeats=4)
    for action in "ABABA":
        with d.guard("a", action) as step:
            step.result = action
    with pytest.raises(LoopDetectedError) as caught:
        d.check_step("a", "B")
    assert caught.value.verdict.kind is LoopKind.CYCLE and caught.value.verdict.predicted


def test_progress_in_between_resets_the_repeat_count() -> None:
    d = detector()
    for name in "abcdef":  # re-listing after each new file read: progress, not a loop
        assert d.record_step("a", "list_files", None, result=["a", "b"]) is None
        assert d.record_step("a", "read", name, result=f"text {name}") is None
    for progress in range(5):  # the fixed-interval sleep between polls repeats
        assert d.record_step("b", "sleep", 2, result=None) is None
        assert d.record_step("b", "poll", "job", result=progress) is None


def test_a_three_step_cycle() -> None:
    d = detector()
    verdicts = [d.record_step("a", x, None, result=x) for x in "ABCABC"]
    assert verdicts[:5] == [None] * 5
    assert verdicts[5] is not None and verdicts[5].cycle == ("A", "B", "C")


def test_cycles_with_changing_results_or_failures_are_not_loops() -> None:
    d = detector()
    for i in range(6):
        assert d.record_step("a", "status", 1, result=i) is None
        assert d.record_step("a", "status", 2, result=i) is None
    for _ in range(2):  # a fixed-delay retry: the failures break the "cycle"
        assert d.record_step("b", "call", "x", error=KeyError("k")) is None
        assert d.record_step("b", "sleep", 1, result=None) is None


def test_one_call_over_and_over_is_judged_by_its_own_limit_not_as_a_cycle() -> None:
    d = detector(max_repeats_by_action={"poll": 10})
    for _ in range(9):
        assert d.record_step("a", "poll", None, result="same") is None


# -------------------------------------------------------------- near duplicates


def test_near_duplicate_calls_with_the_same_result() -> None:
    d = detector()
    queries = ["weather in Paris", "Weather in paris?", "weather  in paris", "weather in Paris!"]
    verdicts = [d.record_step("a", "search", {"q": q}, result=["x"]) for q in queries]
    assert verdicts[:3] == [None] * 3
    assert verdicts[3] is not None and verdicts[3].kind is LoopKind.NEAR_DUPLICATE
    assert verdicts[3].count == 4


def test_near_duplicates_need_the_same_result_equal_numbers_and_every_argument_alike() -> None:
    d = detector()
    for i, q in enumerate(["weather in Paris", "Weather in paris?", "weather in paris", "w"]):
        assert d.record_step("a", "search", {"q": q}, result=i) is None  # results differ
    for page in range(1, 8):
        assert d.record_step("b", "list", {"q": "orders", "page": page}, result=[]) is None
    body = "Hello, here is the weekly report. " * 20
    for name in ("alice", "bob", "carol", "dave", "erin"):
        mail = {"to": f"{name}@example.com", "body": body}
        assert d.record_step("c", "send", mail, result="sent") is None
    for n in range(5):
        assert d.record_step("e", "search", f"report for 2024-0{n + 1}", result="x") is None


def test_near_duplicates_are_predicted_by_the_guard() -> None:
    d = detector()
    for q in ["weather in Paris", "Weather in paris?", "weather  in paris"]:
        with d.guard("a", "search", {"q": q}) as step:
            step.result = ["x"]
    with pytest.raises(LoopDetectedError) as caught:
        d.check_step("a", "search", {"q": "weather in Paris!"})
    assert caught.value.verdict.kind is LoopKind.NEAR_DUPLICATE


# ------------------------------------------------------------ repeating errors


def test_the_same_error_four_times_without_a_success() -> None:
    d = detector()
    for n in range(3):
        assert d.record_step("a", "fetch", n, error=ConnectionError(f"reset by 10.0.0.{n}")) is None
    verdict = d.record_step("a", "other", None, error=ConnectionError("reset by 10.0.0.9"))
    assert verdict is not None and verdict.kind is LoopKind.REPEATING_ERROR
    assert verdict.count == 4


def test_a_success_ends_an_error_streak() -> None:
    d = detector()
    for _ in range(3):
        for _ in range(3):
            assert d.record_step("a", "fetch", None, error="timed out after 5s") is None
        assert d.record_step("a", "fetch", None, result="ok") is None


def test_the_guard_raises_from_the_step_error_on_a_repeating_error() -> None:
    d = detector()
    for _ in range(3):
        with pytest.raises(ConnectionError), d.guard("a", "fetch", "u"):
            raise ConnectionError("refused")
    with pytest.raises(LoopDetectedError) as caught, d.guard("a", "fetch", "u"):
        raise ConnectionError("refused")
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_cancellation_is_not_recorded() -> None:
    d = detector()
    for _ in range(10):
        with pytest.raises(KeyboardInterrupt), d.guard("a", "fetch", "u"):
            raise KeyboardInterrupt
    assert d.get_statistics()["steps_recorded"] == 0


# ------------------------------------------------------------------ states


def test_entering_the_same_state_a_third_time() -> None:
    d = detector()
    trace = [("go", "S1"), ("go", "S2"), ("back", "S1"), ("go", "S2")]
    for n, (action, state) in enumerate(trace):
        assert d.record_step("a", action, n, result=n, state=state) is None
    verdict = d.record_step("a", "back", 9, result=9, state="S1")
    assert verdict is not None and verdict.kind is LoopKind.STATE_REVISIT
    assert verdict.count == 3


def test_staying_in_one_state_is_not_revisiting_it() -> None:
    d = detector()
    for n in range(20):
        assert d.record_step("a", "think", n, result=n, state={"plan": "same"}) is None


# ------------------------------------------------------------- windows, limits


def test_steps_older_than_the_time_window_are_forgotten() -> None:
    clock = FakeClock()
    d = detector(clock, time_window_seconds=timedelta(minutes=1))
    for _ in range(5):
        assert d.record_step("a", "poll", None, result="same") is None
        clock.advance(31)
    assert d.config.window_seconds == 60.0


def test_only_the_last_max_iterations_steps_count() -> None:
    d = detector(max_iterations=10, max_cycle_length=5)
    for _ in range(4):
        assert d.record_step("a", "same", None, result=1) is None
        for n in range(10):
            d.record_step("a", "other", n, result=n)


def test_iteration_limit() -> None:
    d = detector(max_total_steps=5)
    verdicts = [d.record_step("a", "step", n, result=n) for n in range(6)]
    assert verdicts[:5] == [None] * 5
    assert verdicts[5] is not None and verdicts[5].kind is LoopKind.ITERATION_LIMIT


def test_agents_are_independent_and_their_number_is_bounded() -> None:
    d = detector(max_agents=3)
    for agent in "abcde":
        d.record_step(agent, "f", None, result=1)
        d.record_step(agent, "f", None, result=1)
    assert d.get_statistics()["agents_tracked"] == 3
    assert d.record_step("a", "f", None, result=1) is None  # "a" was forgotten
    assert d.record_step("e", "f", None, result=1) is not None


# ------------------------------------------------------------ on detection


def test_detection_emits_a_loop_event_with_the_pattern() -> None:
    d, pipeline, captured = detector_with_events()
    for _ in range(3):
        d.record_step("agent-7", "search", {"q": "x"}, result="r")
    assert pipeline.flush(5)
    (event,) = [e for e in captured.events if e.type == EventType.LOOP_DETECTED]
    assert event.severity == Severity.HIGH and event.category == "loop"
    assert event.attributes["pattern"] == "exact_repeat"
    assert event.attributes["agent_id"] == "agent-7"
    assert event.attributes["count"] == 3 and event.attributes["actions"] == ["search"]
    pipeline.close()


def test_on_loop_callback_instead_of_an_exception() -> None:
    seen: list[LoopVerdict] = []
    d = LoopDetector(
        LoopDetectionConfig(emit_events=False, enable_auto_pause=False),
        clock=FakeClock(),
        on_loop=seen.append,
    )
    for _ in range(2):
        d.call("a", len, "abc")
    assert d.call("a", len, "abc") == 3  # on_loop hears of it; the call is not refused
    # Predicted before the call, confirmed after it: one loop, reported once.
    assert [(v.kind, v.predicted) for v in seen] == [(LoopKind.EXACT_REPEAT, True)]
    assert not d.is_agent_paused_sync("a")
    assert d.get_statistics()["loops_detected"] == 1


def test_patterns_reset_and_statistics() -> None:
    d = detector()
    for _ in range(3):
        d.record_step("a", "f", None, result=1)
    patterns = asyncio.run(d.get_loop_patterns("a"))
    assert [p.kind for p in patterns] == [LoopKind.EXACT_REPEAT]
    assert patterns[0].to_dict()["pattern"] == "exact_repeat"
    assert asyncio.run(d.is_agent_paused("a"))
    assert d.paused_agents() == {"a": "exact_repeat detected: " + patterns[0].message}
    stats = d.get_statistics()
    assert stats["loops_detected"] == 1 and stats["loops_by_kind"] == {"exact_repeat": 1}
    assert stats["paused_agents"] == ["a"]
    asyncio.run(d.reset_agent("a"))
    assert not d.is_agent_paused_sync("a") and d.get_loop_patterns_sync("a") == []
    assert d.record_step("a", "f", None, result=1) is None


def test_pause_by_hand() -> None:
    d = detector()
    d.pause_agent("a", "operator asked")
    with pytest.raises(AgentPausedError, match="operator asked"):
        d.record_step("a", "f")
    assert d.resume_agent("a") and not d.resume_agent("a")


def test_watch_decorates_sync_and_async_tools() -> None:
    d = detector()

    @d.watch("a")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @d.watch("a", action="fetch")
    async def fetch(url: str) -> str:
        return "same page"

    assert add(1, y=2) == 3 and add.__name__ == "add"
    assert add(1, y=3) == 4

    async def plain(url: str) -> str:
        return url

    async def main() -> None:
        assert await fetch("u") == "same page"
        assert await d.acall("b", plain, "u") == "u"
        await fetch("u")
        with pytest.raises(LoopDetectedError):
            await fetch("u")

    asyncio.run(main())


def test_thread_safety_under_concurrent_agents() -> None:
    d = detector()
    errors: list[BaseException] = []

    def agent(name: str, offset: int) -> None:
        try:
            for n in range(offset, offset + 2_000):
                d.record_step(name, "work", n % 500 + offset, result=n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(f"agent-{i}", 0)) for i in range(4)]
    # Two threads on one agent, doing different work (the same work would be a loop).
    threads += [threading.Thread(target=agent, args=("shared", i * 10_000)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert d.get_statistics()["steps_recorded"] == 12_000


def test_unencodable_and_huge_values_are_fingerprinted() -> None:
    d = detector()
    cyclic: list[object] = []
    cyclic.append(cyclic)
    huge = "x" * 1_000_000
    for _ in range(2):
        assert d.record_step("a", "f", cyclic, result=huge) is None
    assert d.record_step("a", "f", cyclic, result=huge) is not None
    assert d.record_step("b", "f", {1, 2}, result=object()) is None


# ------------------------------------------------------------------- config


def test_config_from_dict_takes_the_seed_section_and_rejects_unknown_keys() -> None:
    config = LoopDetectionConfig.from_dict(
        {
            "max_iterations": 100,
            "similarity_threshold": 0.9,
            "time_window_seconds": 600,
            "enable_auto_pause": True,
        }
    )
    assert config.max_iterations == 100 and config.window_seconds == 600.0
    with pytest.raises(ConfigurationError, match=r"unknown loop_detection setting.*max_loops"):
        LoopDetectionConfig.from_dict({"max_loops": 3})
    with pytest.raises(ConfigurationError, match=r"allowed are .*max_iterations"):
        LoopDetectionConfig.from_dict({"nope": 1})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_iterations": 1}, "max_iterations must be an integer >= 2"),
        ({"similarity_threshold": 1.5}, "similarity_threshold must be a number between 0 and 1"),
        ({"similarity_threshold": 0}, "similarity_threshold must be above 0"),
        ({"time_window_seconds": -1}, "time_window_seconds must be positive"),
        ({"max_repeats": 1}, "max_repeats must be an integer >= 2"),
        ({"max_repeats_by_action": {"poll": 1}}, r"max_repeats_by_action\['poll'\]"),
        ({"enable_auto_pause": "yes"}, "enable_auto_pause must be True or False"),
        ({"max_iterations": 5, "max_cycle_length": 3}, "do not fit in the window"),
        ({"ignore_actions": [""]}, "ignore_actions must hold non-empty strings"),
    ],
)
def test_config_errors_say_what_is_wrong(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LoopDetectionConfig(**settings)  # type: ignore[arg-type]
