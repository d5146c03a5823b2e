"""The event model: one frozen, typed event for everything agentkeel records."""

from agentkeel.events._failure import FailureRecord, failure_event_attributes, failure_from_event
from agentkeel.events._model import Category, Event, EventType, Severity

__all__ = [
    "Category",
    "Event",
    "EventType",
    "FailureRecord",
    "Severity",
    "failure_event_attributes",
    "failure_from_event",
]
