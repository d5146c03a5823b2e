"""Monitoring fixtures: stores filled with events whose times we choose."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agentkeel.events import Event
from agentkeel.store import Store, open_store


class Events:
    """Builds events with increasing seq; ``at`` is a wall time (default: now)."""

    def __init__(self, origin: str = "proc0001") -> None:
        self.origin = origin
        self._seq = itertools.count(1)

    def make(
        self,
        type: str,
        name: str = "",
        *,
        at: float | None = None,
        severity: int = 0,
        category: str | None = None,
        run_id: str | None = "run-1",
        attrs: dict[str, Any] | None = None,
        **attributes: Any,
    ) -> Event:
        """``attrs`` for attribute names that clash with the keywords (``severity``)."""
        when = time.time() if at is None else at
        return Event(
            type=type,
            name=name,
            severity=severity,
            category=category,
            attributes={**(attrs or {}), **attributes},
            run_id=run_id,
            wall_ns=int(when * 1e9),
            mono_ns=time.perf_counter_ns(),
            seq=next(self._seq),
            origin=self.origin,
        )


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def store() -> Iterator[Store]:
    s = open_store("memory://")
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'keel.db'}")
    yield s
    s.close()
