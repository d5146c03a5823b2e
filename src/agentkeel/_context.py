"""Run and correlation context that follows the work.

One immutable :class:`Scope` lives in a :class:`contextvars.ContextVar`. asyncio
copies it into every task on its own; threads get it through
:class:`ContextThreadPoolExecutor` or :func:`propagate`. Reading the scope on the hot
path is a single ``ContextVar.get``.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Scope:
    """Where the current work belongs: its run, its span and its correlation ID."""

    run_id: str | None = None
    run_name: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    correlation_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    parent_run_id: str | None = None
    tags: tuple[str, ...] = ()


EMPTY_SCOPE = Scope()
_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar(
    "agentkeel_scope", default=EMPTY_SCOPE
)
# A process-wide fallback correlation ID, used where the context sets none.
_global_correlation_id: str | None = None
_global_lock = threading.Lock()


def current_scope() -> Scope:
    """The scope of the calling thread or task."""
    return _scope.get()


def set_scope(scope: Scope) -> contextvars.Token[Scope]:
    return _scope.set(scope)


def reset_scope(token: contextvars.Token[Scope]) -> None:
    _scope.reset(token)


def new_id(prefix: str = "", nbytes: int = 8) -> str:
    """A random hexadecimal ID; 8 bytes make collisions negligible for our volumes."""
    return prefix + os.urandom(nbytes).hex()


def get_correlation_id() -> str | None:
    """The correlation ID of the current context, else the global one, else ``None``."""
    cid = _scope.get().correlation_id
    return cid if cid is not None else _global_correlation_id


def set_correlation_id(correlation_id: object) -> contextvars.Token[Scope]:
    """Set the correlation ID for the current context (thread or task) and what it starts.

    Accepts anything with a ``str()`` (a :class:`uuid.UUID`, say). Returns a token
    for :func:`reset_scope` if the caller wants to undo it.
    """
    scope = _scope.get()
    return _scope.set(replace(scope, correlation_id=_as_id(correlation_id)))


def set_global_correlation_id(correlation_id: object | None) -> None:
    """Set a process-wide correlation ID used wherever the context has none."""
    global _global_correlation_id  # noqa: PLW0603 - the documented process-wide default
    with _global_lock:
        _global_correlation_id = None if correlation_id is None else _as_id(correlation_id)


def _as_id(value: object) -> str:
    text = str(value)
    if not text or len(text) > 200:
        from agentkeel._errors import ConfigurationError

        raise ConfigurationError(
            f"a correlation ID must be 1 to 200 characters, got {len(text)}: "
            "pass a UUID or a short string"
        )
    return text


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to a copy of the caller's context, e.g. for ``threading.Thread(target=...)``."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.run(fn, *args, **kwargs)

    return bound


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the submitter's context (run, span, correlation ID)."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, fn, *args, **kwargs)
