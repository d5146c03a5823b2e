"""The base every framework integration stands on: our bugs never become the agent's.

An instrumentor observes a framework through the framework's own callbacks. Each
callback body runs through :meth:`RobustInstrumentor.observe`, which catches every
exception, counts it and feeds :class:`InstrumentorHealth`, a pure state machine:

* HEALTHY: everything is observed.
* DEGRADED: after ``max_consecutive_errors`` errors in a row (or an error rate over
  ``degradation_threshold``, or an overhead over ``max_overhead_percentage``) only a
  fraction of routine callbacks is observed, never less than ``min_functionality_level``;
  errors and other essential callbacks are still attempted.
* RECOVERING: ``error_recovery_timeout`` after degrading, everything is observed again
  on probation; a run of successes makes it HEALTHY, an error sends it back.
* FAILED: after ``max_recovery_attempts`` failed probations, or at once when degradation
  is disabled. Nothing is observed until the timeout allows one more probation.
"""

from __future__ import annotations

import enum
import itertools
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any, ClassVar, ParamSpec, TypeVar

from agentkeel import _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.observability import SamplingConfig, SamplingManager, get_sampling_manager

P = ParamSpec("P")
R = TypeVar("R")


class InstrumentorState(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    RECOVERING = "recovering"
    FAILED = "failed"


_HEALTHY = InstrumentorState.HEALTHY


@dataclass(frozen=True, kw_only=True)
class RobustConfig:
    """How an instrumentor protects the agent from its own failures and cost."""

    max_consecutive_errors: int = 5
    error_recovery_timeout: float = 60.0
    """Seconds in DEGRADED or FAILED before a probation (RECOVERING) starts."""
    max_recovery_attempts: int = 3
    """Failed probations in a row before the instrumentor gives up (FAILED)."""
    max_overhead_percentage: float = 5.0
    """Time spent in our callbacks, as a share of wall time, that triggers degradation."""
    performance_check_interval: float = 30.0
    """Seconds between two overhead checks."""
    enable_degradation: bool = True
    degradation_threshold: float = 0.5
    """Error rate over the recent window that triggers degradation."""
    min_functionality_level: float = 0.1
    """Share of routine callbacks still observed when degraded."""
    adaptive_sampling: bool = False
    """Ask a SamplingManager which runs to observe, and report our overhead to it."""
    sampling_config: SamplingConfig | None = None
    recovery_successes: int = 3
    """Successes in a row that end a probation."""
    error_window: int = 50
    """Recent callbacks the error rate is computed over."""

    def __post_init__(self) -> None:
        def bad(name: str, what: str) -> ConfigurationError:
            value = getattr(self, name)
            return ConfigurationError(f"RobustConfig.{name} must be {what}, got {value!r}")

        for name in ("max_consecutive_errors", "max_recovery_attempts", "recovery_successes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "an integer >= 1")
        if not isinstance(self.error_window, int) or self.error_window < 2:
            raise bad("error_window", "an integer >= 2")
        for name in ("error_recovery_timeout", "performance_check_interval"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise bad(name, "seconds > 0")
        if not isinstance(self.max_overhead_percentage, int | float) or not (
            0 < self.max_overhead_percentage <= 100
        ):
            raise bad("max_overhead_percentage", "in (0, 100]")
        for name in ("degradation_threshold", "min_functionality_level"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise bad(name, "in [0, 1]")
        if self.sampling_config is not None and not isinstance(
            self.sampling_config, SamplingConfig
        ):
            raise bad("sampling_config", "a SamplingConfig")


class InstrumentorHealth:
    """The pure state machine: feed it outcomes and times, ask it what to observe."""

    def __init__(self, config: RobustConfig) -> None:
        self.config = config
        self.state = InstrumentorState.HEALTHY
        self.error_count = 0
        self.success_count = 0
        self.consecutive_errors = 0
        self.recovery_attempts = 0
        self.failed_probations = 0
        self.probation_successes = 0
        self.last_error: str | None = None
        self.last_error_type: str | None = None
        self.since = 0.0  # when the current state began
        self.functionality = 1.0
        self._recent: deque[bool] = deque(maxlen=config.error_window)  # True = error
        self._admitted = 0.0  # fractional credit for sampling routine callbacks

    # ----------------------------------------------------------------- queries
    def admits(self, *, essential: bool, now: float) -> bool:
        """Should the next callback be observed?"""
        state = self.state
        if state is InstrumentorState.HEALTHY or state is InstrumentorState.RECOVERING:
            return True
        if now - self.since >= self.config.error_recovery_timeout:
            self._begin_probation(now)
            return True
        if state is InstrumentorState.FAILED:
            return False
        if essential:
            return True
        # Credit-based sampling: exactly `functionality` of routine callbacks, evenly spread.
        self._admitted += self.functionality
        if self._admitted >= 1.0:
            self._admitted -= 1.0
            return True
        return False

    @property
    def error_rate(self) -> float:
        recent = self._recent
        return sum(recent) / len(recent) if recent else 0.0

    @property
    def degradation_level(self) -> float:
        if self.state is InstrumentorState.FAILED:
            return 1.0
        if self.state is InstrumentorState.DEGRADED:
            return round(1.0 - self.functionality, 4)
        return 0.0

    @property
    def success_rate(self) -> float:
        total = self.error_count + self.success_count
        return self.success_count / total if total else 1.0

    # ---------------------------------------------------------------- outcomes
    def record_success(self, now: float) -> None:
        self.record_healthy_successes(1)
        if self.state is InstrumentorState.RECOVERING:
            self.probation_successes += 1
            if self.probation_successes >= self.config.recovery_successes:
                self._enter(InstrumentorState.HEALTHY, now)
                self.failed_probations = 0
                self.functionality = 1.0

    def record_healthy_successes(self, count: int = 1) -> None:
        """Count successes; all of :meth:`record_success` in the HEALTHY state."""
        self.success_count += count
        self.consecutive_errors = 0
        self._recent.extend(itertools.repeat(False, min(count, self.config.error_window)))

    def record_error(self, exc: BaseException, now: float) -> None:
        self.error_count += 1
        self.consecutive_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.last_error_type = type(exc).__name__
        self._recent.append(True)
        config = self.config
        if self.state is InstrumentorState.RECOVERING:
            self.failed_probations += 1
            if self.failed_probations >= config.max_recovery_attempts:
                self._enter(InstrumentorState.FAILED, now)
            else:
                self._degrade(now)
            return
        if self.state is not InstrumentorState.HEALTHY:
            if self.state is InstrumentorState.DEGRADED:
                self.functionality = self._functionality()
            return
        too_many = self.consecutive_errors >= config.max_consecutive_errors
        too_often = len(self._recent) >= config.max_consecutive_errors and (
            self.error_rate >= config.degradation_threshold > 0
        )
        if too_many or too_often:
            if config.enable_degradation:
                self._degrade(now)
            else:
                self._enter(InstrumentorState.FAILED, now)

    def record_overhead(self, percentage: float, now: float) -> None:
        """A performance check found our callbacks cost ``percentage`` % of wall time."""
        config = self.config
        if percentage <= config.max_overhead_percentage or not config.enable_degradation:
            return
        # Observe only as much as keeps us under the limit.
        share = max(config.min_functionality_level, config.max_overhead_percentage / percentage)
        if self.state is InstrumentorState.HEALTHY:
            self._enter(InstrumentorState.DEGRADED, now)
            self.functionality = share
        elif self.state is InstrumentorState.DEGRADED:
            self.functionality = min(self.functionality, share)

    def force_probation(self, now: float) -> None:
        """Start a recovery attempt now (the seed's ``_attempt_recovery``)."""
        if self.state is not InstrumentorState.HEALTHY:
            self._begin_probation(now)

    # ----------------------------------------------------------------- helpers
    def _functionality(self) -> float:
        floor = self.config.min_functionality_level
        return max(floor, min(1.0, 1.0 - self.error_rate))

    def _degrade(self, now: float) -> None:
        self._enter(InstrumentorState.DEGRADED, now)
        self.functionality = self._functionality()

    def _begin_probation(self, now: float) -> None:
        self.recovery_attempts += 1
        self.probation_successes = 0
        self.consecutive_errors = 0
        self._enter(InstrumentorState.RECOVERING, now)

    def _enter(self, state: InstrumentorState, now: float) -> None:
        self.state = state
        self.since = now
        self._admitted = 0.0


_live: weakref.WeakSet[RobustInstrumentor] = weakref.WeakSet()
_live_lock = threading.Lock()


def get_instrumentors() -> list[RobustInstrumentor]:
    """The instrumentors alive in this process (what `keel health` reports)."""
    with _live_lock:
        return list(_live)


class RobustInstrumentor:
    """Base of every integration: guarded observation, health, overhead, undo.

    Subclasses set ``framework``, implement :meth:`_install` / :meth:`_uninstall` (patch
    or register with the framework) and run each callback body through :meth:`observe`.
    """

    framework: ClassVar[str] = "unknown"

    def __init__(self, *, config: RobustConfig | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        if config is not None and not isinstance(config, RobustConfig):
            raise ConfigurationError(f"config must be a RobustConfig, got {config!r}")
        self.config = config or RobustConfig()
        self._clock = clock
        self._monotonic = clock.monotonic
        self._health = InstrumentorHealth(self.config)
        self._lock = threading.Lock()
        self._installed = False
        self._overhead_ns = 0  # of the performance windows already closed
        self._callbacks = 0
        self._window_started = clock.monotonic()
        self._window_due = self._window_started + self.config.performance_check_interval
        self._window_overhead_ns = 0
        # Healthy successes counted off the lock, handed to the state machine (which
        # they cannot change: a healthy success is no transition) before it is read.
        self._unfolded_successes = 0
        self._last_overhead_pct = 0.0
        self._sampling: SamplingManager | None = None
        if self.config.adaptive_sampling:
            self._sampling = (
                SamplingManager(self.config.sampling_config)
                if self.config.sampling_config is not None
                else get_sampling_manager()
            )
        self._schedule_fast_path()  # sets self._fast_until_ns
        with _live_lock:
            _live.add(self)

    # ---------------------------------------------------------------- guarding
    def observe(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R | None:
        """Run one routine callback body; any exception is counted, never raised."""
        return self._observe(fn, False, args, kwargs)

    def observe_essential(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R | None:
        """Like :meth:`observe`, for callbacks kept even when degraded (errors, ends)."""
        return self._observe(fn, True, args, kwargs)

    def _observe(self, fn: Callable[..., R], essential: bool, args: Any, kwargs: Any) -> R | None:
        # Integrations see dozens of callbacks per agent run: this is their hottest
        # code. A healthy instrumentor admits every callback and a healthy success
        # changes no state, so that path (nearly every callback) takes no lock and
        # only counts; everything else goes through the locked state machine.
        health = self._health
        if health.state is not _HEALTHY:
            with self._lock:
                self._fold_successes()
                if not health.admits(essential=essential, now=self._monotonic()):
                    return None
        started = perf_counter_ns()
        try:
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except Exception as exc:  # noqa: BLE001 - the whole point: never into the agent
            self._account(perf_counter_ns() - started, exc)
            _internal.report_internal_error(f"integrations.{self.framework}", exc, reraise=False)
            return None
        ended = perf_counter_ns()
        if health.state is _HEALTHY and ended < self._fast_until_ns:
            # Two callback threads racing here can lose an increment, which delays
            # a degradation by one callback at most.
            self._callbacks += 1
            self._window_overhead_ns += ended - started
            self._unfolded_successes += 1
            return result
        self._account(ended - started, None)
        return result

    def _schedule_fast_path(self) -> None:
        """Until when a healthy success may skip :meth:`_account` (lock held or in init).

        Until the performance window is due, on the clock the callbacks time themselves
        with anyway, so the fast path reads no other clock. An injected clock (tests
        move it by hand) or adaptive sampling (it wants every callback's cost) takes
        the accounted path every time.
        """
        if self._clock is SYSTEM_CLOCK and self._sampling is None:
            remaining = max(0.0, self._window_due - self._monotonic())
            self._fast_until_ns = perf_counter_ns() + int(remaining * 1e9)
        else:
            self._fast_until_ns = 0

    def _fold_successes(self) -> None:
        """Hand the successes counted off the lock to the state machine (lock held)."""
        count = self._unfolded_successes
        if count:
            self._unfolded_successes = 0
            self._health.record_healthy_successes(count)

    def _account(self, spent_ns: int, exc: BaseException | None) -> None:
        now = self._monotonic()
        with self._lock:
            self._fold_successes()
            self._callbacks += 1
            self._window_overhead_ns += spent_ns
            health = self._health
            if exc is None:
                health.record_success(now)
            else:
                health.record_error(exc, now)
            if now >= self._window_due:
                elapsed = now - self._window_started
                pct = 100.0 * self._window_overhead_ns / 1e9 / elapsed
                self._last_overhead_pct = pct
                health.record_overhead(pct, now)
                self._overhead_ns += self._window_overhead_ns
                self._window_overhead_ns = 0
                self._window_started = now
                self._window_due = now + self.config.performance_check_interval
                self._schedule_fast_path()
        if self._sampling is not None:
            self._sampling.record_overhead(spent_ns / 1e9)

    def samples_run(self, run_key: str) -> bool:
        """With adaptive sampling, whether a whole run is observed (always, otherwise)."""
        return self._sampling is None or self._sampling.sample_run(run_key)

    # ------------------------------------------------------------------ health
    @property
    def state(self) -> InstrumentorState:
        return self._health.state

    def get_health_status(self) -> dict[str, Any]:
        with self._lock:
            self._fold_successes()
            h = self._health
            h.admits(essential=True, now=self._clock.monotonic())  # let a due probation begin
            return {
                "framework": self.framework,
                "state": h.state.value,
                "error_count": h.error_count,
                "consecutive_errors": h.consecutive_errors,
                "recovery_attempts": h.recovery_attempts,
                "success_rate": h.success_rate,
                "degradation_level": h.degradation_level,
                "last_error": h.last_error,
                "is_healthy": h.state is InstrumentorState.HEALTHY,
                "installed": self._installed,
                "callbacks": self._callbacks,
                "overhead_ms": (self._overhead_ns + self._window_overhead_ns) / 1e6,
                "overhead_percentage": self._last_overhead_pct,
            }

    async def _attempt_recovery(self) -> bool:
        """Start a probation now; True if the instrumentor is observing again."""
        with self._lock:
            self._fold_successes()
            self._health.force_probation(self._clock.monotonic())
            return self._health.state is not InstrumentorState.FAILED

    # ---------------------------------------------------------------- lifecycle
    def instrument(self) -> InstrumentationHandle:
        with self._lock:
            if self._installed:
                return InstrumentationHandle(self)
            self._installed = True
        try:
            self._install()
        except BaseException:
            with self._lock:
                self._installed = False
            raise
        return InstrumentationHandle(self)

    def uninstrument(self) -> None:
        with self._lock:
            if not self._installed:
                return
            self._installed = False
        self._uninstall()

    @property
    def is_instrumented(self) -> bool:
        return self._installed

    def _install(self) -> None:
        """Hook into the framework (patch, register a listener …)."""

    def _uninstall(self) -> None:
        """Undo exactly what :meth:`_install` did."""


class InstrumentationHandle:
    """What ``instrument_x()`` returns: the live instrumentor and the way to undo it."""

    __slots__ = ("instrumentor",)

    def __init__(self, instrumentor: RobustInstrumentor) -> None:
        self.instrumentor = instrumentor

    def uninstrument(self) -> None:
        self.instrumentor.uninstrument()

    close = uninstrument

    def get_health_status(self) -> dict[str, Any]:
        return self.instrumentor.get_health_status()

    def __enter__(self) -> InstrumentationHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        i = self.instrumentor
        return (
            f"<InstrumentationHandle {i.framework} {i.state.value} installed={i.is_instrumented}>"
        )
