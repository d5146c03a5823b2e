"""Per-call timeouts, sync and async, and the ``TimeoutToolExecutor`` built on them.

Async calls are cut for real: ``asyncio.timeout`` cancels the coroutine, which stops
at its next ``await``.

Sync calls cannot be cut. CPython offers no way to stop a thread from outside, so
the call runs on a worker thread while the caller waits for it until the deadline.
When the deadline passes the caller gets :class:`ToolTimeoutError` and the worker is
*abandoned*: it keeps running until the function returns on its own, and its result
is thrown away. A hung function therefore leaks one thread per call. To bound that
leak each :class:`Timeout` counts its abandoned threads and, once ``max_abandoned`` of
them are still running, refuses new calls at once (also with ``ToolTimeoutError``,
so code that handles timeouts handles this too). When the work must really stop, run
it in a subprocess with :class:`~agentkeel.resilience.IsolatedToolExecutor`, which
kills the whole process tree.

Worker threads come from a small cache shared by every Timeout: a call takes an idle
thread or starts a new one, and never waits in a queue. (A queued call could start
*after* its caller had given up on it, and run its side effects for nobody.)
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, EventType, Severity
from agentkeel.resilience._base import PolicyBase, as_seconds, check_count
from agentkeel.resilience._bulkhead import Bulkhead
from agentkeel.resilience._errors import ToolTimeoutError
from agentkeel.resilience._naming import describe

__all__ = ["Timeout", "TimeoutStats", "TimeoutToolExecutor"]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# Idle worker threads kept for reuse, and how long one waits for work before it exits.
_MAX_IDLE_THREADS = 8
_IDLE_SECONDS = 30.0
_DEFAULT_MAX_ABANDONED = 16

# One lock guards the idle list, every job's finished/abandoned flags and every
# Timeout's counters; each critical section is a handful of bytecodes.
_lock = threading.Lock()
_idle: list[_Worker] = []
_thread_ids = iter(range(1, 1 << 62))
_timeouts: weakref.WeakSet[Timeout] = weakref.WeakSet()


class _Job:
    """One sync call handed to a worker thread."""

    __slots__ = (
        "abandoned",
        "args",
        "ctx",
        "done",
        "error",
        "finished",
        "fn",
        "kwargs",
        "owner",
        "result",
    )

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], owner: Timeout
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        # The caller's run, span and correlation IDs follow the call into the thread.
        self.ctx = contextvars.copy_context()
        self.owner = owner
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False
        # A bare lock is the cheapest one-shot signal: the worker releases it when done.
        self.done = threading.Lock()
        self.done.acquire()


class _Worker:
    __slots__ = ("job", "wake")

    def __init__(self, job: _Job) -> None:
        self.job: _Job | None = job
        self.wake = threading.Lock()
        self.wake.acquire()


def _run(job: _Job) -> None:
    try:
        job.result = job.ctx.run(job.fn, *job.args, **job.kwargs)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
        job.error = exc
    with _lock:
        job.finished = True
        abandoned = job.abandoned
        if abandoned:
            job.owner._abandoned -= 1
    if abandoned:
        # Nobody waits for it any more: drop the result (and a traceback's frames) now.
        job.result = job.error = None
    else:
        job.done.release()


def _serve(worker: _Worker) -> None:
    job = worker.job
    while job is not None:
        worker.job = None
        _run(job)
        job = None
        with _lock:
            if len(_idle) >= _MAX_IDLE_THREADS:
                return
            _idle.append(worker)
        if not worker.wake.acquire(timeout=_IDLE_SECONDS):
            with _lock:
                if worker in _idle:
                    _idle.remove(worker)
                    return
            # A caller took this worker just as the wait ran out: its job is on the way.
            worker.wake.acquire()
        job = worker.job


def _dispatch(job: _Job) -> None:
    with _lock:
        worker = _idle.pop() if _idle else None
    if worker is not None:
        worker.job = job
        worker.wake.release()
        return
    thread = threading.Thread(
        target=_serve,
        args=(_Worker(job),),
        name=f"agentkeel-timeout-{next(_thread_ids)}",
        # An abandoned call must not keep the interpreter from exiting.
        daemon=True,
    )
    thread.start()


def _after_fork_in_child() -> None:
    # Only the forking thread survives a fork: the idle workers and abandoned calls are gone.
    global _lock  # noqa: PLW0603 - the parent's lock may have been held at the fork
    _lock = threading.Lock()
    _idle.clear()
    for timeout in list(_timeouts):
        timeout._abandoned = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True, slots=True)
class TimeoutStats:
    """A snapshot of one Timeout's counters."""

    name: str | None
    seconds: float
    timed_out: int
    """Calls cut at the deadline (sync and async)."""
    abandoned: int
    """Sync calls cut at the deadline whose threads are still running."""
    refused: int
    """Sync calls refused because ``max_abandoned`` threads were still running."""
    max_abandoned: int


class Timeout(PolicyBase):
    """Give up on a call after ``seconds``: ``ToolTimeoutError`` (also a ``TimeoutError``).

    ``acall`` cancels the coroutine. ``call`` runs the function on a worker thread (in
    the caller's context) and stops *waiting* at the deadline; the thread runs on in
    the background, see the module docs. ``max_abandoned`` bounds those threads: while
    that many are still running, new sync calls are refused at once.

    ``name`` names the call in errors and events (default: the function's name).
    """

    def __init__(
        self,
        seconds: float | timedelta,
        *,
        name: str | None = None,
        max_abandoned: int = _DEFAULT_MAX_ABANDONED,
    ) -> None:
        self.seconds = as_seconds(seconds, "seconds", allow_zero=False)
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty string or None, got {name!r}")
        self.name = name
        self.max_abandoned = check_count(max_abandoned, "max_abandoned")
        self._abandoned = 0
        self._timed_out = 0
        self._refused = 0
        _timeouts.add(self)

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g}, name={self.name!r})"

    @property
    def abandoned(self) -> int:
        """Sync calls cut at the deadline whose threads have not finished yet."""
        return self._abandoned

    def stats(self) -> TimeoutStats:
        with _lock:
            return TimeoutStats(
                name=self.name,
                seconds=self.seconds,
                timed_out=self._timed_out,
                abandoned=self._abandoned,
                refused=self._refused,
                max_abandoned=self.max_abandoned,
            )

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return self._call(fn, args, kwargs, self.seconds, None)

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        return await self._acall(fn, args, kwargs, self.seconds, None)

    # ------------------------------------------------------------------ shells
    def _call(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        seconds: float,
        label: str | None,
    ) -> R:
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"{describe(fn)} is a coroutine function: await it through acall(), "
                "or decorate the async def (the decorator picks acall itself)"
            )
        if self._abandoned >= self.max_abandoned:
            self._refuse(fn, label, seconds)
        job = _Job(fn, args, kwargs, self)
        _dispatch(job)
        try:
            in_time = job.done.acquire(timeout=min(seconds, threading.TIMEOUT_MAX))
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): the thread runs on unwatched.
            self._abandon(job)
            raise
        if not in_time and self._abandon(job):
            name = label or self.name or describe(fn)
            _emit_timeout(name, seconds, "thread", abandoned=self._abandoned)
            raise ToolTimeoutError(
                name,
                seconds,
                f"{name!r} did not finish within {seconds:g} s; its thread cannot be stopped "
                "and keeps running in the background (use IsolatedToolExecutor to kill hung "
                "work)",
            )
        error = job.error
        if error is not None:
            job.error = None
            raise error
        result: R = job.result
        return result

    def _abandon(self, job: _Job) -> bool:
        """Stop waiting for ``job``; False if it finished after all (its result stands)."""
        with _lock:
            if job.finished:
                return False
            job.abandoned = True
            self._abandoned += 1
            self._timed_out += 1
            return True

    def _refuse(self, fn: Callable[..., Any], label: str | None, seconds: float) -> None:
        name = label or self.name or describe(fn)
        with _lock:
            self._refused += 1
            abandoned = self._abandoned
        _emit_timeout(name, seconds, "thread", abandoned=abandoned, refused=True)
        raise ToolTimeoutError(
            name,
            seconds,
            f"{name!r} was not started: {abandoned} earlier calls timed out and are still "
            f"running in background threads (max_abandoned={self.max_abandoned}). The tool "
            "looks hung: run it in a subprocess (IsolatedToolExecutor) so it can be killed, "
            "or raise max_abandoned",
        )

    async def _acall(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        seconds: float,
        label: str | None,
    ) -> R:
        awaitable = fn(*args, **kwargs)
        if not inspect.isawaitable(awaitable):
            raise ConfigurationError(
                f"{describe(fn)} returned {type(awaitable).__name__}, not an awaitable: "
                "use call() for sync functions"
            )
        cm = asyncio.timeout(seconds)
        try:
            async with cm:
                return await awaitable
        except TimeoutError as exc:
            if not cm.expired():
                raise  # the function's own TimeoutError passes through unchanged
            name = label or self.name or describe(fn)
            with _lock:
                self._timed_out += 1
            _emit_timeout(name, seconds, "async")
            raise ToolTimeoutError(name, seconds) from exc


def _emit_timeout(name: str, seconds: float, mode: str, **attributes: Any) -> None:
    get_pipeline().emit(
        EventType.TIMEOUT,
        name=name,
        severity=Severity.MEDIUM,
        category=Category.TIMEOUT,
        attributes={"timeout_s": seconds, "mode": mode, **attributes},
    )


# ---------------------------------------------------------------------- executor
class _SyncTool(Protocol[R_co]):
    """A tool object in the style users know: ``tool.execute(**kwargs)``."""

    def execute(self, *args: Any, **kwargs: Any) -> R_co: ...


class _AsyncTool(Protocol[R_co]):
    def execute_async(self, *args: Any, **kwargs: Any) -> Awaitable[R_co]: ...


def _tool_callable(tool: Any, method: str) -> tuple[Callable[..., Any], str | None]:
    """The callable to run for ``tool`` and its display name (a tool object's ``name``)."""
    name = getattr(tool, "name", None)
    label = name if isinstance(name, str) and name else None
    if callable(tool):
        return tool, label
    bound = getattr(tool, method, None)
    if callable(bound):
        return bound, label or type(tool).__qualname__
    raise ConfigurationError(
        f"{tool!r} is not callable and has no {method}() method: pass a function, "
        f"or a tool object with {method}()"
    )


class TimeoutToolExecutor:
    """Runs tools with a per-call timeout: ``execute_tool`` (sync) and ``execute_tool_async``.

    ``tool`` is a function, or a tool object with ``execute()`` / ``execute_async()``
    (and optionally a ``name``). The tool's own exceptions pass through unchanged; a
    call that runs out of time raises :class:`ToolTimeoutError`.

    ``max_workers`` caps how many calls run at once (``None``: no cap). A call that
    finds every slot taken waits for one, and that wait counts against its timeout: if
    the timeout passes first, the call is never started. A sync call cut at its deadline
    frees its slot at once, while its thread runs on; ``max_abandoned`` bounds those.
    """

    def __init__(
        self,
        default_timeout: float | timedelta = 30.0,
        *,
        max_workers: int | None = None,
        max_abandoned: int = _DEFAULT_MAX_ABANDONED,
        name: str | None = None,
    ) -> None:
        self.default_timeout = as_seconds(default_timeout, "default_timeout", allow_zero=False)
        self.max_workers = None if max_workers is None else check_count(max_workers, "max_workers")
        self._timeout = Timeout(self.default_timeout, name=name, max_abandoned=max_abandoned)
        self._slots = None if max_workers is None else Bulkhead(max_workers, name=name)

    def __repr__(self) -> str:
        return (
            f"TimeoutToolExecutor(default_timeout={self.default_timeout:g}, "
            f"max_workers={self.max_workers})"
        )

    def stats(self) -> TimeoutStats:
        return self._timeout.stats()

    def _seconds(self, timeout: float | timedelta | None) -> float:
        if timeout is None:
            return self.default_timeout
        return as_seconds(timeout, "timeout", allow_zero=False)

    def _not_started(self, label: str, seconds: float) -> ToolTimeoutError:
        _emit_timeout(label, seconds, "queued", started=False)
        return ToolTimeoutError(
            label,
            seconds,
            f"{label!r} was not started within {seconds:g} s: all {self.max_workers} "
            "workers stayed busy (raise max_workers or the timeout)",
        )

    @overload
    def execute_tool(
        self,
        tool: Callable[..., R],
        /,
        *args: Any,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> R: ...
    @overload
    def execute_tool(
        self,
        tool: _SyncTool[R],
        /,
        *args: Any,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> R: ...
    def execute_tool(
        self,
        tool: Any,
        /,
        *args: Any,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``tool(*args, **kwargs)`` on a worker thread; give up after ``timeout`` s."""
        seconds = self._seconds(timeout)
        fn, label = _tool_callable(tool, "execute")
        slots = self._slots
        if slots is None:
            return self._timeout._call(fn, args, kwargs, seconds, label)
        deadline = time.monotonic() + seconds
        if not slots._acquire(seconds):
            raise self._not_started(label or describe(fn), seconds)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._not_started(label or describe(fn), seconds)
            return self._timeout._call(fn, args, kwargs, remaining, label)
        finally:
            slots._release()

    @overload
    async def execute_tool_async(
        self,
        tool: Callable[..., Awaitable[R]],
        /,
        *args: Any,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> R: ...
    @overload
    async def execute_tool_async(
        self,
        tool: _AsyncTool[R],
        /,
        *args: Any,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> R: ...
    async def execute_tool_async(
        self,
        tool: Any,
        /,
        *args: Any,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Any:
        """Await ``tool(*args, **kwargs)``; cancel it after ``timeout`` s."""
        seconds = self._seconds(timeout)
        fn, label = _tool_callable(tool, "execute_async")
        slots = self._slots
        if slots is None:
            return await self._timeout._acall(fn, args, kwargs, seconds, label)
        deadline = time.monotonic() + seconds
        if not await slots._aacquire(seconds):
            raise self._not_started(label or describe(fn), seconds)
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._not_started(label or describe(fn), seconds)
            return await self._timeout._acall(fn, args, kwargs, remaining, label)
        finally:
            slots._release()
