"""What every backend shares for snapshots, state versions and interventions.

Rows have the same shape in every backend (metadata as bounded JSON text, the
state as an opaque blob), and every argument is checked here, once, so that the
memory store and the SQL stores accept and refuse exactly the same calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agentkeel._errors import ConfigurationError
from agentkeel.store._derive import check_count, json_text, load_attributes
from agentkeel.store._protocol import InterventionRecord, SnapshotRecord, StateVersionRecord

INTERVENTION_KINDS = ("manual", "automatic")

SNAPSHOT_COLUMNS = (
    "snapshot_id",
    "agent_id",
    "task_id",
    "created_at",
    "checksum",
    "compressed",
    "size",
    "blob",
    "metadata",
)
VERSION_COLUMNS = (
    "agent_id",
    "task_id",
    "version",
    "created_at",
    "checksum",
    "compressed",
    "size",
    "blob",
    "metadata",
)
INTERVENTION_COLUMNS = (
    "intervention_id",
    "agent_id",
    "task_id",
    "at",
    "kind",
    "actor",
    "action",
    "details",
)


# ---------------------------------------------------------------- argument checks
def check_id(value: object, name: str) -> str:
    """A non-empty string an index can hold exactly (PostgreSQL refuses NUL)."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise ConfigurationError(f"{name} must not contain NUL characters, got {value!r}")
    return str.__str__(value)  # a StrEnum's value, never a subclass


def check_opt_id(value: object, name: str) -> str | None:
    return None if value is None else check_id(value, name)


def check_keep(keep: object) -> int | None:
    return None if keep is None else check_count(keep, "keep")


def check_cutoff(older_than: object) -> float | None:
    if older_than is None:
        return None
    if isinstance(older_than, bool) or not isinstance(older_than, int | float):
        raise ConfigurationError(
            f"older_than must be seconds since the epoch (a number), got {older_than!r}"
        )
    if math.isnan(older_than):
        raise ConfigurationError("older_than must be a number of seconds, got NaN")
    return float(older_than)


def check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise ConfigurationError(
            f"snapshot_ids must be a list of IDs, not one string: use [{ids!r}]"
        )
    return sorted({check_id(i, "a snapshot ID") for i in ids})


def _check_time(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number of epoch seconds, got {value!r}")
    return float(value)


def _check_blob(
    checksum: object, compressed: object, size: object, blob: object
) -> tuple[str, bool, int, bytes]:
    if not isinstance(checksum, str) or not checksum:
        raise ConfigurationError(f"checksum must be a non-empty string, got {checksum!r}")
    if not isinstance(compressed, bool):
        raise ConfigurationError(f"compressed must be True or False, got {compressed!r}")
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ConfigurationError(f"blob must be bytes, got {type(blob).__name__}")
    return checksum, compressed, check_count(size, "size"), bytes(blob)


def check_metadata(value: object, name: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a dict, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------------- rows
def snapshot_to_db(record: SnapshotRecord) -> tuple[Any, ...]:
    """Columns in SNAPSHOT_COLUMNS order, after checking every field."""
    checksum, compressed, size, blob = _check_blob(
        record.checksum, record.compressed, record.size, record.blob
    )
    return (
        check_id(record.snapshot_id, "snapshot_id"),
        check_id(record.agent_id, "agent_id"),
        check_opt_id(record.task_id, "task_id"),
        _check_time(record.created_at, "created_at"),
        checksum,
        compressed,
        size,
        blob,
        json_text(check_metadata(record.metadata)),
    )


def snapshot_from_db(row: Sequence[Any]) -> SnapshotRecord:
    return SnapshotRecord(
        snapshot_id=row[0],
        agent_id=row[1],
        task_id=row[2],
        created_at=float(row[3]),
        checksum=row[4],
        compressed=bool(row[5]),
        size=int(row[6]),
        blob=bytes(row[7]),
        metadata=load_attributes(row[8]),
    )


def version_to_db(
    *,
    agent_id: object,
    task_id: object,
    created_at: object,
    checksum: object,
    compressed: object,
    size: object,
    blob: object,
    metadata: object,
) -> tuple[Any, ...]:
    """Columns in VERSION_COLUMNS order except ``version`` (the store assigns it)."""
    checksum_, compressed_, size_, blob_ = _check_blob(checksum, compressed, size, blob)
    return (
        check_id(agent_id, "agent_id"),
        check_id(task_id, "task_id"),
        _check_time(created_at, "created_at"),
        checksum_,
        compressed_,
        size_,
        blob_,
        json_text(check_metadata(metadata)),
    )


def version_from_db(row: Sequence[Any]) -> StateVersionRecord:
    return StateVersionRecord(
        agent_id=row[0],
        task_id=row[1],
        version=int(row[2]),
        created_at=float(row[3]),
        checksum=row[4],
        compressed=bool(row[5]),
        size=int(row[6]),
        blob=bytes(row[7]),
        metadata=load_attributes(row[8]),
    )


def intervention_to_db(record: InterventionRecord) -> tuple[Any, ...]:
    if record.kind not in INTERVENTION_KINDS:
        raise ConfigurationError(
            f"an intervention is 'manual' or 'automatic', got kind={record.kind!r}"
        )
    return (
        check_id(record.intervention_id, "intervention_id"),
        check_id(record.agent_id, "agent_id"),
        check_opt_id(record.task_id, "task_id"),
        _check_time(record.at, "at"),
        record.kind,
        check_id(record.actor, "actor"),
        check_id(record.action, "action"),
        json_text(check_metadata(record.details, "details")),
    )


def intervention_from_db(row: Sequence[Any]) -> InterventionRecord:
    return InterventionRecord(
        intervention_id=row[0],
        agent_id=row[1],
        task_id=row[2],
        at=float(row[3]),
        kind=row[4],
        actor=row[5],
        action=row[6],
        details=load_attributes(row[7]),
    )
