"""Graph nodes with failure tracking: ``@track_node`` and ``executor_with_tracking``.

A tracked node runs inside :class:`agentkeel.step` (so it gets its own span and
timing), makes its name the current graph node (so tool failures inside it are
attributed to it), and records any exception it raises. Without ``recover`` the
exception is re-raised unchanged; with ``recover`` the failure is recorded as
recovered and the recovery's result is returned instead.

A failure already recorded further down, by a :class:`TrackedToolRegistry` say, is
not recorded twice: when ``recover`` succeeds, that record is marked recovered.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, overload

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel._runs import step
from agentkeel.tracking._tracker import FailureTracker, get_failure_tracker, recorded_failure

__all__ = ["current_node", "executor_with_tracking", "track_node"]

P = ParamSpec("P")
R = TypeVar("R")

Recover = Callable[..., Any]
"""``recover(exc, *args, **kwargs)``: called with the node's exception and arguments."""

_node: ContextVar[str | None] = ContextVar("agentkeel_graph_node", default=None)


def current_node() -> str | None:
    """The name of the tracked node running in this context, if any."""
    return _node.get()


def _describe(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


class _NodeFailure:
    """Records one node failure; tracking problems are reported, never raised over it."""

    __slots__ = ("_tracker", "name")

    def __init__(self, name: str, tracker: FailureTracker | None) -> None:
        self.name = name
        self._tracker = tracker

    def record(
        self,
        exc: Exception,
        started_ns: int,
        *,
        recovery_action: str | None = None,
        recovery_error: BaseException | None = None,
    ) -> None:
        latency_ms = (time.perf_counter_ns() - started_ns) / 1e6
        try:
            earlier = recorded_failure(exc)
            if earlier is not None:
                if recovery_action is not None:
                    earlier[0].mark_recovered(earlier[1], recovery_action)
                return
            tracker = self._tracker if self._tracker is not None else get_failure_tracker()
            attributes = None
            if recovery_error is not None:
                attributes = {
                    "recovery_error": f"{type(recovery_error).__name__}: {recovery_error}"
                }
            tracker.record_failure(
                exc,
                graph_node=self.name,
                latency_ms=latency_ms,
                recovered=recovery_action is not None,
                recovery_action=recovery_action,
                attributes=attributes,
            )
        except Exception as internal:  # noqa: BLE001 - the node's own exception must win
            _internal.report_internal_error("tracking.node", internal, reraise=False)


def _wrap(
    fn: Callable[P, R],
    name: str | None,
    tracker: FailureTracker | None,
    recover: Recover | None,
    recovery_action: str | None,
) -> Callable[P, R]:
    if not callable(fn):
        raise ConfigurationError(f"track_node needs a function, got {fn!r}")
    label = name or getattr(fn, "__name__", None) or "node"
    failure = _NodeFailure(label, tracker)
    action = recovery_action or (f"recovered by {_describe(recover)}" if recover else None)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_node(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = _node.set(label)
            try:
                async with step(label):
                    started = time.perf_counter_ns()
                    try:
                        return await fn(*args, **kwargs)
                    except Exception as exc:
                        if recover is None:
                            failure.record(exc, started)
                            raise
                        try:
                            result = recover(exc, *args, **kwargs)
                            if inspect.isawaitable(result):
                                result = await result
                        except Exception as recovery_error:
                            failure.record(exc, started, recovery_error=recovery_error)
                            raise
                        failure.record(exc, started, recovery_action=action)
                        return result
            finally:
                _node.reset(token)

        return async_node  # type: ignore[return-value]  # same signature, ParamSpec-checked

    @functools.wraps(fn)
    def node(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _node.set(label)
        try:
            with step(label):
                started = time.perf_counter_ns()
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if recover is None:
                        failure.record(exc, started)
                        raise
                    try:
                        result: R = recover(exc, *args, **kwargs)
                    except Exception as recovery_error:
                        failure.record(exc, started, recovery_error=recovery_error)
                        raise
                    failure.record(exc, started, recovery_action=action)
                    return result
        finally:
            _node.reset(token)

    return node


@overload
def track_node(name: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def track_node(
    name: str | None = None,
    *,
    tracker: FailureTracker | None = None,
    recover: Recover | None = None,
    recovery_action: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...
def track_node(
    name: str | Callable[P, R] | None = None,
    *,
    tracker: FailureTracker | None = None,
    recover: Recover | None = None,
    recovery_action: str | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Track a graph node's failures: ``@track_node`` or ``@track_node("planner", ...)``.

    ``name`` defaults to the function's name. Failures go to ``tracker``, else to
    :func:`get_failure_tracker` at the time of the failure. ``recover(exc, *args,
    **kwargs)`` (sync, or async for async nodes) turns a failure into a result; it is
    recorded as recovered with ``recovery_action`` (default: "recovered by <recover's
    name>"). If ``recover`` itself raises, the failure is recorded as not recovered
    and the recovery's exception propagates.
    """
    if callable(name):
        return _wrap(name, None, tracker, recover, recovery_action)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigurationError(f"a node name must be a non-empty string, got {name!r}")
    if recover is not None and not callable(recover):
        raise ConfigurationError(f"recover must be callable, got {recover!r}")

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        return _wrap(fn, name, tracker, recover, recovery_action)

    return decorate


def executor_with_tracking(
    node: Callable[P, R],
    /,
    *,
    name: str | None = None,
    tracker: FailureTracker | None = None,
    recover: Recover | None = None,
    recovery_action: str | None = None,
) -> Callable[P, R]:
    """Wrap an existing executor (or any graph node) function with failure tracking.

    The function form of :func:`track_node`, for code that builds its graph from
    functions it does not own::

        graph.add_node("executor", executor_with_tracking(executor, name="executor"))

    The wrapped node takes the same arguments and returns the same result.
    """
    return track_node(name, tracker=tracker, recover=recover, recovery_action=recovery_action)(node)
