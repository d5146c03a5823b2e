"""The dashboard end to end: a real ``keel dashboard`` process, a real Chromium.

The chaos demo runs as ``keel demo --chaos --seed 8`` (it retries, opens and closes
breakers, falls back, and escalates a loop in its research step); the scenario
helper adds what the demo lacks (a failed run, alerts, snapshots and versions, a
tool that answered with a script tag). The browser then does what a person does:
find the run, open it, read its timeline and failures, acknowledge and resolve the
escalation through the page's forms — and the store must agree with the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _browser import (
    DashboardServer,
    PageProblems,
    artifacts_dir,
    dashboard_server,
    run_keel,
)
from _scenario import XSS_PAYLOAD, XSS_USER, Scenario, seed_scenario
from playwright.sync_api import expect

import agentkeel
from agentkeel import EventType
from agentkeel.recovery import EscalationConfig, EscalationManager, TicketStatus

pytestmark = pytest.mark.slow

NODE = '[data-testid="timeline-node"]'
SCREENSHOTS = artifacts_dir("dashboard", "pages")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def demo_run_id(keel_home: Path) -> str:
    """``keel demo --chaos --seed 8`` in a subprocess, into this test's store."""
    output = run_keel("demo", "--chaos", "--seed", "8", home=keel_home)
    found = re.search(r"^run\s+(run-[0-9a-f]+)", output, re.MULTILINE)
    assert found, f"the demo did not print its run ID:\n{output[-2000:]}"
    return found.group(1)


@pytest.fixture
def scenario() -> Scenario:
    return seed_scenario()


@pytest.fixture
def server(keel_home: Path, tmp_path: Path) -> Any:
    with dashboard_server(tmp_path, home=keel_home) as running:
        yield running


def tickets() -> EscalationManager:
    """Tickets as the store has them now (a fresh manager: nothing cached)."""
    return EscalationManager(
        store=agentkeel.get_store(), config=EscalationConfig(notify_in_background=False)
    )


def open_page(page: Any, server: DashboardServer, path: str) -> Any:
    response = page.goto(server.url + path)
    assert response is not None, f"no response for {path}"
    assert response.status < 400, f"GET {path} answered {response.status}\n{server.log()}"
    return response


def no_page_errors(problems: PageProblems) -> None:
    assert problems.errors == [], f"JavaScript errors on the page: {problems.errors}"


# ------------------------------------------------------------------------ the demo
def test_demo_run_is_listed_opened_and_its_escalation_acknowledged(
    page: Any, server: DashboardServer, demo_run_id: str, page_problems: PageProblems
) -> None:
    open_page(page, server, "/runs")
    expect(page.get_by_test_id("runs-table")).to_be_visible()
    row = page.locator(f'[data-testid="run-row"][data-run-id="{demo_run_id}"]')
    expect(row).to_have_count(1)
    expect(row).to_contain_text("travel-demo")

    row.locator(f'a[href*="{demo_run_id}"]').first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{demo_run_id}$"))
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_be_visible()
    # The demo's four steps, its tool calls with their retries, the loop it caught.
    for event_type, at_least in [
        ("step.start", 4),
        ("tool.start", 12),
        ("retry.attempt", 8),
        ("failure.recorded", 7),
        ("circuit.opened", 4),
        ("loop.detected", 1),
        ("escalation.created", 1),
    ]:
        nodes = timeline.locator(f'{NODE}[data-type="{event_type}"]')
        assert nodes.count() >= at_least, f"{nodes.count()} {event_type} nodes, not {at_least}"
    # Nested: tool calls sit inside the step that made them, not beside it.
    nested_tools = timeline.locator(
        f'{NODE}[data-type="step.start"] {NODE}[data-type="tool.start"]'
    )
    assert nested_tools.count() >= 12, "tool calls are not nested under their steps"
    expect(timeline).to_contain_text("weather")
    expect(timeline).to_contain_text("flights")

    failures = page.get_by_test_id("failures-table")
    expect(failures).to_be_visible()
    expect(failures.get_by_test_id("failure-row")).to_have_count(7)
    for error_type in ("MalformedOutputError", "ToolTimeoutError", "LoopDetectedError"):
        expect(failures).to_contain_text(error_type)

    # The escalation the research step opened: acknowledge it through the page.
    [ticket] = tickets().list_tickets()
    assert ticket.status is TicketStatus.OPEN
    open_page(page, server, "/escalations")
    ticket_row = page.get_by_test_id("escalation-row").filter(has_text=ticket.ticket_id)
    expect(ticket_row).to_have_count(1)
    status = ticket_row.get_by_test_id("escalation-status")
    expect(status).to_have_text(re.compile(r"\s*open\s*", re.IGNORECASE))
    ticket_row.get_by_test_id("ack-button").click()
    ticket_row = page.get_by_test_id("escalation-row").filter(has_text=ticket.ticket_id)
    expect(ticket_row.get_by_test_id("escalation-status")).to_contain_text("acknowledged")

    stored = tickets().get_ticket(ticket.ticket_id)
    assert stored.status is TicketStatus.ACKNOWLEDGED
    assert stored.acknowledged_by, "the store does not say who acknowledged"
    listed = json.loads(run_keel("escalations", "list", "--json"))
    assert [(t["ticket_id"], t["status"]) for t in listed] == [(ticket.ticket_id, "acknowledged")]

    # ... and resolve it the same way.
    ticket_row.get_by_test_id("resolution-input").fill("restarted the attractions API")
    ticket_row.get_by_test_id("resolve-button").click()
    ticket_row = page.get_by_test_id("escalation-row").filter(has_text=ticket.ticket_id)
    expect(ticket_row.get_by_test_id("escalation-status")).to_contain_text("resolved")
    assert tickets().get_ticket(ticket.ticket_id).status is TicketStatus.RESOLVED
    no_page_errors(page_problems)


def test_failures_page_groups_the_demo_failures(
    page: Any, server: DashboardServer, demo_run_id: str, page_problems: PageProblems
) -> None:
    open_page(page, server, "/failures")
    table = page.get_by_test_id("failure-groups-table")
    expect(table).to_be_visible()
    # Seven failures with seven different fingerprints: seven groups.
    expect(table.get_by_test_id("failure-group-row")).to_have_count(7)
    for error_type in ("ChaosAuthError", "LoopDetectedError", "ToolTimeoutError"):
        expect(table).to_contain_text(error_type)
    no_page_errors(page_problems)


PARENT_TYPE_JS = """nodes => nodes.map(n =>
    n.parentElement.closest('[data-testid="timeline-node"]').dataset.type)"""


def test_each_tool_call_is_a_child_of_its_step_not_of_an_earlier_call(
    page: Any, server: DashboardServer, demo_run_id: str
) -> None:
    open_page(page, server, f"/runs/{demo_run_id}")
    calls = page.get_by_test_id("timeline").locator(f'{NODE}[data-type="tool.start"]')
    expect(calls).to_have_count(12)
    parents = calls.evaluate_all(PARENT_TYPE_JS)
    assert parents == ["step.start"] * 12, parents


# ---------------------------------------------------------------- hostile content
def test_script_in_tool_output_is_shown_as_text_and_never_run(
    page: Any, server: DashboardServer, scenario: Scenario, page_problems: PageProblems
) -> None:
    for path in (f"/runs/{scenario.xss_run_id}", "/failures", "/runs"):
        open_page(page, server, path)
        assert page.evaluate("() => window.__xss") is None, f"the payload ran on {path}"
        assert page.locator("script", has_text="__xss").count() == 0, f"a live <script> on {path}"
    open_page(page, server, f"/runs/{scenario.xss_run_id}")
    expect(page.locator("body")).to_contain_text(XSS_PAYLOAD, use_inner_text=True)
    expect(page.get_by_text(XSS_PAYLOAD).first).to_be_visible()
    expect(page.locator("body")).to_contain_text(XSS_USER, use_inner_text=True)
    assert page.locator("img[onerror]").count() == 0
    open_page(page, server, "/runs")
    row = page.locator(f'[data-testid="run-row"][data-run-id="{scenario.xss_run_id}"]')
    expect(row).to_contain_text(XSS_USER, use_inner_text=True)
    assert page.locator("img[onerror]").count() == 0
    assert page.evaluate("() => window.__xss") is None
    no_page_errors(page_problems)


# ----------------------------------------------------------------------- live update
def test_run_page_shows_new_events_without_a_reload(
    page: Any, server: DashboardServer, page_problems: PageProblems
) -> None:
    with agentkeel.run("live-agent", user_id="carol") as scope:
        assert scope.run_id is not None
        with agentkeel.step("gather"):
            agentkeel.emit(EventType.TOOL_CALL_START, name="search", attributes={"tool": "search"})
            assert agentkeel.flush(timeout=10)
            open_page(page, server, f"/runs/{scope.run_id}")
            nodes = page.get_by_test_id("timeline").locator(NODE)
            expect(nodes.first).to_be_visible()
            before = nodes.count()
            page.evaluate("() => { window.__sameDocument = true; }")

            agentkeel.emit(
                EventType.TOOL_CALL_END,
                name="search",
                attributes={"tool": "search", "status": "succeeded", "duration_ms": 12.0},
            )
            agentkeel.emit(EventType.RETRY, name="search", attributes={"attempt": 1})
            agentkeel.emit(EventType.TOOL_CALL_START, name="lookup", attributes={"tool": "lookup"})
            assert agentkeel.flush(timeout=10)

            expect(nodes).to_have_count(before + 3, timeout=20_000)
            timeline = page.get_by_test_id("timeline")
            expect(timeline.locator(f'{NODE}[data-type="retry.attempt"]')).to_have_count(1)
            expect(timeline).to_contain_text("lookup")
    assert page.evaluate("() => window.__sameDocument") is True, "the page was reloaded"
    no_page_errors(page_problems)


def test_runs_page_shows_a_run_finish_without_a_reload(
    page: Any, server: DashboardServer, page_problems: PageProblems
) -> None:
    with agentkeel.run("slow-agent", user_id="dana") as scope:
        assert agentkeel.flush(timeout=10)
        open_page(page, server, "/runs")
        row = page.locator(f'[data-testid="run-row"][data-run-id="{scope.run_id}"]')
        expect(row.locator('[data-field="status"]')).to_have_text("running")
        expect(page.get_by_test_id("runs-live")).to_be_visible()
        page.evaluate("() => { window.__sameDocument = true; }")
    assert agentkeel.flush(timeout=10)
    expect(row.locator('[data-field="status"]')).to_have_text("succeeded", timeout=20_000)
    expect(row).to_have_attribute("data-status", "succeeded")
    assert page.evaluate("() => window.__sameDocument") is True, "the page was reloaded"
    no_page_errors(page_problems)


# ------------------------------------------------------------------- every page
PAGES = {
    "runs": "/runs",
    "failures": "/failures",
    "breakers": "/breakers",
    "alerts": "/alerts",
    "escalations": "/escalations",
    "health": "/health",
    "snapshots": "/snapshots",
}


def test_every_page_renders_the_scenario_and_is_photographed(
    page: Any,
    server: DashboardServer,
    demo_run_id: str,
    scenario: Scenario,
    page_problems: PageProblems,
) -> None:
    expected_text = {
        "runs": ["travel-demo", "checkout-agent", "research-agent"],
        "failures": ["LoopDetectedError", "TimeoutError", "ConnectionError"],
        "breakers": ["weather-api", "flights-api", scenario.breaker_name],
        "alerts": ["error_rate", scenario.breaker_name],
        "escalations": [scenario.ticket_id, "LoopDetectedError"],
        "health": [],
        "snapshots": [scenario.agent_id, *scenario.snapshot_ids],
    }
    for name, path in PAGES.items():
        open_page(page, server, path)
        for text in expected_text[name]:
            expect(page.locator("body")).to_contain_text(text)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    open_page(page, server, f"/runs/{demo_run_id}")
    expect(page.get_by_test_id("timeline")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "run.png"))
    no_page_errors(page_problems)
    written = sorted(p.name for p in SCREENSHOTS.glob("*.png"))
    assert {f"{name}.png" for name in [*PAGES, "run"]} <= set(written)


def test_snapshot_diff_shows_what_changed_between_versions(
    page: Any, server: DashboardServer, scenario: Scenario, page_problems: PageProblems
) -> None:
    open_page(page, server, "/snapshots")
    page.get_by_test_id("snapshot-row").first.get_by_role("link", name=scenario.agent_id).click()
    versions = page.get_by_test_id("version-row")
    expect(versions).to_have_count(2)
    versions.get_by_role("link", name=re.compile(r"^vs v\d+")).click()
    diff = page.get_by_test_id("state-diff")
    # The scenario's two versions differ in three places: result, plan.steps[1], status.
    expect(diff).to_contain_text("3 change(s)")
    for path in ("result", "plan.steps[1]", "status"):
        expect(diff).to_contain_text(path)
    expect(diff).to_contain_text('"book"')
    expect(diff).to_contain_text('"pay"')
    page.screenshot(path=str(SCREENSHOTS / "snapshot-diff.png"))
    no_page_errors(page_problems)


# -------------------------------------------------------------------------- token
def test_with_a_token_the_browser_needs_it_once_then_works_from_the_cookie(
    page: Any, keel_home: Path, tmp_path: Path, scenario: Scenario
) -> None:
    with dashboard_server(tmp_path, "--token", "s3cret-token", home=keel_home) as server:
        for path in ("/runs", "/runs?token=wrong", f"/runs/{scenario.recovered_run_id}"):
            refused = page.goto(server.url + path)
            assert refused is not None
            assert refused.status == 401, f"{path} answered {refused.status} without the token"
            expect(page.locator("body")).not_to_contain_text("checkout-agent")

        open_page(page, server, "/runs?token=s3cret-token")
        assert page.url == f"{server.url}/runs", "the token stayed in the address bar"
        expect(page.get_by_test_id("run-row")).to_have_count(3)
        page.get_by_role("link", name=scenario.recovered_run_id).click()
        expect(page.get_by_test_id("timeline")).to_be_visible()

        open_page(page, server, "/escalations")
        row = page.get_by_test_id("escalation-row").filter(has_text=scenario.ticket_id)
        row.get_by_test_id("ack-button").click()
        row = page.get_by_test_id("escalation-row").filter(has_text=scenario.ticket_id)
        expect(row.get_by_test_id("escalation-status")).to_have_text("acknowledged")
    assert tickets().get_ticket(scenario.ticket_id).status is TicketStatus.ACKNOWLEDGED


# ---------------------------------------------------------------------- bad inputs
def test_unknown_run_is_a_404_page_that_names_it(page: Any, server: DashboardServer) -> None:
    response = page.goto(server.url + "/runs/run-doesnotexist")
    assert response is not None
    assert response.status == 404
    expect(page.locator("body")).to_contain_text("run-doesnotexist")


def test_acknowledge_without_the_pages_csrf_token_is_refused(
    page: Any, server: DashboardServer, scenario: Scenario
) -> None:
    open_page(page, server, "/escalations")
    ticket_row = page.get_by_test_id("escalation-row").filter(has_text=scenario.ticket_id)
    form = ticket_row.get_by_test_id("ack-button").locator("xpath=ancestor::form[1]")
    action = form.get_attribute("action")
    assert action, "the acknowledge button is not in a form with an action"
    fields = form.locator("input[type=hidden]")
    names = [fields.nth(i).get_attribute("name") for i in range(fields.count())]
    assert any(n and "csrf" in n.lower() for n in names), f"no CSRF field in the form: {names}"
    target = action if action.startswith("http") else server.url + action

    for form_data in ({}, {name: "forged" for name in names if name}):
        refused = page.request.post(target, form=form_data, max_redirects=0)
        assert 400 <= refused.status < 500, f"a forged acknowledge answered {refused.status}"
    assert tickets().get_ticket(scenario.ticket_id).status is TicketStatus.OPEN


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/runs?status=bogus", "bogus"),
        ("/runs?page=0", "page"),
        ("/runs?since=yesterday-ish", "since"),
        ("/snapshots?agent=booking-agent&v1=v0001&v2=v0002", "task"),
    ],
)
def test_a_bad_filter_is_a_400_page_that_says_what_was_wrong(
    page: Any, server: DashboardServer, path: str, says: str
) -> None:
    response = page.goto(server.url + path)
    assert response is not None
    assert response.status == 400, f"{path} answered {response.status}"
    expect(page.locator("main")).to_contain_text(says)
    expect(page.get_by_test_id("nav")).to_be_visible()  # an error page, not a bare text


def test_acknowledging_from_a_stale_page_says_someone_was_first(
    page: Any, server: DashboardServer, scenario: Scenario
) -> None:
    open_page(page, server, "/escalations")
    row = page.get_by_test_id("escalation-row").filter(has_text=scenario.ticket_id)
    expect(row.get_by_test_id("ack-button")).to_be_visible()
    # Someone at a terminal acknowledges it first; this page still shows the button.
    run_keel("escalations", "ack", scenario.ticket_id, "--actor", "ana")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        row.get_by_test_id("ack-button").click()
    assert posted.value.status == 409, f"a second acknowledge answered {posted.value.status}"
    expect(page.locator("main")).to_contain_text("acknowledged")
    ticket = tickets().get_ticket(scenario.ticket_id)
    assert ticket.status is TicketStatus.ACKNOWLEDGED
    assert ticket.acknowledged_by == "ana", "the page's late click replaced the first actor"
