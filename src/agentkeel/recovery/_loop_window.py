"""The loop detector's memory of one agent: a window of steps and its indexes.

Kept apart from the rules (``_loops``) because it is pure bookkeeping: every index
holds only steps still in the window, oldest first, so a step that leaves the window
is found at the front of each list it is in and removed in O(1).
"""

from __future__ import annotations

from collections import Counter, deque

from agentkeel.recovery._loop_fingerprint import LoopKind, LoopVerdict, preview

__all__ = ["Found", "Step", "Window", "describe", "stable"]


class Step:
    """One recorded (or, when predicting, hypothetical) step, reduced to integers.

    ``form`` is the arguments' canonical form (text, or JSON bytes). ``digits``, the
    runs of digits in it, and ``shape`` (action, result, digits) are computed only
    once the action has given the same result twice: only steps of one shape can be
    near-duplicates, and most results never repeat.
    """

    __slots__ = (
        "action",
        "digits",
        "error",
        "form",
        "key",
        "ok",
        "outcome",
        "rkey",
        "seq",
        "shape",
        "state",
        "t",
    )

    def __init__(  # noqa: PLR0917 - built once per step: positional is the cheap call
        self,
        seq: int,
        t: float,
        action: str,
        key: int,
        form: str | bytes,
        outcome: int,
        error: int | None,
        state: int | None,
    ) -> None:
        self.seq = seq
        self.t = t
        self.action = action
        self.key = key
        self.form = form
        self.outcome = outcome
        self.error = error
        self.state = state
        self.digits: tuple[bytes, ...] | None = None
        self.shape: int | None = None
        if error is None:
            self.ok = True
            self.rkey: int | None = hash((action, outcome))  # this action, this result
        else:
            self.ok = False
            self.rkey = None


class Window:
    """What the detector remembers about one agent.

    The indexes hold only steps still in ``steps``, oldest first, so a step leaving
    the window is always at the front of each list it is in.
    """

    __slots__ = (
        "by_action",
        "by_key",
        "by_result",
        "by_shape",
        "by_state",
        "error_run",
        "errors",
        "last_state",
        "predicted",
        "progress_at",
        "steps",
        "total",
    )

    def __init__(self) -> None:
        self.steps: deque[Step] = deque()
        self.by_key: dict[int, list[Step]] = {}
        self.by_action: dict[str, deque[Step]] = {}  # recent successful steps per action
        self.by_state: dict[int, list[Step]] = {}  # steps that entered each state
        self.by_result: dict[int, int] = {}  # successful steps per (action, result)
        self.by_shape: dict[int, int] = {}  # steps per shape, for those that have one
        # The last step that made progress: a result its action had not given in the
        # window. Repeats are counted only since then.
        self.progress_at = 0
        self.error_run: deque[Step] = deque()  # failed steps since the last success
        self.errors: Counter[int] = Counter()  # their error fingerprints
        self.last_state: int | None = None
        self.total = 0
        # The loop check_step just reported, so the same step recorded after it ran
        # (when on_loop let it run) is not reported a second time.
        self.predicted: tuple[int, LoopKind, LoopVerdict] | None = None

    def drop_oldest(self) -> None:  # noqa: PLR0912 - one branch per index, kept inline
        old = self.steps.popleft()
        occurrences = self.by_key[old.key]
        if len(occurrences) == 1:
            del self.by_key[old.key]
        else:
            del occurrences[0]
        if old.rkey is not None:
            recent = self.by_action[old.action]
            if recent[0] is old:
                recent.popleft()
                if not recent:
                    del self.by_action[old.action]
            by_result, rkey = self.by_result, old.rkey
            left = by_result[rkey] - 1
            if left:
                by_result[rkey] = left
            else:
                del by_result[rkey]
            shape = old.shape
            if shape is not None:
                by_shape = self.by_shape
                left = by_shape[shape] - 1
                if left:
                    by_shape[shape] = left
                else:
                    del by_shape[shape]

        elif self.error_run and self.error_run[0] is old:
            self.error_run.popleft()
            self.errors[old.error] -= 1  # type: ignore[index]  # failed steps have one
        if old.state is not None:
            visits = self.by_state.get(old.state)
            if visits and visits[0] is old:
                if len(visits) == 1:
                    del self.by_state[old.state]
                else:
                    del visits[0]


class Found:
    __slots__ = ("actions", "count", "cycle", "kind")

    def __init__(
        self,
        kind: LoopKind,
        count: int,
        actions: tuple[str, ...],
        *,
        cycle: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.count = count
        self.actions = actions
        self.cycle = cycle


def stable(occurrences: list[Step]) -> bool:
    """Whether the call's last two occurrences succeeded with the same result."""
    if len(occurrences) < 2:
        return False
    last, before = occurrences[-1], occurrences[-2]
    return last.ok and before.ok and last.outcome == before.outcome


def describe(found: Found, step: Step) -> str:
    args = preview(step.form, 80)
    call = f"{step.action}({args})"
    kind = found.kind
    if kind is LoopKind.EXACT_REPEAT:
        return f"{call} repeated {found.count} times with the same result"
    if kind is LoopKind.CYCLE:
        cycle = " -> ".join(found.cycle)
        return f"cycle {cycle} repeated {found.count} times with the same results"
    if kind is LoopKind.NEAR_DUPLICATE:
        return f"{found.count} near-identical {step.action} calls returned the same result"
    if kind is LoopKind.REPEATING_ERROR:
        return f"the same error {found.count} times without a success (last: {step.action})"
    if kind is LoopKind.STATE_REVISIT:
        return f"the same state entered {found.count} times (last by {step.action})"
    return f"{found.count} steps exceed max_total_steps"
