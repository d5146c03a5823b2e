"""Pipeline statistics as events, so that other processes can see them.

A pipeline's counters live in its own process. ``report_pipeline_stats()`` emits
them as a ``pipeline.stats`` event, which reaches the store like any other;
``keel health`` and ``keel serve`` read the latest report of each process from
there. :class:`PipelineStatsReporter` does it every ``interval`` seconds.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from types import TracebackType

from agentkeel import _internal, _runtime
from agentkeel.events import Severity
from agentkeel.monitoring import _validate
from agentkeel.monitoring._sink import PIPELINE_STATS
from agentkeel.pipeline import Pipeline, PipelineStats


def report_pipeline_stats(pipeline: Pipeline | None = None) -> PipelineStats:
    """Emit the pipeline's counters as a ``pipeline.stats`` event; return them.

    The figures are as of the call: the report itself is not counted in them.
    ``pipeline`` defaults to the process-wide one.
    """
    target = pipeline if pipeline is not None else _runtime.get_pipeline()
    stats = target.stats()
    attributes = {
        "emitted": stats.emitted,
        "written": stats.written,
        "buffered": stats.buffered,
        "dropped": stats.dropped,
        "dropped_by_reason": dict(stats.dropped_by_reason),
        "dropped_by_severity": dict(stats.dropped_by_severity),
        "sink_errors": stats.sink_errors,
        "last_error": stats.last_error,
        "lag_seconds": stats.lag_seconds,
    }
    # LOW, not INFO: a flood of routine events must not push the report out.
    target.emit(PIPELINE_STATS, name="pipeline", severity=Severity.LOW, attributes=attributes)
    return stats


class PipelineStatsReporter:
    """Reports the pipeline's counters every ``interval`` seconds on a daemon thread.

    ::

        with PipelineStatsReporter(interval=30):
            run_agent()
    """

    def __init__(
        self, *, interval: float | timedelta = 30.0, pipeline: Pipeline | None = None
    ) -> None:
        self.interval = _validate.duration(interval, "interval")
        self._pipeline = pipeline
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PipelineStatsReporter:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="agentkeel-pipeline-stats", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, *, final_report: bool = True) -> None:
        """Stop reporting; by default send one last report first."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(self.interval + 5)
        if final_report:
            self._report()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._report()

    def _report(self) -> None:
        try:
            report_pipeline_stats(self._pipeline)
        except Exception as exc:  # noqa: BLE001 - reporting must never disturb the agent
            _internal.report_internal_error("monitoring.pipeline_stats", exc, reraise=False)

    def __enter__(self) -> PipelineStatsReporter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
