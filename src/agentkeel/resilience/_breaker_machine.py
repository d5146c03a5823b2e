"""The circuit breaker's state machine: pure, clock-free, O(1) per call.

It never reads a clock, sleeps, locks or does I/O: the shell passes ``now`` (any
monotonic seconds) and the outcome of each call, and gets back a permit or a
rejection, and the state transitions to announce. The same rules run in Redis
(``_breaker_redis.py``'s Lua script), and a test drives both side by side.

States follow resilience4j:

* CLOSED: calls go through; outcomes fill a sliding window. Once the window holds
  ``minimum_calls``, a failure rate or slow-call rate at or above its threshold
  opens the breaker.
* OPEN: calls are rejected until ``wait_in_open`` has passed; the next acquire then
  moves to HALF_OPEN.
* HALF_OPEN: at most ``half_open_max_calls`` trial calls are admitted. It closes
  after ``success_threshold`` good trials (success, not slow) and reopens as soon as
  that can no longer be reached.

Each transition starts a new *generation*. A permit remembers its generation, so
the outcome of a call admitted before a transition (closed, then the breaker
opened while it ran) is counted but cannot sway the new state, nor give back a
half-open slot it never took.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from agentkeel.resilience._breaker_config import ResolvedBreakerConfig

# Outcome codes: bit 0 = failed, bit 1 = slow. Shared with the Lua script.
SUCCESS = 0
FAILURE = 1
SLOW = 2


def exception_verdict(config: ResolvedBreakerConfig, exc: BaseException) -> bool | None:
    """True: a failure; False: counts as a success; None: not counted at all.

    Ignored exceptions win over recorded ones (as in resilience4j); an exception in
    neither list counts as a success. Cancellation, ``KeyboardInterrupt`` and other
    ``BaseException``s outside ``Exception`` say nothing about the service: not counted.
    """
    if not isinstance(exc, Exception) or isinstance(exc, config.ignore_exceptions):
        return None
    return isinstance(exc, config.record_exceptions)


def outcome_code(config: ResolvedBreakerConfig, duration: float, failed: bool) -> int:
    """The code of a finished call: slow past ``slow_call_duration``, failed past ``timeout``."""
    code = FAILURE if failed or duration > config.failure_duration else SUCCESS
    if duration > config.slow_call_duration:
        code |= SLOW
    return code


class CircuitState(enum.StrEnum):
    """Where a breaker is. The values are what ``get_status()["state"]`` shows."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
STATE_CODES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}
STATES_BY_CODE = (CLOSED, OPEN, HALF_OPEN)


class Permit:
    """Leave to make one call; hand it back with the outcome."""

    __slots__ = ("generation", "local")
    rejected = False

    def __init__(self, generation: int, *, local: bool = True) -> None:
        self.generation = generation
        # False for permits handed out by a shared store (they are settled there).
        self.local = local

    def __repr__(self) -> str:
        return f"Permit(generation={self.generation})"


class Rejection:
    """The call must not be made. ``retry_at`` is on the clock the caller passed in."""

    __slots__ = ("half_open", "retry_at")
    rejected = True

    def __init__(self, retry_at: float, *, half_open: bool = False) -> None:
        self.retry_at = retry_at
        # True when half-open's trial slots are all taken (retry_after is then 0:
        # the state can change as soon as a trial call finishes).
        self.half_open = half_open

    def retry_after(self, now: float) -> float:
        return max(0.0, self.retry_at - now)

    def __repr__(self) -> str:
        return f"Rejection(retry_at={self.retry_at}, half_open={self.half_open})"


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state, with the numbers that caused it."""

    previous: CircuitState
    state: CircuitState
    at: float
    reason: str
    failure_rate: float
    slow_call_rate: float
    calls: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Everything ``get_status()`` shows, read at one instant.

    ``changed_at`` and ``retry_at`` are on the clock the machine is fed with.
    """

    state: CircuitState
    forced: bool
    reason: str
    changed_at: float
    retry_at: float
    successes: int
    failures: int
    slow: int
    ignored: int
    rejected: int
    window_calls: int
    window_failed: int
    window_slow: int
    half_open_admitted: int
    half_open_good: int
    half_open_bad: int

    @property
    def failure_rate(self) -> float:
        return self.window_failed / self.window_calls if self.window_calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        return self.window_slow / self.window_calls if self.window_calls else 0.0


class CountWindow:
    """The last ``size`` outcomes.

    Calls are numbered; the window keeps only the numbers of its failed and of its
    slow calls, oldest first. A call moves the window on by one, so at most one
    number falls out at each end: O(1), and a success in a healthy window is one
    increment and two empty-deque checks.
    """

    __slots__ = ("base", "fails", "min_calls", "seq", "size", "slows")

    def __init__(self, size: int, min_calls: int) -> None:
        self.size = size
        self.min_calls = min_calls  # <= size (the config caps it)
        self.seq = 0  # number of the newest call
        self.base = 0  # calls numbered <= base were cleared away
        self.fails: deque[int] = deque()
        self.slows: deque[int] = deque()

    @property
    def total(self) -> int:
        return min(self.seq - self.base, self.size)

    @property
    def failed(self) -> int:
        return len(self.fails)

    @property
    def slow(self) -> int:
        return len(self.slows)

    def success(self, now: float) -> bool:
        """Add a plain success; True if the window holds enough to judge, and bad calls."""
        n = self.seq + 1
        self.seq = n
        fails = self.fails
        slows = self.slows
        if fails or slows:
            edge = n - self.size
            if fails and fails[0] <= edge:
                fails.popleft()
            if slows and slows[0] <= edge:
                slows.popleft()
            return n - self.base >= self.min_calls and bool(fails or slows)
        return False

    def add(self, now: float, code: int) -> None:
        n = self.seq + 1
        self.seq = n
        edge = n - self.size
        fails = self.fails
        slows = self.slows
        if fails and fails[0] <= edge:
            fails.popleft()
        if slows and slows[0] <= edge:
            slows.popleft()
        if code & FAILURE:
            fails.append(n)
        if code & SLOW:
            slows.append(n)

    def advance(self, now: float) -> None:
        """Count windows do not age."""

    def clear(self) -> None:
        self.base = self.seq
        self.fails.clear()
        self.slows.clear()


class TimeWindow:
    """The outcomes of the last ``size`` whole seconds, one bucket per second.

    ``add`` is O(1) amortised: moving on by k seconds empties min(k, size) buckets.
    """

    __slots__ = (
        "bucket_failed",
        "bucket_slow",
        "bucket_total",
        "current",
        "failed",
        "head",
        "min_calls",
        "size",
        "slow",
        "total",
    )

    def __init__(self, size: int, min_calls: int) -> None:
        self.size = size
        self.min_calls = min_calls
        self.head = -math.inf  # the second the newest bucket belongs to
        self.current = 0  # its index: head % size
        self.bucket_total = [0] * size
        self.bucket_failed = [0] * size
        self.bucket_slow = [0] * size
        self.total = self.failed = self.slow = 0

    def advance(self, now: float) -> None:
        second = math.floor(now)
        head = self.head
        if second <= head:  # same second, or a clock that stepped back: stay put
            return
        size = self.size
        self.head = second
        self.current = second % size
        if second - head >= size:
            self._empty()
            return
        totals, fails, slows = self.bucket_total, self.bucket_failed, self.bucket_slow
        for s in range(int(head) + 1, second + 1):
            i = s % size
            if totals[i]:
                self.total -= totals[i]
                self.failed -= fails[i]
                self.slow -= slows[i]
                totals[i] = fails[i] = slows[i] = 0

    def success(self, now: float) -> bool:
        """Add a plain success; True if the window holds enough to judge, and bad calls."""
        if now >= self.head + 1:
            self.advance(now)
        self.bucket_total[self.current] += 1
        self.total += 1
        return self.total >= self.min_calls and bool(self.failed or self.slow)

    def add(self, now: float, code: int) -> None:
        if now >= self.head + 1:
            self.advance(now)
        i = self.current
        self.bucket_total[i] += 1
        self.total += 1
        if code:
            failed = code & FAILURE
            slow = code >> 1
            self.bucket_failed[i] += failed
            self.bucket_slow[i] += slow
            self.failed += failed
            self.slow += slow

    def _empty(self) -> None:
        size = self.size
        self.bucket_total = [0] * size
        self.bucket_failed = [0] * size
        self.bucket_slow = [0] * size
        self.total = self.failed = self.slow = 0

    def clear(self) -> None:
        self._empty()
        self.head = -math.inf
        self.current = 0


class BreakerMachine:
    """The breaker's rules. Not thread-safe: the shell holds a lock around each call.

    ``fast_permit`` is the permit every call gets while closed (``None`` otherwise),
    so the shell can admit a call with one attribute read and no lock.
    """

    __slots__ = (
        "_frt",
        "_ho_rejection",
        "_max_half_open",
        "_min_calls",
        "_needed",
        "_plain_until",
        "_rejection",
        "_srt",
        "_trials",
        "_wait",
        "changed_at",
        "config",
        "failures",
        "fast_permit",
        "forced",
        "generation",
        "ho_admitted",
        "ho_bad",
        "ho_good",
        "ignored",
        "permit",
        "reason",
        "rejected",
        "retry_at",
        "slow",
        "state",
        "successes",
        "window",
    )

    def __init__(self, config: ResolvedBreakerConfig, now: float) -> None:
        self.config = config
        self._frt = config.failure_rate_threshold
        self._srt = config.slow_call_rate_threshold
        self._min_calls = config.minimum_calls
        # Below this duration a successful call is neither slow nor late.
        self._plain_until = min(config.slow_call_duration, config.failure_duration)
        self._wait = config.wait_in_open
        self._trials = config.half_open_max_calls
        self._needed = config.success_threshold
        self._max_half_open = config.max_wait_in_half_open
        size, minimum = config.window_size, config.minimum_calls
        self.window: CountWindow | TimeWindow = (
            TimeWindow(size, minimum) if config.time_window else CountWindow(size, minimum)
        )
        self._ho_rejection = Rejection(-math.inf, half_open=True)
        self.successes = self.failures = self.slow = self.ignored = self.rejected = 0
        self.generation = 0
        self._enter(CLOSED, now, "created", 0)

    # ------------------------------------------------------------------ calls
    def advance(self, now: float) -> Transition | None:
        """Apply what the clock alone decides: open → half-open, stuck half-open → open."""
        state = self.state
        if state is OPEN:
            if now >= self.retry_at:
                return self._to(HALF_OPEN, now, "wait_elapsed")
        elif state is HALF_OPEN and now >= self.changed_at + self._max_half_open:
            return self._to(OPEN, now, "half_open_timeout")
        return None

    def acquire(self, now: float) -> Permit | Rejection:
        """Admit a call or refuse it. Call :meth:`advance` first."""
        state = self.state
        if state is CLOSED:
            return self.permit
        if state is HALF_OPEN and self.ho_admitted < self._trials:
            self.ho_admitted += 1
            return self.permit
        self.rejected += 1
        return self._rejection if state is OPEN else self._ho_rejection

    def classify(self, duration: float, failed: bool) -> int:
        """The outcome code of a call that took ``duration`` seconds."""
        return outcome_code(self.config, duration, failed)

    def on_success(self, permit: Permit, now: float, duration: float) -> Transition | None:
        """The call admitted with ``permit`` returned after ``duration`` seconds."""
        # The common case first, and short: a plain, timely success while closed.
        # (The closed state's permit is `fast_permit`; every other state has none.)
        if permit is not self.fast_permit or duration > self._plain_until:
            return self.record(permit, now, self.classify(duration, False))
        self.successes += 1
        if self.window.success(now):
            # A success can still open the breaker: the one that fills the window up
            # to minimum_calls when most of it failed.
            return self._evaluate(now)
        return None

    def on_failure(
        self, permit: Permit | None, now: float, duration: float, exc: BaseException | None
    ) -> Transition | None:
        """The call raised ``exc``: a failure, ignored, or a success, per the config."""
        failed = True if exc is None else exception_verdict(self.config, exc)
        if failed is None:
            self.release(permit)
            return None
        return self.record(permit, now, outcome_code(self.config, duration, failed))

    def record(self, permit: Permit | None, now: float, code: int) -> Transition | None:
        """Count one finished call with outcome ``code`` and apply the rules."""
        if code & FAILURE:
            self.failures += 1
        else:
            self.successes += 1
        if code & SLOW:
            self.slow += 1
        if permit is not None and permit.generation != self.generation:
            return None  # admitted under an earlier state: counted, no say in this one
        state = self.state
        if state is CLOSED:
            window = self.window
            window.add(now, code)
            if (window.failed or window.slow) and window.total >= self._min_calls:
                return self._evaluate(now)
            return None
        if state is HALF_OPEN:
            self.window.add(now, code)  # the trial calls are the window while half-open
            if code:
                self.ho_bad += 1
                if self.ho_bad > self._trials - self._needed:
                    return self._to(OPEN, now, "half_open_failures")
            else:
                self.ho_good += 1
                if self.ho_good >= self._needed:
                    return self._to(CLOSED, now, "half_open_success")
        return None  # OPEN: a late or hand-recorded outcome is only counted

    def release(self, permit: Permit | None) -> None:
        """The call ended without a verdict (ignored exception, cancelled): free its slot."""
        self.ignored += 1
        if (
            permit is not None
            and self.state is HALF_OPEN
            and permit.generation == self.generation
            and self.ho_admitted > 0
        ):
            self.ho_admitted -= 1

    # ------------------------------------------------------------------ by hand
    def trip(self, now: float, reason: str) -> Transition | None:
        """Open now (a resource limit was exceeded, say). No-op when already open."""
        if self.state is OPEN:
            return None
        return self._to(OPEN, now, reason)

    def force_open(self, now: float, duration: float = math.inf) -> Transition | None:
        """Open and stay open for ``duration`` (default: until :meth:`reset`)."""
        previous = self.state
        self._enter(OPEN, now, "forced", self.generation + 1, retry_at=now + duration)
        self.forced = True
        return self._transition(previous, now, "forced") if previous is not OPEN else None

    def reset(self, now: float) -> Transition | None:
        """Back to closed with empty window and counters."""
        previous = self.state
        numbers = self._numbers()
        self.successes = self.failures = self.slow = self.ignored = self.rejected = 0
        self.window.clear()
        self._enter(CLOSED, now, "reset", self.generation + 1)
        if previous is CLOSED:
            return None
        return self._transition(previous, now, "reset", numbers)

    def snapshot(self, now: float) -> BreakerSnapshot:
        window = self.window
        window.advance(now)
        return BreakerSnapshot(
            state=self.state,
            forced=self.forced,
            reason=self.reason,
            changed_at=self.changed_at,
            retry_at=self.retry_at,
            successes=self.successes,
            failures=self.failures,
            slow=self.slow,
            ignored=self.ignored,
            rejected=self.rejected,
            window_calls=window.total,
            window_failed=window.failed,
            window_slow=window.slow,
            half_open_admitted=self.ho_admitted,
            half_open_good=self.ho_good,
            half_open_bad=self.ho_bad,
        )

    # ------------------------------------------------------------------ internals
    def _evaluate(self, now: float) -> Transition | None:
        window = self.window
        total = window.total
        if window.failed / total >= self._frt:
            return self._to(OPEN, now, "failure_rate")
        if window.slow / total >= self._srt:
            return self._to(OPEN, now, "slow_call_rate")
        return None

    def _to(self, state: CircuitState, now: float, reason: str) -> Transition:
        # The numbers that led here are read before a new state clears the window.
        numbers = self._numbers()
        previous = self.state
        if state is not OPEN:
            # Half-open judges its trial calls alone and closed starts afresh, as in
            # resilience4j; open keeps the window that tripped it, for get_status().
            self.window.clear()
        self._enter(state, now, reason, self.generation + 1)
        return self._transition(previous, now, reason, numbers)

    def _enter(
        self,
        state: CircuitState,
        now: float,
        reason: str,
        generation: int,
        *,
        retry_at: float | None = None,
    ) -> None:
        self.state = state
        self.reason = reason
        self.changed_at = now
        self.forced = False
        self.generation = generation
        self.ho_admitted = self.ho_good = self.ho_bad = 0
        if state is not OPEN:
            retry_at = now
        elif retry_at is None:
            retry_at = now + self._wait
        self.retry_at = retry_at
        # One permit and one rejection per generation: the hot path allocates nothing.
        self.permit = Permit(generation)
        self.fast_permit = self.permit if state is CLOSED else None
        self._rejection = Rejection(retry_at)

    def _numbers(self) -> tuple[float, float, int]:
        window = self.window
        total = window.total
        if not total:
            return 0.0, 0.0, 0
        return window.failed / total, window.slow / total, total

    def _transition(
        self,
        previous: CircuitState,
        now: float,
        reason: str,
        numbers: tuple[float, float, int] | None = None,
    ) -> Transition:
        failure_rate, slow_call_rate, calls = self._numbers() if numbers is None else numbers
        return Transition(
            previous=previous,
            state=self.state,
            at=now,
            reason=reason,
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
            calls=calls,
            retry_after=self.retry_at - now if self.state is OPEN else 0.0,
        )
