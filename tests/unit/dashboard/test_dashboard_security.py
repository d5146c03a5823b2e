"""Tokens, CSRF and binding: who may use the dashboard, and how a change is made."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from agentkeel._errors import ConfigurationError
from agentkeel.cli import app as cli_app
from agentkeel.dashboard import check_bind, create_app
from agentkeel.recovery import EscalationConfig, EscalationManager, TicketStatus
from agentkeel.store import Store, open_store

ORIGIN = "http://testserver"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'keel.db'}")
    yield opened
    opened.close()


def _ticket(store: Store) -> str:
    manager = EscalationManager(store=store, config=EscalationConfig(notify_in_background=False))
    try:
        return manager.create_escalation_sync(ConnectionError("refused"), agent_id="payments")
    finally:
        manager.close()


def _status(store: Store, ticket_id: str) -> TicketStatus:
    manager = EscalationManager(store=store, config=EscalationConfig(notify_in_background=False))
    try:
        return manager.get_ticket(ticket_id).status
    finally:
        manager.close()


def _csrf(client: TestClient) -> str:
    html = client.get("/escalations").text
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({}, {"Origin": ORIGIN}),
        ({"csrf_token": "0" * 64}, {"Origin": ORIGIN}),
        ({"csrf_token": "RIGHT"}, {"Origin": "https://evil.example"}),
        ({"csrf_token": "RIGHT"}, {"Origin": "null"}),
        ({"csrf_token": "RIGHT"}, {"Referer": "https://evil.example/page"}),
    ],
    ids=["no-token", "wrong-token", "foreign-origin", "null-origin", "foreign-referer"],
)
def test_csrf_refuses_and_changes_nothing(
    store: Store, form: dict[str, str], headers: dict[str, str]
) -> None:
    ticket = _ticket(store)
    with TestClient(create_app(store=store)) as client:
        if form.get("csrf_token") == "RIGHT":
            form = {"csrf_token": _csrf(client)}
        response = client.post(
            f"/escalations/{ticket}/ack", data=form, headers=headers, follow_redirects=False
        )
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert _status(store, ticket) is TicketStatus.OPEN


def test_acknowledge_and_resolve_change_the_ticket_in_the_store(store: Store) -> None:
    ticket = _ticket(store)
    with TestClient(create_app(store=store)) as client:
        html = client.get("/escalations").text
        assert 'data-testid="escalation-row"' in html
        assert 'data-testid="ack-button"' in html and 'data-testid="resolve-button"' in html
        token = _csrf(client)
        acked = client.post(
            f"/escalations/{ticket}/ack",
            data={"csrf_token": token, "actor": "ana"},
            headers={"Origin": ORIGIN},
            follow_redirects=False,
        )
        assert acked.status_code == 303
        assert _status(store, ticket) is TicketStatus.ACKNOWLEDGED
        page = client.get(acked.headers["location"]).text
        assert 'data-testid="escalation-status">acknowledged<' in page
        assert "ack by ana" in page
        again = client.post(
            f"/escalations/{ticket}/ack", data={"csrf_token": token}, headers={"Origin": ORIGIN}
        )
        assert again.status_code == 409  # the state machine says no, as the CLI does
        no_reason = client.post(
            f"/escalations/{ticket}/resolve", data={"csrf_token": token}, headers={"Origin": ORIGIN}
        )
        assert no_reason.status_code == 400
        resolved = client.post(
            f"/escalations/{ticket}/resolve",
            data={"csrf_token": token, "resolution": "restarted the proxy"},
            headers={"Referer": f"{ORIGIN}/escalations"},
        )
        assert resolved.status_code == 200  # followed the redirect
        assert _status(store, ticket) is TicketStatus.RESOLVED
        unknown = client.post(
            "/escalations/esc-nope/ack", data={"csrf_token": token}, headers={"Origin": ORIGIN}
        )
        assert unknown.status_code == 404


def test_get_never_changes_a_ticket(store: Store) -> None:
    ticket = _ticket(store)
    with TestClient(create_app(store=store)) as client:
        assert client.get(f"/escalations/{ticket}/ack").status_code == 405
    assert _status(store, ticket) is TicketStatus.OPEN


def test_a_token_guards_every_request(store: Store) -> None:
    with TestClient(create_app(store=store, token="s3cret-token")) as client:
        for path in ("/runs", "/api/runs", "/static/dashboard.css", "/escalations"):
            assert client.get(path).status_code == 401, path
        assert client.get("/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/runs?token=wrong").status_code == 401
        ok = client.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        first = client.get("/runs?token=s3cret-token&status=failed", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/runs?status=failed"  # the token leaves the URL
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/runs").status_code == 200  # the cookie carries it from now on


def test_without_a_token_only_loopback_host_names_are_answered(store: Store) -> None:
    with TestClient(create_app(store=store)) as client:
        assert client.get("/runs", headers={"Host": "127.0.0.1:8765"}).status_code == 200
        assert client.get("/runs", headers={"Host": "localhost:8765"}).status_code == 200
        assert client.get("/runs", headers={"Host": "[::1]:8765"}).status_code == 200
        rebound = client.get("/runs", headers={"Host": "evil.example:8765"})
        assert rebound.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"])
def test_loopback_needs_no_token(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_other_addresses_need_a_token(host: str) -> None:
    with pytest.raises(ConfigurationError, match="without a token"):
        check_bind(host, None)
    with pytest.raises(ConfigurationError, match="without a token"):
        check_bind(host, "  ")
    check_bind(host, "s3cret")


def test_cli_refuses_a_public_bind_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_DASHBOARD_TOKEN", raising=False)
    result = CliRunner().invoke(cli_app, ["dashboard", "--host", "0.0.0.0", "--no-open"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "refusing to serve the dashboard on 0.0.0.0 without a token" in message
    assert "KEEL_DASHBOARD_TOKEN" in message
    assert "Traceback" not in result.output


def test_keel_report_html_writes_a_self_contained_file(tmp_path: Path, store: Store) -> None:
    import agentkeel

    url = store.url
    agentkeel.configure(store=url)
    with agentkeel.run("exported", run_id="run-export"):
        agentkeel.emit("tool.start", name="search")
    assert agentkeel.flush(timeout=10)
    target = tmp_path / "run.html"
    result = CliRunner().invoke(
        cli_app, ["report", "run-exp", "--store", url, "--html", str(target)]
    )
    assert result.exit_code == 0, result.output
    html = target.read_text()
    assert "http://" not in html and "https://" not in html and "src=" not in html
    assert 'data-type="tool.start"' in html and 'data-testid="failures-table"' in html
    missing = CliRunner().invoke(
        cli_app, ["report", "run-nope", "--store", url, "--html", str(tmp_path / "x.html")]
    )
    assert missing.exit_code == 1
    assert "no run has the ID" in missing.output
