from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agentkeel import ConfigurationError
from agentkeel.tracking import FailureTracker, TrackingSettings


def test_defaults() -> None:
    settings = TrackingSettings()
    assert settings.track_failures
    assert settings.track_tools
    assert settings.failure_log_dir is None
    assert settings.failure_log_format == "jsonl"
    assert settings.show_failure_summary
    assert settings.show_failure_details
    assert not settings.verbose_failures


def test_frozen_and_keyword_only() -> None:
    settings = TrackingSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.track_tools = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        TrackingSettings(True)  # type: ignore[misc]


def test_log_dir_becomes_a_path() -> None:
    assert TrackingSettings(failure_log_dir="runtime/logs").failure_log_dir == Path("runtime/logs")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_log_format": "xml"}, "'jsonl', 'json'"),
        ({"track_failures": "false"}, "track_failures must be True or False"),
        ({"verbose_failures": 1}, "verbose_failures"),
        ({"failure_log_dir": 3}, "failure_log_dir"),
        ({"failure_log_dir": ""}, "failure_log_dir"),
    ],
)
def test_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TrackingSettings(**kwargs)


def test_from_env() -> None:
    settings = TrackingSettings.from_env(
        {
            "KEEL_TRACK_FAILURES": "yes",
            "KEEL_TRACK_TOOLS": "OFF",
            "KEEL_FAILURE_LOG_DIR": "/var/log/agent",
            "KEEL_FAILURE_LOG_FORMAT": "JSON",
            "KEEL_SHOW_FAILURE_SUMMARY": "0",
            "KEEL_SHOW_FAILURE_DETAILS": "false",
            "KEEL_VERBOSE_FAILURES": " on ",
        }
    )
    assert settings == TrackingSettings(
        track_failures=True,
        track_tools=False,
        failure_log_dir=Path("/var/log/agent"),
        failure_log_format="json",
        show_failure_summary=False,
        show_failure_details=False,
        verbose_failures=True,
    )


def test_from_env_empty_keeps_defaults() -> None:
    assert TrackingSettings.from_env({"KEEL_TRACK_TOOLS": ""}) == TrackingSettings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEEL_TRACK_FAILURES": "maybe"}, "KEEL_TRACK_FAILURES='maybe' is not a boolean"),
        (
            {"KEEL_VERBOSE_FAILURES": "2"},
            "KEEL_VERBOSE_FAILURES.*1/0, true/false, yes/no or on/off",
        ),
        ({"KEEL_FAILURE_LOG_FORMAT": "csv"}, "KEEL_FAILURE_LOG_FORMAT must be one of"),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TrackingSettings.from_env(env)


def test_tracker_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_FAILURE_LOG_DIR", str(tmp_path / "env-logs"))
    monkeypatch.setenv("KEEL_FAILURE_LOG_FORMAT", "json")
    tracker = FailureTracker(run_id="e")
    assert tracker.log_path == tmp_path / "env-logs" / "failures_e.json"
    # An explicit runtime_dir or log_format wins over the environment.
    explicit = FailureTracker(run_id="e", runtime_dir=tmp_path, log_format="jsonl")
    assert explicit.log_path == tmp_path / "logs" / "failures_e.jsonl"
