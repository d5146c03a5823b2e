"""The log buffer and its writer thread.

A log call on the caller's thread appends one tuple to a bounded deque and
returns (the loggers in ``_logging`` build that tuple). A single daemon thread
wakes every ``flush_interval``, or as soon as ``batch_size`` lines wait, renders
them to JSON (redaction included) and hands each batch to the outputs. Nothing on
the caller's side takes a lock or touches a file.

Counting: the caller never counts (that would cost a lock or a race); ``emitted``
is derived as *taken by the writer + still buffered + dropped when full*, read
under the lock the writer takes when it pops, so the figures add up.

Failures: an output that raises is reported through
:func:`agentkeel._internal.report_internal_error` and its lines are counted as
dropped (``output_failed``); the writer carries on. In strict mode the error is
kept and raised by the next :func:`flush_logs`.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple, Protocol

from agentkeel import _internal
from agentkeel._context import Scope
from agentkeel._encoding import safe_repr, to_json
from agentkeel._errors import PipelineError
from agentkeel.observability._render import (
    R_LINE,
    ExcTuple,
    Rendered,
    format_exception,
    format_timestamp,
    level_name,
    render,
)
from agentkeel.observability._rotation import FileOutput, LogRotationConfig

StreamTarget = IO[str] | IO[bytes] | str
# Marks a stdlib LogRecord that we made ourselves, so KeelHandler does not loop it back.
FORWARDED_ATTR = "_agentkeel_forwarded"


class Origin(NamedTuple):
    """Who logged: the logger's name, component and bound fields."""

    name: str
    component: str | None
    fields: Mapping[str, Any] | None
    from_stdlib: bool = False  # came in through KeelHandler: never forwarded back


# What the caller captures, in this order (a plain tuple: the cheapest thing to build).
# (ts, levelno, message, metadata, scope, global correlation ID, context fields,
#  exc (tuple, pre-formatted text, or None), origin, thread (ident, name) or None)
Record = tuple[
    float,
    int,
    object,
    dict[str, Any] | None,
    Scope,
    str | None,
    Mapping[str, Any] | None,
    ExcTuple | str | None,
    Origin,
    tuple[int, str] | None,
]


class Output(Protocol):
    """Where rendered lines go. Called on the writer thread, under the writer's lock."""

    def write(self, batch: Sequence[Rendered], /) -> None: ...

    def close(self) -> None: ...


class StreamOutput:
    """Writes lines to a text or binary stream; ``"stderr"``/``"stdout"`` are looked up
    at every write, so redirection (and pytest's capture) is followed."""

    def __init__(self, stream: StreamTarget) -> None:
        self._stream = stream

    def _target(self) -> IO[Any]:
        stream = self._stream
        if stream == "stderr":
            return sys.stderr
        if stream == "stdout":
            return sys.stdout
        return stream  # type: ignore[return-value]

    def write(self, batch: Sequence[Rendered], /) -> None:
        stream = self._target()
        if stream is None:  # pythonw and daemons may have no stderr at all
            raise OSError("the stream is None (no stderr/stdout in this process)")
        data = b"".join([r[R_LINE] for r in batch])
        if isinstance(stream, io.RawIOBase | io.BufferedIOBase) or "b" in getattr(
            stream, "mode", ""
        ):
            stream.write(data)
        else:
            stream.write(data.decode("utf-8"))
        stream.flush()

    def close(self) -> None:
        return None  # the stream belongs to the caller


class StdlibOutput:
    """Forwards each line to the stdlib logger of the same name, so existing handlers
    receive it. The record carries our fields as attributes and the formatted
    traceback as ``exc_text``; ``created`` and the thread are the original caller's."""

    def write(self, batch: Sequence[Rendered], /) -> None:
        for levelno, ts, name, entry, _line, thread, from_stdlib in batch:
            if from_stdlib:
                continue  # stdlib's handlers had it first-hand
            logger = logging.getLogger(name)
            if not logger.isEnabledFor(levelno):
                continue
            record = logger.makeRecord(name, levelno, "(agentkeel)", 0, entry["message"], (), None)
            record.created = ts
            record.msecs = (ts - int(ts)) * 1000
            record.levelname = entry["level"]
            if thread is not None:
                record.thread, record.threadName = thread
            record.exc_text = entry.get("exception")
            record.metadata = entry["metadata"]
            record.component = entry["component"]
            record.correlation_id = entry["correlation_id"]
            record.run_id = entry.get("run_id")
            record.span_id = entry.get("span_id")
            setattr(record, FORWARDED_ATTR, True)
            logger.handle(record)

    def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration; swapped whole by ``configure_logging``."""

    level: int = 20
    stream: StreamTarget | None = "stderr"
    file: str | None = None
    rotation: LogRotationConfig | None = None
    redact: bool = True
    sync: bool = False
    stdlib: bool = False
    capacity: int = 10_000
    batch_size: int = 512
    flush_interval: float = 0.1
    outputs: tuple[Output, ...] = field(default=(), compare=False)

    def build_outputs(self) -> tuple[Output, ...]:
        outputs: list[Output] = []
        if self.stream is not None:
            outputs.append(StreamOutput(self.stream))
        if self.rotation is not None:
            outputs.append(FileOutput(self.rotation.path, rotation=self.rotation))
        elif self.file is not None:
            outputs.append(FileOutput(self.file))
        if self.stdlib:
            outputs.append(StdlibOutput())
        return tuple(outputs)


@dataclass(frozen=True, slots=True)
class LoggingStats:
    """A snapshot of the log writer's counters.

    ``emitted`` = ``written`` + ``dropped`` + ``buffered`` (+ lines being written
    at that instant). ``dropped_by_reason`` says why: ``buffer_full`` (the caller
    found the buffer full), ``output_failed`` (an output raised), ``reentrant`` (a
    stdlib record logged while we were writing, in sync mode).
    """

    emitted: int
    written: int
    dropped: int
    buffered: int
    dropped_by_reason: dict[str, int]
    output_errors: int
    last_error: str | None


class _FlushRequest:
    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = True


class LogCore:
    """The process-wide buffer, writer thread and counters (one instance)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Called once the writer runs: the loggers swap their starter functions
        # for the fast ones.
        self.on_start: Callable[[], None] | None = None
        self.buffer: deque[Record] = deque()
        self.wake = threading.Event()
        self._reset_state()

    def _reset_state(self) -> None:
        self._count_lock = threading.Lock()
        self.io_lock = threading.RLock()
        self._requests_lock = threading.Lock()
        self._requests: list[_FlushRequest] = []
        self._writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._local = threading.local()
        self._taken = 0
        self._written = 0
        self._sync_emitted = 0
        self._dropped: dict[str, int] = {}
        self._output_errors = 0
        self._last_error: BaseException | None = None
        self._pending: BaseException | None = None

    # ------------------------------------------------------------ caller side
    @property
    def started(self) -> bool:
        return self._writer is not None

    def start(self) -> bool:
        """Start the writer thread; True if this call started it (then ``on_start`` ran)."""
        with self._start_lock:
            if self._writer is not None:
                return False
            writer = threading.Thread(target=self._run, name="agentkeel-log-writer", daemon=True)
            writer.start()
            self._writer = writer
        # Outside the start lock: the hook takes the loggers' registry lock, which is
        # held by whoever creates a logger, and that one may read `started`.
        if self.on_start is not None:
            self.on_start()
        return True

    def drop_full(self) -> None:
        self.count_drop("buffer_full")

    def count_drop(self, reason: str, n: int = 1) -> None:
        with self._count_lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + n

    def submit(self, record: Record) -> None:
        """The slow path: for stdlib records and custom levels, honouring sync mode."""
        settings = self.settings
        if settings.sync:
            self.write_sync(record)
            return
        if self._writer is None:
            self.start()
        buffer = self.buffer
        n = len(buffer)
        if n >= settings.capacity:
            self.drop_full()
            return
        buffer.append(record)
        if n == wake_threshold(settings):
            self.wake.set()

    def write_sync(self, record: Record) -> None:
        """Render and write on the caller's thread (``sync=True``)."""
        local = self._local
        if getattr(local, "busy", False):
            # A stdlib record raised while we write (our own error report, say):
            # writing it now would recurse.
            self.count_drop("reentrant")
            return
        local.busy = True
        try:
            with self.io_lock:
                self._sync_emitted += 1
                error = self._deliver([self._render(record)], self.settings.outputs)
        finally:
            local.busy = False
        if error is not None and _internal.is_strict():
            if self._pending is error:  # raised here and now, not again at flush time
                self._pending = None
            raise PipelineError(f"a log output failed: {error!r}") from error

    # ------------------------------------------------------------ control
    def flush(self, timeout: float, *, raise_pending: bool = True) -> bool:
        """Wait until every line logged before this call is written (or counted lost)."""
        if threading.current_thread() is self._writer:
            return False  # an output that flushes would wait for itself
        ok = True
        if self.buffer or self._writer is not None:
            self.start()
            request = _FlushRequest()
            with self._requests_lock:
                self._requests.append(request)
            self.wake.set()
            ok = request.done.wait(timeout) and request.ok
        if raise_pending and self._pending is not None:
            error, self._pending = self._pending, None
            raise PipelineError(f"a log output failed: {error!r}") from error
        return ok

    def stats(self) -> LoggingStats:
        with self._count_lock:
            taken = self._taken
            buffered = len(self.buffer)
            dropped = dict(self._dropped)
        # Plain reads, no io_lock: a stalled output holds that lock, and stats are
        # exactly what one wants to look at then.
        written = self._written
        sync_emitted = self._sync_emitted
        errors = self._output_errors
        last = self._last_error
        full = dropped.get("buffer_full", 0) + dropped.get("reentrant", 0)
        return LoggingStats(
            emitted=taken + buffered + full + sync_emitted,
            written=written,
            dropped=sum(dropped.values()),
            buffered=buffered,
            dropped_by_reason=dropped,
            output_errors=errors,
            last_error=None if last is None else f"{type(last).__name__}: {last}",
        )

    def replace_settings(self, settings: Settings) -> None:
        """Swap the configuration and close the old outputs.

        Closing waits for the writer's lock, but not forever: if an output is stuck
        in a write, the new settings take over anyway and the old outputs are left
        open (reported) rather than hanging the caller.
        """
        locked = self.io_lock.acquire(timeout=5.0)
        try:
            old, self.settings = self.settings, settings
            if not locked:
                _internal.report_internal_error(
                    "logging.configure",
                    TimeoutError("an output is stuck in a write: old outputs left open"),
                    reraise=False,
                )
                return
            for output in old.outputs:
                if output not in settings.outputs:
                    try:
                        output.close()
                    except Exception as exc:  # noqa: BLE001 - must not block reconfiguring
                        _internal.report_internal_error("logging.close", exc, reraise=False)
        finally:
            if locked:
                self.io_lock.release()

    def after_fork_in_child(self) -> None:
        # The parent's writer does not exist here, its locks may be held, and the
        # lines still buffered are the parent's to write: start clean.
        self.buffer.clear()
        self.wake = threading.Event()
        self._reset_state()

    # ------------------------------------------------------------ writer side
    def _run(self) -> None:
        buffer = self.buffer
        while True:
            settings = self.settings
            requests: list[_FlushRequest] = []
            try:
                if len(buffer) < wake_threshold(settings):
                    self.wake.wait(settings.flush_interval)
                self.wake.clear()
                with self._requests_lock:
                    requests, self._requests = self._requests, []
                # Whatever was logged before those flush() calls is in the first n.
                ok = self._drain(len(buffer), settings)
            except BaseException as exc:  # noqa: BLE001 - the writer must outlive any bug
                _internal.report_internal_error("logging.writer", exc, reraise=False)
                self._keep_for_strict(exc)
                ok = False
            for request in requests:
                request.ok = ok
                request.done.set()

    def _drain(self, n: int, settings: Settings) -> bool:
        ok = True
        popleft = self.buffer.popleft
        while n > 0:
            take = min(n, settings.batch_size)
            batch: list[Record] = []
            with self._count_lock:
                try:
                    for _ in range(take):
                        batch.append(popleft())
                except IndexError:  # emptied under us (by a fork handler)
                    n = take
                self._taken += len(batch)
            n -= take
            if not batch:
                break
            rendered = [self._render(record) for record in batch]
            with self.io_lock:
                ok = self._deliver(rendered, self.settings.outputs) is None and ok
        return ok

    def _render(self, record: Record) -> Rendered:
        ts, levelno, message, metadata, scope, global_cid, context_fields, exc, origin, thread = (
            record
        )
        redacting = self.settings.redact
        try:
            if context_fields or origin.fields:
                merged: dict[str, Any] = dict(context_fields or ())
                merged.update(origin.fields or ())
                if metadata:
                    merged.update(metadata)
                metadata = merged
            cid = scope.correlation_id
            entry, line = render(
                ts=ts,
                levelno=levelno,
                message=message,
                logger=origin.name,
                component=origin.component,
                correlation_id=global_cid if cid is None else cid,
                run_id=scope.run_id,
                span_id=scope.span_id,
                metadata=metadata,
                exception=exc if exc is None or isinstance(exc, str) else format_exception(exc),
                redacting=redacting,
                owned=True,  # the caller's shallow copy, or the merged dict made above
            )
        except Exception as error:  # noqa: BLE001 - a bug of ours must not lose the line
            _internal.report_internal_error("logging.render", error, reraise=False)
            self._keep_for_strict(error)
            entry = {
                "timestamp": format_timestamp(ts),
                "level": level_name(levelno),
                "message": "[agentkeel could not render this log line]",
                "logger": origin.name,
                "metadata": {"render_error": safe_repr(error)},
            }
            line = to_json(entry) + b"\n"
        return (levelno, ts, origin.name, entry, line, thread, origin.from_stdlib)

    def _deliver(self, batch: list[Rendered], outputs: Sequence[Output]) -> BaseException | None:
        """Write to every output (caller holds ``io_lock``); returns the last error."""
        error: BaseException | None = None
        for output in outputs:
            try:
                output.write(batch)
            except Exception as exc:  # noqa: BLE001 - an output must never kill the writer
                error = exc
                self._output_errors += 1
                self._last_error = exc
                _internal.report_internal_error("logging.output", exc, reraise=False)
                self._keep_for_strict(exc)
        if error is None:
            self._written += len(batch)
        else:
            self.count_drop("output_failed", len(batch))
        return error

    def _keep_for_strict(self, exc: BaseException) -> None:
        if _internal.is_strict() and self._pending is None:
            self._pending = exc


def wake_threshold(settings: Settings) -> int:
    """The buffer length at which the writer is woken before its interval ends."""
    return max(1, min(settings.batch_size, settings.capacity // 2))


def make_record(
    *,
    ts: float,
    levelno: int,
    message: object,
    metadata: dict[str, Any] | None,
    scope: Scope,
    global_cid: str | None,
    context_fields: Mapping[str, Any] | None,
    exc: ExcTuple | str | None,
    origin: Origin,
    thread: tuple[int, str] | None = None,
) -> Record:
    """Build a record on a slow path (the loggers' fast path builds the tuple inline)."""
    return (ts, levelno, message, metadata, scope, global_cid, context_fields, exc, origin, thread)
