"""StoreExporter (keel serve): replay the store, follow it, serve it over HTTP."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentkeel import ConfigurationError, EventType, StoreUnavailableError
from agentkeel.monitoring import StoreExporter
from agentkeel.store import open_store


def scrape(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def total(families: dict[str, Any], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in families[name].samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


def by_severity(families: dict[str, Any]) -> dict[str, float]:
    return {s.labels["severity"]: s.value for s in families["agentkeel_alerts_active"].samples}


def test_replays_then_follows_the_store(tmp_path: Path, events: Any) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = open_store(url)
    alert = {
        "alert_id": "a1",
        "severity": "warning",
        "component": "calls",
        "name": "error_rate",
        "message": "m",
        "created_at": "2030-01-01T00:00:00+00:00",
    }
    store.write_events(
        [
            events.make(EventType.TOOL_CALL_END, "weather", duration_ms=5.0, status="failed"),
            events.make(EventType.CIRCUIT_OPENED, "weather", severity=3),
            events.make("alert.raised", "calls", attrs=alert),
        ]
    )
    with StoreExporter(url, port=0, poll_interval=0.05) as exporter:
        assert exporter.feed is not None
        assert exporter.feed.events_fed == 3
        families = scrape(exporter.url)
        assert total(families, "agentkeel_tool_calls", tool="weather", status="failed") == 1
        states = {
            s.labels["state"]: s.value for s in families["agentkeel_circuit_breaker_state"].samples
        }
        assert states == {"closed": 0.0, "half_open": 0.0, "open": 1.0}
        active = {
            s.labels["severity"]: s.value for s in families["agentkeel_alerts_active"].samples
        }
        assert active["warning"] == 1
        store.write_events(
            [
                events.make(EventType.TOOL_CALL_END, "weather", duration_ms=5.0, status="failed"),
                events.make(
                    "alert.resolved",
                    "calls",
                    attrs={**alert, "resolved_at": "2030-01-01T00:01:00+00:00"},
                ),
            ]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            families = scrape(exporter.url)
            if total(families, "agentkeel_tool_calls", tool="weather") == 2:
                break
            time.sleep(0.05)
        assert total(families, "agentkeel_tool_calls", tool="weather") == 2
        active = {
            s.labels["severity"]: s.value for s in families["agentkeel_alerts_active"].samples
        }
        assert active["warning"] == 0
        with urllib.request.urlopen(f"{exporter.url}/health", timeout=5) as response:
            body = json.loads(response.read())
        assert response.status == 200
        assert body["status"] == "degraded"  # the weather breaker is open
        assert exporter.health() is exporter.health()  # cached for a few seconds
        assert exporter.last_error is None
    store.close()


def test_no_replay_starts_from_now(tmp_path: Path, events: Any) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    store = open_store(url)
    store.write_events([events.make(EventType.TIMEOUT, "t")])
    with StoreExporter(url, port=0, replay=False) as exporter:
        assert exporter.feed is not None
        assert exporter.feed.events_fed == 0
        assert "agentkeel_timeouts" in scrape(exporter.url)
    store.close()


def test_start_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError):
        StoreExporter("postgresql://127.0.0.1:1/x").start()
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    with StoreExporter(url, port=0) as first, pytest.raises(ConfigurationError, match="in use"):
        StoreExporter(url, port=first.server.port if first.server else 0).start()
    with pytest.raises(ConfigurationError, match="poll_interval"):
        StoreExporter(url, poll_interval=0)
