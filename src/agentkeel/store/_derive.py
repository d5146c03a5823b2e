"""What every backend shares: event rows, run and failure derivation, argument checks.

The backends differ only in how they move rows; the meaning of an event for the
runs and failures tables is decided here, once, in plain Python. The SQL backends
load the affected run rows, fold the batch's events into them with
:func:`apply_run_event` and write them back; the memory store does the same on
dicts. That is what makes the conformance suite pass on all three.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from msgspec.structs import astuple

from agentkeel._encoding import MAX_STRING, from_json, safe_repr, to_json_bounded, truncate
from agentkeel._errors import ConfigurationError, UnknownRunError
from agentkeel.events import (
    Category,
    Event,
    EventType,
    FailureRecord,
    Severity,
    failure_from_event,
)
from agentkeel.store._protocol import RunRecord

RUN_STATUSES = ("running", "succeeded", "failed")
AGENT_START = EventType.AGENT_START.value
AGENT_END = EventType.AGENT_END.value
FAILURE = EventType.FAILURE.value
FAILURE_RECOVERED = EventType.FAILURE_RECOVERED.value
# The event types that change the runs or failures tables; all others are only stored.
DERIVING_TYPES = frozenset({AGENT_START, AGENT_END, FAILURE, FAILURE_RECOVERED})

# Column order of an event row, shared by every backend and by event_from_row().
EVENT_COLUMNS = (
    "origin",
    "seq",
    "type",
    "name",
    "severity",
    "category",
    "run_id",
    "correlation_id",
    "span_id",
    "parent_span_id",
    "wall_ns",
    "mono_ns",
    "attributes",
)
EventRow = tuple[str, int, str, str, int, str | None, str | None, str | None, str | None,
                 str | None, int, int, str]  # fmt: skip

RUN_COLUMNS = (
    "run_id",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "user_id",
    "session_id",
    "parent_run_id",
    "tags",
    "error_type",
    "error_message",
    "attributes",
)
FAILURE_COLUMNS = (
    "failure_id",
    "run_id",
    "occurred_at",
    "category",
    "severity",
    "error_type",
    "error_message",
    "user_id",
    "graph_node",
    "tool_name",
    "latency_ms",
    "recovered",
    "recovery_action",
    "tags",
    "fingerprint",
    "attributes",
    "event_seq",
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_START_KEYS = frozenset({"user_id", "session_id", "parent_run_id", "tags"})
_END_KEYS = frozenset({"status", "duration_ms", "error_type", "error_message"})
# An escaped NUL in JSON that is not itself preceded by an escaping backslash.
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
_fast_encode = msgspec.json.Encoder().encode


# ------------------------------------------------------------------ cleaning values
def clean_text(value: object) -> str:
    """Text that every backend can store: a str, valid UTF-8, no NUL, bounded length.

    PostgreSQL rejects NUL characters and no driver can encode lone surrogates, so
    one stray byte in an event name would otherwise sink its whole batch. NULs
    become U+FFFD on every backend, so they all read back the same.
    """
    if type(value) is str:
        text = value
    elif isinstance(value, str):
        text = str.__str__(value)  # a StrEnum's value, never a subclass's __str__
    else:
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - a broken __str__ must not sink the batch
            text = safe_repr(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return truncate(text)


def clean_opt_text(value: object) -> str | None:
    return None if value is None else clean_text(value)


def clean_int(value: object) -> int:
    """An int that fits a 64-bit column; anything else becomes 0."""
    if isinstance(value, int):
        number = int(value)  # also turns an IntEnum or a bool into a plain int
    else:
        try:
            number = int(value)  # type: ignore[call-overload]
        except Exception:  # noqa: BLE001 - odd values are stored as 0, never raised
            return 0
    return max(_INT64_MIN, min(_INT64_MAX, number))


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


_SCALARS = frozenset({int, float, bool, type(None)})
_LEAVES = _SCALARS | {str}
_STR_OR_NONE = frozenset({str, type(None)})
_TEXT_TYPES = _STR_OR_NONE | {EventType, Category}
_INT_ONLY = frozenset({int})
_INT_TYPES = frozenset({int, Severity})
_DICT_ONLY = frozenset({dict})
_decode_utf8 = bytes.decode


def _plain(value: object, depth: int = 0) -> bool:
    """Whether ``bound()`` would return ``value`` unchanged (most attributes are)."""
    kind = type(value)
    if kind is str:
        text = cast(str, value)
        return len(text) <= MAX_STRING and "\x00" not in text
    if kind in _SCALARS:
        return True
    if depth >= 8:
        return False
    if kind is dict:
        mapping = cast(dict[Any, Any], value)
        return len(mapping) <= 1_000 and _plain_items(mapping, depth + 1)
    if kind is list:
        elements = cast(list[Any], value)
        return len(elements) <= 1_000 and all(_plain(v, depth + 1) for v in elements)
    return False


def _plain_items(mapping: dict[Any, Any], depth: int) -> bool:
    for key, item in mapping.items():
        if type(key) is not str or not (type(item) in _SCALARS or _plain(item, depth)):
            return False
    return True


def json_text(value: Any) -> str:
    """JSON for an attributes column: bounded, never raising, without NUL escapes."""
    leaves = _LEAVES.issuperset
    if type(value) is dict and len(value) <= 1_000 and leaves(map(type, value.values())):
        # Most attributes: a flat dict of leaves, checked by C loops (join() raises
        # TypeError for a key that is not a str). No string can be longer than the
        # whole encoding, so a short encoding needs no cutting.
        try:
            "".join(value)
            data = _fast_encode(value)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
            pass  # a key that is not a str, a lone surrogate: the paths below
        else:
            if len(data) <= MAX_STRING and b"\\u0000" not in data:
                return data.decode("utf-8")
    if _plain(value):
        # The common case, three times cheaper: nothing to cut or repr, so the
        # bounded encoding would be the plain one.
        try:
            return _fast_encode(value).decode("utf-8")
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
            pass
    data = to_json_bounded(value)
    if b"\\u0000" in data:
        data = _JSON_NUL.sub(rb"\1\\ufffd", data)
    return data.decode("utf-8")


def load_json(value: Any) -> Any:
    """A JSON column as Python: SQLite gives text, psycopg already decoded JSONB."""
    if isinstance(value, str | bytes):
        return from_json(value)
    if isinstance(value, bytearray | memoryview):
        return from_json(bytes(value))
    return value


def load_attributes(value: Any) -> dict[str, Any]:
    data = load_json(value)
    # A value that could not be encoded as an object was stored as its repr.
    return data if isinstance(data, dict) else {"value": data}


# ------------------------------------------------------------------------- events
def _int(value: object) -> int:
    if type(value) is int and _INT64_MIN <= value <= _INT64_MAX:  # fast path
        return value
    return clean_int(value)


def event_row(event: Event) -> EventRow:
    """The stored form of an event: every field cleaned, attributes as bounded JSON."""
    origin, type_, name, category = event.origin, event.type, event.name, event.category
    run_id, correlation_id = event.run_id, event.correlation_id
    span_id, parent_span_id = event.span_id, event.parent_span_id
    # Fast path, one check for all text fields: all str (or None), short, ASCII, no NUL.
    try:
        joined = "".join(
            filter(None, (origin, type_, name, category, run_id, correlation_id, span_id,
                          parent_span_id))
        )  # fmt: skip
        clean = (
            len(joined) <= MAX_STRING
            and joined.isascii()
            and "\x00" not in joined
            and isinstance(origin, str)  # the required ones are not None either
            and isinstance(type_, str)
            and isinstance(name, str)
        )
    except TypeError:  # something is not a str
        clean = False
    if clean:
        # Enum members (EventType, Category) become their plain string values.
        if type(type_) is not str:
            type_ = str.__str__(type_)
        if type(name) is not str:
            name = str.__str__(name)
        if category is not None and type(category) is not str:
            category = str.__str__(category)
    else:
        origin, type_, name = clean_text(origin), clean_text(type_), clean_text(name)
        category, run_id = clean_opt_text(category), clean_opt_text(run_id)
        correlation_id = clean_opt_text(correlation_id)
        span_id, parent_span_id = clean_opt_text(span_id), clean_opt_text(parent_span_id)
    attributes = event.attributes
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        attributes = {"value": attributes}
    return (
        origin,
        _int(event.seq),
        type_,
        name,
        _int(event.severity),
        category,
        run_id,
        correlation_id,
        span_id,
        parent_span_id,
        _int(event.wall_ns),
        _int(event.mono_ns),
        json_text(attributes),
    )


def unique_rows(events: Sequence[Event]) -> list[EventRow]:
    """Rows of a batch in order, each event ID once (a batch may repeat an event)."""
    rows = _plain_batch_rows(events)
    return rows if rows is not None else careful_rows(events)


def careful_rows(events: Sequence[Event]) -> list[EventRow]:
    """:func:`unique_rows` event by event: every field cleaned, whatever it holds."""
    rows: dict[tuple[str, int], EventRow] = {}
    for event in events:
        row = event_row(event)
        rows.setdefault((row[0], row[1]), row)
    return list(rows.values())


def _plain_batch_rows(events: Sequence[Event]) -> list[EventRow] | None:
    """The rows of a batch that needs no cleaning, checked column by column; else None.

    The same rows as :func:`event_row` gives, for the batches agents nearly always
    send: str, enum and int fields, ASCII text without NUL, flat attributes, nothing
    too long or out of range, no event twice. Every check is one C-level pass over a
    column instead of Python code per event: this runs on the writer thread, and every
    bytecode there holds the GIL the agent's thread waits for. Anything else (None)
    takes the careful path, event by event.
    """
    if not events:
        return []
    try:
        columns = tuple(zip(*map(astuple, events), strict=True))
    except (TypeError, ValueError):  # not Events: the careful path says what is wrong
        return None
    if len(columns) != len(Event.__struct_fields__) or not _plain_columns(columns, len(events)):
        return None
    (types, names, severities, categories, attributes, run_ids, correlation_ids,
     span_ids, parent_span_ids, wall_ns, mono_ns, seqs, origins) = columns  # fmt: skip
    try:
        "".join(chain.from_iterable(attributes))  # TypeError for a key that is not a str
        encoded = list(map(_fast_encode, attributes))
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        return None  # a lone surrogate
    # No string is longer than the whole encoding it is part of.
    if max(map(len, encoded)) > MAX_STRING or b"\\u0000" in b"".join(encoded):
        return None
    return list(
        zip(origins, seqs, _plain_text(types), _plain_text(names), map(int, severities),
            _plain_text(categories), run_ids, correlation_ids, span_ids, parent_span_ids,
            wall_ns, mono_ns, map(_decode_utf8, encoded), strict=True)
    )  # fmt: skip


def _plain_columns(columns: tuple[tuple[Any, ...], ...], count: int) -> bool:
    """Whether a batch's columns (Event field order) need no cleaning but enums'."""
    (types, names, severities, categories, attributes, run_ids, correlation_ids,
     span_ids, parent_span_ids, wall_ns, mono_ns, seqs, origins) = columns  # fmt: skip
    optional = (categories, run_ids, correlation_ids, span_ids, parent_span_ids)
    ints = (severities, wall_ns, mono_ns, seqs)
    if not (
        _TEXT_TYPES.issuperset(map(type, chain(types, names, categories)))
        and _STR_OR_NONE.issuperset(map(type, chain(origins, *optional[1:])))
        and None not in origins
        and None not in types
        and None not in names
        and _INT_TYPES.issuperset(map(type, severities))
        and set(map(type, chain(wall_ns, mono_ns, seqs))) == _INT_ONLY
        and min(chain(*ints)) >= _INT64_MIN
        and max(chain(*ints)) <= _INT64_MAX
        and set(map(type, attributes)) == _DICT_ONLY
        and max(map(len, attributes)) <= 1_000
        and _LEAVES.issuperset(map(type, chain.from_iterable(map(dict.values, attributes))))
        and len(set(zip(origins, seqs, strict=True))) == count
    ):
        return False
    present = list(filter(None, chain(types, names, origins, *optional)))
    joined = "".join(present)
    return joined.isascii() and "\x00" not in joined and max(map(len, present)) <= MAX_STRING


def _plain_text(column: tuple[Any, ...]) -> Iterable[Any]:
    """A text column with enum members (EventType, Category) as their plain values."""
    if _STR_OR_NONE.issuperset(map(type, column)):
        return column
    return [value if value is None else str.__str__(value) for value in column]


def event_from_row(row: Sequence[Any]) -> Event:
    """Rebuild an Event from a row in EVENT_COLUMNS order."""
    return Event(
        type=row[2],
        name=row[3],
        severity=row[4],
        category=row[5],
        attributes=load_attributes(row[12]),
        run_id=row[6],
        correlation_id=row[7],
        span_id=row[8],
        parent_span_id=row[9],
        wall_ns=row[10],
        mono_ns=row[11],
        seq=row[1],
        origin=row[0],
    )


# --------------------------------------------------------------------------- runs
@dataclass(slots=True)
class RunRow:
    """A row of the runs table while it is being derived (mutable, unlike RunRecord)."""

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
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_db(cls, row: Sequence[Any]) -> RunRow:
        """From columns in RUN_COLUMNS order, JSON columns still encoded."""
        tags = load_json(row[9])
        return cls(
            run_id=row[0],
            name=row[1],
            status=row[2],
            started_at=row[3],
            ended_at=row[4],
            duration_ms=row[5],
            user_id=row[6],
            session_id=row[7],
            parent_run_id=row[8],
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
            error_type=row[10],
            error_message=row[11],
            attributes=load_attributes(row[12]),
        )

    def to_db(self) -> tuple[Any, ...]:
        """Columns in RUN_COLUMNS order, JSON columns encoded."""
        return (
            self.run_id,
            self.name,
            self.status,
            self.started_at,
            self.ended_at,
            self.duration_ms,
            self.user_id,
            self.session_id,
            self.parent_run_id,
            json_text(list(self.tags)),
            self.error_type,
            self.error_message,
            json_text(self.attributes),
        )

    def to_record(
        self, *, failure_count: int = 0, recovered_count: int = 0, event_count: int = 0
    ) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            name=self.name,
            status=self.status,
            started_at=self.started_at,
            ended_at=self.ended_at,
            duration_ms=self.duration_ms,
            user_id=self.user_id,
            session_id=self.session_id,
            parent_run_id=self.parent_run_id,
            tags=self.tags,
            error_type=self.error_type,
            error_message=self.error_message,
            failure_count=failure_count,
            recovered_count=recovered_count,
            event_count=event_count,
            attributes=dict(self.attributes),
        )

    def copy(self) -> RunRow:
        return dataclasses.replace(self, attributes=dict(self.attributes))


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(clean_text(t) for t in value)
    return ()


def apply_run_event(row: RunRow | None, event: Event) -> RunRow | None:
    """Fold an ``agent.start`` or ``agent.end`` event into its run's row.

    Batches may arrive out of order (a failed run's end is urgent and can be
    written before its routine start), so both orders give the same row:

    * a start creates the run, or fills in what an earlier-arrived end could not
      know (user, session, parent, tags) without touching the end's outcome;
    * a start after the run has ended is a resumed run: it is running again;
    * an end without a start creates the run from the end alone; an end older than
      the one already recorded is ignored.

    ``event`` must be normalised (rebuilt from its stored row). Returns the new
    row, or ``None`` if the event names no run.
    """
    run_id = event.run_id
    if not run_id:
        return None
    attrs = event.attributes
    extra = {k: v for k, v in attrs.items() if k not in _START_KEYS and k not in _END_KEYS}
    ts = event.timestamp
    if event.type == AGENT_START:
        if row is None:
            return RunRow(
                run_id=run_id,
                name=event.name,
                status="running",
                started_at=ts,
                user_id=clean_opt_text(attrs.get("user_id")),
                session_id=clean_opt_text(attrs.get("session_id")),
                parent_run_id=clean_opt_text(attrs.get("parent_run_id")),
                tags=_tags(attrs.get("tags")),
                attributes=extra,
            )
        row = row.copy()
        row.name = event.name or row.name
        row.user_id = clean_opt_text(attrs.get("user_id")) or row.user_id
        row.session_id = clean_opt_text(attrs.get("session_id")) or row.session_id
        row.parent_run_id = clean_opt_text(attrs.get("parent_run_id")) or row.parent_run_id
        row.tags = _tags(attrs.get("tags")) or row.tags
        row.attributes.update(extra)
        row.started_at = min(row.started_at, ts)
        if row.ended_at is not None and row.ended_at < ts:  # resumed after it ended
            row.status = "running"
            row.ended_at = row.duration_ms = None
            row.error_type = row.error_message = None
        return row

    status = attrs.get("status")
    error_type = clean_opt_text(attrs.get("error_type"))
    if status not in ("succeeded", "failed"):
        status = "failed" if error_type else "succeeded"
    duration_ms = _opt_float(attrs.get("duration_ms"))
    if row is None:
        started = ts - duration_ms / 1000 if duration_ms is not None else ts
        row = RunRow(run_id=run_id, name=event.name, status=str(status), started_at=started)
    elif row.ended_at is not None and row.ended_at > ts:
        return row  # a late copy of an older end: the newer outcome stands
    else:
        row = row.copy()
        row.name = row.name or event.name
    row.status = str(status)
    row.ended_at = ts
    row.duration_ms = duration_ms
    row.error_type = error_type
    row.error_message = clean_opt_text(attrs.get("error_message"))
    row.attributes.update(extra)
    return row


# ----------------------------------------------------------------------- failures
_FAILURE_TEXT_KEYS = ("failure_id", "user_id", "graph_node", "tool_name", "recovery_action")


def failure_record(event: Event) -> FailureRecord:
    """The failure carried by a normalised ``failure.recorded`` event, whatever its values.

    :func:`failure_from_event` trusts the event's attribute types; a hand-made
    event may carry a number as tags or a string as latency, so they are made
    safe first and a bad value is dropped rather than the failure.
    """
    attrs = dict(event.attributes)
    for key in _FAILURE_TEXT_KEYS:
        value = attrs.get(key)
        attrs[key] = None if value is None or value == "" else clean_text(value)
    attrs["latency_ms"] = _opt_float(attrs.get("latency_ms"))
    attrs["tags"] = list(_tags(attrs.get("tags")))
    attrs["recovered"] = attrs.get("recovered") is True
    if not isinstance(attrs.get("extra"), dict):
        attrs.pop("extra", None)
    severity = event.severity if 0 <= event.severity <= max(Severity) else Severity.MEDIUM
    safe = Event(
        type=event.type,
        name=event.name,
        severity=severity,
        category=event.category,
        attributes=attrs,
        run_id=event.run_id,
        wall_ns=event.wall_ns,
        seq=event.seq,
        origin=event.origin,
    )
    return failure_from_event(safe)


def failure_to_db(record: FailureRecord, event_seq: int) -> tuple[Any, ...]:
    """Columns in FAILURE_COLUMNS order."""
    return (
        record.failure_id,
        record.run_id,
        record.timestamp,
        record.category,
        record.severity,
        clean_text(record.error_type),
        clean_text(record.error_message),
        record.user_id,
        record.graph_node,
        record.tool_name,
        record.latency_ms,
        record.recovered,
        record.recovery_action,
        json_text(list(record.tags)),
        clean_text(record.fingerprint),
        json_text(record.attributes),
        event_seq,
    )


def failure_from_db(row: Sequence[Any]) -> FailureRecord:
    tags = load_json(row[13])
    return FailureRecord(
        failure_id=row[0],
        run_id=row[1],
        timestamp=row[2],
        category=row[3],
        severity=row[4],
        error_type=row[5],
        error_message=row[6],
        user_id=row[7],
        graph_node=row[8],
        tool_name=row[9],
        latency_ms=row[10],
        recovered=bool(row[11]),
        recovery_action=row[12],
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        fingerprint=row[14],
        attributes=load_attributes(row[15]),
    )


@dataclass(frozen=True, slots=True)
class Recovery:
    failure_id: str
    recovery_action: str | None
    recovered_at: float


def recovery_of(event: Event) -> Recovery | None:
    """What a normalised ``failure.recovered`` event says; None if it names no failure."""
    failure_id = event.attributes.get("failure_id")
    if failure_id is None or failure_id == "":
        return None
    return Recovery(
        failure_id=clean_text(failure_id),
        recovery_action=clean_opt_text(event.attributes.get("recovery_action")),
        recovered_at=event.timestamp,
    )


# ---------------------------------------------------------------- argument checks
def check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_status(status: str | None) -> None:
    if status is not None and status not in RUN_STATUSES:
        allowed = ", ".join(RUN_STATUSES)
        raise ConfigurationError(f"unknown run status {status!r}: use one of {allowed}")


def check_text(value: object, name: str) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {value!r}")


def check_since(since: object) -> float | None:
    if since is None:
        return None
    if isinstance(since, bool) or not isinstance(since, int | float):
        raise ConfigurationError(f"since must be seconds since the epoch (a number), got {since!r}")
    return float(since)


def check_until(until: object) -> float | None:
    if until is None:
        return None
    if isinstance(until, bool) or not isinstance(until, int | float):
        raise ConfigurationError(f"until must be seconds since the epoch (a number), got {until!r}")
    return float(until)


# The orders list_runs offers: columns of the runs table only, so that sorting never
# has to compute a count for every run. ``-`` means descending.
RUN_SORT_COLUMNS = ("started_at", "duration_ms", "status")
NULLABLE_SORT_COLUMNS = frozenset({"duration_ms"})
RUN_SORTS = tuple(f"{sign}{column}" for column in RUN_SORT_COLUMNS for sign in ("-", ""))


def check_sort(sort: object) -> tuple[str, bool]:
    """The column and whether it is descending, for a ``list_runs`` sort."""
    if not isinstance(sort, str) or sort not in RUN_SORTS:
        raise ConfigurationError(f"unknown run sort {sort!r}: use one of {', '.join(RUN_SORTS)}")
    return sort.lstrip("-"), sort.startswith("-")


def check_types(types: Sequence[str] | None) -> tuple[str, ...] | None:
    if types is None:
        return None
    if isinstance(types, str):
        raise ConfigurationError(
            f"types must be a list of event types, not one string: use types=[{types!r}]"
        )
    return tuple(str(t) for t in types)


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id:
        raise ConfigurationError(f"a run ID (or a prefix of one) is needed, got {run_id!r}")
    return run_id


# How many candidates an ambiguous prefix error lists.
MAX_CANDIDATES = 10


def no_such_run(run_id: str, url: str) -> UnknownRunError:
    return UnknownRunError(
        f"no run has the ID or ID prefix {run_id!r} in the store {mask_url(url)}: "
        "list the runs with `keel runs` (or check --store / KEEL_STORE)"
    )


def ambiguous_run(run_id: str, candidates: Sequence[str]) -> UnknownRunError:
    shown = ", ".join(candidates[:MAX_CANDIDATES])
    more = ", …" if len(candidates) > MAX_CANDIDATES else ""
    return UnknownRunError(
        f"the run ID prefix {run_id!r} is ambiguous: it matches {shown}{more}; "
        "give more characters of the ID"
    )


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        masked = parts
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            masked = masked._replace(netloc=f"{parts.username or ''}:***@{host}")
        if "password" in parts.query:
            query = [
                (k, "***" if k == "password" else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
            masked = masked._replace(query=urlencode(query, safe="*"))
        return url if masked is parts else urlunsplit(masked)
    except ValueError:
        return "<unparseable store URL>"
