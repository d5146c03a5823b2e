"""Recovery fixtures: a store per backend, a fake clock, captured events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _recovery_helpers import FakeClock

import agentkeel
from agentkeel.events import Event
from agentkeel.store import Store, open_store

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'keel.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(url_for(request.param, tmp_path, request))
    yield opened
    opened.close()


@pytest.fixture
def memory_store() -> Iterator[Store]:
    opened = open_store("memory://")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> Callable[[str], list[Event]]:
    """The pipeline writes to a memory store; call the result with an event type."""
    sink = open_store("memory://")
    agentkeel.configure(store=sink)

    def of_type(event_type: str) -> list[Event]:
        assert agentkeel.flush()
        return [s.event for s in sink.list_events(types=[event_type])]

    return of_type
