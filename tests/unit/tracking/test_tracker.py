from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import agentkeel
from agentkeel import ConfigurationError, _internal
from agentkeel.events import Category, EventType, Severity, failure_from_event
from agentkeel.pipeline import Pipeline
from agentkeel.tracking import (
    FailureTracker,
    TrackingSettings,
    get_failure_tracker,
    read_failure_log,
    set_failure_tracker,
    use_failure_tracker,
)

if TYPE_CHECKING:
    from conftest import CapturedEvents


class FakeClock:
    def __init__(self, wall: float = 1_771_151_445.123) -> None:
        self.now = wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        self.now += 1.0
        return self.now


def test_record_from_exception_is_classified(tracker: FailureTracker) -> None:
    record = tracker.record_failure(
        TimeoutError("Weather API timeout after 8 seconds"),
        graph_node="executor",
        tool_name="weather_summary",
        latency_ms=8034.5,
        tags=["weather", "timeout"],
    )
    assert record.category == "timeout"
    assert record.severity == "high"
    assert record.error_type == "TimeoutError"
    assert record.error_message == "Weather API timeout after 8 seconds"
    assert record.run_id == "run-test"
    assert record.user_id == "user-1"
    assert record.tags == ("weather", "timeout")
    assert record.latency_ms == 8034.5
    assert len(record.fingerprint) == 12
    assert tracker.failures == [record]


def test_explicit_values_override_classification(tracker: FailureTracker) -> None:
    record = tracker.record_failure(
        ValueError("x"), category="network", severity="critical", error_type="Custom"
    )
    assert (record.category, record.severity, record.error_type) == (
        "network",
        "critical",
        "Custom",
    )
    # A category alone brings that category's usual severity.
    assert tracker.record_failure(category=Category.RESOURCE).severity == "critical"
    assert tracker.record_failure(severity=Severity.LOW).category == "unknown"
    described = tracker.record_failure(category="validation", error_message="Invalid date format")
    assert described.error_type == ""
    assert described.error_message == "Invalid date format"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"category": "sideways"},
        {"severity": "apocalyptic"},
        {"severity": "info"},
        {"tags": "one-string"},
        {"latency_ms": -1.0},
        {"latency_ms": float("nan")},
        {"latency_ms": "fast"},
        {"attributes": ["not", "a", "mapping"]},
    ],
)
def test_bad_arguments_raise_configuration_error(tracker: FailureTracker, kwargs: dict) -> None:
    with pytest.raises(ConfigurationError):
        tracker.record_failure(**kwargs)
    assert tracker.failures == []


def test_bad_category_error_lists_the_allowed_values(tracker: FailureTracker) -> None:
    with pytest.raises(ConfigurationError, match="rate_limit"):
        tracker.record_failure(category="sideways")


def test_error_must_be_an_exception(tracker: FailureTracker) -> None:
    with pytest.raises(ConfigurationError, match="error_message="):
        tracker.record_failure("a string")  # type: ignore[arg-type]


def test_summary(tracker: FailureTracker) -> None:
    assert tracker.get_summary() == {
        "run_id": "run-test",
        "user_id": "user-1",
        "total_failures": 0,
        "by_severity": {"low": 0, "medium": 0, "high": 0, "critical": 0},
        "by_category": {},
        "by_node": {},
        "by_tool": {},
        "recovered": 0,
        "recovery_rate": 0.0,
    }
    a = tracker.record_failure(TimeoutError(), graph_node="executor", tool_name="weather")
    tracker.record_failure(ConnectionError(), graph_node="executor", severity="medium")
    tracker.record_failure(ValueError(), graph_node="intent_parser")
    tracker.record_failure(ValueError(), graph_node="executor", recovered=True, recovery_action="r")
    tracker.mark_recovered(a, "retried")
    summary = tracker.get_summary()
    assert summary["total_failures"] == 4
    assert summary["by_severity"] == {"low": 0, "medium": 3, "high": 1, "critical": 0}
    assert summary["by_category"] == {"validation": 2, "network": 1, "timeout": 1}
    assert summary["by_node"] == {"executor": 3, "intent_parser": 1}
    assert summary["by_tool"] == {"weather": 1}
    assert summary["recovered"] == 2
    assert summary["recovery_rate"] == 50.0


def test_mark_recovered(tracker: FailureTracker, events: CapturedEvents) -> None:
    record = tracker.record_failure(ConnectionError("down"), tool_name="hotels")
    updated = tracker.mark_recovered(record.failure_id, "used cached hotels")
    assert updated.recovered
    assert updated.recovery_action == "used cached hotels"
    assert tracker.failures == [updated]
    # Marking again keeps the first recovery and emits nothing new.
    assert tracker.mark_recovered(record, "something else") == updated
    recovered = events.of_type(EventType.FAILURE_RECOVERED)
    assert len(recovered) == 1
    assert recovered[0].attributes == {
        "failure_id": record.failure_id,
        "recovery_action": "used cached hotels",
    }
    assert recovered[0].run_id == "run-test"
    assert recovered[0].name == "hotels"


def test_mark_recovered_unknown_id(tracker: FailureTracker) -> None:
    with pytest.raises(LookupError, match="record_failure"):
        tracker.mark_recovered("f-nope", "x")


def test_failure_events(tracker: FailureTracker, events: CapturedEvents) -> None:
    record = tracker.record_failure(
        TimeoutError("slow"),
        graph_node="executor",
        tool_name="weather",
        attributes={"city": "Paris"},
    )
    (event,) = events.of_type(EventType.FAILURE)
    assert event.run_id == "run-test"
    assert event.name == "weather"
    assert event.severity == Severity.HIGH
    assert event.category == "timeout"
    assert failure_from_event(event).to_dict() == {**record.to_dict(), "timestamp": event.timestamp}


def test_run_and_user_default_to_the_current_run(tmp_path: Path) -> None:
    with agentkeel.run("plan-trip", user_id="u-42") as scope:
        tracker = FailureTracker(runtime_dir=tmp_path, settings=TrackingSettings())
    assert tracker.run_id == scope.run_id
    assert tracker.user_id == "u-42"
    fresh = FailureTracker(runtime_dir=tmp_path, settings=TrackingSettings())
    assert fresh.run_id.startswith("run-")
    assert fresh.user_id is None


def test_log_path_layout(tmp_path: Path) -> None:
    tracker = FailureTracker(run_id="run-1", runtime_dir=tmp_path, settings=TrackingSettings())
    assert tracker.log_path == tmp_path / "logs" / "failures_run-1.jsonl"
    json_tracker = FailureTracker(
        run_id="run-1", runtime_dir=tmp_path, log_format="json", settings=TrackingSettings()
    )
    assert json_tracker.log_path == tmp_path / "logs" / "failures_run-1.json"
    by_settings = FailureTracker(
        run_id="run-1", settings=TrackingSettings(failure_log_dir=tmp_path / "elsewhere")
    )
    assert by_settings.log_path == tmp_path / "elsewhere" / "failures_run-1.jsonl"
    default = FailureTracker(run_id="run-1", settings=TrackingSettings())
    assert default.log_path == agentkeel.store.keel_home() / "logs" / "failures_run-1.jsonl"


def test_run_id_is_sanitised_for_the_file_name(tmp_path: Path) -> None:
    a = FailureTracker(run_id="../../etc/passwd", runtime_dir=tmp_path, settings=TrackingSettings())
    b = FailureTracker(run_id="__.._etc_passwd", runtime_dir=tmp_path, settings=TrackingSettings())
    assert a.log_path.parent == tmp_path / "logs"
    assert "/" not in a.log_path.name
    assert a.log_path != b.log_path
    assert a.run_id == "../../etc/passwd"  # the ID itself is kept as given


@pytest.mark.parametrize("run_id", ["", "   ", "x" * 201, "a\nb", 12])
def test_bad_run_id(tmp_path: Path, run_id: object) -> None:
    with pytest.raises(ConfigurationError, match="run_id"):
        FailureTracker(run_id=run_id, runtime_dir=tmp_path)  # type: ignore[arg-type]


def test_bad_log_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'jsonl', 'json'"):
        FailureTracker(runtime_dir=tmp_path, log_format="xml")  # type: ignore[arg-type]


def test_disabled_tracker_keeps_nothing(tmp_path: Path, events: CapturedEvents) -> None:
    tracker = FailureTracker(
        run_id="off", runtime_dir=tmp_path, settings=TrackingSettings(track_failures=False)
    )
    record = tracker.record_failure(TimeoutError())
    assert record.category == "timeout"
    assert tracker.mark_recovered(record.failure_id, "x").recovered
    assert tracker.failures == []
    assert tracker.get_summary()["total_failures"] == 0
    assert not tracker.log_path.exists()
    assert events.of_type(EventType.FAILURE) == []


def test_max_records_keeps_counting(tmp_path: Path) -> None:
    tracker = FailureTracker(
        run_id="cap", runtime_dir=tmp_path, settings=TrackingSettings(), max_records=2
    )
    records = [tracker.record_failure(ValueError(str(i))) for i in range(5)]
    assert tracker.failures == records[:2]
    assert tracker.get_summary()["total_failures"] == 5
    assert len(read_failure_log(tracker.log_path)) == 5
    # A failure past the cap can still be marked recovered, once.
    tracker.mark_recovered(records[4], "retry")
    tracker.mark_recovered(records[4], "retry")
    assert tracker.get_summary()["recovered"] == 1
    assert read_failure_log(tracker.log_path)[4].recovered
    assert "3 more failure(s)" in tracker.generate_report()


def test_thread_safety(tracker: FailureTracker) -> None:
    def work() -> None:
        for i in range(200):
            record = tracker.record_failure(ConnectionError(f"down {i}"), graph_node="n")
            if i % 2:
                tracker.mark_recovered(record, "retry")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = tracker.get_summary()
    assert summary["total_failures"] == 1600
    assert summary["recovered"] == 800
    assert summary["recovery_rate"] == 50.0
    records = read_failure_log(tracker.log_path)
    assert len(records) == 1600
    assert sum(r.recovered for r in records) == 800
    assert len({r.failure_id for r in records}) == 1600


def test_repeats_share_a_fingerprint(tracker: FailureTracker) -> None:
    a = tracker.record_failure(TimeoutError("timed out after 8034 ms"), tool_name="weather")
    b = tracker.record_failure(TimeoutError("timed out after 12 ms"), tool_name="weather")
    c = tracker.record_failure(TimeoutError("timed out after 12 ms"), tool_name="hotels")
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_huge_message_is_truncated_with_a_marker(tracker: FailureTracker) -> None:
    record = tracker.record_failure(RuntimeError("x" * 1_000_000))
    assert len(record.error_message) < 10_000
    assert record.error_message.endswith("…[truncated 991808 chars]")
    assert read_failure_log(tracker.log_path)[0].error_message == record.error_message


def test_odd_attributes_become_json_safe(tracker: FailureTracker) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    class BrokenRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    record = tracker.record_failure(
        ValueError(),
        attributes={"obj": Opaque(), "broken": BrokenRepr(), "set": {3, 1}, 7: "int key"},
    )
    assert record.attributes["obj"] == "<Opaque>"
    assert "repr failed" in record.attributes["broken"]
    assert record.attributes["7"] == "int key"
    (read_back,) = read_failure_log(tracker.log_path)
    assert read_back == record


def test_broken_str_does_not_break_recording(tracker: FailureTracker) -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = tracker.record_failure(Broken())
    assert "str() failed" in record.error_message


def test_report_uses_the_clock(tmp_path: Path) -> None:
    tracker = FailureTracker(
        run_id="r", runtime_dir=tmp_path, settings=TrackingSettings(), clock=FakeClock()
    )
    tracker.record_failure(TimeoutError("t"))
    assert "[10:30:46.123]" in tracker.generate_report()


# ------------------------------------------------------------------ current tracker


def test_get_failure_tracker_defaults_to_one_per_run(tmp_path: Path) -> None:
    outside = get_failure_tracker()
    assert get_failure_tracker() is outside
    with agentkeel.run("a") as scope:
        inside = get_failure_tracker()
        assert inside is get_failure_tracker()
        assert inside.run_id == scope.run_id
    assert inside is not outside
    assert get_failure_tracker() is outside


def test_set_failure_tracker_wins_over_defaults(tracker: FailureTracker) -> None:
    set_failure_tracker(tracker)
    try:
        with agentkeel.run("a"):
            assert get_failure_tracker() is tracker
    finally:
        set_failure_tracker(None)
    assert get_failure_tracker() is not tracker


def test_use_failure_tracker_is_context_local(tmp_path: Path, tracker: FailureTracker) -> None:
    other = FailureTracker(run_id="other", runtime_dir=tmp_path, settings=TrackingSettings())
    set_failure_tracker(tracker)
    seen: list[FailureTracker] = []
    try:
        with use_failure_tracker(other):
            assert get_failure_tracker() is other
            thread = threading.Thread(target=lambda: seen.append(get_failure_tracker()))
            thread.start()
            thread.join()
        assert get_failure_tracker() is tracker
    finally:
        set_failure_tracker(None)
    assert seen == [tracker]  # a plain thread does not inherit the context


def test_set_failure_tracker_rejects_other_objects() -> None:
    with pytest.raises(ConfigurationError):
        set_failure_tracker("tracker")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ edges


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"settings": {"track_failures": True}}, "TrackingSettings"),
        ({"max_records": -1}, "max_records"),
        ({"max_records": True}, "max_records"),
        ({"runtime_dir": 3}, "runtime_dir"),
        ({"runtime_dir": ""}, "runtime_dir"),
        ({"user_id": ""}, "user_id"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FailureTracker(**kwargs)


def test_repr_and_total(tracker: FailureTracker) -> None:
    tracker.record_failure(ValueError())
    assert tracker.total_failures == 1
    assert "run-test" in repr(tracker)
    assert "failures=1" in repr(tracker)


def test_mark_recovered_needs_a_record_or_id(tracker: FailureTracker) -> None:
    with pytest.raises(ConfigurationError):
        tracker.mark_recovered(42, "x")  # type: ignore[arg-type]


def test_emit_errors_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def emit(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("pipeline bug")

    tracker = FailureTracker(
        run_id="e",
        runtime_dir=tmp_path,
        settings=TrackingSettings(),
        pipeline=Broken(),  # type: ignore[arg-type]
    )
    with pytest.raises(RuntimeError, match="pipeline bug"):
        tracker.record_failure(ValueError())
    monkeypatch.setattr(_internal, "_strict", False)
    tracker.record_failure(ValueError())
    assert tracker.total_failures == 2
    assert len(read_failure_log(tracker.log_path)) == 2


def test_explicit_pipeline_receives_the_events(tmp_path: Path) -> None:
    got: list[Any] = []
    pipeline = Pipeline(sinks=[got.extend])
    tracker = FailureTracker(
        run_id="p", runtime_dir=tmp_path, settings=TrackingSettings(), pipeline=pipeline
    )
    tracker.record_failure(ValueError())
    assert pipeline.close()
    assert [e.type for e in got] == [EventType.FAILURE]


def test_exceptions_that_refuse_attributes_are_still_recorded(tracker: FailureTracker) -> None:
    class Frozen(Exception):
        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError("frozen")

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("odd")

    error = Frozen("x")
    tracker.record_failure(error)
    tracker.record_failure(error)  # not marked, so it counts again
    assert tracker.total_failures == 2


def test_default_trackers_are_bounded() -> None:
    from agentkeel.tracking import _tracker

    first = None
    for i in range(_tracker._MAX_DEFAULTS + 2):
        with agentkeel.run(f"r{i}"):
            tracker = get_failure_tracker()
            first = first or tracker
    assert len(_tracker._defaults) == _tracker._MAX_DEFAULTS
    assert first not in _tracker._defaults.values()


def test_use_failure_tracker_rejects_other_objects() -> None:
    with pytest.raises(ConfigurationError), use_failure_tracker("t"):  # type: ignore[arg-type]
        pass
