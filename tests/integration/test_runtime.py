"""The process-wide pipeline with real stores: zero configuration, exit, dead servers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import agentkeel
from agentkeel.store import open_store


def test_zero_configuration_uses_sqlite_under_keel_home(tmp_path: Path) -> None:
    with agentkeel.run("zero-config") as scope:
        agentkeel.emit("custom.thing", attributes={"n": 1})
    assert agentkeel.flush(timeout=10)
    home = Path(os.environ["KEEL_HOME"])
    assert (home / "keel.db").exists()
    store = agentkeel.get_store()
    run = store.get_run(scope.run_id or "")
    assert (run.name, run.status) == ("zero-config", "succeeded")
    types = [e.event.type for e in store.list_events(run_id=run.run_id)]
    assert types == ["agent.start", "custom.thing", "agent.end"]


def test_events_are_written_at_interpreter_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import agentkeel
        with agentkeel.run("exit-test"):
            for i in range(2_000):
                agentkeel.emit("tick", attributes={"i": i})
        # no flush(): the atexit hook must write everything
        """
    )
    env = {**os.environ, "KEEL_HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    store = open_store(home=tmp_path)
    try:
        (run,) = store.list_runs()
        assert run.status == "succeeded"
        assert store.count_events(run_id=run.run_id) == 2_002
    finally:
        store.close()


def test_unreachable_postgres_never_stops_the_run() -> None:
    agentkeel.set_strict(False)  # the point is the non-strict behaviour users get
    pipeline = agentkeel.configure(store="postgresql://127.0.0.1:1/nowhere")
    with agentkeel.run("unlucky") as scope:
        for i in range(100):
            agentkeel.emit("tick", attributes={"i": i})
    assert scope.run_id
    assert agentkeel.flush(timeout=30) is False
    stats = pipeline.stats()
    assert stats.dropped == 102
    assert stats.dropped_by_reason == {"sink_failed": 102}
    assert "127.0.0.1" in (stats.last_error or "") or stats.sink_errors > 0
