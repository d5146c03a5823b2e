"""Fixtures for the tracking tests: a pipeline whose events we can read back."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import agentkeel
from agentkeel.events import Event
from agentkeel.tracking import FailureTracker, TrackingSettings
from agentkeel.tracking._tracker import _reset_default_trackers


class CapturedEvents:
    """A sink that keeps every event; :meth:`all` flushes the pipeline first."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Event], /) -> None:
        with self._lock:
            self._events.extend(batch)

    def all(self) -> list[Event]:
        assert agentkeel.flush(timeout=5)
        with self._lock:
            return list(self._events)

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.all() if e.type == event_type]


@pytest.fixture(autouse=True)
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[CapturedEvents]:
    """Events go to memory only: tests that need a store configure one themselves."""
    for var in (
        "KEEL_TRACK_FAILURES",
        "KEEL_TRACK_TOOLS",
        "KEEL_FAILURE_LOG_DIR",
        "KEEL_FAILURE_LOG_FORMAT",
        "KEEL_SHOW_FAILURE_SUMMARY",
        "KEEL_SHOW_FAILURE_DETAILS",
        "KEEL_VERBOSE_FAILURES",
    ):
        monkeypatch.delenv(var, raising=False)
    captured = CapturedEvents()
    agentkeel.configure(store="none", sinks=[captured])
    yield captured
    _reset_default_trackers()


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[FailureTracker]:
    with FailureTracker(
        run_id="run-test", user_id="user-1", runtime_dir=tmp_path, settings=TrackingSettings()
    ) as t:
        yield t
