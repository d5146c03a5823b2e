"""One suite, every backend: memory, SQLite and PostgreSQL must answer alike."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

import agentkeel
from agentkeel import (
    ConfigurationError,
    Event,
    EventType,
    SchemaVersionError,
    Severity,
    StoreError,
    UnknownRunError,
)
from agentkeel._encoding import MAX_STRING
from agentkeel.store import Store, StoredEvent, open_store
from agentkeel.store._schema import LATEST, MIGRATIONS

if TYPE_CHECKING:
    from conftest import EventFactory


def test_run_lifecycle(store: Store, factory: EventFactory) -> None:
    start = factory.start(
        "run-1",
        "plan-trip",
        user_id="u1",
        session_id="s1",
        tags=["prod", "eu"],
        model="gpt-x",
    )
    store.write_events([start, factory.step("run-1"), factory.step("run-1")])
    (running,) = store.list_runs()
    assert (running.run_id, running.name, running.status) == ("run-1", "plan-trip", "running")
    assert running.started_at == pytest.approx(start.timestamp)
    assert (running.user_id, running.session_id, running.parent_run_id) == ("u1", "s1", None)
    assert running.tags == ("prod", "eu")
    assert running.attributes == {"model": "gpt-x"}
    assert running.ended_at is None
    assert running.event_count == 3

    end = factory.end("run-1", "plan-trip", duration_ms=2500.0)
    store.write_events([end])
    run = store.get_run("run-1")
    assert run.status == "succeeded"
    assert run.ended_at == pytest.approx(end.timestamp)
    assert run.duration_ms == 2500.0
    assert (run.error_type, run.error_message) == (None, None)
    assert run.event_count == 4
    assert (run.failure_count, run.recovered_count, run.recovery_rate) == (0, 0, 0.0)


def test_failed_run_keeps_its_error(store: Store, factory: EventFactory) -> None:
    store.write_events(
        [
            factory.start("run-f"),
            factory.end("run-f", status="failed", error_type="KeyError", error_message="'x'"),
        ]
    )
    run = store.get_run("run-f")
    assert (run.status, run.error_type, run.error_message) == ("failed", "KeyError", "'x'")


def test_nested_runs_know_their_parent(store: Store, factory: EventFactory) -> None:
    store.write_events(
        [
            factory.start("parent", "outer"),
            factory.start("child", "inner", parent_run_id="parent"),
            factory.step("child"),
            factory.end("child", "inner"),
            factory.end("parent", "outer"),
        ]
    )
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["child", "parent"]  # newest first
    assert runs[0].parent_run_id == "parent"
    assert runs[1].parent_run_id is None
    assert (runs[0].event_count, runs[1].event_count) == (3, 2)


def test_end_before_start_gives_the_same_run(store: Store, factory: EventFactory) -> None:
    # A failed run's end is urgent, so it can be written before its routine start.
    start = factory.start("run-x", "agent", user_id="u9", tags=["t"])
    end = factory.end("run-x", "agent", status="failed", error_type="E", duration_ms=1000)
    store.write_events([end])
    alone = store.get_run("run-x")
    assert (alone.status, alone.user_id, alone.name) == ("failed", None, "agent")
    assert alone.started_at == pytest.approx(end.timestamp - 1.0)
    store.write_events([start])
    run = store.get_run("run-x")
    assert (run.status, run.user_id, run.tags, run.error_type) == ("failed", "u9", ("t",), "E")
    assert run.started_at == pytest.approx(start.timestamp)
    assert run.ended_at == pytest.approx(end.timestamp)


def test_a_start_after_the_end_resumes_the_run(store: Store, factory: EventFactory) -> None:
    first = factory.start("run-r")
    store.write_events([first, factory.end("run-r", status="failed", error_type="E")])
    store.write_events([factory.start("run-r")])
    run = store.get_run("run-r")
    assert (run.status, run.ended_at, run.error_type) == ("running", None, None)
    assert run.started_at == pytest.approx(first.timestamp)
    store.write_events([factory.end("run-r")])
    assert store.get_run("run-r").status == "succeeded"


def test_a_late_older_end_does_not_overwrite_a_newer_one(
    store: Store, factory: EventFactory
) -> None:
    old_end = factory.end("run-o", status="failed", error_type="Old")
    new_end = factory.end("run-o", status="succeeded")
    store.write_events([factory.start("run-o", at=old_end.timestamp - 10), new_end])
    store.write_events([old_end])
    assert store.get_run("run-o").status == "succeeded"


def test_failures_and_recovery(store: Store, factory: EventFactory) -> None:
    store.write_events(
        [
            factory.start("run-1"),
            factory.failure(
                "run-1",
                "f-1",
                category="rate_limit",
                error_type="RateLimitError",
                error_message="429",
                graph_node="planner",
                tool_name="search",
                latency_ms=120.5,
                tags=("llm",),
                fingerprint="fp-1",
                user_id="u1",
                attributes={"retry_after": 2},
            ),
            factory.failure("run-1", "f-2", category="network"),
            factory.start("run-2"),
            factory.failure("run-2", "f-3", category="network"),
        ]
    )
    store.write_events([factory.recovered("run-1", "f-1", "backoff")])

    first, second = store.list_failures(run_id="run-1")
    assert first.failure_id == "f-1"
    assert (first.category, first.severity, first.error_type) == (
        "rate_limit",
        "high",
        "RateLimitError",
    )
    assert (first.graph_node, first.tool_name, first.latency_ms) == ("planner", "search", 120.5)
    assert (first.tags, first.fingerprint, first.user_id) == (("llm",), "fp-1", "u1")
    assert first.attributes == {"retry_after": 2}
    assert (first.recovered, first.recovery_action) == (True, "backoff")
    assert (second.failure_id, second.recovered, second.recovery_action) == ("f-2", False, None)
    assert first.timestamp < second.timestamp

    assert [f.failure_id for f in store.list_failures()] == ["f-1", "f-2", "f-3"]
    assert [f.failure_id for f in store.list_failures(category="network")] == ["f-2", "f-3"]
    assert [f.failure_id for f in store.list_failures(limit=1)] == ["f-1"]
    run = store.get_run("run-1")
    assert (run.failure_count, run.recovered_count, run.recovery_rate) == (2, 1, 50.0)
    assert store.get_run("run-2").failure_count == 1


def test_a_recovery_written_before_its_failure_still_counts(
    store: Store, factory: EventFactory
) -> None:
    failure = factory.failure("run-1", "f-1")
    recovery = factory.recovered("run-1", "f-1", "fallback")
    store.write_events([factory.start("run-1"), recovery])
    store.write_events([failure])
    (record,) = store.list_failures()
    assert (record.recovered, record.recovery_action) == (True, "fallback")
    assert store.get_run("run-1").recovered_count == 1


def test_a_failure_recorded_as_recovered_stays_recovered(
    store: Store, factory: EventFactory
) -> None:
    store.write_events([factory.failure("run-1", "f-1", recovered=True, recovery_action="retry")])
    (record,) = store.list_failures()
    assert (record.recovered, record.recovery_action, record.run_id) == (True, "retry", "run-1")


def test_a_retried_batch_changes_nothing(store: Store, factory: EventFactory) -> None:
    start = factory.start("run-1")
    batch = [
        start,
        factory.step("run-1"),
        factory.failure("run-1", "f-1"),
        factory.recovered("run-1", "f-1"),
    ]
    store.write_events(batch)
    store.write_events([factory.end("run-1", status="failed", error_type="E")])
    store.write_events(batch)  # the pipeline retries after a timeout that had committed
    store.write_events([*batch, *batch])  # and a batch may even repeat an event
    assert store.count_events() == 5
    assert len(store.list_failures()) == 1
    run = store.get_run("run-1")
    assert (run.status, run.event_count, run.failure_count, run.recovered_count) == (
        "failed",
        5,
        1,
        1,
    )
    assert [e.store_seq for e in store.list_events()] == sorted(
        e.store_seq for e in store.list_events()
    )


def test_get_run_by_unique_prefix(store: Store, factory: EventFactory) -> None:
    store.write_events([factory.start(r) for r in ("run-aaa1", "run-aaa2", "run-bbb", "run-b")])
    assert store.get_run("run-bb").run_id == "run-bbb"
    assert store.get_run("run-b").run_id == "run-b"  # an exact ID wins over a prefix
    assert store.get_run("run-aaa1").run_id == "run-aaa1"
    with pytest.raises(UnknownRunError, match="ambiguous") as ambiguous:
        store.get_run("run-aa")
    assert "run-aaa1" in str(ambiguous.value)
    assert "run-aaa2" in str(ambiguous.value)
    with pytest.raises(UnknownRunError, match="keel runs") as unknown:
        store.get_run("nope")
    assert "'nope'" in str(unknown.value)
    assert isinstance(unknown.value, LookupError)


def test_a_prefix_is_taken_literally(store: Store, factory: EventFactory) -> None:
    store.write_events([factory.start(r) for r in ("a_1", "ab1", "x%1", "xy1", "g*1", "g[1")])
    assert store.get_run("a_").run_id == "a_1"  # not LIKE's one-character wildcard
    assert store.get_run("x%").run_id == "x%1"
    assert store.get_run("g*").run_id == "g*1"  # not GLOB's wildcards
    assert store.get_run("g[").run_id == "g[1"
    with pytest.raises(UnknownRunError):
        store.get_run("a?")


def test_an_ambiguous_prefix_lists_a_bounded_number_of_candidates(
    store: Store, factory: EventFactory
) -> None:
    store.write_events([factory.start(f"run-{i:02d}") for i in range(30)])
    with pytest.raises(UnknownRunError) as excinfo:
        store.get_run("run-")
    message = str(excinfo.value)
    assert "run-00" in message
    assert "run-29" not in message
    assert "…" in message


def _many_runs(store: Store, factory: EventFactory) -> list[Event]:
    starts = []
    for i in range(6):
        start = factory.start(
            f"run-{i}",
            "summarise-report" if i % 2 else "plan-trip",
            user_id=f"u{i % 3}",
        )
        starts.append(start)
    ends = [
        factory.end("run-0"),
        factory.end("run-1", status="failed", error_type="E"),
        factory.end("run-2"),
    ]
    store.write_events([*starts, *ends])
    return starts


def test_list_runs_filters(store: Store, factory: EventFactory) -> None:
    starts = _many_runs(store, factory)

    def ids(**filters: Any) -> list[str]:
        return [r.run_id for r in store.list_runs(**filters)]

    assert ids() == ["run-5", "run-4", "run-3", "run-2", "run-1", "run-0"]
    assert ids(status="succeeded") == ["run-2", "run-0"]
    assert ids(status="failed") == ["run-1"]
    assert ids(status="running") == ["run-5", "run-4", "run-3"]
    assert ids(user_id="u1") == ["run-4", "run-1"]
    assert ids(name="plan-trip") == ["run-4", "run-2", "run-0"]  # exact
    assert ids(name="report") == ["run-5", "run-3", "run-1"]  # substring
    assert ids(name="REPORT") == []  # case-sensitive
    assert ids(since=starts[4].timestamp) == ["run-5", "run-4"]
    assert ids(status="running", user_id="u2", name="summ") == ["run-5"]
    with pytest.raises(ConfigurationError, match="running, succeeded, failed"):
        store.list_runs(status="success")


def test_list_runs_pages(store: Store, factory: EventFactory) -> None:
    store.write_events([factory.start(f"run-{i:02d}") for i in range(25)])
    pages = [store.list_runs(limit=10, offset=offset) for offset in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    seen = [r.run_id for page in pages for r in page]
    assert seen == [f"run-{i:02d}" for i in reversed(range(25))]
    assert store.list_runs(limit=0) == []


def test_runs_with_the_same_start_time_page_stably(store: Store, factory: EventFactory) -> None:
    store.write_events([factory.start(f"run-{i}", at=1_800_000_000.0) for i in range(7)])
    seen = [r.run_id for o in range(0, 7, 3) for r in store.list_runs(limit=3, offset=o)]
    assert sorted(seen) == [f"run-{i}" for i in range(7)]
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.list_runs(limit=-1), "limit"),
        (lambda s: s.list_runs(offset=-5), "offset"),
        (lambda s: s.list_runs(limit=True), "limit"),
        (lambda s: s.list_runs(since="yesterday"), "since"),
        (lambda s: s.list_runs(user_id=42), "user_id"),
        (lambda s: s.list_events(limit=-1), "limit"),
        (lambda s: s.list_events(after_seq=-1), "after_seq"),
        (lambda s: s.list_events(types="tool.start"), r"types=\['tool.start'\]"),
        (lambda s: s.list_failures(limit=-1), "limit"),
        (lambda s: s.get_run(""), "run ID"),
    ],
)
def test_bad_arguments_say_what_is_wrong(store: Store, call: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        call(store)


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __str__(self) -> str:
        raise RuntimeError("no str either")


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["d"] = {}
        node = node["d"]
    return root


def test_odd_attribute_values_are_stored_safely(store: Store, factory: EventFactory) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    odd = factory.step(
        "run-1",
        broken=BrokenRepr(),
        huge="x" * 1_000_000,
        raw=b"caf\xc3\xa9",
        tags={"b", "a"},
        deep=_deep(500),
        cyclic=cyclic,
        nul="a\x00b",
        big=2**70,
        nan=float("nan"),
        many=list(range(5_000)),
    )
    normal = factory.step("run-1", ok=True)
    store.write_events([odd, normal])  # must not raise, and must not lose the neighbour

    first, second = (e.event for e in store.list_events(run_id="run-1"))
    attrs = first.attributes
    assert attrs["broken"].startswith("<BrokenRepr object (repr failed")
    assert len(attrs["huge"]) < MAX_STRING + 100
    assert attrs["huge"].endswith("…[truncated 991808 chars]")
    assert attrs["raw"] == "café"
    assert sorted(attrs["tags"]) == ["a", "b"]
    assert isinstance(attrs["deep"], dict)
    assert isinstance(attrs["cyclic"], dict)
    assert attrs["nul"] == "a\ufffdb"  # PostgreSQL cannot store NUL; no backend does
    assert attrs["big"] == 2**70
    assert attrs["nan"] is None
    assert len(attrs["many"]) == 1_001
    assert second.attributes == {"ok": True}


def test_odd_event_fields_are_stored_safely(store: Store, factory: EventFactory) -> None:
    plain = factory.step("run-1")
    odd = Event(
        type=EventType.TOOL_CALL_END,
        name="bad\udc80name\x00",
        severity=Severity.HIGH,
        category="network",
        attributes=["not", "a", "dict"],  # type: ignore[arg-type]
        run_id="run-1",
        wall_ns=plain.wall_ns + 1,
        seq=10_000,
        origin=plain.origin,
    )
    store.write_events([odd])
    (stored,) = store.list_events(types=["tool.end"])
    event = stored.event
    assert event.type == "tool.end"
    assert type(event.type) is str
    assert event.name == "bad?name\ufffd"
    assert event.severity == 3
    assert event.attributes == {"value": ["not", "a", "dict"]}


def test_an_odd_failure_event_still_records_a_failure(store: Store, factory: EventFactory) -> None:
    event = factory.make(
        EventType.FAILURE,
        run_id="run-1",
        severity=99,
        attributes={"failure_id": 7, "tags": 5, "latency_ms": "slow", "extra": "x"},
    )
    store.write_events([event])
    (record,) = store.list_failures()
    assert (record.failure_id, record.tags, record.latency_ms) == ("7", (), None)
    assert record.category == "unknown"
    assert record.severity == "medium"


def test_events_round_trip(store: Store, factory: EventFactory) -> None:
    events = [
        factory.start("run-1", user_id="u"),
        factory.make(
            "custom.thing",
            run_id="run-1",
            name="n",
            severity=2,
            category="llm",
            attributes={"a": 1, "b": [1, 2.5, "x"], "c": {"d": None, "e": True}},
        ),
        factory.step(None, "no-run"),
        factory.step("run-2"),
    ]
    store.write_events(events)
    stored = store.list_events()
    assert [s.event for s in stored] == events
    seqs = [s.store_seq for s in stored]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert all(isinstance(s, StoredEvent) for s in stored)

    assert [s.event for s in store.list_events(run_id="run-1")] == events[:2]
    assert [s.event for s in store.list_events(types=["custom.thing", "tool.start"])] == events[1:]
    assert store.list_events(types=[]) == []
    assert [s.event for s in store.list_events(after_seq=seqs[1])] == events[2:]
    assert [s.event for s in store.list_events(after_seq=seqs[0], limit=2)] == events[1:3]
    assert store.count_events() == 4
    assert store.count_events(run_id="run-1") == 2
    assert store.count_events(run_id="run-9") == 0
    assert store.list_events(limit=0) == []


def test_pages_of_events_cover_everything_once(store: Store, factory: EventFactory) -> None:
    store.write_events([factory.step("run-1", i=i) for i in range(250)])
    seen: list[int] = []
    after = 0
    while page := store.list_events(after_seq=after, limit=100):
        seen.extend(s.event.attributes["i"] for s in page)
        after = page[-1].store_seq
    assert seen == list(range(250))


def test_empty_batch_is_fine(store: Store) -> None:
    store.write_events([])
    assert store.count_events() == 0
    assert store.list_runs() == []
    assert store.list_failures() == []


def test_schema_is_current(store: Store) -> None:
    status = store.schema_status()
    assert (status.current, status.latest, status.pending, status.up_to_date) == (
        LATEST,
        LATEST,
        (),
        True,
    )
    assert store.migrate() == []


def test_a_closed_store_says_so(store_url: str, factory: EventFactory) -> None:
    store = open_store(store_url)
    store.close()
    store.close()  # twice is fine
    calls = [
        lambda: store.write_events([factory.step("r")]),
        store.list_runs,
        lambda: store.get_run("r"),
        store.list_events,
        store.count_events,
        store.list_failures,
        store.schema_status,
        store.migrate,
    ]
    for call in calls:
        with pytest.raises(StoreError, match="closed"):
            call()


def test_writer_and_reader_threads_share_a_store(store: Store, factory: EventFactory) -> None:
    batches = [[factory.step("run-1", i=i * 100 + j) for j in range(100)] for i in range(20)]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in batches:
                store.write_events(batch)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        store.list_runs()
        store.count_events()
    thread.join()
    assert errors == []
    assert store.count_events() == 2_000


def test_the_pipeline_writes_runs_to_the_store(store_url: str) -> None:
    store = open_store(store_url)  # memory:// is per-object: hand the pipeline this one
    agentkeel.configure(store=store)
    with agentkeel.run("outer", user_id="u1", tags=["x"]) as outer:
        with agentkeel.run("inner") as inner:
            agentkeel.emit("tool.start", name="search")
        with pytest.raises(ValueError, match="boom"), agentkeel.run("broken") as broken:
            raise ValueError("boom")
    assert agentkeel.flush()
    runs = {r.run_id: r for r in store.list_runs()}
    assert runs[outer.run_id].status == "succeeded"
    assert runs[outer.run_id].user_id == "u1"
    assert runs[outer.run_id].tags == ("x",)
    assert runs[inner.run_id].parent_run_id == outer.run_id
    assert runs[inner.run_id].event_count == 3
    assert runs[broken.run_id].status == "failed"
    assert runs[broken.run_id].error_type == "ValueError"
    assert runs[broken.run_id].duration_ms is not None
    agentkeel.shutdown()


# ----------------------------------------------------------- durable backends only
def test_reopening_keeps_everything(durable_url: str, factory: EventFactory) -> None:
    store = open_store(durable_url)
    store.write_events([factory.start("run-1"), factory.failure("run-1", "f-1")])
    store.close()
    again = open_store(durable_url)
    assert again.count_events() == 2
    assert again.get_run("run-1").failure_count == 1
    assert again.schema_status().up_to_date
    again.close()


def test_migrate_false_leaves_the_schema_to_keel_db_upgrade(
    durable_url: str, factory: EventFactory
) -> None:
    store = open_store(durable_url, migrate=False)  # opens, so `keel db status` can look
    status = store.schema_status()
    assert (status.current, status.latest, status.up_to_date) == (0, LATEST, False)
    assert status.pending == tuple(m.label for m in MIGRATIONS)
    for use in (
        store.list_runs,
        store.count_events,
        lambda: store.write_events([factory.step("r")]),
    ):
        with pytest.raises(SchemaVersionError, match="keel db upgrade") as excinfo:
            use()
        assert "version 0" in str(excinfo.value)
    assert store.migrate() == [m.label for m in MIGRATIONS]
    assert store.schema_status().up_to_date
    store.write_events([factory.step("r")])
    assert store.count_events() == 1
    store.close()
    again = open_store(durable_url, migrate=False)
    assert again.count_events() == 1
    again.close()


def test_an_upgrade_by_another_process_is_noticed(durable_url: str) -> None:
    old = open_store(durable_url, migrate=False)
    with pytest.raises(SchemaVersionError):
        old.list_runs()
    open_store(durable_url).close()  # `keel db upgrade` elsewhere
    assert old.list_runs() == []
    old.close()


def test_a_schema_newer_than_the_code_is_refused(durable_url: str) -> None:
    store = open_store(durable_url)
    _execute(store, "INSERT INTO keel_schema_version VALUES (?, 'from_the_future', 0)", LATEST + 1)
    status = store.schema_status()
    assert (status.current, status.up_to_date) == (LATEST + 1, False)
    with pytest.raises(SchemaVersionError, match="newer"):
        store.migrate()
    store.close()
    with pytest.raises(SchemaVersionError, match="upgrade agentkeel") as excinfo:
        open_store(durable_url)
    assert f"version {LATEST + 1}" in str(excinfo.value)
    inspect = open_store(durable_url, migrate=False)
    assert inspect.schema_status().current == LATEST + 1
    with pytest.raises(SchemaVersionError, match="upgrade agentkeel"):
        inspect.list_runs()
    with pytest.raises(SchemaVersionError, match="upgrade agentkeel"):
        inspect.migrate()
    inspect.close()


def test_pending_migrations_are_named(durable_url: str) -> None:
    store = open_store(durable_url)
    _execute(store, "DELETE FROM keel_schema_version WHERE version = ?", LATEST)
    status = store.schema_status()
    assert (status.current, status.pending) == (LATEST - 1, (MIGRATIONS[-1].label,))
    store.close()
    reopened = open_store(durable_url, migrate=False)
    with pytest.raises(SchemaVersionError, match=f"pending: {MIGRATIONS[-1].label}"):
        reopened.list_events()
    reopened.close()


def _execute(store: Store, sql: str, *params: Any) -> None:
    """Reach past the protocol to tamper with a durable store's own tables."""
    store._write(lambda tx: tx.run(sql, params))  # type: ignore[attr-defined]
