"""Every dashboard page and JSON endpoint, on a store filled by running real code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _dashboard_fill import ESCAPED_TAG, SECRET, XSS_TAG, Filled, fill
from starlette.testclient import TestClient

import agentkeel
from agentkeel.dashboard import create_app, render_run_html
from agentkeel.events import EventType
from agentkeel.store import open_store

PAGES = [
    "/runs",
    "/failures",
    "/breakers",
    "/alerts",
    "/escalations",
    "/health",
    "/charts",
    "/snapshots",
    "/snapshots?agent=planner&task=trip&v1=v0001&v2=v0002",
]
API = [
    "/api/runs",
    "/api/failures",
    "/api/breakers",
    "/api/alerts",
    "/api/escalations",
    "/api/health",
    "/api/charts",
]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Filled:
    root = tmp_path_factory.mktemp("dashboard")
    return fill(f"sqlite:///{root / 'keel.db'}", root / "runtime")


@pytest.fixture
def client(filled: Filled) -> Iterator[TestClient]:
    with TestClient(create_app(store=filled.url)) as c:
        yield c


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "<nav" in response.text


@pytest.mark.parametrize("path", API)
def test_every_api_endpoint_answers_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert isinstance(response.json(), dict)


def test_runs_page_lists_runs_with_failures_and_recovery(
    client: TestClient, filled: Filled
) -> None:
    html = client.get("/runs").text
    assert 'data-testid="runs-table"' in html
    ids = re.findall(r'data-testid="run-row" data-run-id="([^"]+)"', html)
    assert set(ids) == {filled.demo_run, filled.hostile_run}
    api = client.get("/api/runs").json()
    demo = next(r for r in api["runs"] if r["run_id"] == filled.demo_run)
    assert demo["failure_count"] >= 5
    assert 0 < demo["recovery_rate"] < 100  # the loop failure is not recovered


def test_runs_filters_sort_and_pages(client: TestClient, filled: Filled) -> None:
    def ids(query: str) -> list[str]:
        return [r["run_id"] for r in client.get(f"/api/runs?{query}").json()["runs"]]

    assert ids("user=mallory") == [filled.hostile_run]
    assert ids("name=travel") == [filled.demo_run]
    assert ids("status=running") == []
    assert ids("since=2000-01-01&until=2000-01-02") == []
    assert ids("since=2000-01-01") == ids("")
    assert ids("sort=started_at") == list(reversed(ids("sort=-started_at")))
    page = client.get("/api/runs?per_page=1&page=2").json()
    assert (page["total"], page["pages"], len(page["runs"])) == (2, 2, 1)
    past = client.get("/runs?per_page=1&page=9")
    assert past.status_code == 200
    assert 'data-testid="page-out-of-range"' in past.text
    assert "past the last page (2)" in past.text


def test_run_page_shows_the_timeline_failures_and_summary(
    client: TestClient, filled: Filled
) -> None:
    response = client.get(f"/runs/{filled.demo_run[:10]}")  # a unique prefix is enough
    assert response.status_code == 200
    html = response.text
    types = set(re.findall(r'data-testid="timeline-node" data-type="([^"]+)"', html))
    expected = {
        EventType.AGENT_START,
        EventType.STEP_START,
        EventType.TOOL_CALL_START,
        EventType.LLM_CALL_START,
        EventType.RETRY,
        EventType.CIRCUIT_OPENED,
        EventType.CIRCUIT_HALF_OPEN,
        EventType.CIRCUIT_CLOSED,
        EventType.FALLBACK,
        EventType.LOOP_DETECTED,
        EventType.ESCALATION_CREATED,
        EventType.FAILURE,
    }
    assert {t.value for t in expected} <= types
    assert 'data-testid="failures-table"' in html
    # The summary is the one `keel report` prints: same function, same numbers.
    report = client.get(f"/api/runs/{filled.demo_run}").json()
    summary = report["summary"]
    assert f'data-testid="summary-total">{summary["total_failures"]}<' in html
    assert f'data-testid="summary-recovered">{summary["recovered"]}<' in html
    assert html.count('data-testid="failure-row"') == summary["total_failures"]
    # Tool calls nest under their step, which nests under the run.
    run_node = html.index('data-type="agent.start"')
    step_node = html.index('data-type="step.start"')
    tool_node = html.index('data-type="tool.start"')
    assert run_node < step_node < tool_node
    assert 'data-end-type="tool.end"' in html


def test_the_run_timeline_pages_with_load_more(filled: Filled) -> None:
    store = open_store(filled.url)
    try:
        from agentkeel.dashboard import _data

        first = _data.run_view(store, filled.demo_run, page=10)
        assert first.next_after is not None
        second = _data.run_view(store, filled.demo_run, after=first.next_after, page=10)
        assert second.after == first.next_after
        assert first.timeline[0].seq < second.timeline[0].seq
    finally:
        store.close()


def test_failures_are_grouped_by_fingerprint(client: TestClient) -> None:
    groups = client.get("/api/failures").json()["groups"]
    assert groups
    assert all(g["count"] >= 1 and g["first_seen"] <= g["last_seen"] for g in groups)
    assert sum(g["count"] for g in groups) >= 6
    network = client.get("/api/failures?category=network").json()["groups"]
    assert network and all(g["category"] == "network" for g in network)
    html = client.get("/failures").text
    assert html.count('data-testid="failure-group-row"') == len(groups)


def test_breakers_show_state_and_window_counts(client: TestClient) -> None:
    rows = {b["name"]: b for b in client.get("/api/breakers").json()["breakers"]}
    assert rows["weather-api"]["state"] == "closed"  # it closed again after the trial call
    assert rows["weather-api"]["opened"] >= 2
    assert rows["flights-api"]["state"] == "open"
    html = client.get("/breakers").text
    assert 'data-breaker="flights-api" data-state="open"' in html


def test_alerts_active_and_resolved(client: TestClient) -> None:
    data = client.get("/api/alerts").json()
    assert [a["name"] for a in data["active"]] == ["error_rate"]
    assert [a["name"] for a in data["resolved"]] == ["lag"]


def test_health_reuses_the_health_check(client: TestClient) -> None:
    report = client.get("/api/health").json()
    assert {"store", "pipeline", "circuit_breakers", "failures", "alerts"} <= set(report["checks"])
    html = client.get("/health").text
    assert 'data-check="circuit_breakers"' in html


def test_charts_count_failures_and_events(client: TestClient) -> None:
    data = client.get("/api/charts?hours=1").json()
    assert sum(sum(b.values()) for b in data["failures_by_category"]) >= 6
    assert {row["tool"] for row in data["p95_latency_by_tool"]} >= {"weather", "flights"}
    assert sum(data["events_per_second"]) > 0
    html = client.get("/charts?hours=1").text
    assert html.count("<svg") == 3


def test_snapshots_and_a_state_diff(client: TestClient) -> None:
    html = client.get("/snapshots?agent=planner&task=trip&v1=v0001&v2=v0002").text
    assert 'data-testid="state-diff"' in html
    assert "~ step: 1 → 2" in html
    assert "~ note: &#34;ok&#34; → &#34;&lt;script&gt;" in html
    assert html.count('data-testid="version-row"') == 2
    assert 'data-testid="snapshot-row"' in html
    missing = client.get("/snapshots?agent=planner&task=trip&v1=v0001&v2=v0009")
    assert missing.status_code == 404
    no_task = client.get("/snapshots?agent=planner&v1=v0001&v2=v0002")
    assert no_task.status_code == 400


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/runs/no-such-run", 404, "no run has the ID or ID prefix"),
        ("/api/runs/no-such-run", 404, "no run has the ID or ID prefix"),
        ("/runs?status=finished", 400, "unknown status"),
        ("/runs?since=yesterday", 400, "since must be a date"),
        ("/runs?until=2025-13-45", 400, "until must be a date"),
        ("/runs?since=2025-02-01&until=2025-01-01", 400, "since must be before until"),
        ("/runs?page=0", 400, "page must be between"),
        ("/runs?page=abc", 400, "page must be a whole number"),
        ("/runs?sort=name", 400, "unknown sort"),
        ("/api/runs?per_page=100000", 400, "per_page must be between"),
        ("/api/runs/run-hostile/events?after=-1", 400, "after must be between"),
        ("/failures?category=cosmic", 400, "cosmic"),
        ("/charts?hours=nan", 400, "hours must be between"),
        ("/no/such/page", 404, "nothing here"),
    ],
)
def test_bad_inputs_get_a_clear_message(
    client: TestClient, path: str, status: int, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert message in response.text


def test_live_events_after_a_cursor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    agentkeel.configure(store=url)
    with TestClient(create_app(store=url)) as client:
        with agentkeel.run("live-agent", run_id="run-live"):
            agentkeel.emit(EventType.TOOL_CALL_START, name="search")
            assert agentkeel.flush(timeout=10)
            page = client.get("/runs/run-live").text
            assert 'data-testid="live-indicator"' in page
            first = client.get("/api/runs/run-live/events").json()
            assert first["live"] is True
            assert [e["type"] for e in first["events"]] == ["agent.start", "tool.start"]
            cursor = first["next_after"]
            assert client.get(f"/api/runs/run-live/events?after={cursor}").json()["events"] == []
            agentkeel.emit(EventType.TOOL_CALL_END, name="search", attributes={"duration_ms": 5})
            assert agentkeel.flush(timeout=10)
            second = client.get(f"/api/runs/run-live/events?after={cursor}").json()
            assert [e["type"] for e in second["events"]] == ["tool.end"]
            assert second["events"][0]["duration_ms"] == 5
            assert second["next_after"] > cursor
        assert agentkeel.flush(timeout=10)
        done = client.get(f"/api/runs/run-live/events?after={second['next_after']}").json()
        assert [e["type"] for e in done["events"]] == ["agent.end"]
        assert (done["live"], done["status"]) == (False, "succeeded")
        assert 'data-testid="live-indicator"' not in client.get("/runs/run-live").text


# ------------------------------------------------------------------ escaping
HOSTILE_PAGES = [
    "/runs",
    "/runs/run-hostile",
    "/failures",
    "/alerts",
    "/escalations",
    "/snapshots?agent=planner&task=trip&v1=v0001&v2=v0002",
]


@pytest.mark.parametrize("path", HOSTILE_PAGES)
def test_agent_text_is_escaped_everywhere(client: TestClient, path: str) -> None:
    html = client.get(path).text
    assert XSS_TAG not in html
    assert '" onmouseover="' not in html
    assert ESCAPED_TAG in html or "&lt;script&gt;" in html


def test_secrets_in_attributes_stay_redacted(client: TestClient) -> None:
    html = client.get("/runs/run-hostile").text
    assert SECRET not in html
    assert "[REDACTED]" in html
    events = client.get("/api/runs/run-hostile/events").json()["events"]
    assert SECRET not in str(events)


def test_security_headers(client: TestClient) -> None:
    response = client.get("/runs")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_no_page_refers_to_the_internet(client: TestClient, filled: Filled) -> None:
    for path in [*PAGES, f"/runs/{filled.demo_run}"]:
        html = client.get(path).text
        assert "http://" not in html and "https://" not in html, path


# ---------------------------------------------------------------- --html file
def test_standalone_html_is_self_contained_and_escaped(filled: Filled) -> None:
    store = open_store(filled.url)
    try:
        page = render_run_html(store, filled.demo_run)
        hostile = render_run_html(store, "run-hostile")
    finally:
        store.close()
    for html in (page, hostile):
        assert "http://" not in html and "https://" not in html
        assert "src=" not in html and "<link" not in html and "<script" not in html
        assert "<style>" in html
    assert 'data-testid="timeline"' in page and 'data-testid="failures-table"' in page
    assert page.count('data-testid="failure-row"') >= 6
    assert XSS_TAG not in hostile and ESCAPED_TAG in hostile
    assert SECRET not in hostile


# ---------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_core_pages_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    filled = fill(postgres_url, tmp_path / "runtime")
    with TestClient(create_app(store=postgres_url)) as client:
        for path in [*PAGES, *API, f"/runs/{filled.demo_run}", "/runs/run-hostile"]:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
        runs = client.get("/api/runs?sort=duration_ms").json()
        assert {r["run_id"] for r in runs["runs"]} == {filled.demo_run, filled.hostile_run}
        assert XSS_TAG not in client.get("/runs/run-hostile").text
