"""Alerts: raised when a measurement crosses a threshold, resolved when it recovers.

An alert is identified by its ``component`` and ``name`` (what was measured). While
it is active, repeats only bump ``count``; the notifiers hear about it when it is
raised, when its severity rises, as a reminder once per ``dedup_window`` while it
stays active, and when it resolves. An alert that comes back within
``dedup_window`` of resolving is reopened (same ``alert_id``) instead of starting
again, so a flapping value does not page anyone twice for the same trouble.

Alerts are kept as events (``alert.raised``, ``alert.resolved``) in the store: no
schema change, every backend keeps them, ``keel serve`` counts them, and a
restarted monitor rebuilds its state with :meth:`AlertManager.restore`.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from agentkeel import _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.events import Event, Severity
from agentkeel.monitoring._sink import ALERT_RAISED, ALERT_RESOLVED

_RANK = {"info": 0, "warning": 1, "critical": 2}
_EVENT_SEVERITY = {"info": Severity.LOW, "warning": Severity.MEDIUM, "critical": Severity.HIGH}
# Resolved alerts kept in memory for get_resolved_alerts(); older ones are in the store.
RESOLVED_HISTORY = 1000


class AlertSeverity(enum.StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    @classmethod
    def parse(cls, value: object) -> AlertSeverity:
        """Accept an AlertSeverity or its name in any case."""
        if isinstance(value, AlertSeverity):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise ConfigurationError(
            f"unknown alert severity {value!r}: use one of info, warning, critical"
        )


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``resolved_at`` is None while it is active; ``count`` is how many
    times the condition was seen (deduplicated into this one alert)."""

    alert_id: str
    severity: AlertSeverity
    component: str
    name: str
    message: str
    threshold: float | None
    actual_value: float | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None = None
    count: int = 1
    last_seen_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.resolved_at is None

    @property
    def key(self) -> tuple[str, str]:
        return (self.component, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "severity": self.severity.value,
            "component": self.component,
            "name": self.name,
            "message": self.message,
            "threshold": self.threshold,
            "actual_value": self.actual_value,
            "created_at": self.created_at.isoformat(),
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
            "count": self.count,
            "last_seen_at": None if self.last_seen_at is None else self.last_seen_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        def when(value: object) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None

        created = when(data.get("created_at"))
        if created is None:
            raise ConfigurationError(f"an alert needs created_at, got {dict(data)!r}")
        return cls(
            alert_id=str(data["alert_id"]),
            severity=AlertSeverity.parse(data.get("severity", "warning")),
            component=str(data.get("component", "")),
            name=str(data.get("name", "")),
            message=str(data.get("message", "")),
            threshold=_number(data.get("threshold")),
            actual_value=_number(data.get("actual_value")),
            created_at=created,
            resolved_at=when(data.get("resolved_at")),
            count=int(data.get("count") or 1),
            last_seen_at=when(data.get("last_seen_at")),
        )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class AlertNotifier(Protocol):
    """Hears about alerts as they are raised, rise, are reminded of, and resolve.

    A plain function ``def notify(alert): ...`` satisfies it. It is called on the
    thread that evaluated the thresholds; an exception in it is logged and counted,
    never raised into that thread. (Slack, e-mail and webhook notifiers come later.)
    """

    def __call__(self, alert: Alert, /) -> None: ...


EmitFn = Callable[..., None]


class AlertManager:
    """The active alerts, the recently resolved ones, and who hears about them."""

    def __init__(
        self,
        *,
        dedup_window: float,
        clock: Clock = SYSTEM_CLOCK,
        emit: EmitFn | None = None,
        notifiers: Iterable[AlertNotifier] = (),
    ) -> None:
        self.dedup_window = dedup_window
        self._clock = clock
        self._emit = emit
        self._notifiers: list[AlertNotifier] = list(notifiers)
        self._active: dict[tuple[str, str], Alert] = {}
        self._resolved: deque[Alert] = deque(maxlen=RESOLVED_HISTORY)
        self._notified: dict[str, tuple[float, int]] = {}  # alert_id -> (when, severity rank)
        self._ids = itertools.count(1)
        self._prefix = f"alert-{os.urandom(3).hex()}"
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- notifiers
    def add_notifier(self, notifier: AlertNotifier) -> None:
        if not callable(notifier):
            raise ConfigurationError(f"a notifier must be callable with an Alert, got {notifier!r}")
        with self._lock:
            self._notifiers.append(notifier)

    def remove_notifier(self, notifier: AlertNotifier) -> None:
        with self._lock:
            self._notifiers.remove(notifier)

    # ------------------------------------------------------------------- queries
    def active(self, severity: AlertSeverity | str | None = None) -> list[Alert]:
        wanted = None if severity is None else AlertSeverity.parse(severity)
        with self._lock:
            alerts = list(self._active.values())
        alerts = [a for a in alerts if wanted is None or a.severity is wanted]
        return sorted(alerts, key=lambda a: (-a.severity.rank, a.created_at))

    def resolved(self, hours: float = 24.0) -> list[Alert]:
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0:
            raise ConfigurationError(f"hours must be a number >= 0, got {hours!r}")
        cutoff = _utc(self._clock.wall() - hours * 3600)
        with self._lock:
            alerts = list(self._resolved)
        return [a for a in alerts if a.resolved_at is not None and a.resolved_at >= cutoff]

    # ------------------------------------------------------------------ changes
    def raise_alert(
        self,
        *,
        component: str,
        name: str,
        severity: AlertSeverity | str,
        message: str,
        threshold: float | None = None,
        actual_value: float | None = None,
    ) -> Alert:
        """Raise (or repeat) the alert for ``component``/``name``; returns its state."""
        level = AlertSeverity.parse(severity)
        if not component or not name:
            raise ConfigurationError("an alert needs a component and a name")
        now = self._clock.wall()
        key = (component, name)
        with self._lock:
            current = self._active.get(key)
            if current is None:
                current = self._reopen(key, now)
            if current is None:
                alert = Alert(
                    alert_id=f"{self._prefix}-{next(self._ids)}",
                    severity=level,
                    component=component,
                    name=name,
                    message=message,
                    threshold=threshold,
                    actual_value=actual_value,
                    created_at=_utc(now),
                    last_seen_at=_utc(now),
                )
                persist = True
            else:
                alert = replace(
                    current,
                    severity=level,
                    message=message,
                    threshold=threshold,
                    actual_value=actual_value,
                    resolved_at=None,
                    count=current.count + 1,
                    last_seen_at=_utc(now),
                )
                # The store hears about changes of state, not about every repeat.
                persist = level is not current.severity or current.resolved_at is not None
            self._active[key] = alert
            notify = self._due(alert, now)
        if persist:
            self._store(ALERT_RAISED, alert)
        if notify:
            self._notify(alert)
        return alert

    def resolve(
        self, component: str, name: str, *, actual_value: float | None = None
    ) -> Alert | None:
        """Resolve the active alert for ``component``/``name``, if there is one."""
        now = self._clock.wall()
        with self._lock:
            current = self._active.pop((component, name), None)
            if current is None:
                return None
            alert = replace(
                current,
                resolved_at=_utc(now),
                actual_value=current.actual_value if actual_value is None else actual_value,
            )
            self._resolved.append(alert)
        self._store(ALERT_RESOLVED, alert)
        self._notify(alert)
        return alert

    def restore(self, events: Iterable[Event]) -> int:
        """Rebuild state from stored ``alert.*`` events (oldest first); returns how many."""
        latest: dict[str, Alert] = {}
        for event in events:
            if event.type not in {ALERT_RAISED, ALERT_RESOLVED}:
                continue
            try:
                alert = Alert.from_dict(event.attributes)
            except (ConfigurationError, KeyError, ValueError, TypeError) as exc:
                _internal.report_internal_error("monitoring.alert_restore", exc, reraise=False)
                continue
            latest[alert.alert_id] = alert
        with self._lock:
            for alert in sorted(latest.values(), key=lambda a: a.created_at):
                if alert.resolved_at is None:
                    self._active[alert.key] = alert
                    seen = alert.last_seen_at or alert.created_at
                    self._notified[alert.alert_id] = (seen.timestamp(), alert.severity.rank)
                else:
                    self._active.pop(alert.key, None)
                    self._resolved.append(alert)
        return len(latest)

    # ------------------------------------------------------------------ helpers
    def _reopen(self, key: tuple[str, str], now: float) -> Alert | None:
        for alert in reversed(self._resolved):
            if alert.key == key and alert.resolved_at is not None:
                if now - alert.resolved_at.timestamp() < self.dedup_window:
                    self._resolved.remove(alert)
                    return alert
                return None
        return None

    def _due(self, alert: Alert, now: float) -> bool:
        last = self._notified.get(alert.alert_id)
        if last is None or alert.severity.rank > last[1] or now - last[0] >= self.dedup_window:
            self._notified[alert.alert_id] = (now, alert.severity.rank)
            return True
        return False

    def _store(self, event_type: str, alert: Alert) -> None:
        emit = self._emit
        if emit is None:
            return
        try:
            emit(
                event_type,
                name=alert.component,
                severity=_EVENT_SEVERITY[alert.severity.value],
                attributes=alert.to_dict(),
            )
        except Exception as exc:  # noqa: BLE001 - storing an alert must not hide it
            _internal.report_internal_error("monitoring.alert_store", exc, reraise=False)

    def _notify(self, alert: Alert) -> None:
        with self._lock:
            notifiers = list(self._notifiers)
        for notifier in notifiers:
            try:
                notifier(alert)
            except Exception as exc:  # noqa: BLE001 - a broken notifier must not stop the rest
                _internal.report_internal_error("monitoring.notifier", exc, reraise=False)


@dataclass(frozen=True, slots=True)
class AlertChange:
    """What one evaluation did to one alert: ``raised``, ``repeated`` or ``resolved``."""

    action: str
    alert: Alert
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, **self.alert.to_dict(), **self.details}
