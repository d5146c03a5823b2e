"""What every store backend does, and the records its queries return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agentkeel.events import Event, FailureRecord


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the store knows it. ``status`` is running, succeeded or failed."""

    run_id: str
    name: str
    status: str
    started_at: float
    ended_at: float | None = None
    duration_ms: float | None = None
    user_id: str | None = None
    session_id: str | None = None
    parent_run_id: str | None = None
    tags: tuple[str, ...] = ()
    error_type: str | None = None
    error_message: str | None = None
    failure_count: int = 0
    recovered_count: int = 0
    event_count: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def recovery_rate(self) -> float:
        """Recovered failures as a percentage of all failures (0 when there were none)."""
        return 100.0 * self.recovered_count / self.failure_count if self.failure_count else 0.0


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back, with the store's own ordering key."""

    store_seq: int
    event: Event


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.latest


@runtime_checkable
class Store(Protocol):
    """A durable home for events, runs and failures.

    ``write_events`` is called from the pipeline's writer thread with batches; it
    must be idempotent per ``event_id`` (a batch may be retried after an error) and
    must return only once the batch is durable. Runs and failures are derived from
    the events in the same transaction, so every backend answers the same queries.
    """

    url: str

    def write_events(self, events: Sequence[Event]) -> None: ...

    def list_runs(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        status: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        since: float | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, ``limit`` from ``offset``.

        ``status`` is running, succeeded or failed; ``user_id`` matches exactly;
        ``name`` matches runs whose name *contains* it (case-sensitive, so an exact
        name matches too); ``since`` keeps runs started at or after that epoch time.
        """
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this ID, or the only run whose ID starts with it; else UnknownRunError."""
        ...

    def list_events(
        self,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """Events in store order; page with ``after_seq`` = the last ``store_seq`` seen."""
        ...

    def count_events(self, *, run_id: str | None = None) -> int: ...

    def list_failures(
        self,
        *,
        run_id: str | None = None,
        category: str | None = None,
        limit: int = 1000,
    ) -> list[FailureRecord]:
        """Failures, oldest first, with their recovery applied."""
        ...

    def schema_status(self) -> SchemaStatus: ...

    def migrate(self) -> list[str]:
        """Apply pending migrations; return their names."""
        ...

    def close(self) -> None: ...
