"""Nothing acknowledged is lost: SIGKILL a process mid-stream, then count what it flushed.

The child emits events in a loop and, every few thousand, prints how many it has
emitted once ``flush()`` has returned True. The parent kills it without warning
after some acknowledgements and checks that every acknowledged event is in the
store — from the events table, by sequence number.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentkeel.store import open_store

TOTAL = 100_000
EVERY = 5_000
KILL_AFTER = 30_000

CHILD = textwrap.dedent(
    """
    import sys
    import agentkeel

    url, total, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    agentkeel.configure(store=url)
    for i in range(1, total + 1):
        agentkeel.emit("tool.start", name="crash-test", attributes={"i": i})
        if i % every == 0:
            if not agentkeel.flush(timeout=60):
                print("flush failed", file=sys.stderr, flush=True)
                sys.exit(3)
            print(i, flush=True)
    """
)


def _run_and_kill(url: str) -> int:
    """Run the child until it has KILL_AFTER acknowledged, SIGKILL it; return the last ack."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", CHILD, url, str(TOTAL), str(EVERY)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,  # line-buffered
        env={**os.environ, "KEEL_STRICT": "1"},
    )
    assert proc.stdout is not None
    acked = 0
    deadline = time.monotonic() + 120
    try:
        while acked < KILL_AFTER:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, remaining))
            if not ready:
                pytest.fail(f"the child acknowledged only {acked} events in 120 s")
            line = proc.stdout.readline()
            if not line:
                stderr = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"the child exited early ({proc.wait()}): {stderr[-2000:]}")
            acked = int(line)
        # Kill mid-stream: it is already emitting (and writing) the next events.
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return acked


def _check_everything_acknowledged_is_there(url: str, acked: int) -> None:
    store = open_store(url)
    try:
        assert store.count_events() >= acked
        seen: set[int] = set()
        after = 0
        while page := store.list_events(after_seq=after, limit=10_000):
            seen.update(s.event.attributes["i"] for s in page)
            after = page[-1].store_seq
        missing = set(range(1, acked + 1)) - seen
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
        assert max(seen) <= TOTAL
    finally:
        store.close()


@pytest.mark.slow
def test_sqlite_keeps_every_acknowledged_event_through_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash' / 'keel.db'}"
    acked = _run_and_kill(url)
    _check_everything_acknowledged_is_there(url, acked)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_keeps_every_acknowledged_event_through_sigkill(postgres_url: str) -> None:
    acked = _run_and_kill(postgres_url)
    _check_everything_acknowledged_is_there(postgres_url, acked)
