"""Tail sampling: hold a run's events until its outcome is known, then keep or drop them.

:class:`TailSampler` is a pipeline sink that wraps another sink (an exporter,
typically :class:`~agentkeel.observability.OTelSpanSink`). It holds the events of
each run until the run ends:

* a run with an error (:func:`~agentkeel.observability.is_error_event`) is kept
  whole: its held events are released the moment the error arrives, and the rest
  of the run streams straight through;
* a healthy run is kept when the manager samples its run ID, else dropped, except
  its high-priority events, which are never dropped;
* an event outside any run is decided on its own by the manager.

Nested runs are held with the run at their root, so a trace is kept or dropped as
one. Memory is bounded by ``max_buffered_events`` and ``max_runs``; a run held longer
than ``max_hold`` (by its events' clock) is decided too. A run decided early like that
is decided as if it had ended then (kept if sampled) and counted in
``runs_decided_early``: if it fails later, its error events are still kept, but the
events dropped before cannot come back. Size the bounds for your longest runs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

from agentkeel._errors import ConfigurationError
from agentkeel.events import Event, EventType
from agentkeel.observability._sampling import (
    SamplingManager,
    get_sampling_manager,
    is_error_event,
)
from agentkeel.pipeline import Sink

__all__ = ["TailSampler", "TailStats"]

_START = EventType.AGENT_START
_END = EventType.AGENT_END


@dataclass(frozen=True, slots=True)
class TailStats:
    """Counters of one :class:`TailSampler`."""

    runs_held: int
    """Runs whose outcome is pending, now."""
    events_held: int
    """Events held, now."""
    max_events_held: int
    """The most events ever held at once (never above ``max_buffered_events``)."""
    runs_kept: int
    runs_dropped: int
    failed_runs_kept: int
    """Runs kept because an error happened in them (also counted in runs_kept)."""
    runs_decided_early: int
    """Runs decided before they ended, to respect the memory bounds or max_hold."""
    late_events: int
    """Events of runs already decided, passed or dropped by that decision."""
    events_lost: int
    """Kept events given up because the downstream sink kept failing."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Run:
    __slots__ = ("events", "failed", "first_ns", "members")

    def __init__(self, root: str, first_ns: int) -> None:
        self.events: list[Event] = []
        self.members = [root]
        self.first_ns = first_ns
        self.failed = False  # an error was seen: everything streams through


class TailSampler:
    """A sink that keeps failed runs whole and thins healthy ones (see the module doc).

    ``downstream`` receives the kept events, in batches of at most the manager's
    ``batch_size``; the time it takes is reported to the manager as overhead. Runs on
    the pipeline's writer thread: not meant to be called from several threads at once.
    """

    def __init__(
        self,
        downstream: Sink,
        manager: SamplingManager | None = None,
        *,
        max_buffered_events: int = 100_000,
        max_runs: int = 10_000,
        max_hold: float | timedelta = 600.0,
        remember_runs: int = 50_000,
    ) -> None:
        if not callable(downstream):
            raise ConfigurationError(f"downstream must be a sink (a callable), got {downstream!r}")
        for name, value in (
            ("max_buffered_events", max_buffered_events),
            ("max_runs", max_runs),
            ("remember_runs", remember_runs),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        hold = max_hold.total_seconds() if isinstance(max_hold, timedelta) else max_hold
        if isinstance(hold, bool) or not isinstance(hold, int | float) or not hold > 0:
            raise ConfigurationError(f"max_hold must be a positive duration, got {max_hold!r}")
        self.downstream = downstream
        self.manager = manager if manager is not None else get_sampling_manager()
        self._max_events = max_buffered_events
        self._max_runs = max_runs
        self._max_hold_ns = int(hold * 1e9)
        self._remember = remember_runs
        # Held and failed-but-running runs, oldest first, keyed by their root run ID.
        self._active: dict[str, _Run] = {}
        self._root_of: dict[str, str] = {}  # nested run ID -> root run ID, while active
        # Runs already decided, so that late events follow the decision.
        self._decided: OrderedDict[str, bool] = OrderedDict()
        self._held = 0
        self._max_held = 0
        self._runs_kept = 0
        self._runs_dropped = 0
        self._failed_kept = 0
        self._early = 0
        self._late_events = 0
        self._lost = 0
        self._outbox: list[Event] = []
        self._last_batch: object = None
        self._lock = threading.Lock()  # the writer delivers; flush() may come from elsewhere
        self.manager._attach(self)

    # ------------------------------------------------------------------ sink
    def __call__(self, batch: Sequence[Event], /) -> None:
        with self._lock:
            # The pipeline retries a batch whose delivery raised: process it only
            # once, deliver what is still owed (and still owed after the pipeline gave
            # up on it: it goes out with the next batch, within the memory bound).
            if batch is not self._last_batch:
                self._last_batch = batch
                self._process(batch)
            self._deliver()

    def flush(self) -> None:
        """Decide every held run now (as if it had ended) and deliver what is kept."""
        with self._lock:
            for root in list(self._active):
                self._finish(root, early=True)
            self._deliver()

    def close(self) -> None:
        """Flush, then close the downstream sink if it can be closed."""
        try:
            self.flush()
        finally:
            close = getattr(self.downstream, "close", None)
            if callable(close):
                close()

    def stats(self) -> TailStats:
        return TailStats(
            runs_held=len(self._active),
            events_held=self._held,
            max_events_held=self._max_held,
            runs_kept=self._runs_kept,
            runs_dropped=self._runs_dropped,
            failed_runs_kept=self._failed_kept,
            runs_decided_early=self._early,
            late_events=self._late_events,
            events_lost=self._lost,
        )

    # ------------------------------------------------------------- deciding
    def _process(self, batch: Sequence[Event]) -> None:
        out = self._outbox
        kept_before = len(out)
        seen = 0
        manager = self.manager
        for event in batch:
            run_id = event.run_id
            if run_id is None:
                if manager.should_sample(event):  # counts itself
                    out.append(event)
                continue
            seen += 1
            root = self._root_of.get(run_id, run_id)
            run = self._active.get(root)
            if run is None:
                run = self._begin(event, run_id)
                if run is None:
                    continue  # a late event, handled
                root = run.members[0]
            if self._hold(event, run, root) and event.type == _END and run_id == root:
                self._finish(root, early=False)
        if batch:
            self._expire(batch[-1].wall_ns)
        if seen:
            manager._account(seen, len(out) - kept_before)

    def _hold(self, event: Event, run: _Run, root: str) -> bool:
        """Hold (or pass, for a failed run) one event of ``run``; False if it was decided."""
        if run.failed:
            self._outbox.append(event)
        elif is_error_event(event):
            # The run failed: release what it holds, and let the rest through as it comes.
            run.failed = True
            self._outbox.extend(run.events)
            self._outbox.append(event)
            self._held -= len(run.events)
            run.events = []
        else:
            if self._held >= self._max_events:
                self._shed_events()
                if self._active.get(root) is not run:  # this very run was decided
                    self._late(event, self._decided[event.run_id or root])
                    return False
            run.events.append(event)
            self._held += 1
            self._max_held = max(self._max_held, self._held)
        return True

    def _begin(self, event: Event, run_id: str) -> _Run | None:
        """The run ``event`` starts or joins, or None if its run was decided already."""
        if event.type == _START:
            parent = event.attributes.get("parent_run_id")
            if isinstance(parent, str):
                parent_root = self._root_of.get(parent, parent)
                parent_run = self._active.get(parent_root)
                if parent_run is not None:
                    # A nested run is kept or dropped with the run at its root.
                    self._root_of[run_id] = parent_root
                    parent_run.members.append(run_id)
                    return parent_run
                parent_decision = self._decided.get(parent)
                if parent_decision is not None:
                    self._remember_decision(run_id, parent_decision)
                    self._late(event, parent_decision)
                    return None
            # A run started again under its old ID (resumed) is held afresh.
            self._decided.pop(run_id, None)
        else:
            decided = self._decided.get(run_id)
            if decided is not None:
                self._late(event, decided)
                return None
        while len(self._active) >= self._max_runs:
            self._finish(next(iter(self._active)), early=True)
        run = _Run(run_id, event.wall_ns)
        self._active[run_id] = run
        return run

    def _late(self, event: Event, kept: bool) -> None:
        self._late_events += 1
        if kept or self.manager.is_priority(event):
            self._outbox.append(event)

    def _finish(self, root: str, *, early: bool) -> None:
        run = self._active.pop(root)
        for member in run.members[1:]:
            self._root_of.pop(member, None)
        if early:
            self._early += 1
        if run.failed:
            keep = True
            self._failed_kept += 1
        else:
            keep = self.manager.sample_run(root)
            events, run.events = run.events, []
            self._held -= len(events)
            if keep:
                self._outbox.extend(events)
            else:
                is_priority = self.manager.is_priority
                self._outbox.extend(e for e in events if is_priority(e))
        if keep:
            self._runs_kept += 1
        else:
            self._runs_dropped += 1
        for member in run.members:
            self._remember_decision(member, keep)

    def _remember_decision(self, run_id: str, keep: bool) -> None:
        self._decided[run_id] = keep
        self._decided.move_to_end(run_id)
        while len(self._decided) > self._remember:
            self._decided.popitem(last=False)

    def _shed_events(self) -> None:
        """Decide the oldest runs holding events until there is room for one more."""
        for root in [root for root, run in self._active.items() if run.events]:
            if self._held < self._max_events:
                return
            self._finish(root, early=True)

    def _expire(self, now_ns: int) -> None:
        limit = now_ns - self._max_hold_ns
        while self._active:
            root, run = next(iter(self._active.items()))
            if run.first_ns >= limit:
                return
            self._finish(root, early=True)

    # ------------------------------------------------------------ delivering
    def _deliver(self) -> None:
        size = self.manager.config.batch_size
        outbox = self._outbox
        try:
            while outbox:
                chunk = outbox[:size]
                started = time.perf_counter()
                self.downstream(chunk)
                self.manager.record_overhead(time.perf_counter() - started, len(chunk))
                del outbox[:size]
        except Exception:
            # The rest stays owed and the pipeline retries; while the downstream
            # keeps failing, what it owes stays within the memory bound.
            excess = len(outbox) - self._max_events
            if excess > 0:
                del outbox[:excess]
                self._lost += excess
            raise

    def __repr__(self) -> str:
        return f"TailSampler({self.downstream!r}, {self.manager!r})"
