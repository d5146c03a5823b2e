"""Guards for seed 001's decision loops and deadlocks.

:class:`DecisionLoopGuard` bounds an iterative decision maker: it stops one that
runs out of iterations or flips between the same options, and says when the
scores have settled so the caller can stop early. :class:`DeadlockDetector`
keeps a wait-for graph (agents, tasks and locks by name) and refuses the wait that
would close a cycle, before anything hangs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from agentkeel._errors import ConfigurationError
from agentkeel.recovery import _config_checks as check
from agentkeel.recovery._errors import DeadlockError, DecisionLoopError
from agentkeel.recovery._loop_fingerprint import value_fingerprint

__all__ = ["DeadlockDetector", "DecisionLoopGuard", "DecisionProgress"]


@dataclass(frozen=True, slots=True)
class DecisionProgress:
    """Where a decision maker stands after one iteration.

    ``converged`` means "stop now and take ``best_decision``": the last
    ``convergence_window`` scores lie within ``tolerance`` of each other (or, without
    scores, the same decision came back that many times).
    """

    iteration: int
    decision: object
    score: float | None
    best_decision: object
    best_score: float | None
    converged: bool


class DecisionLoopGuard:
    """Call :meth:`check` once per iteration of a decision loop.

    Raises :class:`DecisionLoopError` with ``kind``:

    * ``"max_iterations"`` — more than ``max_iterations`` iterations;
    * ``"oscillation"`` — the last decisions are a cycle of 2..``max_cycle_length``
      different decisions repeated ``oscillation_cycles`` times, and the best score
      did not improve meanwhile (A, B, A, B is flipping; A, B, A, B with rising
      scores is a search);
    * ``"converged"`` — only with ``on_converged="raise"``: the decision stopped
      changing, i.e. no more progress is being made.

    Not thread-safe: one guard per decision (they are cheap).
    """

    def __init__(
        self,
        *,
        max_iterations: int = 10,
        convergence_window: int = 3,
        tolerance: float = 0.01,
        oscillation_cycles: int = 2,
        max_cycle_length: int = 3,
        on_converged: Literal["return", "raise"] = "return",
        name: str = "decision",
    ) -> None:
        self.max_iterations = check.count(max_iterations, "max_iterations")
        self.convergence_window = check.count(convergence_window, "convergence_window", minimum=2)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
            raise ConfigurationError(f"tolerance must be a number >= 0, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.oscillation_cycles = check.count(oscillation_cycles, "oscillation_cycles", minimum=2)
        self.max_cycle_length = check.count(max_cycle_length, "max_cycle_length", minimum=2)
        if on_converged not in ("return", "raise"):
            raise ConfigurationError(
                f"on_converged must be 'return' or 'raise', got {on_converged!r}"
            )
        self.on_converged = on_converged
        self.name = name
        keep = max(self.convergence_window, self.max_cycle_length * self.oscillation_cycles)
        self._decisions: deque[int] = deque(maxlen=keep)
        self._scores: deque[float] = deque(maxlen=keep)
        self._best_at: deque[float] = deque(maxlen=keep)  # best score after each iteration
        self.iterations = 0
        self.best_decision: object = None
        self.best_score: float | None = None

    def reset(self) -> None:
        """Start a new decision with the same settings."""
        self._decisions.clear()
        self._scores.clear()
        self._best_at.clear()
        self.iterations = 0
        self.best_decision = None
        self.best_score = None

    def check(self, decision: object, score: float | None = None) -> DecisionProgress:
        """Record this iteration's decision (and its score, higher is better)."""
        self.iterations += 1
        if self.iterations > self.max_iterations:
            raise self._error(
                "max_iterations",
                f"{self.name} did not settle within {self.max_iterations} iterations",
            )
        if score is not None:
            value = float(score)
            if self.best_score is None or value > self.best_score:
                self.best_score, self.best_decision = value, decision
            self._scores.append(value)
        elif self.best_score is None:
            self.best_decision = decision
        self._decisions.append(value_fingerprint(decision))
        self._best_at.append(self.best_score if self.best_score is not None else 0.0)
        self._check_oscillation(scored=score is not None)
        converged = self._converged(scored=score is not None)
        if converged and self.on_converged == "raise":
            raise self._error(
                "converged", f"{self.name} stopped making progress after {self.iterations} steps"
            )
        return DecisionProgress(
            self.iterations, decision, score, self.best_decision, self.best_score, converged
        )

    def _converged(self, *, scored: bool) -> bool:
        window = self.convergence_window
        if scored:
            if len(self._scores) < window:
                return False
            recent = list(self._scores)[-window:]
            return max(recent) - min(recent) <= self.tolerance
        if len(self._decisions) < window:
            return False
        return len(set(list(self._decisions)[-window:])) == 1

    def _check_oscillation(self, *, scored: bool) -> None:
        decisions = list(self._decisions)
        for length in range(2, self.max_cycle_length + 1):
            span = length * self.oscillation_cycles
            if span > len(decisions):
                return
            tail = decisions[-span:]
            if len(set(tail[:length])) < 2:
                continue
            if any(tail[i] != tail[i + length] for i in range(span - length)):
                continue
            best = list(self._best_at)[-span:]
            if scored and best[-1] > best[0]:
                continue  # still improving: a search that revisits options, not a flip-flop
            raise self._error(
                "oscillation",
                f"{self.name} keeps cycling between {length} options "
                f"({self.oscillation_cycles} times) without a better score",
            )

    def _error(self, kind: str, message: str) -> DecisionLoopError:
        best = "" if self.best_score is None else f" (score {self.best_score:g})"
        return DecisionLoopError(
            kind,
            f"{message}; best so far: {self.best_decision!r}{best}. Take it, or raise the "
            "limit if the problem needs more iterations",
            iterations=self.iterations,
            best=self.best_decision,
        )


class DeadlockDetector:
    """A wait-for graph: ``add_wait(a, b)`` means *a* waits for *b* (an agent, a task or
    a lock — any names). A wait that would close a cycle is refused with
    :class:`DeadlockError` and not added, so the caller can back off instead of hanging.

    Thread-safe. Cycle checks walk only what the new wait can reach.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._edges: dict[str, dict[str, int]] = {}  # waiter -> {holder: how many waits}

    def add_wait(self, waiter: str, holder: str, *, check_cycle: bool = True) -> None:
        """Record that ``waiter`` waits for ``holder``; refuse it if that deadlocks."""
        if waiter == holder:
            raise DeadlockError((waiter,))
        with self._lock:
            if check_cycle:
                path = self._path(holder, waiter)
                if path is not None:
                    raise DeadlockError((waiter, *path[:-1]))
            holders = self._edges.setdefault(waiter, {})
            holders[holder] = holders.get(holder, 0) + 1

    def remove_wait(self, waiter: str, holder: str | None = None) -> None:
        """The wait ended (``holder=None``: all of ``waiter``'s waits)."""
        with self._lock:
            holders = self._edges.get(waiter)
            if holders is None:
                return
            if holder is None:
                del self._edges[waiter]
                return
            count = holders.get(holder, 0) - 1
            if count > 0:
                holders[holder] = count
            else:
                holders.pop(holder, None)
            if not holders:
                del self._edges[waiter]

    @contextmanager
    def waiting(self, waiter: str, holder: str) -> Iterator[None]:
        """``with detector.waiting("agent-a", "lock:db"): lock.acquire()`` — the wait is
        recorded for the duration of the block."""
        self.add_wait(waiter, holder)
        try:
            yield
        finally:
            self.remove_wait(waiter, holder)

    def find_deadlock(self) -> tuple[str, ...] | None:
        """One cycle in the graph (who waits on whom, in order), or ``None``."""
        with self._lock:
            state: dict[str, int] = {}  # 1: on the current path, 2: done
            for start in list(self._edges):
                if state.get(start):
                    continue
                path: list[str] = []
                stack: list[tuple[str, Iterator[str]]] = [(start, iter(self._edges[start]))]
                state[start] = 1
                path.append(start)
                while stack:
                    node, children = stack[-1]
                    child = next(children, None)
                    if child is None:
                        stack.pop()
                        path.pop()
                        state[node] = 2
                    elif state.get(child) == 1:
                        return tuple(path[path.index(child) :])
                    elif not state.get(child):
                        state[child] = 1
                        path.append(child)
                        stack.append((child, iter(self._edges.get(child, {}))))
            return None

    def waits(self) -> dict[str, list[str]]:
        """Who waits for whom right now."""
        with self._lock:
            return {waiter: sorted(holders) for waiter, holders in self._edges.items()}

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A path start → … → goal along the waits, or None. Under the lock."""
        parents: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                path = [node]
                while (parent := parents[path[-1]]) is not None:
                    path.append(parent)
                return path[::-1]
            for nxt in self._edges.get(node, {}):
                if nxt not in parents:
                    parents[nxt] = node
                    queue.append(nxt)
        return None
