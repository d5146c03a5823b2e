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
class FailureGroup:
    """Failures that share a fingerprint (the same error in the same place), counted.

    ``category``, ``error_type``, ``error_message``, ``tool_name`` and ``graph_node``
    are those of the group's most recent failure.
    """

    fingerprint: str
    count: int
    recovered: int
    runs: int
    first_seen: float
    last_seen: float
    category: str
    error_type: str
    error_message: str
    tool_name: str | None = None
    graph_node: str | None = None

    @property
    def recovery_rate(self) -> float:
        """Recovered failures as a percentage of the group (0 when empty)."""
        return 100.0 * self.recovered / self.count if self.count else 0.0


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


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A state snapshot as stored: the state is an opaque blob with its SHA-256.

    ``size`` is the length of the encoded state before compression; ``blob`` is
    what is stored (compressed when ``compressed``), and ``checksum`` the hex
    SHA-256 of exactly those bytes. The store never looks inside the blob.
    """

    snapshot_id: str
    agent_id: str
    task_id: str | None
    created_at: float
    checksum: str
    compressed: bool
    size: int
    blob: bytes
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateVersionRecord:
    """One recorded version of an agent's state for a task; ``version`` counts from 1."""

    agent_id: str
    task_id: str
    version: int
    created_at: float
    checksum: str
    compressed: bool
    size: int
    blob: bytes
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def version_id(self) -> str:
        """``v0001``, ``v0002`` … (more digits after ``v9999``)."""
        return f"v{self.version:04d}"


@dataclass(frozen=True, slots=True)
class InterventionRecord:
    """Something done to an agent: by a person (``manual``) or by agentkeel (``automatic``)."""

    intervention_id: str
    agent_id: str
    task_id: str | None
    at: float
    kind: str
    actor: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)


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
        until: float | None = None,
        sort: str = "-started_at",
    ) -> list[RunRecord]:
        """Runs, newest first, ``limit`` from ``offset``.

        ``status`` is running, succeeded or failed; ``user_id`` matches exactly;
        ``name`` matches runs whose name *contains* it (case-sensitive, so an exact
        name matches too); ``since`` keeps runs started at or after that epoch time,
        ``until`` those started before it. ``sort`` is one of ``RUN_SORTS``: a column
        (started_at, duration_ms, status), ``-`` first for descending; ties go by
        run ID in the same direction, and runs without a value sort last.
        """
        ...

    def count_runs(
        self,
        *,
        status: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many runs ``list_runs`` with the same filters would page through."""
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

    def failure_groups(
        self,
        *,
        category: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[FailureGroup]:
        """Failures grouped by fingerprint, the largest group first (ties by fingerprint);
        ``since`` keeps failures that occurred at or after that epoch time."""
        ...

    # ---------------------------------------------------- snapshots (rollback)
    def save_snapshot(self, record: SnapshotRecord) -> None:
        """Store a snapshot; its ID must be new (StoreError otherwise)."""
        ...

    def get_snapshot(self, snapshot_id: str) -> SnapshotRecord | None: ...

    def list_snapshots(
        self, *, agent_id: str | None = None, task_id: str | None = None, limit: int = 100
    ) -> list[SnapshotRecord]:
        """Snapshots, the most recently saved first."""
        ...

    def delete_snapshots(self, snapshot_ids: Sequence[str]) -> int:
        """Delete these snapshots (unknown IDs are skipped); return how many went."""
        ...

    def prune_snapshots(
        self,
        *,
        agent_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> list[str]:
        """Delete all but the ``keep`` newest of each agent, and those created before
        ``older_than`` (epoch seconds); only ``agent_id``'s if given. Return the IDs."""
        ...

    # --------------------------------------------------- state versions (history)
    def save_state_version(
        self,
        *,
        agent_id: str,
        task_id: str,
        created_at: float,
        checksum: str,
        compressed: bool,
        size: int,
        blob: bytes,
        metadata: dict[str, Any] | None = None,
    ) -> StateVersionRecord:
        """Store the next version of (agent, task), numbered atomically: concurrent
        writers in several processes get distinct numbers, never reused after pruning."""
        ...

    def get_state_version(
        self, agent_id: str, task_id: str, version: int
    ) -> StateVersionRecord | None: ...

    def list_state_versions(
        self, *, agent_id: str, task_id: str | None = None, limit: int = 100
    ) -> list[StateVersionRecord]:
        """Versions, newest first (by time, then version number)."""
        ...

    def prune_state_versions(
        self,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete all but the ``keep`` highest versions of each (agent, task), and
        those created before ``older_than``; return how many went."""
        ...

    def add_intervention(self, record: InterventionRecord) -> None: ...

    def list_interventions(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        limit: int = 100,
    ) -> list[InterventionRecord]:
        """Interventions, newest first."""
        ...

    def prune_interventions(
        self,
        *,
        agent_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> int:
        """Delete all but the ``keep`` newest of each agent, and those before ``older_than``."""
        ...

    # ------------------------------------------------------------------ schema
    def schema_status(self) -> SchemaStatus: ...

    def migrate(self) -> list[str]:
        """Apply pending migrations; return their names."""
        ...

    def close(self) -> None: ...
