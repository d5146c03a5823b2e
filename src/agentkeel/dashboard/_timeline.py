"""A run's events as a timeline: nested by span, calls paired with their ends.

A step (or the run itself, a task, a decision) opens a span: its start and end
event become one node, and the events that carry the span's ID are its children.
Within a span, a tool or LLM call's start and end also become one node (with the
end's duration and status), and what happened while the call was open (a chaos
fault, say) nests under it. Retries, breaker transitions, fallbacks, loops,
snapshots and escalations are leaves with a one-line summary of what they say.

Attribute values are shown through observability's redaction, so a key or a
password an agent put into an event is not displayed; escaping is the templates'
job (Jinja2 autoescape), never done here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentkeel.events import EventType
from agentkeel.observability import redact
from agentkeel.store import StoredEvent

# Span-opening types and the types that close them.
_SPAN_ENDS: dict[str, tuple[str, ...]] = {
    EventType.AGENT_START.value: (EventType.AGENT_END.value, EventType.AGENT_ERROR.value),
    EventType.STEP_START.value: (EventType.STEP_END.value,),
    EventType.TASK_START.value: (EventType.TASK_COMPLETE.value, EventType.TASK_FAIL.value),
    EventType.DECISION_START.value: (EventType.DECISION_COMPLETE.value,),
}
_SPAN_END_TYPES = frozenset(t for ends in _SPAN_ENDS.values() for t in ends)
_CALL_END_OF = {
    EventType.TOOL_CALL_START.value: EventType.TOOL_CALL_END.value,
    EventType.LLM_CALL_START.value: EventType.LLM_CALL_END.value,
}
_CALL_END_TYPES = frozenset(_CALL_END_OF.values())
MAX_VALUE_CHARS = 400


@dataclass(slots=True)
class TimelineNode:
    """One row of the timeline; ``kind`` picks its colour, ``summary`` is one line."""

    seq: int
    type: str
    name: str
    timestamp: float
    offset_ms: float
    kind: str
    summary: str = ""
    duration_ms: float | None = None
    status: str | None = None
    end_type: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    children: list[TimelineNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "name": self.name,
            "timestamp": self.timestamp,
            "offset_ms": self.offset_ms,
            "kind": self.kind,
            "summary": self.summary,
            "duration_ms": self.duration_ms,
            "status": self.status,
            "end_type": self.end_type,
            "attributes": dict(self.attributes),
            "children": [c.to_dict() for c in self.children],
        }


def kind_of(event_type: str) -> str:
    """A short class for colouring: step, call, llm, retry, breaker, failure …"""
    prefix = event_type.split(".", 1)[0]
    return {
        "agent": "run",
        "step": "step",
        "task": "step",
        "decision": "step",
        "tool": "call",
        "llm": "llm",
        "retry": "retry",
        "circuit": "breaker",
        "fallback": "fallback",
        "timeout": "failure",
        "failure": "failure",
        "loop": "loop",
        "snapshot": "snapshot",
        "recovery": "recovery",
        "escalation": "escalation",
        "chaos": "chaos",
    }.get(prefix, "other")


def _text(value: Any) -> str:
    """An attribute value as display text, redacted and bounded."""
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    return shown if len(shown) <= MAX_VALUE_CHARS else shown[:MAX_VALUE_CHARS] + "…"


def shown_attributes(attributes: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), _text(v)) for k, v in redact(attributes).items()]


def _ms(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize(event_type: str, a: dict[str, Any]) -> str:  # noqa: PLR0911 - one line per type
    """What the event says, in one line (from redacted attributes)."""
    a = redact(a)
    if event_type == EventType.RETRY.value:
        delay = _ms(a.get("delay_s"))
        wait = f", waits {delay * 1000:.0f} ms" if delay is not None else ""
        error = a.get("error_class") or a.get("error_type") or "error"
        return f"attempt {a.get('attempt', '?')}{wait} after {error}: {a.get('error_message', '')}"
    if event_type.startswith("circuit."):
        if "to_state" in a:
            return f"{a.get('from_state', '?')} → {a['to_state']} ({a.get('reason', '')})"
        if "rejected" in a:
            return f"call rejected; retry after {_ms(a.get('retry_after')) or 0:.3f} s"
    if event_type == EventType.FALLBACK.value:
        by = a.get("answered_by")
        return f"{a.get('outcome', '')}" + (f": answered by {by}" if by else "")
    if event_type == EventType.LOOP_DETECTED.value:
        actions = ", ".join(str(x) for x in a.get("actions") or [])
        return f"{a.get('pattern', 'loop')}: {a.get('count', '?')} times ({actions})"
    if event_type == EventType.FAILURE.value:
        return f"{a.get('category', '')} {a.get('error_type', '')}: {a.get('error_message', '')}"
    if event_type == EventType.FAILURE_RECOVERED.value:
        return f"recovered: {a.get('recovery_action') or ''}"
    if event_type.startswith("escalation."):
        return f"{a.get('level', '')} ticket {a.get('ticket_id', '')} {a.get('status', '')}"
    if event_type.startswith("snapshot."):
        return f"snapshot {a.get('snapshot_id', '')}"
    if event_type == EventType.CHAOS_INJECTED.value:
        return f"chaos: {a.get('kind', '')} {a.get('category', '')}".strip()
    if event_type == EventType.TIMEOUT.value:
        return f"timed out after {a.get('timeout_s', a.get('timeout', '?'))} s"
    return ""


def _end_summary(a: dict[str, Any]) -> str:
    a = redact(a)
    parts = []
    if a.get("error_type"):
        parts.append(f"{a['error_type']}: {a.get('error_message', '')}".rstrip(": "))
    tokens_in, tokens_out = a.get("gen_ai.usage.input_tokens"), a.get("gen_ai.usage.output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(f"{tokens_in or 0} in / {tokens_out or 0} out tokens")
    return "; ".join(parts)


def _pop_open_call(
    calls: list[tuple[str, TimelineNode]], name: str, *, end_type: str | None = None
) -> TimelineNode | None:
    """Take the innermost open call of this name (and awaited end type) off the stack."""
    for i in range(len(calls) - 1, -1, -1):
        awaited, node = calls[i]
        if node.name == name and (end_type is None or awaited == end_type):
            del calls[i]
            return node
    return None


def _cut_by_timeout(
    calls: list[tuple[str, TimelineNode]], timeout: TimelineNode, attributes: dict[str, Any]
) -> bool:
    """End the innermost open call the timeout cut; False if none of that name is open.

    A cut call may never send its end (its worker thread is abandoned), and while it
    stays open everything after it in the same span would nest under it.
    """
    call = _pop_open_call(calls, timeout.name)
    if call is None:
        return False
    call.children.append(timeout)
    call.end_type = timeout.type
    call.status = "timed out"
    seconds = _ms(attributes.get("timeout_s", attributes.get("timeout")))
    call.duration_ms = None if seconds is None else seconds * 1000
    return True


def _close(node: TimelineNode, stored: StoredEvent) -> None:
    """Complete a call or span node with what its end event says."""
    a = stored.event.attributes
    node.end_type = stored.event.type
    node.duration_ms = _ms(a.get("duration_ms"))
    status = a.get("status")
    node.status = str(status) if status is not None else None
    extra = _end_summary(a)
    node.summary = "; ".join(s for s in (node.summary, extra) if s)
    node.attributes += [(f"end.{k}", v) for k, v in shown_attributes(a)]


def build_timeline(events: list[StoredEvent], *, started_at: float | None) -> list[TimelineNode]:
    """The events (in store order) as a forest of nodes; see the module docstring."""
    origin = started_at if started_at is not None else (events[0].event.timestamp if events else 0)
    roots: list[TimelineNode] = []
    spans: dict[str, TimelineNode] = {}
    open_calls: dict[str, list[tuple[str, TimelineNode]]] = {}  # span → [(end type, node)]

    def node_for(stored: StoredEvent) -> TimelineNode:
        e = stored.event
        return TimelineNode(
            seq=stored.store_seq,
            type=e.type,
            name=e.name,
            timestamp=e.timestamp,
            offset_ms=(e.timestamp - origin) * 1000,
            kind=kind_of(e.type),
            summary=summarize(e.type, e.attributes),
            attributes=shown_attributes(e.attributes),
        )

    def attach(node: TimelineNode, span_id: str | None, parent_span_id: str | None) -> None:
        calls = open_calls.get(span_id or "")
        if calls:
            calls[-1][1].children.append(node)
        elif span_id and span_id in spans:
            spans[span_id].children.append(node)
        elif parent_span_id and parent_span_id in spans:
            spans[parent_span_id].children.append(node)
        else:
            roots.append(node)

    for stored in events:
        e = stored.event
        span = e.span_id or ""
        if e.type in _SPAN_ENDS:
            node = node_for(stored)
            attach(node, e.parent_span_id, None)
            if span:
                spans[span] = node
            continue
        if e.type in _SPAN_END_TYPES and span in spans and spans[span].end_type is None:
            open_calls.pop(span, None)  # a call that never ended ends with its span
            _close(spans[span], stored)
            continue
        if e.type in _CALL_END_OF:
            node = node_for(stored)
            attach(node, e.span_id, e.parent_span_id)
            open_calls.setdefault(span, []).append((_CALL_END_OF[e.type], node))
            continue
        if e.type == EventType.TIMEOUT.value and _cut_by_timeout(
            open_calls.get(span, []), node_for(stored), e.attributes
        ):
            continue
        if e.type in _CALL_END_TYPES:
            ended = _pop_open_call(open_calls.get(span, []), e.name, end_type=e.type)
            if ended is not None:
                _close(ended, stored)
                continue
        attach(node_for(stored), e.span_id, e.parent_span_id)
    return roots


def count_nodes(nodes: list[TimelineNode]) -> int:
    return sum(1 + count_nodes(n.children) for n in nodes)


def flat_row(stored: StoredEvent, *, started_at: float | None) -> dict[str, Any]:
    """One event as the live view appends it (not nested: it may arrive before its parent)."""
    e = stored.event
    origin = started_at if started_at is not None else e.timestamp
    return {
        "seq": stored.store_seq,
        "type": e.type,
        "name": e.name,
        "timestamp": e.timestamp,
        "offset_ms": (e.timestamp - origin) * 1000,
        "kind": kind_of(e.type),
        "summary": summarize(e.type, e.attributes) or _end_summary(e.attributes),
        "duration_ms": _ms(e.attributes.get("duration_ms")),
        "status": e.attributes.get("status"),
        "span_id": e.span_id,
        "parent_span_id": e.parent_span_id,
        "attributes": dict(shown_attributes(e.attributes)),
    }
