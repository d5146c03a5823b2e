from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from agentkeel.tracking import (
    FailureTracker,
    TrackingSettings,
    display_failure_report,
    generate_report,
    read_failure_log,
    render_failure_report,
    summarize_failures,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_771_151_444.0  # 2026-02-15 10:30:44 UTC

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        self.now += 1.123
        return self.now


def _seeded(tmp_path: Path) -> FailureTracker:
    tracker = FailureTracker(
        run_id="run-1708000245",
        user_id="user-1",
        runtime_dir=tmp_path,
        settings=TrackingSettings(),
        clock=FakeClock(),
    )
    first = tracker.record_failure(
        TimeoutError("Weather API timeout after 8 seconds"),
        graph_node="executor",
        tool_name="weather_summary",
        latency_ms=8034.5,
        tags=["weather", "timeout", "paris"],
    )
    tracker.mark_recovered(first, "Step marked as blocked, orchestrator continues")
    tracker.record_failure(
        category="validation", error_message="Invalid date format", graph_node="intent_parser"
    )
    tracker.record_failure(
        ConnectionError("Hotel service unavailable"), graph_node="executor", severity="medium"
    )
    tracker.record_failure(
        ValueError("Missing required field 'destination'"),
        graph_node="executor",
        recovered=True,
        recovery_action="asked the user",
    )
    return tracker


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=140, color_system=None), buffer


def test_text_report_sections(tmp_path: Path) -> None:
    report = _seeded(tmp_path).generate_report()
    expected_in_order = [
        "FAILURE TRACKING REPORT",
        "Run ID: run-1708000245",
        "User ID: user-1",
        "Total Failures: 4",
        "Recovery Rate: 50.0% (2 of 4 recovered)",
        "BY CATEGORY",
        "Validation: 2 (2 medium)",
        "Network: 1 (1 medium)",
        "Timeout: 1 (1 high)",
        "BY SEVERITY",
        "Critical: 0",
        "High: 1",
        "Medium: 3",
        "Low: 0",
        "BY NODE",
        "executor: 3",
        "intent_parser: 1",
        "BY TOOL",
        "weather_summary: 1",
        "FAILURE TIMELINE",
        "[10:30:45.123] Timeout (HIGH) @ executor: TimeoutError - Weather API timeout after 8",
        "Validation (MEDIUM) @ intent_parser: Invalid date format",
        "Network (MEDIUM) @ executor: ConnectionError - Hotel service unavailable",
        "DETAILED RECORDS",
        "[Failure 1] Timeout (HIGH) @ executor",
        "  Error: TimeoutError - Weather API timeout after 8 seconds",
        "  Tool: weather_summary",
        "  Latency: 8034.5ms",
        "  Recovered: Yes",
        "  Recovery: Step marked as blocked, orchestrator continues",
        "  Tags: weather, timeout, paris",
        "  Time: 2026-02-15T10:30:45.123Z",
        "[Failure 2] Validation (MEDIUM) @ intent_parser",
        "  Recovered: No",
    ]
    position = 0
    for fragment in expected_in_order:
        found = report.find(fragment, position)
        assert found >= 0, f"{fragment!r} missing or out of order in:\n{report}"
        position = found + len(fragment)


def test_text_report_without_failures(tmp_path: Path) -> None:
    tracker = FailureTracker(run_id="calm", runtime_dir=tmp_path, settings=TrackingSettings())
    report = tracker.generate_report()
    assert "Total Failures: 0" in report
    assert "No failures recorded." in report
    assert "BY CATEGORY" not in report


def test_report_limit(tmp_path: Path) -> None:
    report = _seeded(tmp_path).generate_report(limit=1)
    assert "[Failure 2]" not in report
    assert "3 more failure(s) not itemised" in report


def test_report_from_the_log_matches_the_tracker(tmp_path: Path) -> None:
    tracker = _seeded(tmp_path)
    records = read_failure_log(tracker.log_path)
    assert generate_report(records) == tracker.generate_report()
    assert summarize_failures(records) == tracker.get_summary()


def test_rich_report(tmp_path: Path) -> None:
    tracker = _seeded(tmp_path)
    console, buffer = _console()
    display_failure_report(tracker.log_path, console=console)
    out = buffer.getvalue()
    for fragment in (
        "Failure report",
        "run-1708000245",
        "Total failures: 4",
        "Recovery rate: 50.0%",
        "By category",
        "By severity",
        "By node",
        "By tool",
        "Failure timeline",
        "Hotel service unavailable",
        "intent_parser",
    ):
        assert fragment in out, fragment
    assert "Failure 1:" not in out  # details only when verbose
    console, buffer = _console()
    display_failure_report(tracker.log_path, verbose=True, console=console)
    verbose = buffer.getvalue()
    assert "Failure 1:" in verbose
    assert "Step marked as blocked" in verbose
    assert "weather, timeout, paris" in verbose


def test_rich_report_shows_markup_literally(tmp_path: Path) -> None:
    tracker = FailureTracker(run_id="m", runtime_dir=tmp_path, settings=TrackingSettings())
    tracker.record_failure(
        ValueError("expected list[int], got [bold]oops[/bold]"), graph_node="[n]"
    )
    console, buffer = _console()
    render_failure_report(tracker.failures, console=console, verbose=True)
    out = buffer.getvalue()
    assert "[bold]oops[/bold]" in out
    assert "list[int]" in out
    assert "[n]" in out


def test_rich_report_without_failures() -> None:
    console, buffer = _console()
    render_failure_report([], run_id="calm", console=console)
    assert "No failures recorded." in buffer.getvalue()
    assert "calm" in buffer.getvalue()


def test_missing_log_is_one_clear_line(tmp_path: Path) -> None:
    console, buffer = _console()
    display_failure_report(tmp_path / "failures_x.jsonl", console=console)
    out = buffer.getvalue()
    assert "No failure log at" in out
    assert "Traceback" not in out


def test_log_path_that_is_a_directory(tmp_path: Path) -> None:
    console, buffer = _console()
    display_failure_report(tmp_path, console=console)
    assert "Cannot read the failure log" in buffer.getvalue()
