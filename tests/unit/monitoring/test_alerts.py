"""Alerts: raised, deduplicated, reminded, resolved, reopened, stored and restored."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fake_clock import FakeClock

from agentkeel import ConfigurationError, Event
from agentkeel._internal import internal_error_counts
from agentkeel.monitoring import Alert, AlertManager, AlertSeverity


class Recorder:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.events: list[Event] = []

    def __call__(self, type: str, **kwargs: Any) -> None:
        self.emitted.append((type, kwargs))
        self.events.append(
            Event(
                type=type,
                name=kwargs["name"],
                severity=kwargs["severity"],
                attributes=kwargs["attributes"],
                seq=len(self.events) + 1,
                origin="t",
            )
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0, wall_offset=0.0)


@pytest.fixture
def stored() -> Recorder:
    return Recorder()


@pytest.fixture
def heard() -> list[Alert]:
    return []


@pytest.fixture
def manager(clock: FakeClock, stored: Recorder, heard: list[Alert]) -> AlertManager:
    return AlertManager(dedup_window=300, clock=clock, emit=stored, notifiers=[heard.append])


def raise_error_rate(manager: AlertManager, severity: str = "warning", value: float = 0.3) -> Alert:
    return manager.raise_alert(
        component="calls",
        name="error_rate",
        severity=severity,
        message=f"error rate {value}",
        threshold=0.1,
        actual_value=value,
    )


def test_severity_parse() -> None:
    assert AlertSeverity.parse("CRITICAL") is AlertSeverity.CRITICAL
    with pytest.raises(ConfigurationError, match="unknown alert severity 'urgent'"):
        AlertSeverity.parse("urgent")
    with pytest.raises(ConfigurationError):
        AlertSeverity.parse(3)


def test_repeats_within_the_window_are_one_alert(
    manager: AlertManager, clock: FakeClock, stored: Recorder, heard: list[Alert]
) -> None:
    first = raise_error_rate(manager)
    clock.now += 60
    second = raise_error_rate(manager, value=0.4)
    assert second.alert_id == first.alert_id
    assert second.count == 2
    assert second.actual_value == 0.4
    assert [a.count for a in heard] == [1]  # notified once
    assert [t for t, _ in stored.emitted] == ["alert.raised"]  # stored once
    assert manager.active() == [second]
    assert first.created_at == dt.datetime.fromtimestamp(1_800_000_000.0, dt.UTC)


def test_a_rise_in_severity_is_heard_at_once(
    manager: AlertManager, clock: FakeClock, heard: list[Alert], stored: Recorder
) -> None:
    raise_error_rate(manager)
    clock.now += 10
    raise_error_rate(manager, severity="critical", value=0.5)
    assert [a.severity for a in heard] == [AlertSeverity.WARNING, AlertSeverity.CRITICAL]
    assert len(stored.emitted) == 2
    assert manager.active(severity="critical")[0].count == 2
    assert manager.active(severity=AlertSeverity.WARNING) == []


def test_a_reminder_once_per_window(
    manager: AlertManager, clock: FakeClock, heard: list[Alert]
) -> None:
    raise_error_rate(manager)
    clock.now += 299
    raise_error_rate(manager)
    clock.now += 2
    raise_error_rate(manager)
    assert [a.count for a in heard] == [1, 3]


def test_resolve_and_reopen_within_the_window(
    manager: AlertManager, clock: FakeClock, heard: list[Alert], stored: Recorder
) -> None:
    first = raise_error_rate(manager)
    clock.now += 30
    resolved = manager.resolve("calls", "error_rate", actual_value=0.01)
    assert resolved is not None
    assert resolved.resolved_at == dt.datetime.fromtimestamp(clock.now, dt.UTC)
    assert resolved.actual_value == 0.01
    assert manager.resolve("calls", "error_rate") is None
    assert manager.active() == []
    assert manager.resolved(hours=1) == [resolved]
    clock.now += 60
    again = raise_error_rate(manager)
    assert again.alert_id == first.alert_id  # flapping: the same alert, reopened
    assert again.resolved_at is None
    assert again.count == 2
    assert [a.resolved_at is None for a in heard] == [True, False]  # raised, resolved; no re-page
    assert [t for t, _ in stored.emitted] == ["alert.raised", "alert.resolved", "alert.raised"]
    clock.now += 10
    manager.resolve("calls", "error_rate")
    clock.now += 301
    fresh = raise_error_rate(manager)
    assert fresh.alert_id != first.alert_id


def test_resolved_hours_filters_by_time(manager: AlertManager, clock: FakeClock) -> None:
    raise_error_rate(manager)
    manager.resolve("calls", "error_rate")
    clock.now += 7200
    assert manager.resolved(hours=1) == []
    assert len(manager.resolved(hours=3)) == 1
    with pytest.raises(ConfigurationError, match="hours"):
        manager.resolved(hours=-1)


def test_a_broken_notifier_is_counted_never_raised(
    manager: AlertManager, heard: list[Alert]
) -> None:
    def broken(_alert: Alert) -> None:
        raise RuntimeError("smtp down")

    manager.add_notifier(broken)
    raise_error_rate(manager)
    assert len(heard) == 1
    assert internal_error_counts()["monitoring.notifier"] == 1
    manager.remove_notifier(broken)
    with pytest.raises(ConfigurationError, match="callable"):
        manager.add_notifier("not a function")  # type: ignore[arg-type]


def test_storage_failure_does_not_hide_the_alert(clock: FakeClock) -> None:
    def broken_emit(*_a: Any, **_k: Any) -> None:
        raise OSError("disk full")

    manager = AlertManager(dedup_window=300, clock=clock, emit=broken_emit)
    alert = raise_error_rate(manager)
    assert manager.active() == [alert]
    assert internal_error_counts()["monitoring.alert_store"] == 1


def test_restore_rebuilds_state_from_stored_events(
    manager: AlertManager, clock: FakeClock, stored: Recorder
) -> None:
    raise_error_rate(manager)
    manager.raise_alert(
        component="disk",
        name="free_percent",
        severity="critical",
        message="disk",
        threshold=1.0,
        actual_value=0.5,
    )
    manager.resolve("disk", "free_percent")
    restored = AlertManager(dedup_window=300, clock=clock)
    assert restored.restore([*stored.events, Event(type="alert.raised", attributes={"x": 1})]) == 2
    assert [a.key for a in restored.active()] == [("calls", "error_rate")]
    assert [a.key for a in restored.resolved()] == [("disk", "free_percent")]
    assert internal_error_counts()["monitoring.alert_restore"] == 1
    # a restored alert is not paged again within the window
    heard: list[Alert] = []
    restored.add_notifier(heard.append)
    raise_error_rate(restored)
    assert heard == []


def test_round_trip_and_bad_input() -> None:
    alert = Alert(
        alert_id="a-1",
        severity=AlertSeverity.INFO,
        component="c",
        name="n",
        message="m",
        threshold=None,
        actual_value=1.0,
        created_at=dt.datetime.now(dt.UTC),
    )
    assert Alert.from_dict(alert.to_dict()) == alert
    with pytest.raises(ConfigurationError, match="created_at"):
        Alert.from_dict({"alert_id": "x"})
    manager = AlertManager(dedup_window=0)
    with pytest.raises(ConfigurationError, match="component and a name"):
        manager.raise_alert(component="", name="n", severity="info", message="m")
    with pytest.raises(ConfigurationError, match="unknown alert severity"):
        manager.raise_alert(component="c", name="n", severity="fatal", message="m")
