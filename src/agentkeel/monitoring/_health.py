"""Component health: what each part of the application says about itself.

``update_health_status(component=..., healthy=..., status=...)`` records a
component's latest word; the overall status is the worst of them. The vocabulary
is the one probes understand: healthy, degraded, unhealthy (exit codes 0, 1, 2);
``unknown`` marks a check that could not be made and never changes the overall.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError

_ALIASES = {
    "ok": "healthy",
    "up": "healthy",
    "warning": "degraded",
    "slow": "degraded",
    "critical": "unhealthy",
    "error": "unhealthy",
    "down": "unhealthy",
    "failed": "unhealthy",
}
_RANK = {"healthy": 0, "unknown": 0, "degraded": 1, "unhealthy": 2}


class HealthStatus(enum.StrEnum):
    """How a component or the whole system is doing."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    @property
    def exit_code(self) -> int:
        """0 healthy (or unknown), 1 degraded, 2 unhealthy: what a probe expects."""
        return self.rank

    @classmethod
    def parse(cls, value: object) -> HealthStatus:
        """Accept a HealthStatus, its name, or ok/warning/critical/error/down/failed."""
        if isinstance(value, HealthStatus):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            try:
                return cls(_ALIASES.get(text, text))
            except ValueError:
                pass
        raise ConfigurationError(
            f"unknown health status {value!r}: use healthy, degraded or unhealthy "
            "(or ok, warning, critical)"
        )

    @classmethod
    def worst(cls, statuses: Iterable[HealthStatus]) -> HealthStatus:
        worst = cls.HEALTHY
        for status in statuses:
            if status.rank > worst.rank:
                worst = status
        return worst


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """A component's latest report about itself."""

    component: str
    healthy: bool
    status: HealthStatus
    error_message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "status": self.status.value,
            "error": self.error_message,
            "metadata": dict(self.metadata),
            "updated_at": self.updated_at,
        }


class HealthRegistry:
    """The latest health report of each component (thread-safe)."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._components: dict[str, ComponentHealth] = {}
        self._lock = threading.Lock()

    def update(
        self,
        *,
        component: str,
        healthy: bool,
        status: HealthStatus | str | None = None,
        error_message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ComponentHealth:
        if not isinstance(component, str) or not component.strip():
            raise ConfigurationError(f"component must be a non-empty name, got {component!r}")
        if not isinstance(healthy, bool):
            raise ConfigurationError(f"healthy must be True or False, got {healthy!r}")
        if status is None:
            level = HealthStatus.HEALTHY if healthy else HealthStatus.UNHEALTHY
        else:
            level = HealthStatus.parse(status)
            if (healthy and level.rank == 2) or (not healthy and level is HealthStatus.HEALTHY):
                raise ConfigurationError(
                    f"component {component!r} says healthy={healthy} but status={level.value}: "
                    "make them agree (a degraded component may be healthy or not)"
                )
        report = ComponentHealth(
            component=component,
            healthy=healthy,
            status=level,
            error_message=error_message,
            metadata=dict(metadata) if metadata else {},
            updated_at=self._clock.wall(),
        )
        with self._lock:
            self._components[component] = report
        return report

    def remove(self, component: str) -> None:
        with self._lock:
            self._components.pop(component, None)

    def components(self) -> dict[str, ComponentHealth]:
        with self._lock:
            return dict(self._components)

    def overall(self) -> HealthStatus:
        return HealthStatus.worst(c.status for c in self.components().values())
