"""``keel escalations list | show | ack | resolve`` on tickets an agent process opened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkeel.recovery import EscalationConfig, EscalationManager, TicketStatus
from agentkeel.store import open_store

KEEL = Path(sys.executable).parent / "keel"


def keel(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KEEL_STORE"}
    env.update({"KEEL_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1", "USER": "oncall"})
    return subprocess.run(
        [str(KEEL), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def tickets(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A store under KEEL_HOME with three tickets opened through the API."""
    home = tmp_path / "home"
    store = open_store(f"sqlite:///{home / 'keel.db'}")
    manager = EscalationManager(store=store, config=EscalationConfig(notify_in_background=False))
    ids = {
        "network": manager.create_escalation_sync(
            ConnectionError("upstream refused"),
            recovery_attempts=["retry 1", "retry 2", "retry 3"],
            agent_id="travel-agent",
        ),
        "memory": manager.create_escalation_sync(
            {"error": MemoryError("out of memory"), "agent_id": "indexer", "data_loss": True}
        ),
        "old": manager.create_escalation_sync(ConnectionError("upstream refused"), level=2),
    }
    manager.resolve(ids["old"], resolution="restarted the proxy", actor="ana")
    store.close()
    return home, ids


def test_list_shows_every_ticket_and_filters(tickets: tuple[Path, dict[str, str]]) -> None:
    home, ids = tickets
    result = keel("escalations", "list", home=home)
    assert result.returncode == 0, result.stderr
    assert "3 escalation ticket(s)" in result.stdout
    for ticket_id in ids.values():
        assert ticket_id in result.stdout
    assert (
        "critical_alert" in result.stdout and "ConnectionError: upstream refused" in result.stdout
    )
    as_json = json.loads(
        keel("escalations", "list", "--status", "open", "--json", home=home).stdout
    )
    assert {row["ticket_id"] for row in as_json} == {ids["network"], ids["memory"]}
    assert all("changes" not in row for row in as_json)
    bad = keel("escalations", "list", "--status", "closed", home=home)
    assert bad.returncode == 2 and "unknown ticket status 'closed'" in bad.stderr


def test_show_prints_the_report(tickets: tuple[Path, dict[str, str]]) -> None:
    home, ids = tickets
    result = keel("escalations", "show", ids["network"][:10], home=home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Escalation {ids['network']}  [open]  level supervisor_review" in out
    assert "retry 3" in out and "Recommendations" in out
    assert f"{ids['old']}  resolved - restarted the proxy" in out  # a similar ticket
    data = json.loads(keel("escalations", "show", ids["memory"], "--json", home=home).stdout)
    assert data["ticket"]["level"] == "critical_alert"
    assert data["analysis"]["classification"]["category"] == "resource"
    assert any("rollback snapshot" in r for r in data["recommendations"])


def test_ack_then_resolve_are_durable(tickets: tuple[Path, dict[str, str]]) -> None:
    home, ids = tickets
    acked = keel("escalations", "ack", ids["network"], "--note", "looking", home=home)
    assert acked.returncode == 0, acked.stderr
    assert f"acknowledged {ids['network']} by oncall" in acked.stdout
    again = keel("escalations", "ack", ids["network"], home=home)
    assert again.returncode == 1 and "already acknowledged by oncall" in again.stderr
    resolved = keel(
        "escalations",
        "resolve",
        ids["network"],
        "-r",
        "rotated the API key",
        "--by",
        "ana",
        home=home,
    )
    assert resolved.returncode == 0, resolved.stderr
    assert "resolved" in resolved.stdout and "rotated the API key" in resolved.stdout
    store = open_store(f"sqlite:///{home / 'keel.db'}")
    try:
        ticket = EscalationManager(store=store).get_ticket(ids["network"])
    finally:
        store.close()
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.acknowledged_by == "oncall" and ticket.resolved_by == "ana"
    assert [c.action for c in ticket.changes] == ["created", "acknowledged", "resolved"]


def test_errors_are_one_line_with_exit_codes(tickets: tuple[Path, dict[str, str]]) -> None:
    home, ids = tickets
    missing = keel("escalations", "show", "esc-doesnotexist", home=home)
    assert missing.returncode == 1
    assert "no escalation ticket 'esc-doesnotexist'" in missing.stderr
    assert "Traceback" not in missing.stderr
    ambiguous = keel("escalations", "ack", "esc-", home=home)
    assert ambiguous.returncode == 1 and "ambiguous" in ambiguous.stderr
    finished = keel("escalations", "resolve", ids["old"], "-r", "again", home=home)
    assert finished.returncode == 1 and "already resolved by ana" in finished.stderr
    empty = keel("escalations", "resolve", ids["memory"], "-r", " ", home=home)
    assert empty.returncode == 2 and "resolution must say what fixed it" in empty.stderr


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    result = keel("escalations", "list", home=tmp_path)
    assert result.returncode == 0 and "No escalation tickets yet." in result.stdout
    assert keel("escalations", home=tmp_path).returncode in (0, 2)  # help, no traceback
