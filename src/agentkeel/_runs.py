"""Runs and steps: the units of work that events, failures and metrics belong to.

``run`` and ``step`` are context managers (sync and async) and decorators. A run
gets a fresh run ID (nested runs remember their parent's); a step gets a fresh
span ID whose parent is the enclosing step. Each emits a start and an end event
with its duration; an exception is recorded and re-raised unchanged.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import Token
from dataclasses import replace
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from agentkeel._context import Scope, _scope, new_id
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import EventType, Severity

P = ParamSpec("P")
R = TypeVar("R")


class _Span:
    """Shared machinery of run and step: enter a scope, emit start/end, time it."""

    _start_type: EventType
    _end_type: EventType

    def __init__(self, name: str, attributes: Mapping[str, Any] | None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"a name must be a non-empty string, got {name!r}")
        self.name = name
        self.attributes: dict[str, Any] = dict(attributes or {})
        self._token: Token[Scope] | None = None
        self._started = 0
        self.scope: Scope | None = None

    def _child_scope(self, parent: Scope) -> Scope:
        raise NotImplementedError

    def _start_attributes(self) -> dict[str, Any]:
        return self.attributes

    def __enter__(self) -> Scope:
        parent = _scope.get()
        self.scope = self._child_scope(parent)
        self._token = _scope.set(self.scope)
        self._started = time.perf_counter_ns()
        get_pipeline().emit(self._start_type, name=self.name, attributes=self._start_attributes())
        return self.scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = (time.perf_counter_ns() - self._started) / 1e6
        attrs: dict[str, Any] = {"duration_ms": duration_ms}
        pipeline = get_pipeline()
        if exc is None:
            attrs["status"] = "succeeded"
            pipeline.emit(self._end_type, name=self.name, attributes=attrs)
        else:
            attrs["status"] = "failed"
            attrs["error_type"] = type(exc).__name__
            attrs["error_message"] = str(exc)
            self._on_error(exc, attrs)
            pipeline.emit(self._end_type, name=self.name, severity=Severity.HIGH, attributes=attrs)
        if self._token is not None:
            _scope.reset(self._token)
            self._token = None

    def _on_error(self, exc: BaseException, attrs: dict[str, Any]) -> None:
        return None

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _fresh(self) -> _Span:
        raise NotImplementedError

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Use as a decorator: every call of ``fn`` is its own run or step."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self._fresh():
                    return await fn(*args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


class run(_Span):  # noqa: N801 - reads as a verb, like contextlib's helpers
    """A run of an agent: ``with run("plan-trip", user_id="u1") as scope: ...``.

    ``scope.run_id`` is the run's ID. Nested runs record ``parent_run_id``. Give
    ``run_id`` to resume or name a run yourself; otherwise a fresh one is made.
    """

    _start_type = EventType.AGENT_START
    _end_type = EventType.AGENT_END

    def __init__(
        self,
        name: str,
        *,
        run_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        correlation_id: str | None = None,
        tags: Iterable[str] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, attributes)
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise ConfigurationError(f"run_id must be a non-empty string, got {run_id!r}")
        if isinstance(tags, str):
            raise ConfigurationError("tags must be a list of strings, not one string")
        self._run_id = run_id
        self.user_id = user_id
        self.session_id = session_id
        self.correlation_id = correlation_id
        self.tags = tuple(str(t) for t in tags)

    @property
    def run_id(self) -> str | None:
        return self.scope.run_id if self.scope is not None else self._run_id

    def _fresh(self) -> run:
        return run(
            self.name,
            user_id=self.user_id,
            session_id=self.session_id,
            correlation_id=self.correlation_id,
            tags=self.tags,
            attributes=self.attributes,
        )

    def _child_scope(self, parent: Scope) -> Scope:
        run_id = self._run_id or new_id("run-")
        return Scope(
            run_id=run_id,
            run_name=self.name,
            user_id=self.user_id or parent.user_id,
            session_id=self.session_id or parent.session_id,
            correlation_id=self.correlation_id or parent.correlation_id or run_id,
            span_id=new_id(),
            parent_span_id=parent.span_id,
            parent_run_id=parent.run_id,
            tags=self.tags,
        )

    def _start_attributes(self) -> dict[str, Any]:
        scope = cast(Scope, self.scope)
        attrs = dict(self.attributes)
        attrs.update(
            user_id=scope.user_id,
            session_id=scope.session_id,
            parent_run_id=scope.parent_run_id,
            tags=list(scope.tags),
        )
        return attrs

    def _on_error(self, exc: BaseException, attrs: dict[str, Any]) -> None:
        get_pipeline().emit(
            EventType.AGENT_ERROR,
            name=self.name,
            severity=Severity.HIGH,
            attributes={"error_type": attrs["error_type"], "error_message": attrs["error_message"]},
        )


class step(_Span):  # noqa: N801
    """A step inside a run (a graph node, a phase): a child span with its own timing."""

    _start_type = EventType.STEP_START
    _end_type = EventType.STEP_END

    def __init__(self, name: str, *, attributes: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, attributes)

    def _fresh(self) -> step:
        return step(self.name, attributes=self.attributes)

    def _child_scope(self, parent: Scope) -> Scope:
        return replace(parent, span_id=new_id(), parent_span_id=parent.span_id)
