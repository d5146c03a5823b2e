"""Adaptive sampling that never drops an error.

A :class:`SamplingManager` answers one question fast: keep this event or not?
:meth:`SamplingManager.should_sample` is a pure decision of a few hundred
nanoseconds (no lock, no clock read, no allocation):

1. errors and high-priority events are always kept;
2. otherwise an event of a run is kept when ``crc32(run_id) / 2**32 < rate``, so
   every event of a run gets the same answer, in every process that shares the
   rate; an event outside a run is thinned by its sequence number.

The rate moves within ``[min_sampling_rate, max_sampling_rate]``. Every
``adaptation_window`` events the manager recomputes it from what it measured: the
event volume (``ADAPTIVE_RATE``), the cost per kept event reported by whoever
processes them through :meth:`SamplingManager.record_overhead`
(``PERFORMANCE_AWARE``), both (``HYBRID``), or neither (``IMPORTANCE_BASED``: a
fixed rate, with more kinds of event counted as important). The rate drops at
once when the host needs relief and climbs back by halves.

Per-event sampling loses the events of a run that come *before* its failure;
:class:`~agentkeel.observability.TailSampler` holds a run's events until its
outcome is known, so a failed run keeps all of them.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict

from agentkeel._errors import ConfigurationError
from agentkeel.events import Event, EventType, Severity

if TYPE_CHECKING:
    from agentkeel.observability._tail import TailSampler

__all__ = [
    "ERROR_EVENT_TYPES",
    "SamplingConfig",
    "SamplingManager",
    "SamplingStatistics",
    "SamplingStrategy",
    "get_sampling_manager",
    "is_error_event",
]


class SamplingStrategy(enum.StrEnum):
    """How the sampling rate adapts."""

    ADAPTIVE_RATE = "adaptive_rate"
    """Keep roughly ``target_events_per_second`` when the volume rises above it."""
    PERFORMANCE_AWARE = "performance_aware"
    """Keep the processing cost per event near ``target_overhead_ms``."""
    IMPORTANCE_BASED = "importance_based"
    """A fixed rate; every event of severity LOW or above counts as important."""
    HYBRID = "hybrid"
    """Volume and cost limits together, and the importance rules of IMPORTANCE_BASED."""


# Events that mean something went wrong: never dropped, and a run that has one keeps
# every event (tail sampling). A failed end event (``status == "failed"``) and any
# event of severity HIGH or above count too.
ERROR_EVENT_TYPES: frozenset[str] = frozenset(
    {
        EventType.AGENT_ERROR,
        EventType.TASK_FAIL,
        EventType.FAILURE,
        EventType.TIMEOUT,
        EventType.CIRCUIT_REJECTED,
        EventType.RECOVERY_FAILED,
        EventType.LOOP_DETECTED,
        EventType.ESCALATION_CREATED,
    }
)
# End events whose ``status`` attribute says whether the work failed.
_STATUS_TYPES: frozenset[str] = frozenset(
    {
        EventType.AGENT_END,
        EventType.STEP_END,
        EventType.TOOL_CALL_END,
        EventType.LLM_CALL_END,
        EventType.TASK_COMPLETE,
        EventType.DECISION_COMPLETE,
    }
)
_DEFAULT_HIGH_PRIORITY: frozenset[str] = frozenset(
    {
        EventType.FAILURE_RECOVERED,
        EventType.CIRCUIT_OPENED,
        EventType.CIRCUIT_HALF_OPEN,
        EventType.CIRCUIT_CLOSED,
        EventType.FALLBACK,
        EventType.ESCALATION_UPDATED,
        EventType.RECOVERY_START,
        EventType.RECOVERY_SUCCESS,
    }
)
_SPACE = 1 << 32  # hashes are 32-bit; a rate r keeps hashes below r * 2**32
_GOLDEN = 0x9E3779B1
_HASH_CACHE = 8192  # Knuth's multiplicative hash: consecutive numbers spread evenly


def is_error_event(event: Event) -> bool:
    """Whether ``event`` reports a failure (see :data:`ERROR_EVENT_TYPES`)."""
    if event.severity >= Severity.HIGH or event.type in ERROR_EVENT_TYPES:
        return True
    return event.type in _STATUS_TYPES and event.attributes.get("status") == "failed"


def run_hash(run_id: str) -> int:
    """The 32-bit hash a run's sampling decision compares with ``rate * 2**32``.

    CRC-32 of the UTF-8 run ID: the same in every process and every language, so
    services sharing a rate agree on which runs they keep.
    """
    return zlib.crc32(run_id.encode())


def _ms(value: float | timedelta, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"{name} must be milliseconds (a number) or a timedelta, got {value!r}"
        )
    ms = value.total_seconds() * 1000 if isinstance(value, timedelta) else float(value)
    if not (ms > 0 and math.isfinite(ms)):
        raise ConfigurationError(f"{name} must be a positive, finite duration, got {value!r}")
    return ms


def _as_ms(value: float | timedelta | None) -> float:
    """A duration of a validated config (stored as milliseconds) as a float."""
    if isinstance(value, timedelta):
        return value.total_seconds() * 1000
    return float(value or 0.0)


def _rate(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigurationError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingConfig:
    """How much to keep, and how the rate adapts. Validated on construction.

    The defaults keep everything (``base_sampling_rate=1.0``) until the volume or the
    processing cost demands otherwise. Durations in milliseconds accept a number or a
    :class:`~datetime.timedelta` and are stored as milliseconds.
    """

    strategy: SamplingStrategy = SamplingStrategy.HYBRID
    base_sampling_rate: float = 1.0
    """The rate when nothing calls for less."""
    min_sampling_rate: float = 0.01
    """Adaptation never goes below this."""
    max_sampling_rate: float = 1.0
    """Adaptation never goes above this."""
    max_overhead_ms: float | timedelta = 2.0
    """A kept event costing more than this cuts the rate at once."""
    target_overhead_ms: float | timedelta | None = None
    """Average processing cost per event to aim for; default half of max_overhead_ms."""
    target_events_per_second: float = 1000.0
    """Kept events per second to aim for when the volume is higher (ADAPTIVE_RATE, HYBRID)."""
    adaptation_window: int = 1000
    """Events between two adaptations of the rate."""
    high_priority_events: Iterable[str] = _DEFAULT_HIGH_PRIORITY
    """Event types never dropped, besides errors (:data:`ERROR_EVENT_TYPES`)."""
    batch_size: int = 500
    """Most events a :class:`TailSampler` hands its downstream sink in one call."""

    def __post_init__(self) -> None:
        try:
            strategy = SamplingStrategy(self.strategy)
        except ValueError:
            names = ", ".join(s.value for s in SamplingStrategy)
            raise ConfigurationError(
                f"unknown sampling strategy {self.strategy!r}: use one of {names}"
            ) from None
        object.__setattr__(self, "strategy", strategy)
        base = _rate(self.base_sampling_rate, "base_sampling_rate")
        low = _rate(self.min_sampling_rate, "min_sampling_rate")
        high = _rate(self.max_sampling_rate, "max_sampling_rate")
        if not low <= base <= high:
            raise ConfigurationError(
                "sampling rates must satisfy min_sampling_rate <= base_sampling_rate <= "
                f"max_sampling_rate, got {low} <= {base} <= {high}: adjust the bounds"
            )
        max_ms = _ms(self.max_overhead_ms, "max_overhead_ms")
        target_ms = (
            max_ms / 2
            if self.target_overhead_ms is None
            else _ms(self.target_overhead_ms, "target_overhead_ms")
        )
        if target_ms > max_ms:
            raise ConfigurationError(
                f"target_overhead_ms ({target_ms}) must not exceed max_overhead_ms ({max_ms})"
            )
        eps = self.target_events_per_second
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
            raise ConfigurationError(
                f"target_events_per_second must be a positive number, got {eps!r}"
            )
        _positive_int(self.adaptation_window, "adaptation_window")
        _positive_int(self.batch_size, "batch_size")
        if isinstance(self.high_priority_events, str):
            raise ConfigurationError(
                "high_priority_events must be a collection of event types, not one string"
            )
        priority = frozenset(str(t) for t in self.high_priority_events)
        object.__setattr__(self, "base_sampling_rate", base)
        object.__setattr__(self, "min_sampling_rate", low)
        object.__setattr__(self, "max_sampling_rate", high)
        object.__setattr__(self, "max_overhead_ms", max_ms)
        object.__setattr__(self, "target_overhead_ms", target_ms)
        object.__setattr__(self, "high_priority_events", priority)


class TailStatistics(TypedDict):
    """What the tail samplers attached to a manager did (summed over them)."""

    runs_held: int
    events_held: int
    max_events_held: int
    runs_kept: int
    runs_dropped: int
    failed_runs_kept: int
    runs_decided_early: int
    late_events: int
    events_lost: int


class SamplingStatistics(TypedDict):
    """A snapshot of :meth:`SamplingManager.get_sampling_statistics`."""

    strategy: str
    total_events: int
    sampled_events: int
    dropped_events: int
    sampling_rate: float
    effective_sampling_rate: float
    events_per_second: float
    overhead_per_event_ms: float
    cost_per_sampled_event_ms: float
    adaptations: int
    tail: TailStatistics


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count's repr is the only way to read it without advancing it.
    return int(repr(counter)[6:-1]) - 1


class SamplingManager:
    """Decides which events to keep, and adapts the rate to volume and cost.

    Thread-safe. :meth:`should_sample` never locks; adaptation, overhead reports and
    configuration changes take a lock and publish a new decision snapshot at once.
    """

    def __init__(
        self,
        config: SamplingConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config is not None and not isinstance(config, SamplingConfig):
            raise ConfigurationError(f"config must be a SamplingConfig, got {config!r}")
        self._clock = clock
        self._lock = threading.Lock()
        self._run_hashes: dict[str, int] = {}
        self._tails: weakref.WeakSet[TailSampler] = weakref.WeakSet()
        self._config = config or SamplingConfig()
        self._reset(self._config)

    # ----------------------------------------------------------------- state
    def _reset(self, config: SamplingConfig) -> None:
        self._config = config
        self._rate = config.base_sampling_rate
        # Counters of per-event decisions: itertools.count is atomic under the GIL.
        self._seen = itertools.count(1)
        self._kept = itertools.count(1)
        self._bulk_seen = 0  # decisions reported in bulk by tail samplers
        self._bulk_kept = 0
        self._window = config.adaptation_window
        self._adapt_at = self._window
        self._bulk_adapt_at = self._window
        self._window_start = self._clock()
        self._window_count = 0
        self._eps = 0.0
        self._cost_ms = 0.0  # smoothed cost of one kept event
        self._overhead_ms_total = 0.0
        self._adaptations = 0
        self._publish()

    def _publish(self) -> None:
        """Publish the snapshot should_sample reads: one attribute, read atomically."""
        config = self._config
        priority = frozenset(config.high_priority_events)
        important = config.strategy in (
            SamplingStrategy.IMPORTANCE_BASED,
            SamplingStrategy.HYBRID,
        )
        min_severity = Severity.LOW if important else Severity.MEDIUM
        kinds: dict[str, bool] = dict.fromkeys(_STATUS_TYPES, False)
        kinds.update(dict.fromkeys(ERROR_EVENT_TYPES | priority, True))
        # Bound methods, so that a decision looks nothing up but the snapshot itself.
        self._decision = (
            kinds.get,
            int(min_severity),
            int(self._rate * _SPACE),
            self._run_hashes.get,
        )

    @property
    def config(self) -> SamplingConfig:
        return self._config

    @property
    def sampling_rate(self) -> float:
        """The current rate, between the configured minimum and maximum."""
        return self._rate

    # -------------------------------------------------------------- decisions
    def should_sample(self, event: Event) -> bool:
        """Keep ``event``? Errors and high-priority events always; others by rate."""
        if next(self._seen) >= self._adapt_at:
            self._adapt()
        kind_of, min_severity, threshold, cached_hash = self._decision
        if event.severity >= min_severity or threshold >= _SPACE:  # rate 1.0 keeps all
            next(self._kept)
            return True
        # One lookup sorts the type: True always kept, False kept if it reports failure.
        kind = kind_of(event.type)
        if kind is not None and (kind or event.attributes.get("status") == "failed"):
            next(self._kept)
            return True
        run_id = event.run_id
        if run_id is not None:
            value = cached_hash(run_id)
            if value is None:
                value = self._remember_hash(run_id)
        else:
            value = (event.seq * _GOLDEN) & 0xFFFFFFFF
        if value < threshold:
            next(self._kept)
            return True
        return False

    def _remember_hash(self, run_id: str) -> int:
        # A run has many events: hash its ID once (encoding and CRC cost more than
        # the rest of a decision). Cleared when full rather than evicted one by one.
        hashes = self._run_hashes
        if len(hashes) >= _HASH_CACHE:
            hashes.clear()
        value = hashes[run_id] = zlib.crc32(run_id.encode())
        return value

    def is_priority(self, event: Event) -> bool:
        """Whether ``event`` must never be dropped (an error or a high-priority event)."""
        kind_of, min_severity, _, _ = self._decision
        if event.severity >= min_severity:
            return True
        kind = kind_of(event.type)
        return kind is not None and (kind or event.attributes.get("status") == "failed")

    def sample_run(self, run_id: str) -> bool:
        """Keep the healthy run ``run_id``? The same answer everywhere for the same rate."""
        return zlib.crc32(run_id.encode()) < self._decision[2]

    # ------------------------------------------------------------- measuring
    def record_overhead(self, seconds: float | timedelta, events: int = 1) -> None:
        """Report that processing ``events`` kept events took ``seconds``.

        PERFORMANCE_AWARE and HYBRID use it to keep the cost per event near the
        target; a cost above ``max_overhead_ms`` per event cuts the rate at once.
        """
        elapsed = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if events < 1 or not elapsed >= 0:
            return
        per_event_ms = elapsed * 1000 / events
        with self._lock:
            self._overhead_ms_total += elapsed * 1000
            # Smoothed, so one slow batch (a GC pause) does not swing the rate.
            self._cost_ms = (
                per_event_ms if self._cost_ms == 0 else 0.8 * self._cost_ms + 0.2 * per_event_ms
            )
            max_ms = _as_ms(self._config.max_overhead_ms)
            if self._watches_cost() and per_event_ms * self._rate > max_ms:
                self._set_rate(self._target_rate())

    def _account(self, seen: int, kept: int) -> None:
        """Count decisions made in bulk (by a tail sampler)."""
        with self._lock:
            self._bulk_seen += seen
            self._bulk_kept += kept
            due = self._bulk_seen >= self._bulk_adapt_at
        if due:
            self._adapt()

    def _attach(self, tail: TailSampler) -> None:
        self._tails.add(tail)

    # ------------------------------------------------------------- adaptation
    def _watches_cost(self) -> bool:
        return self._config.strategy in (
            SamplingStrategy.PERFORMANCE_AWARE,
            SamplingStrategy.HYBRID,
        )

    def _watches_volume(self) -> bool:
        return self._config.strategy in (SamplingStrategy.ADAPTIVE_RATE, SamplingStrategy.HYBRID)

    def _total_seen(self) -> int:
        return _peek(self._seen) + self._bulk_seen

    def _adapt(self) -> None:
        with self._lock:
            seen_hot = _peek(self._seen)
            if seen_hot < self._adapt_at and self._bulk_seen < self._bulk_adapt_at:
                return  # another thread adapted first
            self._adapt_at = seen_hot + self._window
            self._bulk_adapt_at = self._bulk_seen + self._window
            now = self._clock()
            total = seen_hot + self._bulk_seen
            elapsed = now - self._window_start
            if elapsed > 0:
                self._eps = (total - self._window_count) / elapsed
            self._window_start, self._window_count = now, total
            self._adaptations += 1
            self._set_rate(self._target_rate())

    def _target_rate(self) -> float:
        config = self._config
        target_ms = _as_ms(config.target_overhead_ms)
        rate = config.base_sampling_rate
        if self._watches_volume() and self._eps > config.target_events_per_second:
            rate = min(rate, config.target_events_per_second / self._eps)
        if self._watches_cost() and self._cost_ms > 0:
            rate = min(rate, target_ms / self._cost_ms)
        return rate

    def _set_rate(self, target: float) -> None:
        config = self._config
        # Down at once (the host needs relief now), up by halves (no oscillation).
        rate = target if target < self._rate else self._rate + (target - self._rate) / 2
        if abs(target - rate) < 1e-3:
            rate = target
        self._rate = min(config.max_sampling_rate, max(config.min_sampling_rate, rate))
        self._publish()

    # ------------------------------------------------------- configuration
    def update_configuration(self, config: SamplingConfig) -> None:
        """Switch to ``config``: the rate restarts at its base rate, measurements are kept."""
        if not isinstance(config, SamplingConfig):
            raise ConfigurationError(f"config must be a SamplingConfig, got {config!r}")
        with self._lock:
            self._config = config
            self._window = config.adaptation_window
            self._adapt_at = _peek(self._seen) + self._window
            self._bulk_adapt_at = self._bulk_seen + self._window
            self._rate = config.base_sampling_rate
            self._publish()

    def reset_metrics(self) -> None:
        """Forget every count and measurement; the rate restarts at the base rate."""
        with self._lock:
            self._reset(self._config)

    def get_sampling_statistics(self) -> SamplingStatistics:
        """Counts, the current rate and the measured overhead, plus tail sampling."""
        with self._lock:
            total = self._total_seen()
            kept = _peek(self._kept) + self._bulk_kept
            overhead = self._overhead_ms_total
            return SamplingStatistics(
                strategy=self._config.strategy.value,
                total_events=total,
                sampled_events=kept,
                dropped_events=max(0, total - kept),
                sampling_rate=self._rate,
                effective_sampling_rate=kept / total if total else 1.0,
                events_per_second=self._eps,
                overhead_per_event_ms=overhead / total if total else 0.0,
                cost_per_sampled_event_ms=self._cost_ms,
                adaptations=self._adaptations,
                tail=_sum_tails(list(self._tails)),
            )

    def __repr__(self) -> str:
        return f"SamplingManager(strategy={self._config.strategy.value}, rate={self._rate:.4g})"


def _sum_tails(tails: list[TailSampler]) -> TailStatistics:
    total = TailStatistics(
        runs_held=0,
        events_held=0,
        max_events_held=0,
        runs_kept=0,
        runs_dropped=0,
        failed_runs_kept=0,
        runs_decided_early=0,
        late_events=0,
        events_lost=0,
    )
    for tail in tails:
        stats = tail.stats()
        total["runs_held"] += stats.runs_held
        total["events_held"] += stats.events_held
        total["max_events_held"] += stats.max_events_held
        total["runs_kept"] += stats.runs_kept
        total["runs_dropped"] += stats.runs_dropped
        total["failed_runs_kept"] += stats.failed_runs_kept
        total["runs_decided_early"] += stats.runs_decided_early
        total["late_events"] += stats.late_events
        total["events_lost"] += stats.events_lost
    return total


_manager: SamplingManager | None = None
_manager_lock = threading.Lock()


def get_sampling_manager() -> SamplingManager:
    """The process-wide manager, created with :class:`SamplingConfig` defaults on first use."""
    global _manager  # noqa: PLW0603 - the documented process-wide instance
    manager = _manager
    if manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = SamplingManager()
            manager = _manager
    return manager
