"""What only the SQLite store does: files, locks, pragmas and their failures."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agentkeel import (
    ConfigurationError,
    Event,
    SchemaVersionError,
    StoreCorruptError,
    StoreUnavailableError,
)
from agentkeel.store import open_store
from agentkeel.store._sqlite import SQLiteStore


def _event(seq: int, run_id: str = "run-1") -> Event:
    return Event(type="tool.start", run_id=run_id, wall_ns=time.time_ns(), seq=seq, origin="o")


def test_default_store_lives_under_keel_home(tmp_path: Path) -> None:
    store = open_store()  # KEEL_HOME is this test's temp dir (tests/conftest.py)
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "keel-home" / "keel.db"
    assert store.path.exists()
    store.close()


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "keel.db"
    store = SQLiteStore(f"sqlite:///{path}")
    store.write_events([_event(1)])
    store.close()
    assert path.exists()


def test_durability_pragmas(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keel.db'}")
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_a_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("sqlite:///rel/keel.db")
    store.close()
    assert (tmp_path / "rel" / "keel.db").exists()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(StoreCorruptError) as excinfo:
        SQLiteStore(f"sqlite:///{path}")
    message = str(excinfo.value)
    assert str(path) in message
    assert "not a database" in message
    assert "move it away" in message


def test_another_applications_database_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.close()
    with pytest.raises(StoreCorruptError, match="not an agentkeel store") as excinfo:
        SQLiteStore(f"sqlite:///{path}")
    assert "customers" in str(excinfo.value)
    with sqlite3.connect(path) as conn:  # still in its own journal mode, no new tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    conn.close()
    assert tables == [("customers",)]


def test_an_unwritable_directory(tmp_path: Path) -> None:
    # Tests run as root, which ignores permission bits: a path *under a regular
    # file* is unwritable for everyone.
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    path = blocker / "keel.db"
    with pytest.raises(StoreUnavailableError) as excinfo:
        SQLiteStore(f"sqlite:///{path}")
    message = str(excinfo.value)
    assert str(path) in message
    assert "KEEL_HOME" in message
    assert "--store" in message


def test_a_locked_database_on_open(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a fresh file: rollback journal, readers blocked too
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="database is locked by another process"):
            SQLiteStore(f"sqlite:///{path}", busy_timeout=0.2)
        assert time.monotonic() - started < 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_database_on_write(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    store = SQLiteStore(f"sqlite:///{path}", busy_timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock, as a stuck writer would
    try:
        with pytest.raises(StoreUnavailableError) as excinfo:
            store.write_events([_event(1)])
        assert "database is locked by another process" in str(excinfo.value)
        assert "0.2 s" in str(excinfo.value)
        assert store.count_events() == 0  # WAL: readers are not blocked by the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.write_events([_event(1)])  # the lock is gone: writes work again
    assert store.count_events() == 1
    store.close()


def test_two_stores_on_one_file_take_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    first, second = SQLiteStore(url), SQLiteStore(url)
    first.write_events([_event(1)])
    second.write_events([_event(2), _event(1)])
    assert first.count_events() == second.count_events() == 2
    first.close()
    second.close()


def test_migrate_false_creates_no_file_until_migrate(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "keel.db"
    store = SQLiteStore(f"sqlite:///{path}", migrate=False)
    assert store.schema_status().current == 0
    with pytest.raises(SchemaVersionError, match="keel db upgrade"):
        store.list_runs()
    assert not path.parent.exists()
    assert store.migrate() == [
        "0001_initial",
        "0002_snapshots_and_history",
        "0003_run_query_indexes",
    ]
    assert path.exists()
    assert store.list_runs() == []
    store.close()


def test_busy_timeout_must_be_a_duration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SQLiteStore(url, busy_timeout=-1)
    monkeypatch.setenv("KEEL_SQLITE_BUSY_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match=r"KEEL_SQLITE_BUSY_TIMEOUT.*'soon'"):
        SQLiteStore(url)


def test_busy_timeout_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    monkeypatch.setenv("KEEL_SQLITE_BUSY_TIMEOUT", "0.25")
    store = SQLiteStore(url)
    assert store.busy_timeout == 0.25
    store.close()
    monkeypatch.delenv("KEEL_SQLITE_BUSY_TIMEOUT")
    store = SQLiteStore(url, busy_timeout=timedelta(seconds=2))
    assert store.busy_timeout == 2.0
    store.close()
    assert SQLiteStore(url).busy_timeout == 5.0


def test_a_lock_that_excludes_readers_is_reported_on_open(tmp_path: Path) -> None:
    # In WAL mode readers pass a writer's lock; only an exclusive locking mode
    # (a long-held `sqlite3` shell, say) keeps them out.
    path = tmp_path / "keel.db"
    SQLiteStore(f"sqlite:///{path}").close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM runs")
    try:
        with pytest.raises(StoreUnavailableError, match="locked by another process"):
            SQLiteStore(f"sqlite:///{path}", busy_timeout=0.2, migrate=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = SQLiteStore(f"sqlite:///{path}", migrate=False)
    assert store.list_runs() == []
    store.close()


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keel.db'}")

    class Boom(Exception):
        pass

    def fail_midway(tx: object) -> None:
        store._ingest(tx, [_row(1)])  # type: ignore[arg-type]
        raise Boom

    with pytest.raises(Boom):
        store._write(fail_midway)
    assert store.count_events() == 0  # rolled back as one transaction
    store.close()


def _row(seq: int) -> tuple[object, ...]:
    from agentkeel.store._derive import event_row

    return event_row(_event(seq))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keel.db'}")
    store.write_events([_event(1)])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        try:
            store.write_events([_event(2)])
            os._exit(0 if store.count_events() == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.count_events() == 2  # and the parent's connection still works
    store.close()


def test_a_batch_goes_in_many_rows_per_statement_whole_and_in_order(tmp_path: Path) -> None:
    # 137 events: two statements of 64 rows, one of 8, one of 1.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keel.db'}")
    store.write_events([_event(seq) for seq in range(1, 138)])
    stored = store.list_events(limit=1000)
    assert [e.event.seq for e in stored] == list(range(1, 138))
    assert [e.store_seq for e in stored] == sorted(e.store_seq for e in stored)
    # A batch retried after a partial failure: what is stored already is skipped, the
    # rest lands, and the runs table hears only of the new events.
    store.write_events(
        [_event(seq) for seq in range(100, 210)]
        + [Event(type="agent.start", name="late", run_id="run-2", wall_ns=1, seq=210, origin="o")]
    )
    assert store.count_events() == 210
    assert [e.event.seq for e in store.list_events(after_seq=stored[-1].store_seq)] == list(
        range(138, 211)
    )
    assert [run.run_id for run in store.list_runs()] == ["run-2"]
    store.close()


def test_runs_hear_only_of_the_run_events_a_retried_batch_adds(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keel.db'}")
    start = Event(type="agent.start", name="first", run_id="run-3", wall_ns=1, seq=1, origin="o")
    store.write_events([start, _event(2, "run-3")])
    # The retry repeats the start (now under another name: it must not win) and adds
    # the end; the events in between are many, the run events far apart.
    end = Event(type="agent.end", name="first", run_id="run-3", wall_ns=2, seq=90, origin="o")
    renamed = Event(type="agent.start", name="second", run_id="run-3", wall_ns=1, seq=1, origin="o")
    store.write_events([renamed, *(_event(seq, "run-3") for seq in range(2, 90)), end])
    (run,) = store.list_runs()
    assert (run.name, run.status) == ("first", "succeeded")
    assert store.count_events() == 90
    store.close()


def test_a_none_adapter_the_program_registered_is_kept() -> None:
    # Ours only saves time; one a program registered itself must keep working.
    code = (
        "import sqlite3\n"
        "sqlite3.register_adapter(type(None), lambda value: 'none!')\n"
        "import agentkeel.store._sqlite\n"
        "conn = sqlite3.connect(':memory:')\n"
        "print(conn.execute('SELECT ?', (None,)).fetchone()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "none!"


def test_none_is_still_stored_as_null(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'keel.db'}")
    store.write_events([Event(type="custom", wall_ns=1, seq=1, origin="o")])
    conn = sqlite3.connect(store.path)
    row = conn.execute("SELECT category, run_id, typeof(category) FROM events").fetchone()
    conn.close()
    assert row == (None, None, "null")
    store.close()
