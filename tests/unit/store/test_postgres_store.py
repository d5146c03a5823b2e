"""What only the PostgreSQL store does: URLs, schemas, unreachable servers, reconnects."""

from __future__ import annotations

import time

import pytest

from agentkeel import ConfigurationError, Event, StoreUnavailableError
from agentkeel.store import _postgres
from agentkeel.store._postgres import PostgresStore, parse_url


def _event(seq: int, run_id: str = "run-1") -> Event:
    return Event(type="tool.start", run_id=run_id, wall_ns=time.time_ns(), seq=seq, origin="o")


def test_keel_schema_is_taken_out_of_the_url() -> None:
    assert parse_url("postgresql://u@h/db?keel_schema=s1&sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable",
        "s1",
    )
    assert parse_url("postgres://h/db") == ("postgres://h/db", "agentkeel")


@pytest.mark.parametrize("schema", ["1abc", "a-b", 'x"; DROP TABLE runs', "", "a" * 64])
def test_keel_schema_must_be_an_identifier(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="keel_schema"):
        parse_url(f"postgresql://h/db?keel_schema={schema}")


def test_an_unreachable_server_fails_fast_with_a_masked_url() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as excinfo:
        PostgresStore("postgresql://keel:s3cret@127.0.0.1:1/test")
    assert time.monotonic() - started < 5
    message = str(excinfo.value)
    assert "postgresql://keel:***@127.0.0.1:1/test" in message
    assert "s3cret" not in message
    assert "server is running" in message


def test_without_psycopg_the_message_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_postgres, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"agentkeel\[postgres\]"):
        PostgresStore("postgresql://127.0.0.1/test")


@pytest.mark.postgres
def test_tables_live_in_the_keel_schema(postgres_url: str) -> None:
    import psycopg

    store = PostgresStore(postgres_url)
    store.write_events([_event(1)])
    base, schema = parse_url(postgres_url)
    with psycopg.connect(base) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
    assert {"runs", "events", "failures", "keel_schema_version"} <= tables
    store.close()


@pytest.mark.postgres
def test_a_dropped_connection_is_reopened(postgres_url: str) -> None:
    import psycopg

    store = PostgresStore(postgres_url)
    store.write_events([_event(1)])
    pid = store._conn.info.backend_pid
    base, _ = parse_url(postgres_url)
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    store.write_events([_event(2)])  # finds the connection dead, reconnects, retries
    assert store.count_events() == 2
    assert store._conn.info.backend_pid != pid
    store.close()


@pytest.mark.postgres
def test_a_server_that_goes_away_is_reported_then_retried(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresStore(postgres_url)
    store.write_events([_event(1)])
    store._conn.close()  # as if the network dropped it
    good_url = store._conninfo
    monkeypatch.setattr(store, "_conninfo", "postgresql://127.0.0.1:1/test")
    with pytest.raises(StoreUnavailableError, match="cannot reach PostgreSQL"):
        store.write_events([_event(2)])
    monkeypatch.setattr(store, "_conninfo", good_url)
    store.write_events([_event(2)])  # the next call reconnects
    assert store.count_events() == 2
    store.close()


@pytest.mark.postgres
def test_two_stores_migrate_one_schema_once(postgres_url: str) -> None:
    import threading

    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(s.schema_status().up_to_date for s in stores)
    for store in stores:
        store.close()


@pytest.mark.postgres
def test_large_batches_use_copy(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store.write_events([_event(i, run_id=f"run-{i % 7}") for i in range(1, 5_001)])
    store.write_events([_event(i, run_id=f"run-{i % 7}") for i in range(2_501, 7_501)])
    assert store.count_events() == 7_500
    assert store.count_events(run_id="run-3") == len([i for i in range(1, 7_501) if i % 7 == 3])
    store.close()
