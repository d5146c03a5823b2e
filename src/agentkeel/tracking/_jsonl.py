"""The per-run failure log on disk, and reading it back.

JSONL (the default) is crash-safe: each failure is one line written with a single
``os.write`` on a file opened with ``O_APPEND``, so a killed process leaves every
completed line intact and at most one torn line at the end, which the reader skips.
Lines are never rewritten, so one line is one failure; recoveries marked later go to
a sidecar file ``failures_<run>.recoveries.jsonl`` that the reader merges.

The JSON format keeps one array in one file, rewritten through a temporary file and
``os.replace`` after each change: readers never see half a file, but every change
costs a rewrite of the whole run, so it suits small runs and tools that want one
document. Neither format fsyncs: they survive the process dying, not the machine
losing power (the store is the durable record).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from agentkeel._encoding import from_json, to_json
from agentkeel.events import FailureRecord

__all__ = ["CorruptLogWarning", "JsonLog", "JsonlLog", "read_failure_log", "recoveries_path"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class CorruptLogWarning(UserWarning):
    """A failure log had a torn or unreadable line, which was skipped."""


def recoveries_path(log_path: Path) -> Path:
    """``failures_x.jsonl`` → ``failures_x.recoveries.jsonl``."""
    return log_path.with_name(f"{log_path.stem}.recoveries.jsonl")


class _AppendFile:
    """One append-only file. The descriptor is opened on first write and kept open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        # After a short or failed write the file may end mid-line: the next line then
        # starts with a newline so that only the torn line is lost, not its successor.
        self._torn = False
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def append(self, line: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, _OPEN_FLAGS, 0o644)
            self._finalizer = weakref.finalize(self, _close_fd, self._fd)
        data = b"\n" + line if self._torn else line
        try:
            written = os.write(self._fd, data)
        except OSError:
            self._torn = True
            self.close()
            raise
        if written != len(data):
            # Regular files only write short when the disk fills up: finish the line if we
            # can, so the record survives; if not, the reader will skip the torn end.
            self._torn = True
            try:
                while written < len(data):
                    written += os.write(self._fd, data[written:])
            except OSError:
                self.close()
                raise
        self._torn = False

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._fd = None


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class JsonlLog:
    """Writes ``failures_<run>.jsonl`` and its recoveries sidecar."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failures = _AppendFile(path)
        self._recoveries = _AppendFile(recoveries_path(path))

    def record(self, record: FailureRecord, records: Sequence[FailureRecord]) -> None:
        # msgspec encodes the frozen dataclass directly, in field order: the same JSON
        # as record.to_dict(), without dataclasses.asdict's deep copy (most of the cost).
        self._failures.append(to_json(record) + b"\n")

    def recover(self, record: FailureRecord, records: Sequence[FailureRecord]) -> None:
        line = {
            "failure_id": record.failure_id,
            "recovery_action": record.recovery_action,
            "recovered": True,
        }
        self._recoveries.append(to_json(line) + b"\n")

    def close(self) -> None:
        self._failures.close()
        self._recoveries.close()


class JsonLog:
    """Writes ``failures_<run>.json``: the whole array, replaced atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, record: FailureRecord, records: Sequence[FailureRecord]) -> None:
        self._rewrite(records)

    def recover(self, record: FailureRecord, records: Sequence[FailureRecord]) -> None:
        self._rewrite(records)

    def _rewrite(self, records: Sequence[FailureRecord]) -> None:
        data = to_json(list(records))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, self.path)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise

    def close(self) -> None:
        return None


def read_failure_log(path: str | os.PathLike[str]) -> list[FailureRecord]:
    """The failures in a log written by :class:`FailureTracker`, in recorded order.

    Reads both formats (a ``.json`` array or JSONL). For JSONL, torn or corrupt
    lines, such as the last line of a killed process, are skipped with a
    :class:`CorruptLogWarning`, and recoveries from the sidecar file are merged in.
    Raises ``FileNotFoundError`` if there is no log at ``path``.
    """
    log_path = Path(path)
    data = log_path.read_bytes()
    if data.lstrip()[:1] == b"[":
        return _read_array(log_path, data)
    records = [r for r in _read_lines(log_path, data, _record_from_line) if r is not None]
    sidecar = recoveries_path(log_path)
    try:
        recovery_data = sidecar.read_bytes()
    except FileNotFoundError:
        return records
    recoveries: dict[str, str | None] = {}
    for entry in _read_lines(sidecar, recovery_data, _recovery_from_line):
        if entry is not None:
            recoveries[entry[0]] = entry[1]
    if not recoveries:
        return records
    return [
        _with_recovery(r, recoveries[r.failure_id] or r.recovery_action)
        if r.failure_id in recoveries
        else r
        for r in records
    ]


def _with_recovery(record: FailureRecord, action: str | None) -> FailureRecord:
    data = record.to_dict()
    data["recovered"] = True
    data["recovery_action"] = action
    return FailureRecord.from_dict(data)


def _read_array(path: Path, data: bytes) -> list[FailureRecord]:
    try:
        items = from_json(data)  # starts with "[": a list, or a decode error
    except msgspec.DecodeError as exc:
        warnings.warn(
            f"{path}: the failure log is not a readable JSON array ({exc}); no records read",
            CorruptLogWarning,
            stacklevel=3,
        )
        return []
    records = []
    for index, item in enumerate(items):
        try:
            records.append(_record_from_obj(item))
        except (TypeError, ValueError) as exc:
            warnings.warn(
                f"{path}: skipped unreadable record #{index + 1} ({exc})",
                CorruptLogWarning,
                stacklevel=3,
            )
    return records


def _read_lines(path: Path, data: bytes, parse: Any) -> list[Any]:
    lines = data.split(b"\n")
    out = []
    last = len(lines)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse(line))
        except (msgspec.DecodeError, TypeError, ValueError, KeyError) as exc:
            torn = number == last and not data.endswith(b"\n")
            reason = "torn last line, likely a write cut short" if torn else f"corrupt line: {exc}"
            warnings.warn(f"{path}:{number}: skipped a {reason}", CorruptLogWarning, stacklevel=4)
    return out


_REQUIRED_TEXT = ("failure_id", "run_id", "category", "severity", "error_type", "error_message")


def _record_from_obj(item: object) -> FailureRecord:
    if not isinstance(item, dict):
        raise TypeError(f"expected a JSON object, got {type(item).__name__}")
    # Check what the reports format, so a hand-edited log fails here, not mid-report.
    for key in _REQUIRED_TEXT:
        if not isinstance(item.get(key), str):
            raise TypeError(f"{key!r} must be a string")
    timestamp = item.get("timestamp")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        raise TypeError("'timestamp' must be a number")
    latency = item.get("latency_ms")
    if latency is not None and (not isinstance(latency, int | float) or isinstance(latency, bool)):
        raise TypeError("'latency_ms' must be a number or null")
    return FailureRecord.from_dict(item)


def _record_from_line(line: bytes) -> FailureRecord:
    return _record_from_obj(from_json(line))


def _recovery_from_line(line: bytes) -> tuple[str, str | None]:
    item = from_json(line)
    if not isinstance(item, dict) or not isinstance(item.get("failure_id"), str):
        raise TypeError("a recovery line needs a failure_id")
    action = item.get("recovery_action")
    return item["failure_id"], None if action is None else str(action)
