"""Decision-loop guard and deadlock detector (seed 001)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeel import ConfigurationError
from agentkeel.recovery import (
    DeadlockDetector,
    DeadlockError,
    DecisionLoopError,
    DecisionLoopGuard,
)

# ------------------------------------------------------------ decision guard


def test_a_decision_loop_that_never_settles_is_stopped_at_max_iterations() -> None:
    guard = DecisionLoopGuard(max_iterations=5, name="route choice")
    for n in range(5):
        progress = guard.check(f"option-{n}", score=float(n))
        assert not progress.converged
    with pytest.raises(DecisionLoopError) as caught:
        guard.check("option-5", score=5.0)
    error = caught.value
    assert error.kind == "max_iterations" and error.iterations == 6
    assert error.best == "option-4"
    assert "route choice did not settle within 5 iterations" in str(error)
    assert "best so far: 'option-4' (score 4)" in str(error)


def test_converging_scores_say_stop() -> None:
    guard = DecisionLoopGuard(max_iterations=20, convergence_window=3, tolerance=0.01)
    scores = [0.2, 0.5, 0.7, 0.801, 0.805, 0.809]
    results = [guard.check("plan-a" if s < 0.8 else "plan-b", score=s) for s in scores]
    assert [r.converged for r in results] == [False, False, False, False, False, True]
    assert results[-1].best_decision == "plan-b" and results[-1].best_score == 0.809
    assert results[-1].iteration == 6


def test_the_same_decision_again_and_again_without_scores_is_convergence() -> None:
    guard = DecisionLoopGuard(convergence_window=3)
    assert [guard.check("x").converged for _ in range(3)] == [False, False, True]


def test_convergence_can_be_an_error() -> None:
    guard = DecisionLoopGuard(convergence_window=2, on_converged="raise")
    guard.check("a", score=1.0)
    with pytest.raises(DecisionLoopError) as caught:
        guard.check("a", score=1.0)
    assert caught.value.kind == "converged"


def test_flipping_between_options_is_oscillation() -> None:
    guard = DecisionLoopGuard(max_iterations=50)
    guard.check("left", score=0.5)
    guard.check("right", score=0.4)
    guard.check("left", score=0.5)
    with pytest.raises(DecisionLoopError) as caught:
        guard.check("right", score=0.4)
    assert caught.value.kind == "oscillation"
    assert "cycling between 2 options" in str(caught.value)


def test_revisiting_options_while_the_score_rises_is_a_search() -> None:
    guard = DecisionLoopGuard(max_iterations=50, convergence_window=5)
    for n, option in enumerate(["a", "b", "a", "b", "a", "b"]):
        assert not guard.check(option, score=float(n)).converged


def test_three_option_cycles_and_reset() -> None:
    guard = DecisionLoopGuard(max_iterations=50, max_cycle_length=3)
    for option in "abcab":
        guard.check(option)
    with pytest.raises(DecisionLoopError):
        guard.check("c")
    guard.reset()
    assert guard.iterations == 0 and guard.best_decision is None
    assert guard.check("a").iteration == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_iterations": 0}, "max_iterations must be an integer >= 1"),
        ({"convergence_window": 1}, "convergence_window must be an integer >= 2"),
        ({"tolerance": -1}, "tolerance must be a number >= 0"),
        ({"on_converged": "stop"}, "on_converged must be 'return' or 'raise'"),
    ],
)
def test_guard_settings_are_checked(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DecisionLoopGuard(**settings)  # type: ignore[arg-type]


# ---------------------------------------------------------------- deadlocks


def test_a_wait_that_closes_a_cycle_is_refused() -> None:
    detector = DeadlockDetector()
    detector.add_wait("agent-a", "lock:db")
    detector.add_wait("lock:db", "agent-b")
    detector.add_wait("agent-b", "lock:cache")
    with pytest.raises(DeadlockError) as caught:
        detector.add_wait("lock:cache", "agent-a")
    assert caught.value.cycle == ("lock:cache", "agent-a", "lock:db", "agent-b")
    assert "lock:cache -> agent-a -> lock:db -> agent-b -> lock:cache" in str(caught.value)
    assert detector.find_deadlock() is None  # the refused wait was not added
    assert detector.waits() == {
        "agent-a": ["lock:db"],
        "lock:db": ["agent-b"],
        "agent-b": ["lock:cache"],
    }


def test_waiting_on_oneself_is_a_deadlock() -> None:
    with pytest.raises(DeadlockError):
        DeadlockDetector().add_wait("a", "a")


def test_find_deadlock_reports_an_unchecked_cycle() -> None:
    detector = DeadlockDetector()
    detector.add_wait("x", "y", check_cycle=False)
    detector.add_wait("y", "z", check_cycle=False)
    detector.add_wait("z", "x", check_cycle=False)
    cycle = detector.find_deadlock()
    assert cycle is not None and set(cycle) == {"x", "y", "z"} and len(cycle) == 3
    detector.remove_wait("z", "x")
    assert detector.find_deadlock() is None
    detector.remove_wait("x")
    assert detector.waits() == {"y": ["z"]}
    detector.remove_wait("nobody")


def test_waiting_context_removes_the_wait() -> None:
    detector = DeadlockDetector()
    with detector.waiting("a", "b"), detector.waiting("a", "b"):
        assert detector.waits() == {"a": ["b"]}
    assert detector.waits() == {}
    with pytest.raises(DeadlockError), detector.waiting("b", "a"), detector.waiting("a", "b"):
        pass
    assert detector.waits() == {}


def test_two_threads_taking_locks_in_opposite_order_are_told_before_they_hang() -> None:
    detector = DeadlockDetector()
    first, second = threading.Lock(), threading.Lock()
    refused: list[str] = []
    ready = threading.Barrier(2)

    def worker(name: str, mine: threading.Lock, mine_name: str, other_name: str) -> None:
        other = second if mine is first else first
        with mine:
            detector.add_wait(mine_name, name)  # the lock is held by this thread
            ready.wait()
            try:
                with detector.waiting(name, other_name):
                    # Only one of the two can get here; it waits for the other to back off.
                    if other.acquire(timeout=5):
                        other.release()
            except DeadlockError:
                refused.append(name)
            finally:
                detector.remove_wait(mine_name, name)

    threads = [
        threading.Thread(target=worker, args=("t1", first, "lock:1", "lock:2")),
        threading.Thread(target=worker, args=("t2", second, "lock:2", "lock:1")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(refused) == 1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=30))
def test_checked_waits_never_leave_a_cycle(edges: list[tuple[int, int]]) -> None:
    detector = DeadlockDetector()
    refused: list[tuple[str, tuple[str, ...]]] = []
    for a, b in edges:
        try:
            detector.add_wait(f"n{a}", f"n{b}")
        except DeadlockError as exc:
            refused.append((f"n{a}", exc.cycle))
    assert detector.find_deadlock() is None
    assert all(cycle[0] == waiter for waiter, cycle in refused)
