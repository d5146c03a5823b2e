"""The failure record: what went wrong, where, and whether the agent recovered.

A failure travels as a ``failure.recorded`` event (and a ``failure.recovered`` one
when it is recovered), so the store, the JSONL log and the reports all read the
same fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agentkeel.events._model import Event, EventType, Severity


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One failure of a run. ``category`` and ``severity`` are lower-case names."""

    failure_id: str
    run_id: str
    timestamp: float
    category: str
    severity: str
    error_type: str
    error_message: str
    user_id: str | None = None
    graph_node: str | None = None
    tool_name: str | None = None
    latency_ms: float | None = None
    recovered: bool = False
    recovery_action: str | None = None
    tags: tuple[str, ...] = ()
    fingerprint: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureRecord:
        """Build a record from :meth:`to_dict` output; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["tags"] = tuple(values.get("tags") or ())
        values["attributes"] = dict(values.get("attributes") or {})
        return cls(**values)


# Attribute keys of a failure event, beyond what the Event itself carries.
_RECORD_KEYS = (
    "failure_id",
    "user_id",
    "graph_node",
    "tool_name",
    "error_type",
    "error_message",
    "latency_ms",
    "recovered",
    "recovery_action",
    "tags",
    "fingerprint",
)


def failure_event_attributes(record: FailureRecord) -> dict[str, Any]:
    attrs: dict[str, Any] = {key: getattr(record, key) for key in _RECORD_KEYS}
    attrs["tags"] = list(record.tags)
    if record.attributes:
        attrs["extra"] = record.attributes
    return attrs


def failure_from_event(event: Event) -> FailureRecord:
    """Rebuild the record carried by a ``failure.recorded`` event."""
    if event.type != EventType.FAILURE:
        raise ValueError(f"not a failure event: {event.type}")
    attrs = event.attributes
    return FailureRecord(
        failure_id=str(attrs.get("failure_id") or event.event_id),
        run_id=event.run_id or "",
        timestamp=event.timestamp,
        category=event.category or "unknown",
        severity=Severity(event.severity).name.lower(),
        error_type=str(attrs.get("error_type", "")),
        error_message=str(attrs.get("error_message", "")),
        user_id=attrs.get("user_id"),
        graph_node=attrs.get("graph_node"),
        tool_name=attrs.get("tool_name"),
        latency_ms=attrs.get("latency_ms"),
        recovered=bool(attrs.get("recovered", False)),
        recovery_action=attrs.get("recovery_action"),
        tags=tuple(attrs.get("tags") or ()),
        fingerprint=str(attrs.get("fingerprint", "")),
        attributes=dict(attrs.get("extra") or {}),
    )
