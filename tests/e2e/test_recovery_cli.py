"""``keel snapshots``, ``keel rollback`` and ``keel history`` as a user runs them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentkeel.recovery import HistoryManager, RollbackManager
from agentkeel.store import _schema, open_store

KEEL = Path(sys.executable).parent / "keel"
OLD = {"plan": {"steps": ["search", "book"]}, "budget": 1200.5}
NEW = {"plan": {"steps": ["search", "book", "pay"]}, "budget": 80.0, "paid": True}


def keel(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KEEL_STORE"}
    env.update({"KEEL_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
    return subprocess.run(
        [str(KEEL), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def seed(url: str) -> tuple[str, str]:
    """Two snapshots and three versions of agent ``planner``; return the snapshot IDs."""
    store = open_store(url)
    rollback = RollbackManager(store=store)
    old = rollback.create_snapshot_sync(
        agent_id="planner", task_id="trip", state_data=OLD, metadata={"checkpoint": "booked"}
    )
    new = rollback.create_snapshot_sync(agent_id="planner", task_id="trip", state_data=NEW)
    history = HistoryManager(store=store)
    for state in (OLD, {**OLD, "budget": 900.0}, NEW):
        history.record_state_sync(agent_id="planner", task_id="trip", state_data=state)
    history.record_intervention_sync(
        agent_id="planner", task_id="trip", actor="alice", action="approve"
    )
    store.close()
    return old, new


def corrupt(db: Path, snapshot_id: str) -> None:
    conn = sqlite3.connect(db)
    (blob,) = conn.execute(
        "SELECT blob FROM snapshots WHERE snapshot_id = ?", (snapshot_id,)
    ).fetchone()
    flipped = bytes([blob[0] ^ 0x01]) + blob[1:]
    with conn:
        conn.execute("UPDATE snapshots SET blob = ? WHERE snapshot_id = ?", (flipped, snapshot_id))
    conn.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "keel-home"


@pytest.fixture
def seeded(home: Path) -> tuple[Path, str, str]:
    old, new = seed(f"sqlite:///{home / 'keel.db'}")
    return home, old, new


def test_snapshots_lists_them_newest_first(seeded: tuple[Path, str, str]) -> None:
    home, old, new = seeded
    listed = json.loads(keel("snapshots", "--json", home=home).stdout)
    assert [s["snapshot_id"] for s in listed] == [new, old]
    assert listed[1]["metadata"] == {"checkpoint": "booked"}
    assert all(s["intact"] for s in listed)
    table = keel("snapshots", "--agent", "planner", home=home)
    assert table.returncode == 0
    assert old in table.stdout
    assert "booked" in table.stdout
    assert "No snapshots for agent ghost" in keel("snapshots", "--agent", "ghost", home=home).stdout


def test_rollback_prints_the_latest_state(seeded: tuple[Path, str, str]) -> None:
    home, _, new = seeded
    result = keel("rollback", "planner", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == NEW  # stdout is only the state
    assert f"to snapshot {new}" in result.stderr
    timeline = json.loads(keel("history", "planner", "--json", home=home).stdout)
    last = timeline[-1]["intervention"]
    assert (last["kind"], last["action"], last["details"]["snapshot_id"]) == (
        "manual",
        "rollback",
        new,
    )
    assert last["actor"].startswith("cli")


def test_rollback_to_a_named_snapshot_as_json(seeded: tuple[Path, str, str]) -> None:
    home, old, _ = seeded
    result = keel("rollback", "planner", "--snapshot", old, "--json", home=home)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert (body["success"], body["snapshot_id"], body["state"]) == (True, old, OLD)


def test_a_corrupt_snapshot_is_never_restored(seeded: tuple[Path, str, str]) -> None:
    home, old, new = seeded
    corrupt(home / "keel.db", new)
    listed = json.loads(keel("snapshots", "--json", home=home).stdout)
    assert [s["intact"] for s in listed] == [False, True]
    assert "CORRUPT" in keel("snapshots", home=home).stdout

    named = keel("rollback", "planner", "--snapshot", new, home=home)
    assert named.returncode == 1
    assert named.stdout == ""
    lines = named.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"snapshot {new!r}" in lines[0]
    assert "is corrupt" in lines[0]
    assert f"keel rollback planner --snapshot {old}" in lines[0]
    assert "Traceback" not in named.stderr

    latest = keel("rollback", "planner", home=home)
    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout) == OLD  # the older intact one, never the corrupt one
    assert "1 corrupt" in latest.stderr


def test_rollback_with_nothing_to_restore_exits_1(home: Path) -> None:
    result = keel("rollback", "ghost", home=home)
    assert result.returncode == 1
    assert "agent 'ghost' has no snapshot to roll back to" in result.stderr
    unknown = keel("rollback", "ghost", "--snapshot", "snap_nope", home=home)
    assert unknown.returncode == 1
    assert "no snapshot has the ID 'snap_nope'" in unknown.stderr


def test_history_is_a_timeline(seeded: tuple[Path, str, str]) -> None:
    home, _, _ = seeded
    timeline = json.loads(keel("history", "planner", "--task", "trip", "--json", home=home).stdout)
    assert [e["entry"] for e in timeline] == ["version", "version", "version", "intervention"]
    assert [e["version"]["version_id"] for e in timeline[:3]] == ["v0001", "v0002", "v0003"]
    table = keel("history", "planner", home=home)
    assert table.returncode == 0
    assert "v0003" in table.stdout
    assert "manual approve" in table.stdout
    assert "No history for agent ghost" in keel("history", "ghost", home=home).stdout


def test_history_diff(seeded: tuple[Path, str, str]) -> None:
    home, _, _ = seeded
    result = keel("history", "planner", "--task", "trip", "--diff", "v0001", "v0003", home=home)
    assert result.returncode == 0, result.stderr
    assert "v0001 -> v0003, 3 change(s)" in result.stdout
    assert "+ paid" in result.stdout
    assert "+ plan.steps[2]" in result.stdout
    assert "~ budget: 1200.5 -> 80.0" in result.stdout
    as_json = keel(
        "history", "planner", "--task", "trip", "--diff", "v0002", "v0003", "--json", home=home
    )
    body: dict[str, Any] = json.loads(as_json.stdout)
    assert (body["from"], body["to"], body["total_changes"]) == ("v0002", "v0003", 3)
    assert {c["path"] for c in body["changed"]} == {"budget"}

    unknown = keel("history", "planner", "--task", "trip", "--diff", "v0001", "v0009", home=home)
    assert unknown.returncode == 1
    assert "there is no v0009; it has v0001 … v0003" in unknown.stderr
    no_task = keel("history", "planner", "--diff", "v0001", "v0002", home=home)
    assert no_task.returncode == 1
    assert "--diff needs --task" in no_task.stderr


def test_a_version_1_store_shows_the_pending_migration_then_upgrades(home: Path) -> None:
    db = home / "keel.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute(_schema.VERSION_TABLE_SQL)
    _schema.apply_pending(0, "sqlite", conn.execute, time.time(), target=1)
    conn.execute("COMMIT")
    conn.close()

    status = json.loads(keel("db", "status", "--json", home=home).stdout)
    assert (status["current"], status["latest"]) == (1, _schema.LATEST)
    assert status["pending"][0] == "0002_snapshots_and_history"
    assert "0002_snapshots_and_history" in keel("db", "status", home=home).stdout
    upgraded = keel("db", "upgrade", home=home)
    assert upgraded.returncode == 0
    assert "applied 0002_snapshots_and_history" in upgraded.stdout
    assert json.loads(keel("snapshots", "--json", home=home).stdout) == []


@pytest.mark.postgres
def test_the_commands_work_on_postgres(postgres_url: str, home: Path) -> None:
    old, new = seed(postgres_url)
    listed = json.loads(keel("snapshots", "--store", postgres_url, "--json", home=home).stdout)
    assert [s["snapshot_id"] for s in listed] == [new, old]
    result = keel("rollback", "planner", "--store", postgres_url, home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == NEW
    diff = keel(
        "history", "planner", "--store", postgres_url, "--task", "trip", "--diff", "1", "3",
        "--json", home=home,
    )  # fmt: skip
    assert json.loads(diff.stdout)["total_changes"] == 3
