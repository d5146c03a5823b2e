"""Delivering notifications off the caller's thread, one at a time, in order.

A webhook that times out three times with back-off can take half a minute; the
agent that escalated must not wait for it. One daemon worker drains a bounded
queue (FIFO, so "created" is announced before "escalated"); when the queue is full
the new notification is dropped and counted, because blocking the agent would be
worse than a missed page that the ticket's timeline still shows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from agentkeel import _internal

Job = Callable[[], None]


class Dispatcher:
    """Runs jobs on one worker thread; ``flush`` waits for them, ``close`` stops it."""

    def __init__(self, *, capacity: int, name: str = "agentkeel-notify") -> None:
        self._capacity = capacity
        self._name = name
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False (and counted) if the queue is full or closed."""
        with self._cond:
            if self._closed or len(self._jobs) >= self._capacity:
                self.dropped += 1
                return False
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return  # closed and drained
                job = self._jobs.popleft()
                self._busy = True
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - jobs report their own failures; this is a bug
                _internal.report_internal_error("recovery.dispatch", exc, reraise=False)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued job ran; False if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float) -> bool:
        """Run what is queued (up to ``timeout`` seconds), then stop the worker."""
        drained = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, timeout))
        return drained

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._jobs) + (1 if self._busy else 0)
