"""Store fixtures: one store per backend, and a factory of deterministic events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkeel.events import Event, EventType, FailureRecord, failure_event_attributes
from agentkeel.store import Store, open_store

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
DURABLE_BACKENDS = BACKENDS[1:]


class EventFactory:
    """Events with increasing seq and a clock that moves one second per event."""

    def __init__(self, origin: str = "origin1", start: float = 1_700_000_000.0) -> None:
        self.origin = origin
        self.seq = 0
        self.now = start

    def make(
        self,
        type: str,
        *,
        run_id: str | None = None,
        name: str = "",
        attributes: dict[str, Any] | None = None,
        severity: int = 0,
        category: str | None = None,
        at: float | None = None,
    ) -> Event:
        self.seq += 1
        self.now += 1.0
        when = self.now if at is None else at
        return Event(
            type=type,
            name=name,
            severity=severity,
            category=category,
            attributes=attributes or {},
            run_id=run_id,
            correlation_id=run_id,
            span_id=f"span-{self.seq}",
            parent_span_id=None,
            wall_ns=int(when * 1e9),
            mono_ns=self.seq * 1000,
            seq=self.seq,
            origin=self.origin,
        )

    def start(
        self,
        run_id: str,
        name: str = "agent",
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        parent_run_id: str | None = None,
        tags: list[str] | None = None,
        at: float | None = None,
        **extra: Any,
    ) -> Event:
        attrs = dict(extra)
        attrs.update(
            user_id=user_id, session_id=session_id, parent_run_id=parent_run_id, tags=tags or []
        )
        return self.make(EventType.AGENT_START, run_id=run_id, name=name, attributes=attrs, at=at)

    def end(
        self,
        run_id: str,
        name: str = "agent",
        *,
        status: str = "succeeded",
        duration_ms: float = 1500.0,
        error_type: str | None = None,
        error_message: str | None = None,
        at: float | None = None,
    ) -> Event:
        attrs: dict[str, Any] = {"status": status, "duration_ms": duration_ms}
        if error_type is not None:
            attrs.update(error_type=error_type, error_message=error_message)
        severity = 3 if status == "failed" else 0
        return self.make(
            EventType.AGENT_END,
            run_id=run_id,
            name=name,
            attributes=attrs,
            severity=severity,
            at=at,
        )

    def step(self, run_id: str | None, name: str = "tool", **attrs: Any) -> Event:
        return self.make(EventType.TOOL_CALL_START, run_id=run_id, name=name, attributes=attrs)

    def failure(
        self,
        run_id: str,
        failure_id: str,
        *,
        category: str = "network",
        severity: int = 3,
        recovered: bool = False,
        **fields: Any,
    ) -> Event:
        record = FailureRecord(
            failure_id=failure_id,
            run_id=run_id,
            timestamp=0.0,
            category=category,
            severity="high",
            error_type=fields.pop("error_type", "ConnectionError"),
            error_message=fields.pop("error_message", "connection reset"),
            recovered=recovered,
            **fields,
        )
        return self.make(
            EventType.FAILURE,
            run_id=run_id,
            name="failure",
            attributes=failure_event_attributes(record),
            severity=severity,
            category=category,
        )

    def recovered(self, run_id: str, failure_id: str, action: str | None = "retry") -> Event:
        return self.make(
            EventType.FAILURE_RECOVERED,
            run_id=run_id,
            name="recovered",
            attributes={"failure_id": failure_id, "recovery_action": action},
        )


@pytest.fixture
def factory() -> EventFactory:
    return EventFactory()


def backend_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'keel.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, tmp_path, request)


@pytest.fixture(params=DURABLE_BACKENDS)
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, tmp_path, request)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()
