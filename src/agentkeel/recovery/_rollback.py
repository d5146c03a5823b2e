"""Rollback: snapshots of an agent's state, proven intact on every read, restored on demand.

A snapshot is the agent's state as canonical JSON (see ``_state_codec``), stored
in the store with the SHA-256 of its bytes. Every read checks that hash first: a
corrupt snapshot is never restored. Asked for by ID, it raises
:class:`CorruptSnapshotError` naming the next older intact snapshot; when the
latest good snapshot is wanted, it is skipped and the next older one tried. Both
emit a ``snapshot.corrupt`` event.

Retention is enforced on the way in (``create_snapshot`` prunes the agent's
snapshots beyond ``max_snapshots`` and older than ``cleanup_after_hours``) and on
the way out (an expired snapshot is never offered, even before it is pruned).

The async methods carry the seed's names (``await create_snapshot(...)``); each
has a ``_sync`` twin. The state is encoded in the caller's thread — so that no
other task can change it half-way — and the store is called from a worker thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from agentkeel import _runtime
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.events import Category, EventType, Severity
from agentkeel.recovery._config_checks import count, flag
from agentkeel.recovery._errors import CorruptSnapshotError, UnknownSnapshotError
from agentkeel.recovery._state_codec import (
    CorruptData,
    DecodeHook,
    EncodeHook,
    StateCodec,
    checksum_of,
)
from agentkeel.recovery._state_common import (
    check_limit,
    check_metadata,
    check_name,
    check_opt_name,
    coerce_config,
    drive,
    in_thread,
    new_id,
    record_dict,
    resolve_store,
    retention,
    settings_from_dict,
)
from agentkeel.store import InterventionRecord, SnapshotRecord, Store

SNAPSHOT_CORRUPT = "snapshot.corrupt"
"""The event emitted when a snapshot fails its checksum or does not decode."""

SnapshotValidator = Callable[["Snapshot"], "bool | Awaitable[bool]"]
"""Called with a candidate snapshot before a rollback accepts it; falsy refuses it."""

# How many of an agent's snapshots a rollback or a fallback search looks through.
_SCAN_LIMIT = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackConfig:
    """How many snapshots to keep and for how long.

    * ``max_snapshots`` — per agent; the oldest beyond it are deleted when a new
      one is taken.
    * ``cleanup_after_hours`` — snapshots older than this (hours, or a
      ``timedelta``) are never restored and are deleted; ``None`` keeps them.
    * ``compression`` — zlib-compress snapshots (kept uncompressed when that
      would not make them smaller).

    :meth:`from_dict` also takes the seed's names: ``compression_enabled``,
    ``verification_enabled`` (must be true: checksums are always verified) and
    ``backup_to_remote`` (must be false: use a PostgreSQL store instead).
    """

    max_snapshots: int = 10
    cleanup_after_hours: float | timedelta | None = 24.0
    compression: bool = True

    def __post_init__(self) -> None:
        count(self.max_snapshots, "max_snapshots")
        hours = retention(self.cleanup_after_hours, "cleanup_after_hours", "hours", 3600.0)
        object.__setattr__(self, "cleanup_after_hours", hours)  # kept as hours, like it reads
        flag(self.compression, "compression")

    @property
    def retention_seconds(self) -> float | None:
        hours = self.cleanup_after_hours
        if hours is None:
            return None
        return hours.total_seconds() if isinstance(hours, timedelta) else hours * 3600.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollbackConfig:
        """From a seed-style ``config['rollback']`` dict; unknown keys are refused."""
        return cls(
            **settings_from_dict(
                data,
                label="rollback",
                fields=("max_snapshots", "cleanup_after_hours", "compression"),
                aliases={"compression_enabled": "compression"},
                fixed={
                    "verification_enabled": (
                        True,
                        "checksums are always verified, so that a corrupt snapshot is "
                        "never restored",
                    ),
                    "backup_to_remote": (
                        False,
                        "to keep snapshots off this machine, use a PostgreSQL store "
                        "(KEEL_STORE=postgresql://…)",
                    ),
                },
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotInfo:
    """A snapshot without its state. ``intact`` is whether its checksum matched when read.

    ``size`` is the encoded state in bytes, ``stored_size`` what the store holds
    (smaller when ``compressed``).
    """

    snapshot_id: str
    agent_id: str
    task_id: str | None
    created_at: float
    checksum: str
    compressed: bool
    size: int
    stored_size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    intact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return record_dict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot(SnapshotInfo):
    """A snapshot with its state, read back and verified."""

    state: Any = None


@dataclass(frozen=True, slots=True)
class RollbackAttempt:
    """One snapshot a rollback looked at: ``restored``, ``corrupt`` or ``rejected``, and why."""

    snapshot_id: str
    outcome: Literal["restored", "corrupt", "rejected"]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackResult:
    """What a rollback did. On success ``state`` is the restored state (deep-equal to
    what was snapshotted); ``tried`` lists every snapshot looked at, newest first."""

    success: bool
    agent_id: str
    snapshot_id: str | None = None
    task_id: str | None = None
    state: Any = None
    reason: str = ""
    created_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tried: tuple[RollbackAttempt, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "agent_id": self.agent_id,
            "snapshot_id": self.snapshot_id,
            "task_id": self.task_id,
            "created_at": self.created_at,
            "reason": self.reason,
            "metadata": dict(self.metadata),
            "state": self.state,
            "tried": [
                {"snapshot_id": t.snapshot_id, "outcome": t.outcome, "reason": t.reason}
                for t in self.tried
            ],
        }


Verdict = tuple[bool, str]


class RollbackManager:
    """Takes, lists, verifies and restores snapshots of agents' states.

    ``store`` defaults to the process-wide one (``agentkeel.get_store()``).
    ``encode_hook`` / ``decode_hook`` carry types JSON cannot hold (datetimes,
    dataclasses …) — see ``docs/recovery/rollback.md``. ``validator`` is called
    with each candidate :class:`Snapshot` before a rollback accepts it; a falsy
    answer refuses it. ``record_interventions`` notes each rollback on the agent's
    intervention timeline (see :class:`HistoryManager`).
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        max_snapshots: int = 10,
        cleanup_after_hours: float | timedelta | None = 24.0,
        compression: bool = True,
        encode_hook: EncodeHook | None = None,
        decode_hook: DecodeHook | None = None,
        validator: SnapshotValidator | None = None,
        record_interventions: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = RollbackConfig(
            max_snapshots=max_snapshots,
            cleanup_after_hours=cleanup_after_hours,
            compression=compression,
        )
        for name, hook in (
            ("encode_hook", encode_hook),
            ("decode_hook", decode_hook),
            ("validator", validator),
        ):
            if hook is not None and not callable(hook):
                raise ConfigurationError(f"{name} must be callable, got {hook!r}")
        self._store = store
        self._codec = StateCodec(
            compression=compression,
            encode_hook=encode_hook,
            decode_hook=decode_hook,
            owner="RollbackManager",
        )
        self.validator = validator
        self.record_interventions = flag(record_interventions, "record_interventions")
        self._clock = clock

    @classmethod
    def from_config(
        cls,
        config: RollbackConfig | Mapping[str, Any] | None = None,
        *,
        store: Store | None = None,
        encode_hook: EncodeHook | None = None,
        decode_hook: DecodeHook | None = None,
        validator: SnapshotValidator | None = None,
        record_interventions: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> RollbackManager:
        """A manager from a :class:`RollbackConfig` or a seed-style dict."""
        config = coerce_config(config, RollbackConfig)
        return cls(
            store=store,
            max_snapshots=config.max_snapshots,
            cleanup_after_hours=config.cleanup_after_hours,
            compression=config.compression,
            encode_hook=encode_hook,
            decode_hook=decode_hook,
            validator=validator,
            record_interventions=record_interventions,
            clock=clock,
        )

    @property
    def store(self) -> Store:
        return resolve_store(self._store)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"RollbackManager(max_snapshots={c.max_snapshots}, "
            f"cleanup_after_hours={c.cleanup_after_hours}, compression={c.compression})"
        )

    # ------------------------------------------------------------------- create
    async def create_snapshot(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        state_data: Any,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Snapshot ``state_data``; return the new snapshot's ID."""
        record = self._prepare(agent_id, task_id, state_data, metadata)
        return await in_thread(self._commit, record)

    def create_snapshot_sync(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        state_data: Any,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """:meth:`create_snapshot` for synchronous code."""
        return self._commit(self._prepare(agent_id, task_id, state_data, metadata))

    def _prepare(
        self, agent_id: object, task_id: object, state_data: Any, metadata: object
    ) -> SnapshotRecord:
        agent = check_name(agent_id, "agent_id")
        task = check_opt_name(task_id, "task_id")
        meta = check_metadata(metadata)
        encoded = self._codec.encode(state_data)
        return SnapshotRecord(
            snapshot_id=new_id("snap"),
            agent_id=agent,
            task_id=task,
            created_at=self._clock.wall(),
            checksum=encoded.checksum,
            compressed=encoded.compressed,
            size=encoded.size,
            blob=encoded.blob,
            metadata=meta,
        )

    def _commit(self, record: SnapshotRecord) -> str:
        store = self.store
        store.save_snapshot(record)
        pruned = store.prune_snapshots(
            agent_id=record.agent_id,
            keep=self.config.max_snapshots,
            older_than=self._cutoff(record.created_at),
        )
        _runtime.emit(
            EventType.SNAPSHOT_CREATED,
            name=record.agent_id,
            category=Category.STATE,
            attributes={
                "snapshot_id": record.snapshot_id,
                "agent_id": record.agent_id,
                "task_id": record.task_id,
                "size": record.size,
                "stored_size": len(record.blob),
                "compressed": record.compressed,
                "pruned": pruned,
            },
        )
        return record.snapshot_id

    # -------------------------------------------------------------------- read
    async def list_snapshots(
        self, agent_id: str | None = None, *, task_id: str | None = None, limit: int = 100
    ) -> list[SnapshotInfo]:
        """Snapshots still within retention, newest first, each with ``intact`` checked."""
        return await in_thread(self.list_snapshots_sync, agent_id, task_id=task_id, limit=limit)

    def list_snapshots_sync(
        self, agent_id: str | None = None, *, task_id: str | None = None, limit: int = 100
    ) -> list[SnapshotInfo]:
        agent = check_opt_name(agent_id, "agent_id")
        task = check_opt_name(task_id, "task_id")
        records = self.store.list_snapshots(agent_id=agent, task_id=task, limit=check_limit(limit))
        now = self._clock.wall()
        return [
            _info(r, intact=checksum_of(r.blob) == r.checksum)
            for r in records
            if not self._expired(r, now)
        ]

    async def get_snapshot(self, snapshot_id: str) -> Snapshot:
        """The snapshot with its state, verified; CorruptSnapshotError if it is not intact."""
        return await in_thread(self.get_snapshot_sync, snapshot_id)

    def get_snapshot_sync(self, snapshot_id: str) -> Snapshot:
        wanted = check_name(snapshot_id, "snapshot_id")
        store = self.store
        record = store.get_snapshot(wanted)
        if record is None or self._expired(record, self._clock.wall()):
            gone = "" if record is None else " (it is older than cleanup_after_hours)"
            raise UnknownSnapshotError(
                f"no snapshot has the ID {wanted!r}{gone} in the store: list them with "
                "`keel snapshots` (old ones are removed by max_snapshots and "
                "cleanup_after_hours)"
            )
        try:
            return self._open(record)
        except CorruptData as exc:
            fallback = self._fallback(record)
            self._report_corrupt(record, str(exc), fallback)
            raise CorruptSnapshotError(
                record.snapshot_id, record.agent_id, str(exc), fallback
            ) from None

    # ---------------------------------------------------------------- rollback
    async def rollback(
        self,
        agent_id: str,
        snapshot_id: str | None = None,
        *,
        task_id: str | None = None,
        validate: SnapshotValidator | None = None,
        kind: Literal["manual", "automatic"] = "automatic",
        actor: str = "agentkeel.rollback",
    ) -> RollbackResult:
        """Restore ``snapshot_id``, or the latest intact snapshot the validator accepts.

        Without ``snapshot_id`` the agent's snapshots (only ``task_id``'s, if given)
        are tried newest first: corrupt ones and ones the validator refuses are
        skipped, and the first accepted one is restored. With ``snapshot_id`` only
        that one is considered: corrupt raises CorruptSnapshotError (naming the next
        older intact snapshot), refused gives an unsuccessful result. ``validate``
        replaces the manager's validator for this call; it may be async here.
        """
        check = validate if validate is not None else self.validator
        steps = self._steps(agent_id, snapshot_id, task_id, kind, actor)
        step = await in_thread(drive, steps, None)
        while isinstance(step, Snapshot):
            step = await in_thread(drive, steps, await _averdict(check, step))
        return step

    def rollback_sync(
        self,
        agent_id: str,
        snapshot_id: str | None = None,
        *,
        task_id: str | None = None,
        validate: SnapshotValidator | None = None,
        kind: Literal["manual", "automatic"] = "automatic",
        actor: str = "agentkeel.rollback",
    ) -> RollbackResult:
        """:meth:`rollback` for synchronous code (the validator must be sync)."""
        check = validate if validate is not None else self.validator
        steps = self._steps(agent_id, snapshot_id, task_id, kind, actor)
        step = drive(steps, None)
        while isinstance(step, Snapshot):
            step = drive(steps, _verdict(check, step))
        return step

    def _steps(
        self,
        agent_id: object,
        snapshot_id: object,
        task_id: object,
        kind: str,
        actor: object,
    ) -> Generator[Snapshot, Verdict, RollbackResult]:
        """The rollback as a generator: it yields each candidate and is sent the verdict.

        All store work happens inside it, so the async shell can run each step in a
        worker thread while validators run on the event loop.
        """
        agent = check_name(agent_id, "agent_id")
        task = check_opt_name(task_id, "task_id")
        who = check_name(actor, "actor")
        if kind not in ("manual", "automatic"):
            raise ConfigurationError(f"kind must be 'manual' or 'automatic', got {kind!r}")
        tried: list[RollbackAttempt] = []
        if snapshot_id is not None:
            snapshot = self.get_snapshot_sync(check_name(snapshot_id, "snapshot_id"))
            if snapshot.agent_id != agent or (task is not None and snapshot.task_id != task):
                raise UnknownSnapshotError(
                    f"snapshot {snapshot.snapshot_id!r} belongs to agent "
                    f"{snapshot.agent_id!r} (task {snapshot.task_id!r}), not to agent "
                    f"{agent!r}" + (f" task {task!r}" if task is not None else "")
                )
            accepted, why = yield snapshot
            if accepted:
                return self._restored(snapshot, tried, kind, who)
            tried.append(RollbackAttempt(snapshot.snapshot_id, "rejected", why))
            return RollbackResult(
                success=False,
                agent_id=agent,
                task_id=task,
                reason=f"snapshot {snapshot.snapshot_id} was refused: {why}; nothing restored",
                tried=tuple(tried),
            )

        now = self._clock.wall()
        records = self.store.list_snapshots(agent_id=agent, task_id=task, limit=_SCAN_LIMIT)
        corrupt: list[tuple[SnapshotRecord, str]] = []
        for record in records:
            if self._expired(record, now):
                continue
            try:
                snapshot = self._open(record)
            except CorruptData as exc:
                corrupt.append((record, str(exc)))
                tried.append(RollbackAttempt(record.snapshot_id, "corrupt", str(exc)))
                continue
            for bad, problem in corrupt:  # this is the next older intact one for them
                self._report_corrupt(bad, problem, snapshot.snapshot_id)
            corrupt.clear()
            accepted, why = yield snapshot
            if accepted:
                return self._restored(snapshot, tried, kind, who)
            tried.append(RollbackAttempt(snapshot.snapshot_id, "rejected", why))
        for bad, problem in corrupt:
            self._report_corrupt(bad, problem, None)
        scope = f"agent {agent!r}" + (f", task {task!r}" if task is not None else "")
        if not tried:
            reason = f"{scope} has no snapshot to roll back to"
        else:
            reason = (
                f"none of the {len(tried)} snapshot(s) of {scope} could be restored "
                f"({_outcomes(tried)})"
            )
        return RollbackResult(success=False, agent_id=agent, task_id=task, reason=reason,
                              tried=tuple(tried))  # fmt: skip

    def _restored(
        self, snapshot: Snapshot, tried: list[RollbackAttempt], kind: str, actor: str
    ) -> RollbackResult:
        tried.append(RollbackAttempt(snapshot.snapshot_id, "restored", "intact and accepted"))
        skipped = [t.snapshot_id for t in tried[:-1]]
        if self.record_interventions:
            self.store.add_intervention(
                InterventionRecord(
                    intervention_id=new_id("int"),
                    agent_id=snapshot.agent_id,
                    task_id=snapshot.task_id,
                    at=self._clock.wall(),
                    kind=kind,
                    actor=actor,
                    action="rollback",
                    details={"snapshot_id": snapshot.snapshot_id, "skipped": skipped},
                )
            )
        _runtime.emit(
            EventType.SNAPSHOT_RESTORED,
            name=snapshot.agent_id,
            severity=Severity.LOW,
            category=Category.STATE,
            attributes={
                "snapshot_id": snapshot.snapshot_id,
                "agent_id": snapshot.agent_id,
                "task_id": snapshot.task_id,
                "skipped": skipped,
                "kind": kind,
                "actor": actor,
            },
        )
        reason = f"restored snapshot {snapshot.snapshot_id}"
        if skipped:
            reason += f" after skipping {len(skipped)} ({_outcomes(tried[:-1])})"
        return RollbackResult(
            success=True,
            agent_id=snapshot.agent_id,
            snapshot_id=snapshot.snapshot_id,
            task_id=snapshot.task_id,
            state=snapshot.state,
            reason=reason,
            created_at=snapshot.created_at,
            metadata=dict(snapshot.metadata),
            tried=tuple(tried),
        )

    # ----------------------------------------------------------------- upkeep
    async def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete one snapshot; False if there was none with that ID."""
        return await in_thread(self.delete_snapshot_sync, snapshot_id)

    def delete_snapshot_sync(self, snapshot_id: str) -> bool:
        return self.store.delete_snapshots([check_name(snapshot_id, "snapshot_id")]) == 1

    async def cleanup(self, agent_id: str | None = None) -> list[str]:
        """Enforce retention now (for every agent unless one is named); return the
        IDs deleted."""
        return await in_thread(self.cleanup_sync, agent_id)

    def cleanup_sync(self, agent_id: str | None = None) -> list[str]:
        return self.store.prune_snapshots(
            agent_id=check_opt_name(agent_id, "agent_id"),
            keep=self.config.max_snapshots,
            older_than=self._cutoff(self._clock.wall()),
        )

    # --------------------------------------------------------------- internals
    def _cutoff(self, now: float) -> float | None:
        keep = self.config.retention_seconds
        return None if keep is None else now - keep

    def _expired(self, record: SnapshotRecord, now: float) -> bool:
        cutoff = self._cutoff(now)
        return cutoff is not None and record.created_at < cutoff

    def _open(self, record: SnapshotRecord) -> Snapshot:
        """The record's state, verified and decoded (CorruptData if it is not intact)."""
        state = self._codec.decode(record.blob, record.checksum, record.compressed)
        return Snapshot(**_fields(record, intact=True), state=state)

    def _fallback(self, corrupt: SnapshotRecord) -> str | None:
        """The newest intact snapshot of the same agent saved before ``corrupt``."""
        records = self.store.list_snapshots(agent_id=corrupt.agent_id, limit=_SCAN_LIMIT)
        ids = [r.snapshot_id for r in records]
        older = records[ids.index(corrupt.snapshot_id) + 1 :] if corrupt.snapshot_id in ids else []
        now = self._clock.wall()
        for record in older:
            if self._expired(record, now):
                continue
            try:
                self._open(record)
            except CorruptData:
                continue
            return record.snapshot_id
        return None

    def _report_corrupt(self, record: SnapshotRecord, problem: str, fallback: str | None) -> None:
        _runtime.emit(
            SNAPSHOT_CORRUPT,
            name=record.agent_id,
            severity=Severity.HIGH,
            category=Category.STATE,
            attributes={
                "snapshot_id": record.snapshot_id,
                "agent_id": record.agent_id,
                "task_id": record.task_id,
                "problem": problem,
                "fallback_id": fallback,
            },
        )


def _fields(record: SnapshotRecord, *, intact: bool) -> dict[str, Any]:
    return {
        "snapshot_id": record.snapshot_id,
        "agent_id": record.agent_id,
        "task_id": record.task_id,
        "created_at": record.created_at,
        "checksum": record.checksum,
        "compressed": record.compressed,
        "size": record.size,
        "stored_size": len(record.blob),
        "metadata": record.metadata,
        "intact": intact,
    }


def _info(record: SnapshotRecord, *, intact: bool) -> SnapshotInfo:
    return SnapshotInfo(**_fields(record, intact=intact))


def _outcomes(tried: list[RollbackAttempt]) -> str:
    corrupt = sum(1 for t in tried if t.outcome == "corrupt")
    rejected = sum(1 for t in tried if t.outcome == "rejected")
    parts = [f"{corrupt} corrupt"] if corrupt else []
    if rejected:
        parts.append(f"{rejected} refused by the validator")
    return ", ".join(parts)


def _verdict(check: SnapshotValidator | None, snapshot: Snapshot) -> Verdict:
    if check is None:
        return True, "accepted"
    answer = check(snapshot)
    if inspect.isawaitable(answer):
        close = getattr(answer, "close", None)
        if callable(close):
            close()  # never awaited: say so here instead of a RuntimeWarning later
        raise ConfigurationError(
            "the validator is async: use `await manager.rollback(...)`, or give "
            "rollback_sync() a plain function"
        )
    return _judged(answer)


async def _averdict(check: SnapshotValidator | None, snapshot: Snapshot) -> Verdict:
    if check is None:
        return True, "accepted"
    answer = check(snapshot)
    if inspect.isawaitable(answer):
        answer = await answer
    return _judged(answer)


def _judged(answer: object) -> Verdict:
    if answer:
        return True, "accepted"
    return False, f"the validator returned {answer!r}"
