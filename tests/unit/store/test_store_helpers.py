"""The pieces behind the backends: migrations list, URL masking, value cleaning."""

from __future__ import annotations

import json

import pytest

from agentkeel import Event, EventType, SchemaVersionError, Severity
from agentkeel.store import _schema, open_store
from agentkeel.store._derive import (
    clean_int,
    clean_text,
    event_from_row,
    event_row,
    json_text,
    mask_url,
)
from agentkeel.store._memory import MemoryStore
from agentkeel.store._postgres import PostgresStore
from agentkeel.store._sqlite import SQLiteStore


def test_migrations_are_numbered_and_have_sql_for_every_dialect() -> None:
    assert [m.version for m in _schema.MIGRATIONS] == list(range(1, _schema.LATEST + 1))
    for migration in _schema.MIGRATIONS:
        assert migration.name.isidentifier()
        assert migration.label == f"{migration.version:04d}_{migration.name}"
        assert migration.statements("sqlite")
        assert migration.statements("postgres")
        # Both dialects create the same tables and indexes.
        created = [
            {s.split("(")[0].split()[-1] for s in migration.statements(dialect)}  # type: ignore[arg-type]
            for dialect in ("sqlite", "postgres")
        ]
        assert created[0] == created[1]
        if migration.version == 1:
            assert created[0] >= {"runs", "events", "failures"}
        if migration.version == 2:
            assert created[0] >= {"snapshots", "state_versions", "interventions"}


def test_schema_status_names_what_is_pending() -> None:
    status = _schema.status(0)
    assert status.pending == tuple(m.label for m in _schema.MIGRATIONS)
    assert not status.up_to_date
    assert _schema.status(_schema.LATEST).up_to_date


def test_version_checks() -> None:
    _schema.check_current(_schema.LATEST, "memory://")
    with pytest.raises(SchemaVersionError, match="keel db upgrade"):
        _schema.check_current(0, "memory://")
    with pytest.raises(SchemaVersionError, match="upgrade agentkeel"):
        _schema.check_current(_schema.LATEST + 1, "memory://")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?password=pw&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("sqlite:///tmp/keel.db", "sqlite:///tmp/keel.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_open_store_picks_the_backend(tmp_path: object) -> None:
    memory = open_store("memory://")
    assert isinstance(memory, MemoryStore)
    sqlite = open_store(f"sqlite:///{tmp_path}/k.db")
    assert isinstance(sqlite, SQLiteStore)
    sqlite.close()
    assert issubclass(PostgresStore, object)


def test_clean_text_and_int() -> None:
    assert clean_text("plain") == "plain"
    assert clean_text(EventType.AGENT_START) == "agent.start"
    assert type(clean_text(EventType.AGENT_START)) is str
    assert clean_text(42) == "42"
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("\ud800x") == "?x"
    assert clean_text("é" * 10_000).endswith("chars]")
    assert clean_int(Severity.HIGH) == 3
    assert type(clean_int(Severity.HIGH)) is int
    assert clean_int("12") == 12
    assert clean_int("x") == 0
    assert clean_int(2**80) == 2**63 - 1
    assert clean_int(None) == 0


def test_json_text_escapes_only_real_nuls() -> None:
    # A literal backslash followed by "u0000" is text, not a NUL escape.
    text = json_text({"a": "x\x00y", "b": "\\u0000", "c": b"\x00"})
    assert json.loads(text) == {"a": "x\ufffdy", "b": "\\u0000", "c": "\ufffd"}


def test_event_row_round_trip() -> None:
    event = Event(
        type="t",
        name="n",
        severity=2,
        category="c",
        attributes={"k": [1, "v"]},
        run_id="r",
        correlation_id="ci",
        span_id="s",
        parent_span_id="p",
        wall_ns=123,
        mono_ns=456,
        seq=7,
        origin="o",
    )
    assert event_from_row(event_row(event)) == event
