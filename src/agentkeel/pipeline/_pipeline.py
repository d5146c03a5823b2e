"""The hot-path emitter and its background writer.

Emitting an event on the caller's thread builds one frozen Event and appends it to
a bounded in-memory buffer: no lock, no I/O. A single writer thread drains the
buffer in batches into the sinks (the store first). ``flush()`` returns only once
every sink has acknowledged everything emitted before it was called.

The buffer has two parts. Routine events (severity INFO) fill ``capacity``;
events of severity LOW and above have their own reserve, ``priority_capacity``, so a
flood of routine events can never push out a failure. When a part is full:

* ``overflow="drop_lowest"`` (default): a routine event is dropped; a priority event
  evicts the oldest buffered event of lower severity, or is dropped if none is lower.
* ``overflow="block"``: the caller first waits up to ``block_timeout`` for room, then
  does as above. Never forever.

Every drop is counted by reason and severity (:meth:`Pipeline.stats`).

A producer that must cost the agent as little as possible (the LangChain handler) can
also defer its work to the writer: on the agent's thread it takes a :meth:`~Pipeline.stamp`
(the event's sequence number and time) and keeps the raw values; :meth:`~Pipeline.defer`
has the writer call it back before its next drain, and it then builds the events with
:meth:`~Pipeline.emit_stamped`. They keep their place in the order and the time they
happened, and every ``flush()`` covers them.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import repeat
from operator import attrgetter
from typing import Any, Literal, Protocol

from agentkeel import _context, _internal
from agentkeel._context import _scope
from agentkeel._errors import ConfigurationError, PipelineError
from agentkeel.events import Event, Severity

OverflowPolicy = Literal["drop_lowest", "block"]
_LEVELS = len(Severity)
_scope_get = _scope.get
perf_counter_ns = time.perf_counter_ns
# Wall time is derived from the monotonic clock (one clock read per event instead
# of two); the writer re-reads the offset every cycle so NTP steps are followed.
_clock_offset = [time.time_ns() - time.perf_counter_ns()]


def _recalibrate_clock() -> None:
    _clock_offset[0] = time.time_ns() - time.perf_counter_ns()


class Sink(Protocol):
    """Receives batches of events on the writer thread.

    Raising means "not acknowledged": the batch is retried, then dropped and
    counted. A plain function ``def sink(batch): ...`` satisfies this protocol.
    """

    def __call__(self, batch: Sequence[Event], /) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """A snapshot of the pipeline's counters."""

    emitted: int
    written: int
    buffered: int
    dropped: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_severity: dict[str, int] = field(default_factory=dict)
    sink_errors: int = 0
    last_error: str | None = None
    lag_seconds: float = 0.0


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds >= 0:  # also rejects NaN
        raise ConfigurationError(f"{name} must be a non-negative duration, got {value!r}")
    return seconds


class _FlushRequest:
    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class Pipeline:
    """Buffers events from any thread and writes them to sinks in the background."""

    def __init__(
        self,
        *,
        sinks: Sequence[Sink],
        capacity: int = 20_000,
        priority_capacity: int | None = None,
        batch_size: int = 1_000,
        flush_interval: float | timedelta = 0.2,
        overflow: OverflowPolicy = "drop_lowest",
        block_timeout: float | timedelta = 0.05,
        sink_retries: int = 3,
        retry_backoff: float | timedelta = 0.1,
        close_sinks: Callable[[], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ConfigurationError(f"capacity must be at least 1, got {capacity}")
        reserve = max(256, capacity // 4) if priority_capacity is None else priority_capacity
        if reserve < 1:
            raise ConfigurationError(
                f"priority_capacity must be at least 1, got {priority_capacity}"
            )
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        if overflow not in ("drop_lowest", "block"):
            raise ConfigurationError(f"overflow must be 'drop_lowest' or 'block', got {overflow!r}")
        if sink_retries < 0:
            raise ConfigurationError(f"sink_retries must be >= 0, got {sink_retries}")
        # Replaced, never mutated (copy on write): the writer iterates whichever list
        # it read at the start of a batch, without a lock.
        self._sinks: list[Sink] = list(sinks)
        self._added_sinks: list[Sink] = []
        self._sinks_lock = threading.Lock()
        self._close_sinks = close_sinks
        self._capacity = capacity
        self._priority_capacity = reserve
        self._batch_size = batch_size
        self._interval = _seconds(flush_interval, "flush_interval")
        self._overflow = overflow
        self._block_timeout = _seconds(block_timeout, "block_timeout")
        self._sink_retries = sink_retries
        self._retry_backoff = _seconds(retry_backoff, "retry_backoff")
        # One deque per severity, so eviction of the lowest is O(1); [0] is routine.
        self._buffers: tuple[deque[Event], ...] = tuple(deque() for _ in range(_LEVELS))
        self._routine = self._buffers[0]
        # The hot path takes its shortcut only while the writer runs and no strict
        # error waits to be raised: one attribute check instead of two.
        self._fast = False
        self._seq = itertools.count(1)
        self._origin = os.urandom(4).hex()
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())
        self._overflow_lock = threading.Lock()
        self._flush_requests: list[_FlushRequest] = []
        self._requests_lock = threading.Lock()
        self._written = 0
        self._dropped: dict[tuple[str, int], int] = {}
        self._sink_errors = 0
        self._last_error: BaseException | None = None
        self._pending_strict_error: BaseException | None = None
        self._oldest_unwritten_ns = 0
        self._closed = False
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._wake_at = max(1, min(batch_size, capacity // 2))
        self._producers: list[Callable[[], object]] = []
        self._producers_lock = threading.Lock()
        self._unused_stamps = itertools.count()  # next() is atomic: any thread may unstamp
        _live_pipelines.add(self)

    # ------------------------------------------------------------------ hot path
    def emit(
        self,
        type: str,
        *,
        name: str = "",
        severity: int = Severity.INFO,
        category: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        span_id: str | None = None,
        parent_span_id: str | None = None,
    ) -> None:
        """Record one event in the current run and span. Never blocks, never raises.

        ``span_id`` and ``parent_span_id`` override the current scope's, for
        integrations whose framework names its own spans (a LangChain run ID).
        (In strict mode a sink failure seen earlier is raised here.)
        """
        scope = _scope_get()
        mono = perf_counter_ns()
        cid = scope.correlation_id
        event = Event(
            type,
            name,
            severity,
            category,
            dict(attributes) if attributes else {},
            scope.run_id if run_id is None else run_id,
            _context._global_correlation_id if cid is None else cid,
            scope.span_id if span_id is None else span_id,
            scope.parent_span_id if parent_span_id is None else parent_span_id,
            mono + _clock_offset[0],
            mono,
            next(self._seq),
            self._origin,
        )
        routine = self._routine
        n = len(routine)
        if severity == 0 and self._fast and n < self._capacity:
            routine.append(event)
            if n == self._wake_at:
                self._wake.set()  # a batch is ready: do not wait for the interval
            return
        self.submit(event)

    def submit(self, event: Event) -> bool:
        """Buffer a ready-made event. Returns False if it had to be dropped."""
        if self._pending_strict_error is not None:
            self._raise_pending()
        if self._writer is None:
            self._start_writer()
        level = event.severity if 0 <= event.severity < _LEVELS else 0
        if level == 0:
            routine = self._routine
            n = len(routine)
            if n < self._capacity or self._wait_for_room(level):
                routine.append(event)
                if n == self._wake_at:
                    self._wake.set()
                return True
            self._count_drop("buffer_full", 0)
            return False
        with self._overflow_lock:
            if self._priority_size() < self._priority_capacity or self._wait_for_room(level):
                self._buffers[level].append(event)
                if level == Severity.CRITICAL:
                    # Only the worst news skips the interval: waking the writer per
                    # failure would cost every failing call a lock and a notify.
                    self._wake.set()
                return True
            for lower in range(1, level):
                if self._buffers[lower]:
                    victim = self._buffers[lower].popleft()
                    self._dropped_unlocked("buffer_full", victim.severity)
                    self._buffers[level].append(event)
                    return True
            self._dropped_unlocked("buffer_full", level)
            return False

    # --------------------------------------------------------- deferred producers
    def stamp(self) -> tuple[int, int]:
        """Reserve an event's sequence number and time now, to build the event later.

        Pass it to :meth:`emit_stamped`, or to :meth:`unstamp` if no event comes of it.
        """
        return next(self._seq), perf_counter_ns()

    def unstamp(self) -> None:
        """A stamp that will not become an event (``stats().emitted`` stays exact)."""
        next(self._unused_stamps)

    def emit_stamped(  # noqa: PLR0917 - called once per deferred event
        self,
        stamp: tuple[int, int],
        scope: _context.Scope,
        type: str,
        name: str,
        severity: int,
        attributes: dict[str, Any],
        run_id: str | None,
        span_id: str | None,
        parent_span_id: str | None,
    ) -> None:
        """Buffer an event that happened at ``stamp`` in ``scope`` (see :meth:`defer`).

        ``attributes`` is taken as it is, not copied. ``run_id``, ``span_id`` and
        ``parent_span_id`` override the scope's when given, as in :meth:`emit`.
        """
        # Built as emit() builds its event. A helper shared by both would cost emit(),
        # the hottest path of all, a call per event; this one runs off the agent's path.
        seq, mono = stamp
        cid = scope.correlation_id
        self.submit(
            Event(
                type,
                name,
                severity,
                None,
                attributes,
                scope.run_id if run_id is None else run_id,
                _context._global_correlation_id if cid is None else cid,
                scope.span_id if span_id is None else span_id,
                scope.parent_span_id if parent_span_id is None else parent_span_id,
                mono + _clock_offset[0],
                mono,
                seq,
                self._origin,
            )
        )

    def defer(self, produce: Callable[[], object]) -> None:
        """Have the writer call ``produce()`` once, before its next drain.

        ``produce`` emits what it captured with :meth:`emit_stamped`. A ``flush()``
        covers every producer deferred before it. Thread-safe. An exception from
        ``produce`` is reported like a failing sink's.
        """
        if self._closed:
            self._produce((produce,))
            return
        with self._producers_lock:
            self._producers.append(produce)
        if self._writer is None:
            self._start_writer()

    def _run_producers(self) -> None:
        with self._producers_lock:
            producers, self._producers = self._producers, []
        if producers:
            self._produce(producers)

    def _produce(self, producers: Sequence[Callable[[], object]]) -> None:
        for produce in producers:
            try:
                produce()
            except Exception as exc:  # noqa: BLE001 - a producer must never kill the writer
                self._last_error = exc
                _internal.report_internal_error("pipeline.producer", exc, reraise=False)
                if _internal.is_strict():
                    self._pending_strict_error = exc
                    self._fast = False

    # -------------------------------------------------------------------- sinks
    def add_sink(self, sink: Sink) -> None:
        """Deliver to ``sink`` as well, from the next batch on. Thread-safe.

        Events still buffered when it is added reach it too. A sink with a ``close()``
        method is closed with the pipeline unless it was removed first.
        """
        if not callable(sink):
            raise ConfigurationError(
                f"a sink must be callable with a batch of events, got {sink!r}"
            )
        with self._sinks_lock:
            if self._closed:
                raise ConfigurationError("this pipeline is closed: add sinks to a live one")
            if any(s is sink for s in self._sinks):
                raise ConfigurationError(f"{sink!r} is already a sink of this pipeline")
            self._sinks = [*self._sinks, sink]
            self._added_sinks = [*self._added_sinks, sink]

    def remove_sink(self, sink: Sink) -> bool:
        """Stop delivering to ``sink``; False if it was not a sink. Thread-safe.

        A batch being delivered as this is called may still reach it: call
        :meth:`flush` afterwards to be sure it is done with.
        """
        with self._sinks_lock:
            if not any(s is sink for s in self._sinks):
                return False
            self._sinks = [s for s in self._sinks if s is not sink]
            self._added_sinks = [s for s in self._added_sinks if s is not sink]
        return True

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks batches go to, in order."""
        return tuple(self._sinks)

    # ---------------------------------------------------------------- slow path
    def _size(self) -> int:
        return sum(len(b) for b in self._buffers)

    def _priority_size(self) -> int:
        b = self._buffers
        return len(b[1]) + len(b[2]) + len(b[3]) + len(b[4])

    def _has_room(self, level: int) -> bool:
        if level == 0:
            return len(self._routine) < self._capacity
        return self._priority_size() < self._priority_capacity

    def _wait_for_room(self, level: int) -> bool:
        """Under the "block" policy, wait a bounded time for the writer to make room."""
        if self._overflow != "block" or self._block_timeout <= 0 or self._closed:
            return False
        if threading.current_thread() is self._writer:
            return False  # a deferred producer: only this thread could make the room
        self._wake.set()
        deadline = time.monotonic() + self._block_timeout
        with self._room:
            while not self._has_room(level):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._room.wait(remaining)
        return True

    def _count_drop(self, reason: str, severity: int) -> None:
        with self._overflow_lock:
            self._dropped_unlocked(reason, severity)

    def _dropped_unlocked(self, reason: str, severity: int) -> None:
        key = (reason, severity)
        self._dropped[key] = self._dropped.get(key, 0) + 1

    # ------------------------------------------------------------------ control
    def flush(self, timeout: float | timedelta = 5.0) -> bool:
        """Wait until every sink has acknowledged what was emitted before this call.

        Returns False on timeout or if a sink could not take the events (they are
        then counted as dropped). In strict mode a sink failure raises PipelineError.
        """
        seconds = _seconds(timeout, "timeout")
        if self._writer is not None and threading.current_thread() is self._writer:
            return False  # a sink that flushes would wait for itself
        if self._writer is None:
            if self._size() == 0 and not self._producers:
                return True
            self._start_writer()
        request = _FlushRequest()
        with self._requests_lock:
            self._flush_requests.append(request)
        self._wake.set()
        done = request.done.wait(seconds)
        if self._pending_strict_error is not None:
            self._raise_pending()
        return done and request.ok

    def close(self, timeout: float | timedelta = 5.0) -> bool:
        """Flush, stop the writer and close the sinks. Safe to call twice."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        self._closed = True
        self._wake.set()
        writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(_seconds(timeout, "timeout"))
        if self._close_sinks is not None:
            try:
                self._close_sinks()
            except Exception as exc:  # noqa: BLE001 - closing must not raise at exit
                _internal.report_internal_error("pipeline.close", exc, reraise=False)
        with self._sinks_lock:
            added, self._added_sinks = self._added_sinks, []
        for sink in added:
            close_sink = getattr(sink, "close", None)
            if callable(close_sink):
                try:
                    close_sink()
                except Exception as exc:  # noqa: BLE001 - one bad sink must not block the rest
                    _internal.report_internal_error("pipeline.close", exc, reraise=False)
        _live_pipelines.discard(self)
        return ok

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> PipelineStats:
        with self._overflow_lock:
            dropped = dict(self._dropped)
        by_reason: dict[str, int] = {}
        by_severity: dict[str, int] = {}
        for (reason, sev), n in dropped.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
            name = Severity(sev).name.lower() if 0 <= sev < _LEVELS else str(sev)
            by_severity[name] = by_severity.get(name, 0) + n
        oldest = self._oldest_unwritten_ns
        lag = (time.perf_counter_ns() - oldest) / 1e9 if oldest else 0.0
        last = self._last_error
        return PipelineStats(
            emitted=_handed_out(self._seq, 1) - _handed_out(self._unused_stamps, 0),
            written=self._written,
            buffered=self._size(),
            dropped=sum(dropped.values()),
            dropped_by_reason=by_reason,
            dropped_by_severity=by_severity,
            sink_errors=self._sink_errors,
            last_error=None if last is None else f"{type(last).__name__}: {last}",
            lag_seconds=lag,
        )

    def _raise_pending(self) -> None:
        error, self._pending_strict_error = self._pending_strict_error, None
        self._fast = self._writer is not None
        raise PipelineError(f"a sink or a deferred producer failed: {error!r}") from error

    # ------------------------------------------------------------------- writer
    def _start_writer(self) -> None:
        with self._writer_lock:
            if self._writer is not None or self._closed:
                return
            self._writer = threading.Thread(
                target=self._run_writer, name="agentkeel-writer", daemon=True
            )
            self._writer.start()
            self._fast = self._pending_strict_error is None

    def _run_writer(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            _recalibrate_clock()
            with self._requests_lock:
                requests, self._flush_requests = self._flush_requests, []
            self._run_producers()
            # Everything emitted before those flush() calls is in the buffers now,
            # deferred producers' events included.
            drain_all = bool(requests) or self._closed
            ok = True
            while True:
                batch = self._drain()
                if not batch:
                    break
                ok = self._deliver(batch) and ok
                if not drain_all and self._size() < self._batch_size:
                    # What arrived while that batch was being written waits for the next
                    # interval. Writing it at once turned a steady stream of events into
                    # a transaction per few dozen events, at several times the CPU per
                    # event, on a thread that competes with the agent for the GIL.
                    break
            self._oldest_unwritten_ns = 0
            for request in requests:
                request.ok = ok
                request.done.set()
            if self._closed:
                return

    def _drain(self) -> list[Event]:
        # Routine events, nearly all of them, are popped by a C loop: only this thread
        # takes from that deque. The others can lose an event to an eviction at any
        # moment, so they are popped one by one.
        routine = self._routine
        batch: list[Event] = list(
            map(_popleft, repeat(routine, min(self._batch_size, len(routine))))
        )
        take = self._batch_size - len(batch)
        for buffer in self._buffers[1:]:
            while take and buffer:
                try:
                    batch.append(buffer.popleft())
                except IndexError:  # raced with an eviction
                    break
                take -= 1
        if batch:
            with self._room:
                self._room.notify_all()
            batch.sort(key=_by_seq)  # threads that emit at once append out of order
            self._oldest_unwritten_ns = batch[0].mono_ns
        return batch

    def _deliver(self, batch: list[Event]) -> bool:
        for sink in self._sinks:
            attempt = 0
            while True:
                try:
                    sink(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - a sink must never kill the writer
                    self._sink_errors += 1
                    self._last_error = exc
                    if attempt >= self._sink_retries or self._closed:
                        for event in batch:
                            self._count_drop("sink_failed", event.severity)
                        _internal.report_internal_error("pipeline.sink", exc, reraise=False)
                        if _internal.is_strict():
                            self._pending_strict_error = exc
                            self._fast = False
                        return False
                    attempt += 1
                    time.sleep(self._retry_backoff * attempt)
        self._written += len(batch)
        return True


def _handed_out(counter: itertools.count[int], start: int) -> int:
    """How many numbers an ``itertools.count(start)`` has handed out."""
    # Its repr is the only way to read it without advancing it.
    return int(repr(counter)[6:-1]) - start


_by_seq = attrgetter("seq")
_popleft = deque.popleft


_live_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's writer thread does not exist in a forked child: start anew there.
    for pipeline in list(_live_pipelines):
        pipeline._writer = None
        pipeline._writer_lock = threading.Lock()
        pipeline._requests_lock = threading.Lock()
        pipeline._flush_requests = []
        pipeline._producers_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all_at_exit() -> None:
    for pipeline in list(_live_pipelines):
        try:
            pipeline.close(timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - interpreter exit must stay clean
            _internal.report_internal_error("pipeline.atexit", exc, reraise=False)
