"""Loop detection: notice an agent repeating itself, stop it, and say how it looped.

The detector keeps a short window of each agent's steps (the last ``max_iterations``
steps of the last ``time_window_seconds``) reduced to integers (see
``_loop_fingerprint``), with indexes that make every rule cost a handful of
comparisons, not a scan of the window. What counts as a loop:

* **exact repeat** — the same call (action, arguments, and ``state`` if given)
  *succeeding with the same result* ``max_repeats`` times;
* **cycle** — the last ``cycle_repeats`` x L successful steps are one run of
  L = 2..``max_cycle_length`` steps (not all the same call) repeated, results included;
* **near duplicate** — the same action with every argument alike (strings whose
  difflib ratio reaches ``similarity_threshold``, numbers equal), the same result,
  ``max_similar`` times;
* **repeating error** — the same error ``max_error_repeats`` times with no
  successful step in between;
* **state revisit** — entering the same ``state`` ``max_state_visits`` times;
* **iteration limit** — more than ``max_total_steps`` steps (off by default).

Two consequences of the definitions keep legitimate work from looking like a loop:
a call that returns something new is progress (polling, paging), and a call repeated
after a *failure* is a retry, judged only by the repeating-error rule.

``record_step`` judges a step after it ran. ``check_step`` judges one before it
runs, on the loop hypothesis that it would return what it returned last time, so
that the 3rd identical call is refused instead of executed. ``guard``, ``call`` and
``watch`` do both around a call.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from agentkeel import _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel.events import Category, EventType, Severity
from agentkeel.pipeline import Pipeline
from agentkeel.recovery._errors import AgentPausedError, LoopDetectedError
from agentkeel.recovery._loop_config import LoopDetectionConfig
from agentkeel.recovery._loop_fingerprint import (
    LoopKind,
    LoopVerdict,
    arguments_alike,
    canonical,
    digit_key,
    error_fingerprint,
    preview,
    value_fingerprint,
)
from agentkeel.recovery._loop_window import Found, Step, Window, describe, stable

__all__ = ["LoopDetector", "StepGuard"]

_ALWAYS = 1 << 30  # a count above every gate: failed steps are always judged

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
LoopCallback = Callable[[LoopVerdict], object]


class LoopDetector:
    """Watches agents' steps for loops; pauses and stops an agent that loops.

    ``config`` says what a loop is (:class:`LoopDetectionConfig`); ``clock`` is for
    tests. On a loop the detector records the pattern (``get_loop_patterns``), emits a
    ``loop.detected`` event (severity high) on ``pipeline`` (default: the process-wide
    one), pauses the agent if ``enable_auto_pause``, and then either raises
    :class:`LoopDetectedError` from ``check_step``/``guard``/``call`` or, if ``on_loop``
    is given, calls it with the verdict instead. ``record_step`` only returns the
    verdict. Steps of a paused agent raise :class:`AgentPausedError`.

    Thread-safe: one lock per detector, held for a few microseconds per step.
    """

    def __init__(
        self,
        config: LoopDetectionConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        pipeline: Pipeline | None = None,
        on_loop: LoopCallback | None = None,
    ) -> None:
        self.config = config if config is not None else LoopDetectionConfig()
        self._clock = clock
        # The system clock's method only calls time.monotonic: call that directly.
        self._now = time.monotonic if clock is SYSTEM_CLOCK else clock.monotonic
        self._pipeline = pipeline
        self._on_loop = on_loop
        self._lock = threading.Lock()
        self._agents: OrderedDict[str, Window] = OrderedDict()
        self._paused: dict[str, tuple[str, LoopVerdict | None]] = {}
        self._patterns: dict[str, deque[LoopVerdict]] = {}
        self._steps_recorded = 0
        self._checks = 0
        self._loops: Counter[str] = Counter()
        # Hot-path copies of the settings.
        cfg = self.config
        self._window_s = cfg.window_seconds
        self._max_steps = cfg.max_iterations
        self._max_agents = cfg.max_agents
        self._lookback = cfg.similar_lookback + 1
        self._ignored = cfg.ignore_actions
        # A cycle needs the step's call once per repetition; a predicted one needs two
        # earlier calls besides, to show that the call's result is stable.
        self._cycle_gates = (cfg.cycle_repeats, max(3, cfg.cycle_repeats))
        # A recorded step can break a rule only if its call was seen this often, its
        # action's result this often, it entered a state, or there is a step limit.
        limits = [cfg.max_repeats, *cfg.max_repeats_by_action.values(), cfg.cycle_repeats]
        self._repeat_gate = min(limits)
        self._similar_gate = cfg.max_similar
        self._max_total = cfg.max_total_steps

    # ------------------------------------------------------------------ recording
    def record_step(  # noqa: PLR0912 - the hot path, inlined on purpose
        self,
        agent_id: str,
        action: str,
        arguments: object = None,
        *,
        result: object = None,
        error: BaseException | str | None = None,
        state: object = None,
    ) -> LoopVerdict | None:
        """Record a step that ran; return the loop it completes, if any.

        ``error`` (an exception or a message) marks the step failed; ``state`` is
        whatever describes the agent's progress when it took the step (omit it if
        there is no such thing). Raises :class:`AgentPausedError` if the agent is paused.
        """
        if action in self._ignored:
            return None
        form = canonical(arguments)
        if error is None:
            outcome, error_fp = value_fingerprint(result), None
        else:
            outcome = error_fp = error_fingerprint(error)
        state_fp = None if state is None else value_fingerprint(state)
        key = hash((action, form, state_fp))
        now = self._now()
        with self._lock:
            if agent_id in self._paused:
                reason, why = self._paused[agent_id]
                raise AgentPausedError(agent_id, reason, why)
            window = self._agents.get(agent_id)
            if window is None:
                window = self._new_window(agent_id)
            else:
                self._agents.move_to_end(agent_id)
                steps = window.steps
                if steps and steps[0].t < now - self._window_s:
                    self._expire(window, now)
            if len(window.steps) >= self._max_steps:
                window.drop_oldest()
            step = Step(window.total, now, action, key, form, outcome, error_fp, state_fp)
            progress, entered, seen, similar = self._append(window, step)
            self._steps_recorded += 1
            # Most steps repeat nothing: the counts _append returns rule them out
            # without looking at the rules (each a method call and more lookups).
            if (
                seen < self._repeat_gate
                and similar < self._similar_gate
                and not entered
                and self._max_total is None
            ):
                found = None
            else:
                found = self._judge(window, step, entered=entered, predicted=False)
            if progress:
                window.progress_at = step.seq
            if found is None:
                return None
            earlier, window.predicted = window.predicted, None
            if earlier is not None and earlier[0] == step.seq and earlier[1] is found.kind:
                return earlier[2]
            verdict = self._conclude(agent_id, found, step, False)
        self._announce(verdict)
        return verdict

    def check_step(
        self, agent_id: str, action: str, arguments: object = None, *, state: object = None
    ) -> LoopVerdict | None:
        """Judge a step before it runs, assuming it would return what it returned before.

        Raises :class:`AgentPausedError` if the agent is paused and
        :class:`LoopDetectedError` if the step would complete a loop (with ``on_loop``
        set, that callback gets the verdict and it is returned instead). Nothing is
        recorded: call :meth:`record_step` after the step, or use :meth:`guard`.
        """
        if action in self._ignored:
            return None
        form = canonical(arguments)
        state_fp = None if state is None else value_fingerprint(state)
        key = hash((action, form, state_fp))
        now = self._clock.monotonic()
        with self._lock:
            if agent_id in self._paused:
                reason, why = self._paused[agent_id]
                raise AgentPausedError(agent_id, reason, why)
            self._checks += 1
            window = self._agents.get(agent_id)
            if window is None:
                return None
            self._expire(window, now)
            step = Step(window.total, now, action, key, form, 0, None, state_fp)
            entered = state_fp is not None and state_fp != window.last_state
            found = self._judge(window, step, entered=entered, predicted=True)
            if found is None:
                return None
            verdict = self._conclude(agent_id, found, step, True)
            window.predicted = (step.seq, found.kind, verdict)
        self._announce(verdict)
        if self._on_loop is None:
            raise LoopDetectedError(verdict)
        return verdict

    def _new_window(self, agent_id: str) -> Window:
        agents = self._agents
        window = agents[agent_id] = Window()
        if len(agents) > self._max_agents:
            agents.popitem(last=False)  # the least recently active agent
        return window

    def _expire(self, window: Window, now: float) -> None:
        steps = window.steps
        horizon = now - self._window_s
        while steps and steps[0].t < horizon:
            window.drop_oldest()

    def _append(self, window: Window, step: Step) -> tuple[bool, bool, int, int]:
        """Add the step to the window and its indexes.

        Returns (made progress, entered a new state, occurrences of the call, steps
        with the same action and result) — failed steps count as repeated calls, so the error
        rule is not skipped.
        """
        progress = entered = False
        window.steps.append(step)
        window.total += 1
        occurrences = window.by_key.get(step.key)
        if occurrences is None:
            window.by_key[step.key] = [step]
            seen = 1
        else:
            occurrences.append(step)
            seen = len(occurrences)
        rkey = step.rkey
        if rkey is not None:
            if window.error_run:  # a success ends every error streak
                window.error_run.clear()
                window.errors.clear()
            recent = window.by_action.get(step.action)
            if recent is None:
                window.by_action[step.action] = deque((step,), self._lookback)
            else:
                recent.append(step)
            before = window.by_result.get(rkey, 0)
            window.by_result[rkey] = before + 1
            progress = not before
            similar = self._shape(window, step, rkey) if before else 1
        else:
            window.error_run.append(step)
            window.errors[step.error] += 1  # type: ignore[index]  # failed steps have one
            seen = similar = _ALWAYS
        state = step.state
        if state is not None and state != window.last_state:
            entered = True
            window.last_state = state
            visits = window.by_state.get(state)
            if visits is None:
                window.by_state[state] = [step]
            else:
                visits.append(step)
        return progress, entered, seen, similar

    def _shape(self, window: Window, step: Step, rkey: int) -> int:
        """Give the step its shape (its action gave this result before); return how many
        steps in the window have that shape."""
        if window.by_result[rkey] == 2:
            # The first step with this result got no shape: give it one now.
            for earlier in reversed(window.by_action[step.action]):
                if earlier.rkey == rkey and earlier.shape is None and earlier is not step:
                    self._shape_of(window, earlier, rkey)
                    break
        return self._shape_of(window, step, rkey)

    @staticmethod
    def _shape_of(window: Window, step: Step, rkey: int) -> int:
        digits = step.digits
        if digits is None:
            digits = step.digits = digit_key(step.form)
        shape = step.shape = hash((rkey, digits))
        count = window.by_shape[shape] = window.by_shape.get(shape, 0) + 1
        return count

    # -------------------------------------------------------------------- rules
    def _judge(self, w: Window, step: Step, *, entered: bool, predicted: bool) -> Found | None:
        """The first rule the step breaks (``predicted``: the step is not in the window).

        Each rule is gated by a count from the indexes, so a step that repeats
        nothing costs a few dictionary lookups.
        """
        cfg = self.config
        if cfg.max_total_steps is not None and w.total + predicted > cfg.max_total_steps:
            return Found(LoopKind.ITERATION_LIMIT, w.total + predicted, (step.action,))
        if step.ok:
            occurrences = w.by_key.get(step.key)
            seen = (len(occurrences) if occurrences else 0) + predicted
            found = None
            if seen >= cfg.repeats_for(step.action):
                found = self._exact_repeat(w, step, predicted)
            if found is None and seen >= self._cycle_gates[predicted]:
                found = self._cycle(w, step, predicted)
            if found is None and (
                len(w.by_action.get(step.action, ())) >= cfg.max_similar - 1
                if predicted
                else w.by_shape.get(step.shape, 0) >= cfg.max_similar  # type: ignore[arg-type]
            ):
                found = self._near_duplicate(w, step, predicted)
            if found is not None:
                return found
        elif w.errors[step.error] >= cfg.max_error_repeats:  # type: ignore[index]
            return Found(LoopKind.REPEATING_ERROR, w.errors[step.error], (step.action,))  # type: ignore[index]
        if entered:
            visits = len(w.by_state.get(step.state, ())) + predicted  # type: ignore[arg-type]
            if visits >= cfg.max_state_visits:
                return Found(LoopKind.STATE_REVISIT, visits, (step.action,))
        return None

    def _exact_repeat(self, w: Window, step: Step, predicted: bool) -> Found | None:
        occurrences = w.by_key[step.key]
        limit = self.config.repeats_for(step.action)
        # Count back over the same call while it kept succeeding with one result and
        # nothing new happened in between.
        run = 1 if predicted else 0
        outcome = None
        progress_at = w.progress_at
        for previous in reversed(occurrences):
            if not previous.ok or previous.seq < progress_at:
                break
            if outcome is None:
                outcome = previous.outcome
            elif previous.outcome != outcome:
                break
            run += 1
            if run >= limit:
                return Found(LoopKind.EXACT_REPEAT, run, (step.action,))
        return None

    def _cycle(self, w: Window, step: Step, predicted: bool) -> Found | None:
        steps = w.steps
        base = 0 if predicted else 1  # where step lies, counting back from the window's end
        repeats = self.config.cycle_repeats
        available = len(steps) + (1 if predicted else 0)
        for length in range(2, self.config.max_cycle_length + 1):
            span = length * repeats
            if span > available:
                break
            # Position d counts back from the step (d = 0); it is steps[-d - base].
            partner = steps[-length - base]
            if (
                not partner.ok
                or partner.key != step.key
                or (not predicted and partner.outcome != step.outcome)
            ):
                continue
            if predicted and not stable(w.by_key[step.key]):
                continue  # one result seen once is no evidence the next will be the same
            matched = True
            for back in range(1, span - length):
                newer = steps[-back - base]
                older = steps[-back - base - length]
                # Successful steps match on (call, result); a failed step never does.
                if not (
                    newer.ok
                    and older.ok
                    and newer.key == older.key
                    and newer.outcome == older.outcome
                ):
                    matched = False
                    break
            if not matched:
                continue
            cycle = [step, *(steps[-back - base] for back in range(1, length))]
            if len({s.key for s in cycle}) < 2:
                continue  # one call over and over is a repeat, judged by its own limit
            actions = tuple(s.action for s in reversed(cycle))
            return Found(LoopKind.CYCLE, repeats, actions, cycle=actions)
        return None

    def _near_duplicate(self, w: Window, step: Step, predicted: bool) -> Found | None:
        recent = w.by_action.get(step.action)
        if not recent:
            return None
        threshold = self.config.similarity_threshold
        outcome = None if predicted else step.outcome
        count, alike = 1, False
        # Numbers must match exactly: comparing digit runs rejects most pairs cheaply.
        mine = step.digits
        if mine is None:
            mine = step.digits = digit_key(step.form)
        progress_at, state, key = w.progress_at, step.state, step.key
        for previous in reversed(recent):
            if previous.seq < progress_at:
                break  # something new happened since: the agent is getting somewhere
            if previous is step or previous.state != state:
                continue  # the same call in a new state is progress
            if outcome is not None and (
                previous.outcome != outcome or (not predicted and previous.shape != step.shape)
            ):
                continue  # a different result (recorded steps: or different numbers)
            if previous.key != key:
                theirs = previous.digits
                if theirs is None:
                    theirs = previous.digits = digit_key(previous.form)
                if theirs != mine or not arguments_alike(step.form, previous.form, threshold):
                    continue
                alike = True
            if outcome is None:
                outcome = previous.outcome  # predicting: it would return what this did
            count += 1
        # All exact: that is a repeat, with its own (possibly per-action) limit.
        if alike and count >= self.config.max_similar:
            return Found(LoopKind.NEAR_DUPLICATE, count, (step.action,))
        return None

    # --------------------------------------------------------------- conclusions
    def _conclude(self, agent_id: str, found: Found, step: Step, predicted: bool) -> LoopVerdict:
        """Turn a finding into a verdict: pattern kept, agent paused. Under the lock."""
        pause = self.config.enable_auto_pause
        verdict = LoopVerdict(
            agent_id=agent_id,
            kind=found.kind,
            count=found.count,
            actions=found.actions,
            cycle=found.cycle,
            arguments=preview(step.form),
            message=describe(found, step),
            step=step.seq + 1,
            at=self._clock.wall(),
            predicted=predicted,
            paused=pause,
        )
        patterns = self._patterns.get(agent_id)
        if patterns is None:
            patterns = self._patterns[agent_id] = deque(maxlen=self.config.max_patterns_kept)
            if len(self._patterns) > self.config.max_agents:
                del self._patterns[next(iter(self._patterns))]  # the longest-known agent's
        patterns.append(verdict)
        self._loops[found.kind.value] += 1
        if pause:
            self._paused[agent_id] = (f"{found.kind.value} detected: {verdict.message}", verdict)
        return verdict

    def _announce(self, verdict: LoopVerdict) -> None:
        """The event and the callback, outside the lock (they may be slow or re-enter)."""
        if self.config.emit_events:
            try:
                pipeline = self._pipeline
                if pipeline is None:
                    from agentkeel._runtime import get_pipeline

                    pipeline = get_pipeline()
                pipeline.emit(
                    EventType.LOOP_DETECTED,
                    name=f"loop.{verdict.kind.value}",
                    severity=Severity.HIGH,
                    category=Category.LOOP,
                    attributes=verdict.to_dict(),
                )
            except Exception as exc:  # noqa: BLE001 - telemetry must not hide the loop
                _internal.report_internal_error("recovery.loop_event", exc, reraise=False)
        if self._on_loop is not None:
            self._on_loop(verdict)

    # ------------------------------------------------------------------ control
    def pause_agent(self, agent_id: str, reason: str = "paused by hand") -> None:
        """Pause an agent: its next steps raise :class:`AgentPausedError`."""
        with self._lock:
            self._paused[agent_id] = (reason, None)

    def resume_agent(self, agent_id: str) -> bool:
        """Let a paused agent run again; forget its recent steps, so the same evidence
        does not stop it at once. Patterns are kept. Returns whether it was paused."""
        with self._lock:
            was_paused = self._paused.pop(agent_id, None) is not None
            window = self._agents.get(agent_id)
            if window is not None:
                total = window.total
                window = self._agents[agent_id] = Window()
                window.total = total
            return was_paused

    def is_agent_paused_sync(self, agent_id: str) -> bool:
        return agent_id in self._paused

    async def is_agent_paused(self, agent_id: str) -> bool:
        """Whether the agent is paused (the seed's awaitable form)."""
        return self.is_agent_paused_sync(agent_id)

    def paused_agents(self) -> dict[str, str]:
        """Paused agents and why."""
        with self._lock:
            return {agent: reason for agent, (reason, _) in self._paused.items()}

    def get_loop_patterns_sync(self, agent_id: str) -> list[LoopVerdict]:
        """The loops found for this agent since its last reset, oldest first."""
        with self._lock:
            return list(self._patterns.get(agent_id, ()))

    async def get_loop_patterns(self, agent_id: str) -> list[LoopVerdict]:
        return self.get_loop_patterns_sync(agent_id)

    def reset_agent_sync(self, agent_id: str) -> None:
        """Forget everything about the agent: steps, patterns, pause."""
        with self._lock:
            self._agents.pop(agent_id, None)
            self._patterns.pop(agent_id, None)
            self._paused.pop(agent_id, None)

    async def reset_agent(self, agent_id: str) -> None:
        self.reset_agent_sync(agent_id)

    def get_statistics(self) -> dict[str, Any]:
        with self._lock:
            return {
                "steps_recorded": self._steps_recorded,
                "checks": self._checks,
                "loops_detected": sum(self._loops.values()),
                "loops_by_kind": dict(self._loops),
                "agents_tracked": len(self._agents),
                "paused_agents": sorted(self._paused),
                "config": self.config.to_dict(),
            }

    # -------------------------------------------------------------- call shells
    def guard(
        self, agent_id: str, action: str, arguments: object = None, *, state: object = None
    ) -> StepGuard:
        """Check a step before it runs and record it after, as a (sync or async) context.

        Set ``guard.result`` inside the block; an exception leaving the block is
        recorded as the step's error and goes on unchanged, unless it completes a
        loop: then :class:`LoopDetectedError` is raised from it.
        """
        return StepGuard(self, agent_id, action, arguments, state)

    def call(self, agent_id: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` as a step named after ``fn``, guarded."""
        with self.guard(agent_id, _name(fn), _arguments(args, kwargs)) as step:
            step.result = result = fn(*args, **kwargs)
        return result

    async def acall(
        self, agent_id: str, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """:meth:`call` for coroutine functions."""
        async with self.guard(agent_id, _name(fn), _arguments(args, kwargs)) as step:
            step.result = result = await fn(*args, **kwargs)
        return result

    def watch(self, agent_id: str, *, action: str | None = None) -> Callable[[F], F]:
        """Decorate a tool (sync or async) so every call is a guarded step.

        The step's action is ``action`` or the function's name; its arguments are
        the call's arguments.
        """

        def decorate(fn: F) -> F:
            name = action or _name(fn)
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    async with self.guard(agent_id, name, _arguments(args, kwargs)) as step:
                        step.result = result = await fn(*args, **kwargs)
                    return result

                return cast(F, async_wrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self.guard(agent_id, name, _arguments(args, kwargs)) as step:
                    step.result = result = fn(*args, **kwargs)
                return result

            return cast(F, wrapper)

        return decorate


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    if not kwargs:
        return list(args) if args else None
    return {"args": list(args), "kwargs": kwargs} if args else kwargs


class StepGuard:
    """One guarded step: checked on entry, recorded on exit. Made by ``LoopDetector.guard``."""

    __slots__ = ("_arguments", "_detector", "action", "agent_id", "result", "state", "verdict")

    def __init__(
        self,
        detector: LoopDetector,
        agent_id: str,
        action: str,
        arguments: object,
        state: object,
    ) -> None:
        self._detector = detector
        self._arguments = arguments
        self.agent_id = agent_id
        self.action = action
        self.state = state
        self.result: object = None
        self.verdict: LoopVerdict | None = None

    def set_result(self, result: object) -> None:
        self.result = result

    def __enter__(self) -> StepGuard:
        self.verdict = self._detector.check_step(
            self.agent_id, self.action, self._arguments, state=self.state
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            return  # cancellation and KeyboardInterrupt are not the agent's steps
        detector = self._detector
        verdict = detector.record_step(
            self.agent_id,
            self.action,
            self._arguments,
            result=self.result,
            error=exc,
            state=self.state,
        )
        if verdict is None:
            return
        self.verdict = verdict
        if detector._on_loop is None:
            raise LoopDetectedError(verdict) from exc

    async def __aenter__(self) -> StepGuard:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
