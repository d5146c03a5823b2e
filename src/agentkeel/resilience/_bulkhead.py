"""Bulkhead: at most ``max_concurrent`` calls at once, sync and async.

One Bulkhead is one limit, whoever uses it: threads, event loops, or both at once
share a single counter under a lock. A call that finds every slot taken waits up to
``max_wait`` seconds in one FIFO queue; when a call ends, its slot is handed straight
to the longest waiter (a thread is woken through its own lock, a task through a
future resolved on its own loop), so a newcomer can never jump the queue and nobody
polls. With ``max_wait=0`` (the default) a full bulkhead refuses at once.

The counting itself is a small state machine, :class:`_Slots`, that knows nothing of
threads or loops; the shells around it only wait and wake.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, Severity
from agentkeel.resilience._base import PolicyBase, as_seconds, check_count
from agentkeel.resilience._errors import BulkheadFullError
from agentkeel.resilience._naming import describe

__all__ = ["Bulkhead", "BulkheadStats"]

R = TypeVar("R")

REJECTED_EVENT = "bulkhead.rejected"


class _Waiter:
    __slots__ = ("granted",)

    def __init__(self) -> None:
        # Set under the bulkhead's lock when a slot is handed over; the only truth
        # about whether this waiter owns a slot (a wake-up may arrive late or never).
        self.granted = False

    def wake(self) -> bool:
        """Tell the waiter its slot is ready; False if it can never hear it."""
        raise NotImplementedError


class _ThreadWaiter(_Waiter):
    __slots__ = ("lock",)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.lock.acquire()

    def wake(self) -> bool:
        self.lock.release()
        return True


class _TaskWaiter(_Waiter):
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # its loop is closed
            return False
        return True


class _Slots:
    """The pure state machine: who holds a slot, who waits. Callers hold the lock.

    Invariant: while anyone waits, every slot is taken (``release`` hands a slot to
    the first waiter instead of freeing it).
    """

    __slots__ = ("accepted", "active", "limit", "rejected", "waiters")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.waiters: deque[_Waiter] = deque()
        self.accepted = 0
        self.rejected = 0

    def try_enter(self) -> bool:
        if self.active < self.limit:
            self.active += 1
            self.accepted += 1
            return True
        return False

    def wait(self, waiter: _Waiter) -> None:
        self.waiters.append(waiter)

    def withdraw(self, waiter: _Waiter) -> bool:
        """Take a waiter out of the queue; False if it was granted a slot meanwhile."""
        if waiter.granted:
            return False
        self.waiters.remove(waiter)
        return True

    def reject(self) -> None:
        self.rejected += 1

    def release(self) -> _Waiter | None:
        """End one call: hand its slot to the first waiter (returned) or free it."""
        if self.waiters:
            waiter = self.waiters.popleft()
            waiter.granted = True
            self.accepted += 1
            return waiter
        if self.active <= 0:
            raise RuntimeError("bulkhead released more times than it was entered")
        self.active -= 1
        return None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class BulkheadStats:
    """A snapshot of a bulkhead's counters."""

    name: str | None
    max_concurrent: int
    active: int
    waiting: int
    accepted: int
    rejected: int


class Bulkhead(PolicyBase):
    """Let at most ``max_concurrent`` calls run at once; refuse the rest.

    A call that finds the bulkhead full waits up to ``max_wait`` seconds for a slot,
    then raises :class:`BulkheadFullError`. Use it as ``call``/``acall``, as a
    decorator, or as a (sync or async) context manager::

        pool = Bulkhead(4, max_wait=0.5, name="search")
        with pool:
            search(q)
    """

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_wait: float | timedelta = 0.0,
        name: str | None = None,
    ) -> None:
        self.max_concurrent = check_count(max_concurrent, "max_concurrent")
        self.max_wait = as_seconds(max_wait, "max_wait")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty string or None, got {name!r}")
        self.name = name
        self._lock = threading.Lock()
        self._slots = _Slots(self.max_concurrent)

    def __repr__(self) -> str:
        return f"Bulkhead({self.max_concurrent}, max_wait={self.max_wait:g}, name={self.name!r})"

    @property
    def active(self) -> int:
        """Calls holding a slot right now."""
        return self._slots.active

    def stats(self) -> BulkheadStats:
        with self._lock:
            slots = self._slots
            return BulkheadStats(
                name=self.name,
                max_concurrent=slots.limit,
                active=slots.active,
                waiting=len(slots.waiters),
                accepted=slots.accepted,
                rejected=slots.rejected,
            )

    # ------------------------------------------------------------------ policy
    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        if not self._acquire(self.max_wait):
            raise self._rejected(describe(fn))
        try:
            return fn(*args, **kwargs)
        finally:
            self._release()

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        if not await self._aacquire(self.max_wait):
            raise self._rejected(describe(fn))
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    def __enter__(self) -> Bulkhead:
        if not self._acquire(self.max_wait):
            raise self._rejected(None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    async def __aenter__(self) -> Bulkhead:
        if not await self._aacquire(self.max_wait):
            raise self._rejected(None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    # ------------------------------------------------------------------ shells
    def _acquire(self, wait: float) -> bool:
        """Take a slot, waiting up to ``wait`` seconds; False if none came."""
        slots = self._slots
        with self._lock:
            if slots.try_enter():
                return True
            if wait <= 0:
                slots.reject()
                return False
            waiter = _ThreadWaiter()
            slots.wait(waiter)
        try:
            if waiter.lock.acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
                return True
        except BaseException:
            self._abandon(waiter)  # interrupted (KeyboardInterrupt)
            raise
        return self._timed_out(waiter)

    async def _aacquire(self, wait: float) -> bool:
        slots = self._slots
        with self._lock:
            if slots.try_enter():
                return True
            if wait <= 0:
                slots.reject()
                return False
            waiter = _TaskWaiter(asyncio.get_running_loop())
            slots.wait(waiter)
        try:
            async with asyncio.timeout(wait):
                await waiter.future
        except TimeoutError:
            return self._timed_out(waiter)
        except BaseException:
            self._abandon(waiter)  # cancelled
            raise
        return True

    def _timed_out(self, waiter: _Waiter) -> bool:
        """The wait ran out. True if a slot was granted just before (the caller keeps it)."""
        with self._lock:
            if self._slots.withdraw(waiter):
                self._slots.reject()
                return False
        return True

    def _abandon(self, waiter: _Waiter) -> None:
        """Leave the queue for good; a slot granted meanwhile is handed on."""
        with self._lock:
            withdrawn = self._slots.withdraw(waiter)
        if not withdrawn:
            self._release()

    def _release(self) -> None:
        with self._lock:
            waiter = self._slots.release()
        # A waiter whose loop has closed will never take its slot: hand it to the next.
        while waiter is not None and not waiter.wake():
            with self._lock:
                waiter = self._slots.release()

    def _rejected(self, what: str | None) -> BulkheadFullError:
        name = self.name or what or "bulkhead"
        with self._lock:
            active = self._slots.active
        get_pipeline().emit(
            REJECTED_EVENT,
            name=name,
            severity=Severity.LOW,
            category=Category.RESOURCE,
            attributes={"max_concurrent": self.max_concurrent, "max_wait_s": self.max_wait},
        )
        waited = f" and none freed within {self.max_wait:g} s" if self.max_wait > 0 else ""
        return BulkheadFullError(
            f"bulkhead {name!r} is full: {active} of {self.max_concurrent} calls are running"
            f"{waited}; retry later, or raise max_concurrent or max_wait"
        )
