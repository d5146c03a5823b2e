"""History: numbered versions of an agent's state per task, diffs, and interventions.

Every :meth:`HistoryManager.record_state` stores the state as a new version of
(agent, task) — ``v0001``, ``v0002`` … — numbered by the store in one atomic step,
so concurrent recorders (threads, processes, machines on PostgreSQL) never share
a number, and a number is never reused after old versions are pruned. Versions
are stored like snapshots (canonical JSON, optional zlib, SHA-256 checked on every
read). :meth:`compare_versions` diffs two of them path by path.

Interventions — a person pausing an agent, agentkeel rolling one back — are kept
beside the versions; :meth:`get_timeline` merges both by time.

Retention: each (agent, task) keeps its ``max_versions`` newest versions, each
agent its ``max_interventions`` newest interventions, and nothing older than
``retention_days``; enforced on every write and respected by every read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.recovery._config_checks import count, flag
from agentkeel.recovery._diff import StateDiff, diff_states
from agentkeel.recovery._errors import CorruptVersionError, UnknownVersionError
from agentkeel.recovery._state_codec import (
    CorruptData,
    DecodeHook,
    EncodedState,
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
    in_thread,
    new_id,
    record_dict,
    resolve_store,
    retention,
    settings_from_dict,
)
from agentkeel.store import InterventionRecord, StateVersionRecord, Store

_VERSION = re.compile(r"[vV]?0*(\d{1,18})")
_DAY = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryConfig:
    """How much history to keep.

    * ``max_versions`` — per (agent, task); the oldest beyond it are deleted.
    * ``retention_days`` — versions and interventions older than this (days, or a
      ``timedelta``) are deleted and never returned; ``None`` keeps them.
    * ``compression`` — zlib-compress stored states (when that makes them smaller).
    * ``max_interventions`` — per agent.

    :meth:`from_dict` also takes the seed's ``compression_enabled``.
    """

    max_versions: int = 100
    retention_days: float | timedelta | None = 30.0
    compression: bool = True
    max_interventions: int = 1_000

    def __post_init__(self) -> None:
        count(self.max_versions, "max_versions")
        days = retention(self.retention_days, "retention_days", "days", _DAY)
        object.__setattr__(self, "retention_days", days)  # kept as days, like it reads
        flag(self.compression, "compression")
        count(self.max_interventions, "max_interventions")

    @property
    def retention_seconds(self) -> float | None:
        days = self.retention_days
        if days is None:
            return None
        return days.total_seconds() if isinstance(days, timedelta) else days * _DAY

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryConfig:
        """From a seed-style ``config['history']`` dict; unknown keys are refused."""
        return cls(
            **settings_from_dict(
                data,
                label="history",
                fields=("max_versions", "retention_days", "compression", "max_interventions"),
                aliases={"compression_enabled": "compression"},
                fixed={},
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionInfo:
    """A recorded version without its state; ``intact`` is whether its checksum matched."""

    agent_id: str
    task_id: str
    version_id: str
    version: int
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
class StateVersion(VersionInfo):
    """A recorded version with its state, read back and verified."""

    state: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Intervention:
    """Something done to an agent: ``manual`` (a person) or ``automatic`` (agentkeel)."""

    intervention_id: str
    agent_id: str
    task_id: str | None
    at: float
    kind: Literal["manual", "automatic"]
    actor: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "intervention_id": self.intervention_id,
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "action": self.action,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """One line of an agent's timeline: a recorded ``version`` or an ``intervention``."""

    at: float
    entry: Literal["version", "intervention"]
    agent_id: str
    task_id: str | None
    version: VersionInfo | None = None
    intervention: Intervention | None = None

    @property
    def summary(self) -> str:
        if self.version is not None:
            v = self.version
            damaged = "" if v.intact else " (corrupt)"
            return f"state {v.version_id} of task {v.task_id}, {v.size} bytes{damaged}"
        if self.intervention is not None:
            i = self.intervention
            return f"{i.kind} {i.action} by {i.actor}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "entry": self.entry,
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "summary": self.summary,
            "version": self.version.to_dict() if self.version is not None else None,
            "intervention": (
                self.intervention.to_dict() if self.intervention is not None else None
            ),
        }


def parse_version(value: object) -> int:
    """``"v0003"``, ``"3"`` or ``3`` → 3."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and (match := _VERSION.fullmatch(value.strip())):
        number = int(match.group(1))
        if number >= 1:
            return number
    raise ConfigurationError(
        f"a version is written v0001, v0002 … (or as its number), got {value!r}"
    )


class HistoryManager:
    """Records versions of agents' states, compares them, and keeps a timeline.

    ``store`` defaults to the process-wide one (``agentkeel.get_store()``); the
    hooks work as for :class:`RollbackManager`. Async methods carry the seed's
    names; each has a ``_sync`` twin.
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        max_versions: int = 100,
        retention_days: float | timedelta | None = 30.0,
        compression: bool = True,
        max_interventions: int = 1_000,
        encode_hook: EncodeHook | None = None,
        decode_hook: DecodeHook | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = HistoryConfig(
            max_versions=max_versions,
            retention_days=retention_days,
            compression=compression,
            max_interventions=max_interventions,
        )
        for name, hook in (("encode_hook", encode_hook), ("decode_hook", decode_hook)):
            if hook is not None and not callable(hook):
                raise ConfigurationError(f"{name} must be callable, got {hook!r}")
        self._store = store
        self._codec = StateCodec(
            compression=compression,
            encode_hook=encode_hook,
            decode_hook=decode_hook,
            owner="HistoryManager",
        )
        self._clock = clock

    @classmethod
    def from_config(
        cls,
        config: HistoryConfig | Mapping[str, Any] | None = None,
        *,
        store: Store | None = None,
        encode_hook: EncodeHook | None = None,
        decode_hook: DecodeHook | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> HistoryManager:
        """A manager from a :class:`HistoryConfig` or a seed-style dict."""
        config = coerce_config(config, HistoryConfig)
        return cls(
            store=store,
            max_versions=config.max_versions,
            retention_days=config.retention_days,
            compression=config.compression,
            max_interventions=config.max_interventions,
            encode_hook=encode_hook,
            decode_hook=decode_hook,
            clock=clock,
        )

    @property
    def store(self) -> Store:
        return resolve_store(self._store)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"HistoryManager(max_versions={c.max_versions}, retention_days={c.retention_days}, "
            f"compression={c.compression})"
        )

    # ------------------------------------------------------------------ record
    async def record_state(
        self,
        *,
        agent_id: str,
        task_id: str,
        state_data: Any,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Record ``state_data`` as the next version of (agent, task); return its ID."""
        prepared = self._prepare(agent_id, task_id, state_data, metadata)
        return await in_thread(self._commit, *prepared)

    def record_state_sync(
        self,
        *,
        agent_id: str,
        task_id: str,
        state_data: Any,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """:meth:`record_state` for synchronous code."""
        return self._commit(*self._prepare(agent_id, task_id, state_data, metadata))

    def _prepare(
        self, agent_id: object, task_id: object, state_data: Any, metadata: object
    ) -> tuple[str, str, EncodedState, dict[str, Any], float]:
        # Encoded here, in the caller's thread, so no other task changes it meanwhile.
        agent = check_name(agent_id, "agent_id")
        task = check_name(task_id, "task_id")
        meta = check_metadata(metadata)
        return agent, task, self._codec.encode(state_data), meta, self._clock.wall()

    def _commit(
        self, agent: str, task: str, encoded: EncodedState, meta: dict[str, Any], now: float
    ) -> str:
        store = self.store
        record = store.save_state_version(
            agent_id=agent,
            task_id=task,
            created_at=now,
            checksum=encoded.checksum,
            compressed=encoded.compressed,
            size=encoded.size,
            blob=encoded.blob,
            metadata=meta,
        )
        store.prune_state_versions(
            agent_id=agent,
            task_id=task,
            keep=self.config.max_versions,
            older_than=self._cutoff(now),
        )
        return record.version_id

    # -------------------------------------------------------------------- read
    async def get_version(self, agent_id: str, task_id: str, version_id: str | int) -> StateVersion:
        """One version with its state, verified (CorruptVersionError if it is not intact)."""
        return await in_thread(self.get_version_sync, agent_id, task_id, version_id)

    def get_version_sync(self, agent_id: str, task_id: str, version_id: str | int) -> StateVersion:
        agent = check_name(agent_id, "agent_id")
        task = check_name(task_id, "task_id")
        number = parse_version(version_id)
        record = self.store.get_state_version(agent, task, number)
        if record is None or self._expired(record, self._clock.wall()):
            raise self._unknown(agent, task, number, expired=record is not None)
        try:
            state = self._codec.decode(record.blob, record.checksum, record.compressed)
        except CorruptData as exc:
            raise CorruptVersionError(agent, task, record.version_id, str(exc)) from None
        return StateVersion(**_fields(record, intact=True), state=state)

    async def list_versions(
        self, agent_id: str, task_id: str | None = None, *, limit: int = 100
    ) -> list[VersionInfo]:
        """The newest ``limit`` versions within retention, oldest first, ``intact`` checked."""
        return await in_thread(self.list_versions_sync, agent_id, task_id, limit=limit)

    def list_versions_sync(
        self, agent_id: str, task_id: str | None = None, *, limit: int = 100
    ) -> list[VersionInfo]:
        agent = check_name(agent_id, "agent_id")
        task = check_opt_name(task_id, "task_id")
        records = self.store.list_state_versions(
            agent_id=agent, task_id=task, limit=check_limit(limit)
        )
        now = self._clock.wall()
        infos = [
            VersionInfo(**_fields(r, intact=checksum_of(r.blob) == r.checksum))
            for r in records
            if not self._expired(r, now)
        ]
        infos.reverse()
        return infos

    async def compare_versions(
        self, agent_id: str, task_id: str, v1: str | int, v2: str | int
    ) -> StateDiff:
        """What changed from version ``v1`` to ``v2``: ``added``, ``removed``, ``changed``
        paths and ``total_changes``."""
        return await in_thread(self.compare_versions_sync, agent_id, task_id, v1, v2)

    def compare_versions_sync(
        self, agent_id: str, task_id: str, v1: str | int, v2: str | int
    ) -> StateDiff:
        old = self.get_version_sync(agent_id, task_id, v1)
        new = self.get_version_sync(agent_id, task_id, v2)
        return diff_states(old.state, new.state)

    # ----------------------------------------------------------- interventions
    async def record_intervention(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        kind: Literal["manual", "automatic"] = "manual",
        actor: str,
        action: str,
        details: Mapping[str, Any] | None = None,
    ) -> Intervention:
        """Note that ``actor`` did ``action`` to the agent (``details`` is kept as JSON)."""
        record = self._intervention(
            agent_id=agent_id,
            task_id=task_id,
            kind=kind,
            actor=actor,
            action=action,
            details=details,
        )
        return await in_thread(self._add_intervention, record)

    def record_intervention_sync(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        kind: Literal["manual", "automatic"] = "manual",
        actor: str,
        action: str,
        details: Mapping[str, Any] | None = None,
    ) -> Intervention:
        """:meth:`record_intervention` for synchronous code."""
        record = self._intervention(
            agent_id=agent_id,
            task_id=task_id,
            kind=kind,
            actor=actor,
            action=action,
            details=details,
        )
        return self._add_intervention(record)

    def _intervention(
        self,
        *,
        agent_id: object,
        task_id: object,
        kind: object,
        actor: object,
        action: object,
        details: object,
    ) -> InterventionRecord:
        if kind not in ("manual", "automatic"):
            raise ConfigurationError(
                f"an intervention is 'manual' (by a person) or 'automatic' (by agentkeel), "
                f"got kind={kind!r}"
            )
        return InterventionRecord(
            intervention_id=new_id("int"),
            agent_id=check_name(agent_id, "agent_id"),
            task_id=check_opt_name(task_id, "task_id"),
            at=self._clock.wall(),
            kind=str(kind),
            actor=check_name(actor, "actor"),
            action=check_name(action, "action"),
            details=check_metadata(details, "details"),
        )

    def _add_intervention(self, record: InterventionRecord) -> Intervention:
        store = self.store
        store.add_intervention(record)
        store.prune_interventions(
            agent_id=record.agent_id,
            keep=self.config.max_interventions,
            older_than=self._cutoff(record.at),
        )
        return _intervention(record)

    async def get_timeline(
        self, agent_id: str, task_id: str | None = None, *, limit: int = 100
    ) -> list[TimelineEntry]:
        """Versions and interventions of the agent (or one task), merged by time:
        the newest ``limit`` entries, oldest first."""
        return await in_thread(self.get_timeline_sync, agent_id, task_id, limit=limit)

    def get_timeline_sync(
        self, agent_id: str, task_id: str | None = None, *, limit: int = 100
    ) -> list[TimelineEntry]:
        agent = check_name(agent_id, "agent_id")
        task = check_opt_name(task_id, "task_id")
        wanted = check_limit(limit)
        entries = [
            TimelineEntry(
                at=v.created_at, entry="version", agent_id=agent, task_id=v.task_id, version=v
            )
            for v in self.list_versions_sync(agent, task, limit=wanted)
        ]
        now = self._clock.wall()
        cutoff = self._cutoff(now)
        for record in self.store.list_interventions(agent_id=agent, task_id=task, limit=wanted):
            if cutoff is not None and record.at < cutoff:
                continue
            entries.append(
                TimelineEntry(
                    at=record.at,
                    entry="intervention",
                    agent_id=agent,
                    task_id=record.task_id,
                    intervention=_intervention(record),
                )
            )
        # Stable: at one instant, a state recorded is listed before what was done to it.
        entries.sort(key=lambda e: e.at)
        return entries[-wanted:]

    # ----------------------------------------------------------------- upkeep
    async def cleanup(self, agent_id: str | None = None) -> dict[str, int]:
        """Enforce retention now (every agent unless one is named); return how many
        ``versions`` and ``interventions`` were deleted."""
        return await in_thread(self.cleanup_sync, agent_id)

    def cleanup_sync(self, agent_id: str | None = None) -> dict[str, int]:
        agent = check_opt_name(agent_id, "agent_id")
        cutoff = self._cutoff(self._clock.wall())
        store = self.store
        return {
            "versions": store.prune_state_versions(
                agent_id=agent, keep=self.config.max_versions, older_than=cutoff
            ),
            "interventions": store.prune_interventions(
                agent_id=agent, keep=self.config.max_interventions, older_than=cutoff
            ),
        }

    # --------------------------------------------------------------- internals
    def _cutoff(self, now: float) -> float | None:
        keep = self.config.retention_seconds
        return None if keep is None else now - keep

    def _expired(self, record: StateVersionRecord, now: float) -> bool:
        cutoff = self._cutoff(now)
        return cutoff is not None and record.created_at < cutoff

    def _unknown(self, agent: str, task: str, number: int, *, expired: bool) -> UnknownVersionError:
        known = self.list_versions_sync(agent, task, limit=self.config.max_versions)
        wanted = f"v{number:04d}"
        if expired:
            why = f"{wanted} is older than retention_days ({self.config.retention_days})"
        elif known:
            why = f"there is no {wanted}"
        else:
            why = "it has no recorded versions"
        have = (
            f"; it has {known[0].version_id} … {known[-1].version_id} ({len(known)})"
            if known
            else ""
        )
        return UnknownVersionError(
            f"agent {agent!r}, task {task!r}: {why}{have}. Older versions are removed by "
            "max_versions and retention_days; list them with "
            f"`keel history {agent} --task {task}`"
        )


def _fields(record: StateVersionRecord, *, intact: bool) -> dict[str, Any]:
    return {
        "agent_id": record.agent_id,
        "task_id": record.task_id,
        "version_id": record.version_id,
        "version": record.version,
        "created_at": record.created_at,
        "checksum": record.checksum,
        "compressed": record.compressed,
        "size": record.size,
        "stored_size": len(record.blob),
        "metadata": record.metadata,
        "intact": intact,
    }


def _intervention(record: InterventionRecord) -> Intervention:
    return Intervention(
        intervention_id=record.intervention_id,
        agent_id=record.agent_id,
        task_id=record.task_id,
        at=record.at,
        kind="manual" if record.kind == "manual" else "automatic",
        actor=record.actor,
        action=record.action,
        details=dict(record.details),
    )
