"""The per-run failure tracker, and the tracker that tools and nodes report to.

A :class:`FailureTracker` turns an exception (or a description) into a
:class:`~agentkeel.FailureRecord`: it classifies it, fingerprints it, keeps it, appends
it to the run's failure log and emits it as a ``failure.recorded`` event, which the
pipeline delivers to the store. Problems writing the log (a full disk, a missing
directory) are reported as internal errors and never raised into the agent, except
in strict mode.

Which tracker :func:`get_failure_tracker` returns, first match wins:

1. the one made current in this context by ``with use_failure_tracker(t):``;
2. the process-wide one set with :func:`set_failure_tracker`;
3. otherwise a default tracker for the current run (``agentkeel.run``), created on
   first use and reused for that run ID; outside any run, one process-wide default
   tracker with a fresh run ID. The 32 most recently used defaults are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from agentkeel import _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._context import current_scope, new_id
from agentkeel._encoding import MAX_STRING, bound, from_json, to_json, truncate
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import (
    Category,
    EventType,
    FailureRecord,
    Severity,
    failure_event_attributes,
)
from agentkeel.pipeline import Pipeline
from agentkeel.store import keel_home
from agentkeel.tracking._classify import DEFAULT_SEVERITY, classify_error, fingerprint
from agentkeel.tracking._jsonl import JsonlLog, JsonLog
from agentkeel.tracking._report import Tally, text_report
from agentkeel.tracking._settings import LogFormat, TrackingSettings, check_log_format

__all__ = [
    "FailureTracker",
    "get_failure_tracker",
    "set_failure_tracker",
    "use_failure_tracker",
]

_MAX_ID = 200
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
_DEFAULT_MAX_RECORDS = 10_000


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_ID:
        raise ConfigurationError(
            f"{what} must be a non-empty string of at most {_MAX_ID} characters, got {value!r}"
        )
    if any(ord(ch) < 32 for ch in value):
        raise ConfigurationError(f"{what} must not contain control characters, got {value!r}")
    return value


def log_file_stem(run_id: str) -> str:
    """A file-name-safe form of ``run_id``; a hash suffix keeps changed IDs from colliding."""
    safe = _UNSAFE_FILENAME.sub("_", run_id).lstrip(".")[:100]
    if safe == run_id:
        return safe
    digest = hashlib.sha1(run_id.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{safe or 'run'}-{digest}"


def _parse_severity(value: object) -> Severity:
    severity = Severity.parse(value)
    if severity is Severity.INFO:
        raise ConfigurationError(
            "a failure's severity must be low, medium, high or critical, not info"
        )
    return severity


def _safe_str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception as exc:  # noqa: BLE001 - an exception with a broken __str__ is still a failure
        return f"<str() failed: {type(exc).__name__}>"


class FailureTracker:
    """Records the failures of one run: in memory, in a log file and as events.

    ``run_id`` defaults to the current run's (``agentkeel.run``) or a fresh
    ``run-…`` ID, ``user_id`` to the current run's. The log is
    ``<runtime_dir>/logs/failures_<run_id>.jsonl``; without ``runtime_dir`` it goes to
    ``settings.failure_log_dir``, else ``$KEEL_HOME/logs``. ``log_format`` defaults to
    ``settings.failure_log_format``; ``settings`` default to
    :meth:`TrackingSettings.from_env`.

    The first ``max_records`` failures are kept in memory (:attr:`failures`); later
    ones still reach the JSONL log, the store and the counts of :meth:`get_summary`
    (the ``json`` format rewrites its file from memory, so it holds only the kept
    ones). Failures recorded again for the same run ID, by a later process say, are
    appended to the same log. Thread-safe. Use as a context manager, or call
    :meth:`close`, to release the log file.
    """

    def __init__(
        self,
        run_id: str | None = None,
        user_id: str | None = None,
        runtime_dir: str | os.PathLike[str] | None = None,
        *,
        log_format: LogFormat | None = None,
        pipeline: Pipeline | None = None,
        settings: TrackingSettings | None = None,
        max_records: int = _DEFAULT_MAX_RECORDS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if settings is None:
            settings = TrackingSettings.from_env()
        elif not isinstance(settings, TrackingSettings):
            raise ConfigurationError(f"settings must be a TrackingSettings, got {settings!r}")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 0:
            raise ConfigurationError(f"max_records must be an integer >= 0, got {max_records!r}")
        scope = current_scope()
        self.run_id: str = _check_id(
            run_id if run_id is not None else scope.run_id or new_id("run-"), "run_id"
        )
        user = user_id if user_id is not None else scope.user_id
        self.user_id: str | None = None if user is None else _check_id(user, "user_id")
        self.settings = settings
        self.log_format: LogFormat = check_log_format(
            settings.failure_log_format if log_format is None else log_format, "log_format"
        )
        if runtime_dir is not None:
            if not isinstance(runtime_dir, str | os.PathLike) or not os.fspath(runtime_dir):
                raise ConfigurationError(
                    f"runtime_dir must be a directory path or None, got {runtime_dir!r}"
                )
            log_dir = Path(runtime_dir) / "logs"
        elif settings.failure_log_dir is not None:
            log_dir = settings.failure_log_dir
        else:
            log_dir = keel_home() / "logs"
        self.log_path: Path = log_dir / f"failures_{log_file_stem(self.run_id)}.{self.log_format}"
        self._log: JsonlLog | JsonLog = (
            JsonlLog(self.log_path) if self.log_format == "jsonl" else JsonLog(self.log_path)
        )
        self._pipeline = pipeline
        self._clock = clock
        self._max_records = max_records
        # Failure IDs: one random prefix per tracker and a counter, rather than a
        # urandom syscall per failure; 48 random bits keep trackers apart.
        self._id_prefix = new_id("f-", 6) + "-"
        self._id_counter = itertools.count(1)
        self._lock = threading.Lock()
        self._records: list[FailureRecord] = []
        self._index: dict[str, int] = {}
        self._tally = Tally()
        self._not_kept = 0
        self._recovered_not_kept: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"FailureTracker(run_id={self.run_id!r}, failures={self._tally.total}, "
            f"log_path={str(self.log_path)!r})"
        )

    @property
    def enabled(self) -> bool:
        """False when ``settings.track_failures`` is off: failures are then not kept."""
        return self.settings.track_failures

    @property
    def failures(self) -> list[FailureRecord]:
        """The kept failures in the order they were recorded (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def total_failures(self) -> int:
        return self._tally.total

    def record_failure(
        self,
        error: BaseException | None = None,
        *,
        category: Category | str | None = None,
        severity: Severity | str | int | None = None,
        graph_node: str | None = None,
        tool_name: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        latency_ms: float | None = None,
        recovered: bool = False,
        recovery_action: str | None = None,
        tags: Iterable[str] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> FailureRecord:
        """Record one failure and return its record.

        What is not given is worked out from ``error``: the category and severity by
        :func:`classify_error`, the type and message from the exception. A category
        given without a severity gets that category's usual severity. Category and
        severity accept the enums or their names; anything else raises
        ConfigurationError.
        """
        record = self._build(
            error,
            category=category,
            severity=severity,
            graph_node=graph_node,
            tool_name=tool_name,
            error_type=error_type,
            error_message=error_message,
            latency_ms=latency_ms,
            recovered=recovered,
            recovery_action=recovery_action,
            tags=tags,
            attributes=attributes,
        )
        if not self.enabled:
            return record
        with self._lock:
            if len(self._records) < self._max_records:
                self._index[record.failure_id] = len(self._records)
                self._records.append(record)
            else:
                self._not_kept += 1
            self._tally.add(record)
            log_error = self._write(self._log.record, record)
        if error is not None:
            _mark_recorded(error, self, record.failure_id)
        self._emit(EventType.FAILURE, record, failure_event_attributes(record))
        if log_error is not None:
            _internal.report_internal_error("tracking.log", log_error)
        return record

    def _build(
        self,
        error: BaseException | None,
        *,
        category: Category | str | None,
        severity: Severity | str | int | None,
        graph_node: str | None,
        tool_name: str | None,
        error_type: str | None,
        error_message: str | None,
        latency_ms: float | None,
        recovered: bool,
        recovery_action: str | None,
        tags: Iterable[str],
        attributes: Mapping[str, Any] | None,
    ) -> FailureRecord:
        if error is not None and not isinstance(error, BaseException):
            raise ConfigurationError(
                f"error must be an exception or None, got {type(error).__name__}: "
                "pass a description as error_message="
            )
        if category is not None:
            cat = Category.parse(category)
            sev = DEFAULT_SEVERITY[cat]
        elif error is not None:
            found = classify_error(error)
            cat, sev = found.category, found.severity
        else:
            cat, sev = Category.UNKNOWN, DEFAULT_SEVERITY[Category.UNKNOWN]
        if severity is not None:
            sev = _parse_severity(severity)
        if isinstance(tags, str):
            raise ConfigurationError("tags must be a list of strings, not one string")
        if latency_ms is not None:
            if isinstance(latency_ms, bool) or not isinstance(latency_ms, int | float):
                raise ConfigurationError(f"latency_ms must be a number, got {latency_ms!r}")
            if not (math.isfinite(latency_ms) and latency_ms >= 0):
                raise ConfigurationError(f"latency_ms must be >= 0 and finite, got {latency_ms!r}")
        if attributes is not None and not isinstance(attributes, Mapping):
            raise ConfigurationError(
                f"attributes must be a mapping, got {type(attributes).__name__}"
            )
        if error_type is None:
            error_type = type(error).__name__ if error is not None else ""
        if error_message is None:
            error_message = _safe_str(error) if error is not None else ""
        error_message = truncate(str(error_message), MAX_STRING)
        node = None if graph_node is None else str(graph_node)
        tool = None if tool_name is None else str(tool_name)
        return FailureRecord(
            failure_id=f"{self._id_prefix}{next(self._id_counter):x}",
            run_id=self.run_id,
            timestamp=self._clock.wall(),
            category=cat.value,
            severity=sev.name.lower(),
            error_type=str(error_type),
            error_message=error_message,
            user_id=self.user_id,
            graph_node=node,
            tool_name=tool,
            latency_ms=None if latency_ms is None else float(latency_ms),
            recovered=bool(recovered),
            recovery_action=None if recovery_action is None else str(recovery_action),
            tags=tuple(str(t) for t in tags),
            fingerprint=fingerprint(str(error_type), cat.value, node, tool, error_message),
            # Made JSON-safe now, so the record in memory equals the one read back from
            # the log and the store: odd objects become reprs, huge values are cut.
            attributes=from_json(to_json(bound(dict(attributes)))) if attributes else {},
        )

    def mark_recovered(
        self, failure_or_id: FailureRecord | str, recovery_action: str | None = None
    ) -> FailureRecord:
        """Mark a recorded failure as recovered; returns the updated record.

        Marking a failure twice keeps the first recovery. An ID this tracker never
        recorded raises LookupError. (If tracking is off, or the failure was past
        ``max_records``, the tracker cannot look it up and returns a stand-in record.)
        """
        fid = (
            failure_or_id.failure_id if isinstance(failure_or_id, FailureRecord) else failure_or_id
        )
        if not isinstance(fid, str):
            raise ConfigurationError(f"expected a FailureRecord or a failure ID, got {fid!r}")
        action = None if recovery_action is None else str(recovery_action)
        with self._lock:
            index = self._index.get(fid)
            if index is not None:
                current = self._records[index]
                if current.recovered:
                    return current
                updated = replace(current, recovered=True, recovery_action=action)
                self._records[index] = updated
            elif self.enabled and not self._not_kept:
                raise LookupError(
                    f"no failure {fid!r} in run {self.run_id!r}: pass a record or ID "
                    "returned by this tracker's record_failure()"
                )
            else:
                updated = self._stand_in(failure_or_id, action)
                if not self.enabled:
                    return updated
                if fid in self._recovered_not_kept:
                    return updated
                self._recovered_not_kept.add(fid)
            self._tally.recovered += 1
            log_error = self._write(self._log.recover, updated)
        attrs = {"failure_id": fid, "recovery_action": action}
        self._emit(EventType.FAILURE_RECOVERED, updated, attrs, Severity.LOW)
        if log_error is not None:
            _internal.report_internal_error("tracking.log", log_error)
        return updated

    def _stand_in(self, failure_or_id: FailureRecord | str, action: str | None) -> FailureRecord:
        if isinstance(failure_or_id, FailureRecord):
            return replace(failure_or_id, recovered=True, recovery_action=action)
        return FailureRecord(
            failure_id=failure_or_id,
            run_id=self.run_id,
            timestamp=self._clock.wall(),
            category=Category.UNKNOWN.value,
            severity=Severity.MEDIUM.name.lower(),
            error_type="",
            error_message="",
            user_id=self.user_id,
            recovered=True,
            recovery_action=action,
        )

    def _write(self, write: Any, record: FailureRecord) -> OSError | None:
        # Called under the lock, so lines and rewrites follow the order of the records.
        try:
            write(record, self._records)
        except OSError as exc:
            return exc
        return None

    def _emit(
        self,
        type_: EventType,
        record: FailureRecord,
        attributes: dict[str, Any],
        severity: Severity | None = None,
    ) -> None:
        try:
            pipeline = self._pipeline if self._pipeline is not None else get_pipeline()
            pipeline.emit(
                type_,
                name=record.tool_name or record.graph_node or record.error_type,
                severity=Severity[record.severity.upper()] if severity is None else severity,
                category=record.category,
                attributes=attributes,
                run_id=self.run_id,
            )
        except Exception as exc:  # noqa: BLE001 - telemetry must not break the agent
            _internal.report_internal_error("tracking.emit", exc)

    def get_summary(self) -> dict[str, Any]:
        """Counts of this run's failures.

        Keys: ``run_id``, ``user_id``, ``total_failures``, ``by_severity`` (low, medium,
        high and critical, always all four), ``by_category``, ``by_node`` and
        ``by_tool`` (most frequent first; failures without a node or tool are not
        counted there), ``recovered`` and ``recovery_rate`` (a percentage).
        """
        with self._lock:
            return self._tally.summary(run_id=self.run_id, user_id=self.user_id)

    def generate_report(self, *, limit: int | None = None) -> str:
        """The plain-text failure report; ``limit`` caps how many failures are itemised."""
        with self._lock:
            records = list(self._records)
            tally = self._tally.copy()
        return text_report(
            records, run_id=self.run_id, user_id=self.user_id, limit=limit, tally=tally
        )

    def close(self) -> None:
        """Release the log file. Recording afterwards reopens it."""
        with self._lock:
            self._log.close()

    def __enter__(self) -> FailureTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -------------------------------------------------------- already-recorded errors
# One exception is one failure, even when a tool wrapper and the node around it both
# see it. Builtin exceptions take no weak references, so the mark is an attribute.
_MARK = "_agentkeel_failure"
_CAUSE_DEPTH = 8


def _mark_recorded(error: BaseException, tracker: FailureTracker, failure_id: str) -> None:
    # An exception that refuses attributes is simply not marked.
    with contextlib.suppress(Exception):
        setattr(error, _MARK, (tracker, failure_id))


def recorded_failure(error: BaseException) -> tuple[FailureTracker, str] | None:
    """The tracker and failure ID that ``error``, or an exception it was raised ``from``,
    was recorded as; ``None`` if it was not recorded."""
    current: BaseException | None = error
    for _ in range(_CAUSE_DEPTH):
        if current is None:
            return None
        try:
            mark = getattr(current, _MARK, None)
        except Exception:  # noqa: BLE001 - an odd __getattr__ means "not marked"
            mark = None
        if isinstance(mark, tuple) and len(mark) == 2 and isinstance(mark[0], FailureTracker):
            return mark[0], str(mark[1])
        current = current.__cause__
    return None


# ---------------------------------------------------------------- current tracker
_context_tracker: ContextVar[FailureTracker | None] = ContextVar(
    "agentkeel_failure_tracker", default=None
)
_global_tracker: FailureTracker | None = None
_defaults: OrderedDict[str, FailureTracker] = OrderedDict()
_defaults_lock = threading.Lock()
_MAX_DEFAULTS = 32


def set_failure_tracker(tracker: FailureTracker | None) -> None:
    """Make ``tracker`` the process-wide tracker (``None`` goes back to the defaults)."""
    global _global_tracker  # noqa: PLW0603 - the documented process-wide tracker
    if tracker is not None and not isinstance(tracker, FailureTracker):
        raise ConfigurationError(f"expected a FailureTracker or None, got {tracker!r}")
    _global_tracker = tracker


def process_failure_tracker() -> FailureTracker | None:
    """The tracker set with :func:`set_failure_tracker`, if any (to put it back later)."""
    return _global_tracker


def get_failure_tracker() -> FailureTracker:
    """The tracker failures should go to (see the module docs for the order)."""
    tracker = _context_tracker.get()
    if tracker is not None:
        return tracker
    tracker = _global_tracker
    if tracker is not None:
        return tracker
    run_id = current_scope().run_id
    key = run_id or ""
    with _defaults_lock:
        tracker = _defaults.get(key)
        if tracker is not None:
            _defaults.move_to_end(key)
            return tracker
        tracker = FailureTracker(run_id=run_id)
        _defaults[key] = tracker
        while len(_defaults) > _MAX_DEFAULTS:
            _, evicted = _defaults.popitem(last=False)
            evicted.close()
        return tracker


@contextmanager
def use_failure_tracker(tracker: FailureTracker) -> Iterator[FailureTracker]:
    """Make ``tracker`` current in this context (thread or task) for the ``with`` block."""
    if not isinstance(tracker, FailureTracker):
        raise ConfigurationError(f"expected a FailureTracker, got {tracker!r}")
    token = _context_tracker.set(tracker)
    try:
        yield tracker
    finally:
        _context_tracker.reset(token)


def _reset_default_trackers() -> None:
    """Forget the process-wide and default trackers (for tests)."""
    global _global_tracker  # noqa: PLW0603
    _global_tracker = None
    with _defaults_lock:
        for tracker in _defaults.values():
            tracker.close()
        _defaults.clear()
