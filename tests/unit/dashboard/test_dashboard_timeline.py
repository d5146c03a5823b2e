"""The timeline's nesting rules on hand-made event sequences."""

from __future__ import annotations

from typing import Any

from agentkeel.dashboard._timeline import build_timeline
from agentkeel.events import Event
from agentkeel.store import StoredEvent


def stored(seq: int, type_: str, name: str, span: str, **attributes: Any) -> StoredEvent:
    event = Event(type=type_, name=name, span_id=span, attributes=attributes, wall_ns=seq * 10**6)
    return StoredEvent(store_seq=seq, event=event)


def test_a_call_cut_by_a_timeout_ends_there_and_later_calls_stay_siblings() -> None:
    events = [
        stored(1, "step.start", "executor", "S"),
        stored(2, "tool.start", "weather", "S"),
        stored(3, "timeout", "weather", "S", timeout_s=0.5),
        stored(4, "tool.start", "flights", "S"),
        stored(5, "tool.end", "flights", "S", status="succeeded", duration_ms=3.0),
        stored(6, "step.end", "executor", "S", status="succeeded", duration_ms=9.0),
    ]
    [step] = build_timeline(events, started_at=None)
    assert [(n.type, n.name) for n in step.children] == [
        ("tool.start", "weather"),
        ("tool.start", "flights"),
    ]
    weather, flights = step.children
    assert (weather.status, weather.end_type, weather.duration_ms) == (
        "timed out",
        "timeout",
        500.0,
    )
    assert [c.type for c in weather.children] == ["timeout"]
    assert (flights.status, flights.duration_ms, flights.children) == ("succeeded", 3.0, [])


def test_a_timeout_without_an_open_call_is_its_own_node() -> None:
    events = [
        stored(1, "step.start", "executor", "S"),
        stored(2, "timeout", "weather", "S", timeout_s=0.5),
    ]
    [step] = build_timeline(events, started_at=None)
    assert [(n.type, n.name) for n in step.children] == [("timeout", "weather")]
