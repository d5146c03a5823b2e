"""Helpers for the loop-detection and guard tests: a fake clock and captured events."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from fake_clock import FakeClock

from agentkeel.events import Event
from agentkeel.pipeline import Pipeline
from agentkeel.recovery import LoopDetectionConfig, LoopDetector


class Captured:
    """A pipeline sink that keeps the events it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Event], /) -> None:
        with self._lock:
            self.events.extend(batch)


def detector(
    clock: FakeClock | None = None, *, events: bool = False, **settings: Any
) -> LoopDetector:
    """A detector on a fake clock; events off unless asked for."""
    config = LoopDetectionConfig(emit_events=events, **settings)
    return LoopDetector(config, clock=clock or FakeClock())


def detector_with_events(**settings: Any) -> tuple[LoopDetector, Pipeline, Captured]:
    captured = Captured()
    pipeline = Pipeline(sinks=[captured])
    config = LoopDetectionConfig(**settings)
    return LoopDetector(config, clock=FakeClock(), pipeline=pipeline), pipeline, captured
