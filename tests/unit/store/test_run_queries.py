"""Conformance of the queries the dashboard pages with: counted, sorted and
time-bounded runs, and failures grouped by fingerprint (every backend alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from agentkeel._errors import ConfigurationError
from agentkeel.store import Store
from agentkeel.store._derive import RUN_SORTS

if TYPE_CHECKING:
    from conftest import EventFactory


def _runs(store: Store, factory: EventFactory) -> list[float]:
    """Six runs: three ended (durations 300, 100, 200 ms), three still running."""
    starts = [
        factory.start(f"run-{i}", "summarise" if i % 2 else "plan", user_id=f"u{i % 2}")
        for i in range(6)
    ]
    ends = [
        factory.end("run-0", duration_ms=300.0),
        factory.end("run-1", status="failed", duration_ms=100.0, error_type="E"),
        factory.end("run-2", duration_ms=200.0),
    ]
    store.write_events([*starts, *ends])
    return [e.timestamp for e in starts]


def test_count_runs_agrees_with_list_runs(store: Store, factory: EventFactory) -> None:
    starts = _runs(store, factory)
    filters: list[dict[str, Any]] = [
        {},
        {"status": "running"},
        {"status": "failed"},
        {"user_id": "u1"},
        {"name": "summ"},
        {"since": starts[2]},
        {"until": starts[2]},
        {"since": starts[1], "until": starts[4], "user_id": "u0"},
    ]
    for f in filters:
        assert store.count_runs(**f) == len(store.list_runs(limit=100, **f)), f
    assert store.count_runs() == 6
    assert store.count_runs(status="running") == 3
    assert store.count_runs(since=starts[1], until=starts[4], user_id="u0") == 1


def test_until_excludes_runs_started_at_that_time(store: Store, factory: EventFactory) -> None:
    starts = _runs(store, factory)
    assert [r.run_id for r in store.list_runs(until=starts[2])] == ["run-1", "run-0"]
    assert [r.run_id for r in store.list_runs(since=starts[2], until=starts[3])] == ["run-2"]


def test_runs_sort_by_duration_with_running_runs_last(store: Store, factory: EventFactory) -> None:
    _runs(store, factory)

    def ids(sort: str) -> list[str]:
        return [r.run_id for r in store.list_runs(sort=sort)]

    assert ids("duration_ms") == ["run-1", "run-2", "run-0", "run-3", "run-4", "run-5"]
    assert ids("-duration_ms") == ["run-0", "run-2", "run-1", "run-5", "run-4", "run-3"]
    assert ids("started_at") == [f"run-{i}" for i in range(6)]
    assert ids("-started_at") == [f"run-{i}" for i in reversed(range(6))]
    assert ids("status") == ["run-1", "run-3", "run-4", "run-5", "run-0", "run-2"]
    assert ids("-status") == ["run-2", "run-0", "run-5", "run-4", "run-3", "run-1"]


def test_sorted_pages_cover_every_run_once(store: Store, factory: EventFactory) -> None:
    _runs(store, factory)
    for sort in RUN_SORTS:
        pages = [r.run_id for o in (0, 4) for r in store.list_runs(limit=4, offset=o, sort=sort)]
        assert sorted(pages) == [f"run-{i}" for i in range(6)], sort


def test_sorted_runs_keep_their_counts(store: Store, factory: EventFactory) -> None:
    _runs(store, factory)
    store.write_events([factory.failure("run-2", "f-1"), factory.recovered("run-2", "f-1")])
    run = next(r for r in store.list_runs(sort="duration_ms") if r.run_id == "run-2")
    assert (run.failure_count, run.recovered_count, run.event_count) == (1, 1, 4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.list_runs(sort="name"), "unknown run sort 'name'"),
        (lambda s: s.list_runs(sort="-started_at; DROP TABLE runs"), "unknown run sort"),
        (lambda s: s.list_runs(until="tomorrow"), "until"),
        (lambda s: s.count_runs(status="done"), "unknown run status"),
        (lambda s: s.count_runs(since="x"), "since"),
        (lambda s: s.failure_groups(limit=-1), "limit"),
        (lambda s: s.failure_groups(category=3), "category"),
    ],
)
def test_bad_query_arguments_say_what_is_wrong(store: Store, call: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        call(store)


def test_failure_groups(store: Store, factory: EventFactory) -> None:
    store.write_events([factory.start("run-a"), factory.start("run-b")])
    events = [
        factory.failure("run-a", "f-1", fingerprint="fp-net", error_message="reset 1"),
        factory.failure("run-b", "f-2", fingerprint="fp-net", error_message="reset 2"),
        factory.failure("run-b", "f-3", fingerprint="fp-net", error_message="reset 3"),
        factory.failure(
            "run-a", "f-4", category="parsing", fingerprint="fp-parse", tool_name="flights"
        ),
        factory.recovered("run-b", "f-2"),
    ]
    store.write_events(events)
    groups = store.failure_groups()
    assert [(g.fingerprint, g.count, g.recovered, g.runs) for g in groups] == [
        ("fp-net", 3, 1, 2),
        ("fp-parse", 1, 0, 1),
    ]
    net = groups[0]
    assert net.first_seen == events[0].timestamp
    assert net.last_seen == events[2].timestamp
    assert (net.error_message, net.category) == ("reset 3", "network")  # the latest
    assert net.recovery_rate == pytest.approx(100 / 3)
    assert groups[1].tool_name == "flights"
    assert [g.fingerprint for g in store.failure_groups(category="parsing")] == ["fp-parse"]
    assert [g.count for g in store.failure_groups(since=events[1].timestamp)] == [2, 1]
    assert len(store.failure_groups(limit=1)) == 1
    assert store.failure_groups(category="auth") == []
