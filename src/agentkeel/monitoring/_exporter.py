"""``keel serve``: the metrics of every process that writes a store, on one endpoint.

Agents run in their own processes; their events meet in the store. The exporter
replays the stored events into a :class:`MetricsSink` at start (so counters begin
at the store's totals, the same after every restart) and then polls for new ones.
``/health`` runs the ``keel health`` checks, cached for a few seconds so that
probes do not load the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from agentkeel.events import Event
from agentkeel.monitoring import _validate
from agentkeel.monitoring._health import HealthStatus
from agentkeel.monitoring._healthcheck import HealthReport, run_health_check
from agentkeel.monitoring._http import MetricsServer
from agentkeel.monitoring._monitor import MonitoringSystem
from agentkeel.monitoring._sink import ALERT_RAISED, ALERT_RESOLVED, StoreFeed
from agentkeel.monitoring._thresholds import MonitoringThresholds
from agentkeel.store import Store, open_store, resolve_store_url


class StoreExporter:
    """Serves ``/metrics`` and ``/health`` for the store at ``store_url``.

    ``replay=False`` starts from the newest event instead of the store's history.
    Store errors while polling are remembered (:attr:`last_error`) and retried.
    """

    def __init__(
        self,
        store_url: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 9464,
        poll_interval: float | timedelta = 2.0,
        replay: bool = True,
        thresholds: MonitoringThresholds | None = None,
        health_cache: float | timedelta = 5.0,
    ) -> None:
        self.store_url = resolve_store_url(store_url)
        self.host = host
        self.port = port
        self.poll_interval = _validate.duration(poll_interval, "poll_interval")
        self.health_cache = _validate.duration(health_cache, "health_cache", allow_zero=True)
        self.replay = replay
        self.thresholds = thresholds
        self.monitoring: MonitoringSystem | None = None
        self.feed: StoreFeed | None = None
        self.server: MetricsServer | None = None
        self._store: Store | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._health_lock = threading.Lock()
        self._health: tuple[float, HealthReport] | None = None

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else f"http://{self.host}:{self.port}"

    @property
    def last_error(self) -> str | None:
        return self.feed.last_error if self.feed is not None else None

    def start(self) -> StoreExporter:
        """Open the store, replay, start polling and serving. Raises KeelError subclasses
        (store unreachable, port in use) before anything runs."""
        store = open_store(self.store_url)
        try:
            monitoring = MonitoringSystem(store=store, thresholds=self.thresholds, emit=None)
            sink = monitoring.metrics_sink

            def feed(batch: Sequence[Event]) -> None:
                sink(batch)
                alerts = [e for e in batch if e.type in (ALERT_RAISED, ALERT_RESOLVED)]
                if alerts:
                    monitoring.alerts.restore(alerts)

            self.feed = StoreFeed(store, feed, types=[*sink.event_types, ALERT_RESOLVED])
            if self.replay:
                self.feed.poll()
            else:
                self.feed.skip_to_end()
            registry = monitoring.registry
            self.server = MetricsServer(
                metrics=lambda: registry,
                health=self._health_response,
                host=self.host,
                port=self.port,
            ).start()
        except BaseException:
            store.close()
            raise
        self._store, self.monitoring = store, monitoring
        self._stop.clear()
        self._poller = threading.Thread(
            target=self.feed.run,
            args=(self._stop, self.poll_interval),
            name="agentkeel-store-feed",
            daemon=True,
        )
        self._poller.start()
        return self

    def health(self) -> HealthReport:
        """The ``keel health`` report for the store, at most ``health_cache`` s old."""
        with self._health_lock:
            cached = self._health
            if cached is not None and time.monotonic() - cached[0] < self.health_cache:
                return cached[1]
            report = run_health_check(self.store_url, thresholds=self.thresholds)
            self._health = (time.monotonic(), report)
            return report

    def _health_response(self) -> tuple[int, dict[str, Any]]:
        report = self.health()
        return (503 if report.status is HealthStatus.UNHEALTHY else 200), report.to_dict()

    def close(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.close()
            self.server = None
        if self._poller is not None:
            self._poller.join(self.poll_interval + 5)
            self._poller = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> StoreExporter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
