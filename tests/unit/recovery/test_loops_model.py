"""The loop detector against a naive model of its own definitions, and two properties:
traces without repeats never trigger it, injected repeats always do, on time."""

from __future__ import annotations

from dataclasses import dataclass

from _loop_support import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeel.recovery import LoopDetectionConfig, LoopDetector, LoopKind, LoopVerdict

WINDOW = 12
SETTINGS = {
    "max_iterations": WINDOW,
    "max_cycle_length": 3,
    "cycle_repeats": 2,
    "max_repeats": 3,
    "max_error_repeats": 3,
    "max_state_visits": 3,
    "emit_events": False,
}


@dataclass(frozen=True)
class S:
    action: str
    args: str | None
    outcome: int | None  # None: the step failed with ``error``
    error: str | None
    state: str | None

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.action, self.args, self.state)


class Model:
    """The rules as the docs state them, computed the slow, obvious way."""

    def __init__(self) -> None:
        self.history: list[tuple[int, S, bool, bool]] = []  # (seq, step, novel, entered)
        self.last_state: str | None = None
        self.seq = 0

    def record(self, step: S) -> tuple[LoopKind, int] | None:
        window = self.history[-(WINDOW - 1) :]
        novel = step.outcome is not None and not any(
            s.outcome is not None and (s.action, s.outcome) == (step.action, step.outcome)
            for _, s, _, _ in window
        )
        entered = step.state is not None and step.state != self.last_state
        if step.state is not None:
            self.last_state = step.state
        progress_at = max((q for q, _, n, _ in window if n), default=0)
        window = [*window, (self.seq, step, novel, entered)]
        self.history.append((self.seq, step, novel, entered))
        self.seq += 1
        return self._judge(window, step, progress_at, entered)

    def _judge(
        self, window: list[tuple[int, S, bool, bool]], step: S, progress_at: int, entered: bool
    ) -> tuple[LoopKind, int] | None:
        steps = [s for _, s, _, _ in window]
        if step.outcome is not None:
            run = 0
            for q, s, _, _ in reversed(window):
                if s.key != step.key:
                    continue
                if s.outcome != step.outcome or q < progress_at:
                    break
                run += 1
                if run >= 3:
                    return LoopKind.EXACT_REPEAT, run
            for length in (2, 3):
                span = 2 * length
                if span > len(steps):
                    break
                tail = steps[-span:]
                repeated = all(s.outcome is not None for s in tail) and all(
                    tail[i] == tail[i + length] for i in range(length)
                )
                if repeated and len({s.key for s in tail[-length:]}) >= 2:
                    return LoopKind.CYCLE, 2
        else:
            since_ok: list[S] = []
            for s in reversed(steps):
                if s.outcome is not None:
                    break
                since_ok.append(s)
            same = sum(1 for s in since_ok if s.error == step.error)
            if same >= 3:
                return LoopKind.REPEATING_ERROR, same
        if entered:
            visits = sum(1 for _, s, _, e in window if e and s.state == step.state)
            if visits >= 3:
                return LoopKind.STATE_REVISIT, visits
        return None

    def resume(self) -> None:
        self.history.clear()
        self.last_state = None


def _steps(actions: str, args: list[str | None], states: list[str | None]) -> st.SearchStrategy[S]:
    return st.builds(
        S,
        action=st.sampled_from(list(actions)),
        args=st.sampled_from(args),
        outcome=st.sampled_from([0, 0, 0, 1, None]),
        error=st.sampled_from(["alpha failed", "beta failed"]),
        state=st.sampled_from(states),
    ).map(lambda s: s if s.outcome is None else S(s.action, s.args, s.outcome, None, s.state))


# Two mixes: few calls and rare states (repeats and cycles are common), and more
# calls with frequent states (revisits and error streaks are).
steps = st.one_of(
    _steps("ab", [None, "x"], [None] * 8 + ["s", "t"]),
    _steps("abc", [None, "x", "y"], [None, None, "s", "t", "u"]),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(steps, max_size=60)))
def test_detector_matches_the_model(trace: list[S]) -> None:
    detector = LoopDetector(LoopDetectionConfig(**SETTINGS), clock=FakeClock())
    model = Model()
    for n, step in enumerate(trace):
        verdict = detector.record_step(
            "agent",
            step.action,
            step.args,
            result=step.outcome,
            error=step.error,
            state=step.state,
        )
        expected = model.record(step)
        got = None if verdict is None else (verdict.kind, verdict.count)
        assert got == expected, f"step {n}: {step}"
        if verdict is not None:
            detector.resume_agent("agent")
            model.resume()


unique_steps = st.lists(
    st.tuples(st.sampled_from(["search", "read", "write"]), st.integers(0, 3)), max_size=80
)


@settings(max_examples=200, deadline=None)
@given(unique_steps)
def test_traces_without_repeats_never_trigger(trace: list[tuple[str, int]]) -> None:
    detector = LoopDetector(LoopDetectionConfig(emit_events=False), clock=FakeClock())
    for n, (action, result) in enumerate(trace):
        assert detector.check_step("agent", action, {"id": f"item-{n}"}) is None
        verdict = detector.record_step("agent", action, {"id": f"item-{n}"}, result=result)
        assert verdict is None


def _replay_prefix(detector: LoopDetector, prefix: list[tuple[str, int]]) -> None:
    for n, (action, result) in enumerate(prefix):
        assert detector.record_step("agent", action, {"id": f"p-{n}"}, result=result) is None


@settings(max_examples=200, deadline=None)
@given(unique_steps, st.integers(0, 3))
def test_an_injected_repeat_is_caught_at_its_third_occurrence(
    prefix: list[tuple[str, int]], result: int
) -> None:
    detector = LoopDetector(LoopDetectionConfig(emit_events=False), clock=FakeClock())
    _replay_prefix(detector, prefix)
    verdicts: list[LoopVerdict | None] = [
        detector.record_step("agent", "tool", {"q": "same"}, result=result) for _ in range(3)
    ]
    assert verdicts[:2] == [None, None]
    assert verdicts[2] is not None and verdicts[2].kind is LoopKind.EXACT_REPEAT


@settings(max_examples=200, deadline=None)
@given(unique_steps, st.integers(0, 3), st.integers(0, 3))
def test_an_injected_two_step_cycle_is_caught_by_its_second_cycle(
    prefix: list[tuple[str, int]], first: int, second: int
) -> None:
    detector = LoopDetector(LoopDetectionConfig(emit_events=False), clock=FakeClock())
    _replay_prefix(detector, prefix)
    cycle = [("fetch", {"u": 1}, first), ("parse", {"b": 2}, second)] * 2
    verdicts = [detector.record_step("agent", a, args, result=r) for a, args, r in cycle]
    assert verdicts[:3] == [None, None, None]
    assert verdicts[3] is not None and verdicts[3].kind is LoopKind.CYCLE
