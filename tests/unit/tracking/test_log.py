from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from agentkeel import _internal
from agentkeel.tracking import (
    CorruptLogWarning,
    FailureTracker,
    TrackingSettings,
    read_failure_log,
)


def _tracker(tmp_path: Path, **kwargs: object) -> FailureTracker:
    return FailureTracker(
        run_id="run-log",
        runtime_dir=tmp_path,
        settings=TrackingSettings(),
        **kwargs,  # type: ignore[arg-type]
    )


def test_one_line_per_failure_recoveries_in_the_sidecar(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    assert not tracker.log_path.exists()  # created with the first failure
    records = [tracker.record_failure(ConnectionError(f"down {i}")) for i in range(5)]
    tracker.mark_recovered(records[1], "retried")
    tracker.mark_recovered(records[3].failure_id, "fallback")
    tracker.close()
    lines = tracker.log_path.read_bytes().splitlines()
    assert len(lines) == tracker.get_summary()["total_failures"] == 5
    assert [json.loads(line)["failure_id"] for line in lines] == [r.failure_id for r in records]
    sidecar = tmp_path / "logs" / "failures_run-log.recoveries.jsonl"
    assert len(sidecar.read_bytes().splitlines()) == 2
    read_back = read_failure_log(tracker.log_path)
    assert read_back == tracker.failures
    assert [r.recovered for r in read_back] == [False, True, False, True, False]
    assert read_back[3].recovery_action == "fallback"


def test_json_format_is_one_array_rewritten_atomically(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path, log_format="json")
    a = tracker.record_failure(TimeoutError("slow"))
    tracker.record_failure(ValueError("bad"))
    tracker.mark_recovered(a, "retried")
    data = json.loads(tracker.log_path.read_text())
    assert isinstance(data, list)
    assert len(data) == 2
    assert data[0]["recovered"] is True
    assert read_failure_log(tracker.log_path) == tracker.failures
    assert [p.name for p in tracker.log_path.parent.iterdir()] == ["failures_run-log.json"]


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    for i in range(3):
        tracker.record_failure(ValueError(str(i)))
    tracker.close()
    with tracker.log_path.open("ab") as f:
        f.write(b'{"failure_id": "f-torn", "run_id": "run-lo')
    with pytest.warns(CorruptLogWarning, match="torn last line"):
        records = read_failure_log(tracker.log_path)
    assert len(records) == 3


def test_corrupt_middle_line_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    tracker.record_failure(ValueError("a"))
    tracker.close()
    with tracker.log_path.open("ab") as f:
        f.write(b"not json\n")
        f.write(b'{"failure_id": 1}\n')  # valid JSON, not a record
    tracker.record_failure(ValueError("b"))
    with pytest.warns(CorruptLogWarning) as caught:
        records = read_failure_log(tracker.log_path)
    assert [r.error_message for r in records] == ["a", "b"]
    assert len(caught) == 2
    assert ":2:" in str(caught[0].message)


def test_a_torn_write_costs_only_its_own_line(tmp_path: Path) -> None:
    # Simulate a write cut short by a full disk: the next record must start on a new
    # line, or it would be glued to the torn one and lost with it.
    tracker = _tracker(tmp_path)
    tracker.record_failure(ValueError("a"))
    writer = tracker._log._failures  # type: ignore[union-attr]
    real_write = os.write
    calls = {"n": 0}

    def short_then_fail(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, data[:10])
        raise OSError(28, "No space left on device")

    _internal.set_strict(False)
    try:
        os.write = short_then_fail  # type: ignore[assignment]
        try:
            tracker.record_failure(ValueError("torn"))
        finally:
            os.write = real_write
    finally:
        _internal.set_strict(True)
    assert writer._torn
    tracker.record_failure(ValueError("c"))
    with pytest.warns(CorruptLogWarning):
        records = read_failure_log(tracker.log_path)
    assert [r.error_message for r in records] == ["a", "c"]


def test_missing_log_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_failure_log(tmp_path / "nope.jsonl")


def test_unreadable_json_array_warns(tmp_path: Path) -> None:
    path = tmp_path / "failures_x.json"
    path.write_text("[{]")
    with pytest.warns(CorruptLogWarning, match="not a readable JSON array"):
        assert read_failure_log(path) == []


# ------------------------------------------------------------------- disk errors


def _unwritable(tmp_path: Path) -> Path:
    """A directory that cannot be created, even as root: its parent is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    return blocker / "runtime"


@pytest.mark.parametrize("log_format", ["jsonl", "json"])
def test_unwritable_log_dir_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    monkeypatch.setattr(_internal, "_strict", False)
    before = _internal.internal_error_counts().get("tracking.log", 0)
    tracker = FailureTracker(
        run_id="r",
        runtime_dir=_unwritable(tmp_path),
        log_format=log_format,  # type: ignore[arg-type]
        settings=TrackingSettings(),
    )
    record = tracker.record_failure(TimeoutError("still recorded"))
    tracker.mark_recovered(record, "fine")
    assert tracker.get_summary()["total_failures"] == 1
    assert tracker.failures[0].recovered
    assert _internal.internal_error_counts()["tracking.log"] == before + 2


def test_unwritable_log_dir_logs_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_internal, "_strict", False)
    tracker = FailureTracker(
        run_id="r", runtime_dir=_unwritable(tmp_path), settings=TrackingSettings()
    )
    with caplog.at_level("WARNING", logger="agentkeel.internal"):
        tracker.record_failure(TimeoutError())
    assert "tracking.log" in caplog.text


def test_unwritable_log_dir_raises_in_strict_mode(tmp_path: Path) -> None:
    tracker = FailureTracker(
        run_id="r", runtime_dir=_unwritable(tmp_path), settings=TrackingSettings()
    )
    with pytest.raises(NotADirectoryError):
        tracker.record_failure(TimeoutError())
    # The failure was still counted before the disk error surfaced.
    assert tracker.get_summary()["total_failures"] == 1


# ---------------------------------------------------------------------- SIGKILL

_CHILD = textwrap.dedent(
    """
    import sys
    from agentkeel.tracking import FailureTracker, TrackingSettings

    tracker = FailureTracker(
        run_id="killed", runtime_dir=sys.argv[1], settings=TrackingSettings()
    )
    n = 0
    while True:
        # Big lines make a kill in the middle of a write likely.
        tracker.record_failure(ConnectionError("x" * 6000 + str(n)), tool_name="t")
        n += 1
        print(n, flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_sigkill_leaves_every_completed_line_readable(tmp_path: Path) -> None:
    env = {**os.environ, "KEEL_STORE": "none", "KEEL_STRICT": "0", "KEEL_HOME": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdout is not None
    recorded = 0
    deadline = time.monotonic() + 60
    try:
        while recorded < 300 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            recorded = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    # Lines printed after our last read were also recorded; read what is left.
    for line in child.stdout:
        recorded = int(line)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert recorded >= 300
    log = tmp_path / "logs" / "failures_killed.jsonl"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_failure_log(log)
    assert len(caught) <= 1  # at most one torn last line
    assert all(issubclass(w.category, CorruptLogWarning) for w in caught)
    assert len(records) >= recorded
    assert [r.error_message[6000:] for r in records] == [str(i) for i in range(len(records))]


# ------------------------------------------------------------------------ edges


def test_failed_write_reopens_the_file_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = _tracker(tmp_path)
    tracker.record_failure(ValueError("a"))
    real_write = os.write

    def failing(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_internal, "_strict", False)
    monkeypatch.setattr(os, "write", failing)
    tracker.record_failure(ValueError("lost"))
    monkeypatch.setattr(os, "write", real_write)
    tracker.record_failure(ValueError("c"))
    assert [r.error_message for r in read_failure_log(tracker.log_path)] == ["a", "c"]
    assert tracker.get_summary()["total_failures"] == 3


def test_json_rewrite_failure_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = _tracker(tmp_path, log_format="json")
    tracker.log_path.mkdir(parents=True)  # os.replace onto a directory fails
    monkeypatch.setattr(_internal, "_strict", False)
    tracker.record_failure(ValueError("x"))
    tracker.close()
    assert [p.name for p in tracker.log_path.parent.iterdir()] == ["failures_run-log.json"]


def test_empty_sidecar_and_corrupt_recovery_lines(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    tracker.record_failure(ValueError("a"))
    sidecar = tmp_path / "logs" / "failures_run-log.recoveries.jsonl"
    sidecar.write_bytes(b"\n")
    assert len(read_failure_log(tracker.log_path)) == 1
    sidecar.write_bytes(b'[1, 2]\n{"recovery_action": "no id"}\n')
    with pytest.warns(CorruptLogWarning):
        (record,) = read_failure_log(tracker.log_path)
    assert not record.recovered


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"timestamp": "noon"}, "'timestamp' must be a number"),
        ({"latency_ms": "fast"}, "'latency_ms' must be a number"),
        ({"latency_ms": True}, "'latency_ms' must be a number"),
        ({"severity": None}, "'severity' must be a string"),
    ],
)
def test_lines_with_wrong_types_are_skipped(tmp_path: Path, change: dict, reason: str) -> None:
    tracker = _tracker(tmp_path)
    good = tracker.record_failure(ValueError("a"))
    tracker.close()
    bad = {**good.to_dict(), **change}
    with tracker.log_path.open("ab") as f:
        f.write(json.dumps(bad).encode() + b"\n" + json.dumps([1]).encode() + b"\n")
    with pytest.warns(CorruptLogWarning) as caught:
        assert read_failure_log(tracker.log_path) == [good]
    assert len(caught) == 2
    assert reason in str(caught[0].message)
    assert "expected a JSON object, got list" in str(caught[1].message)


def test_unreadable_item_in_a_json_array(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path, log_format="json")
    good = tracker.record_failure(ValueError("a"))
    data = json.loads(tracker.log_path.read_text())
    tracker.log_path.write_text(json.dumps([*data, {"failure_id": "x"}, "text"]))
    with pytest.warns(CorruptLogWarning) as caught:
        assert read_failure_log(tracker.log_path) == [good]
    assert ["record #2" in str(w.message) for w in caught] == [True, False]
