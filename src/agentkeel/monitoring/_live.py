"""What this process knows right now: its pipeline and its circuit breakers.

Both are read without creating anything: a health check or a scrape must not start
a pipeline (and open a store) in a process that had none.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

from agentkeel import _internal, _runtime
from agentkeel.pipeline import Pipeline


def live_pipeline() -> Pipeline | None:
    """The process-wide pipeline if one was started and is still open."""
    pipeline = _runtime._pipeline
    return pipeline if pipeline is not None and not pipeline.closed else None


def pipeline_origin(pipeline: Pipeline) -> str:
    """The origin its events carry (the same key ``pipeline.stats`` reports use)."""
    # Not public on Pipeline; the stats events of this process carry it as their
    # origin, and the collector must not count this process twice.
    return str(getattr(pipeline, "_origin", "local"))


@dataclass(frozen=True, slots=True)
class LiveBreaker:
    """A circuit breaker of this process, as its ``get_status()`` describes it."""

    name: str
    state: str
    total_calls: int | None = None
    failed_calls: int | None = None
    failure_rate: float | None = None
    status: dict[str, Any] = field(default_factory=dict)


def live_breakers() -> dict[str, LiveBreaker]:
    """The breakers of ``agentkeel.resilience``'s registry, if that registry exists.

    The registry belongs to the resilience package; until it offers
    ``get_all_circuit_breakers()`` (or if it is not importable) there are none.
    """
    try:
        resilience = importlib.import_module("agentkeel.resilience")
        get_all = resilience.get_all_circuit_breakers
    except (ImportError, AttributeError):
        return {}
    try:
        breakers = dict(get_all())
    except Exception as exc:  # noqa: BLE001 - a broken registry must not break a scrape
        _internal.report_internal_error("monitoring.breakers", exc, reraise=False)
        return {}
    result: dict[str, LiveBreaker] = {}
    for name, breaker in breakers.items():
        try:
            status = dict(breaker.get_status())
        except Exception as exc:  # noqa: BLE001 - one broken breaker must not hide the rest
            _internal.report_internal_error("monitoring.breakers", exc, reraise=False)
            continue
        raw = status.get("metrics")
        metrics: dict[str, Any] = raw if isinstance(raw, dict) else {}
        result[str(name)] = LiveBreaker(
            name=str(name),
            state=_state(status.get("state")),
            total_calls=_count(metrics.get("total_calls")),
            failed_calls=_count(metrics.get("failed_calls")),
            failure_rate=_rate(metrics.get("failure_rate")),
            status=status,
        )
    return result


def _state(value: object) -> str:
    text = str(getattr(value, "value", value)).lower().replace("-", "_")
    return text if text in {"open", "half_open", "closed"} else "unknown"


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _rate(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
