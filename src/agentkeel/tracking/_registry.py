"""A tool registry wrapper that records every tool failure.

:class:`TrackedToolRegistry` wraps the registry an agent already has (a dict of
name → function, or any object with ``get(name)`` or ``[name]``) and hands out
wrapped tools. A wrapped tool times each call, emits ``tool.start``/``tool.end``
events, records a failure when the tool raises and re-raises that very exception.
Tracking problems are reported as internal errors; they never change what the tool
returns or raises.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import time
import types
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, cast

from agentkeel import _internal
from agentkeel._errors import ConfigurationError, KeelError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, EventType
from agentkeel.tracking._executor import current_node
from agentkeel.tracking._tracker import FailureTracker, get_failure_tracker, recorded_failure

__all__ = ["TrackedToolRegistry", "UnknownToolError"]

_MISSING: Any = object()
_LISTED_NAMES = 20


class UnknownToolError(KeelError, KeyError):
    """No tool has the requested name. ``known`` lists the names that do exist."""

    def __init__(self, tool_name: str, known: tuple[str, ...]) -> None:
        self.tool_name = tool_name
        self.known = known
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"unknown tool {self.tool_name!r}"
        close = difflib.get_close_matches(self.tool_name, self.known, n=1)
        if close:
            text += f": did you mean {close[0]!r}?"
        if not self.known:
            return text + " (the registry has no tools)"
        listed = ", ".join(sorted(self.known)[:_LISTED_NAMES])
        more = len(self.known) - _LISTED_NAMES
        return f"{text} Known tools: {listed}" + (f" and {more} more" if more > 0 else "")

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; a sentence reads better.
        return self._message()


class TrackedToolRegistry:
    """Wraps a tool registry so that every tool failure is recorded.

    ``tools`` is a mapping of name → callable, or an object with ``get(name)`` (which
    returns ``None`` or raises ``KeyError`` for an unknown name) or ``[name]``; a
    ``tools`` mapping attribute, ``names()`` or ``keys()`` on it lists the names.
    Other attributes of the wrapped registry are reachable through this one.

    Failures go to ``tracker``, else to :func:`get_failure_tracker` when they happen,
    attributed to ``graph_node``, else to the tracked node that is running. Sync and
    async tools are both supported. An unknown name raises :class:`UnknownToolError`
    (a ``KeyError``) and is recorded as a ``tool_not_found`` failure.
    """

    def __init__(
        self,
        tools: object,
        *,
        tracker: FailureTracker | None = None,
        graph_node: str | None = None,
        emit_tool_events: bool = True,
    ) -> None:
        if tracker is not None and not isinstance(tracker, FailureTracker):
            raise ConfigurationError(f"tracker must be a FailureTracker or None, got {tracker!r}")
        self._tools = tools
        self._mapping: Mapping[str, Any] | None = None
        if isinstance(tools, Mapping):
            self._mapping = tools
        else:
            inner = getattr(tools, "tools", None)
            if isinstance(inner, Mapping):
                self._mapping = inner
        self._get = getattr(tools, "get", None) if not isinstance(tools, Mapping) else None
        self._has_getitem = hasattr(type(tools), "__getitem__")
        if self._mapping is None and not callable(self._get) and not self._has_getitem:
            raise ConfigurationError(
                f"cannot look tools up in {type(tools).__name__}: pass a mapping of "
                "name -> callable, or an object with get(name) or [name]"
            )
        self._tracker = tracker
        self._graph_node = graph_node
        self._emit_events = bool(emit_tool_events)
        self._wrapped: dict[str, tuple[object, Callable[..., Any]]] = {}

    # ---------------------------------------------------------------- lookup
    def _lookup(self, name: str) -> Any:
        """The raw tool, or ``_MISSING``. Errors of the wrapped registry other than
        "not found" propagate unchanged."""
        try:
            if self._mapping is not None and self._get is None:
                return self._mapping[name]
            if callable(self._get):
                found = self._get(name)
                return _MISSING if found is None else found
            if self._has_getitem:
                return cast(Any, self._tools)[name]
            return cast(Mapping[str, Any], self._mapping)[name]
        except LookupError:
            return _MISSING

    def names(self) -> list[str]:
        """The names of the wrapped registry's tools (empty if it cannot list them)."""
        if self._mapping is not None:
            return [str(n) for n in self._mapping]
        for method in ("names", "keys", "list_tools"):
            found = getattr(self._tools, method, None)
            if callable(found):
                return [str(n) for n in found()]
            if isinstance(found, list | tuple | set | frozenset):
                return [str(n) for n in found]
        return []

    def __getitem__(self, name: str) -> Callable[..., Any]:
        tool = self._lookup(name)
        if tool is _MISSING:
            raise self._unknown(name)
        return self._tracked(name, tool)

    def get(self, name: str, default: Any = _MISSING) -> Any:
        """The wrapped tool called ``name``.

        Without ``default`` an unknown name raises :class:`UnknownToolError` (and is
        recorded), as most tool registries do; with it, ``default`` is returned.
        """
        tool = self._lookup(name)
        if tool is _MISSING:
            if default is not _MISSING:
                return default
            raise self._unknown(name)
        return self._tracked(name, tool)

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the tool ``name``; for an async tool, returns the awaitable."""
        return self[name](*args, **kwargs)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if self._mapping is not None:
            return name in self._mapping
        return self._lookup(name) is not _MISSING

    def __len__(self) -> int:
        return len(self.names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getattr__(self, attribute: str) -> Any:
        # Only called for attributes this class lacks: reach through to the registry.
        if attribute.startswith("__") or attribute == "_tools":
            raise AttributeError(attribute)
        return getattr(self._tools, attribute)

    def __repr__(self) -> str:
        return f"TrackedToolRegistry({self._tools!r})"

    @property
    def wrapped(self) -> object:
        """The registry this one wraps."""
        return self._tools

    # -------------------------------------------------------------- tracking
    def _tracked(self, name: str, tool: Any) -> Callable[..., Any]:
        if not callable(tool):
            return cast(Callable[..., Any], tool)  # not a function: nothing to time
        cached = self._wrapped.get(name)
        if cached is not None and cached[0] is tool:
            return cached[1]
        wrapped = self._wrap(name, tool)
        self._wrapped[name] = (tool, wrapped)
        return wrapped

    def _wrap(self, name: str, tool: Callable[..., Any]) -> Callable[..., Any]:
        failed, interrupted, now = self._failed, self._stopped, time.perf_counter_ns
        # With events off, a successful call costs two clock reads and nothing else.
        start = self._start if self._emit_events else None
        succeeded = self._ok if self._emit_events else None

        if inspect.iscoroutinefunction(tool):

            @functools.wraps(tool)
            async def async_tool(*args: Any, **kwargs: Any) -> Any:
                started = start(name) if start is not None else now()
                try:
                    result = await tool(*args, **kwargs)
                except Exception as exc:
                    failed(name, exc, started)
                    raise
                except BaseException:
                    interrupted(name, started)
                    raise
                if succeeded is not None:
                    succeeded(name, started)
                return result

            return async_tool

        @functools.wraps(tool)
        def sync_tool(*args: Any, **kwargs: Any) -> Any:
            started = start(name) if start is not None else now()
            try:
                result = tool(*args, **kwargs)
            except Exception as exc:
                failed(name, exc, started)
                raise
            except BaseException:
                interrupted(name, started)
                raise
            if type(result) is types.CoroutineType:
                # A plain callable that returns a coroutine (a partial of an async
                # function, say): the work happens when it is awaited, so time that.
                return self._await(name, result, started)
            if succeeded is not None:
                succeeded(name, started)
            return result

        return sync_tool

    async def _await(self, name: str, awaitable: Awaitable[Any], started: int) -> Any:
        try:
            result = await awaitable
        except Exception as exc:
            self._failed(name, exc, started)
            raise
        except BaseException:
            self._stopped(name, started)
            raise
        self._ok(name, started)
        return result

    def _start(self, name: str) -> int:
        if self._emit_events:
            try:
                get_pipeline().emit(EventType.TOOL_CALL_START, name=name)
            except Exception as exc:  # noqa: BLE001 - telemetry must not break the tool
                _internal.report_internal_error("tracking.tool", exc)
        return time.perf_counter_ns()

    def _ok(self, name: str, started: int) -> None:
        if self._emit_events:
            duration_ms = (time.perf_counter_ns() - started) / 1e6
            try:
                get_pipeline().emit(
                    EventType.TOOL_CALL_END,
                    name=name,
                    attributes={"duration_ms": duration_ms, "status": "succeeded"},
                )
            except Exception as exc:  # noqa: BLE001 - telemetry must not break the tool
                _internal.report_internal_error("tracking.tool", exc)

    def _stopped(self, name: str, started: int) -> None:
        # Cancellation, KeyboardInterrupt: not a tool failure, but the call did end.
        self._end(name, started, {"status": "cancelled"})

    def _failed(self, name: str, exc: Exception, started: int) -> None:
        latency_ms = (time.perf_counter_ns() - started) / 1e6
        self._end(name, started, {"status": "failed", "error_type": type(exc).__name__})
        self._record(name, exc, latency_ms=latency_ms)

    def _end(self, name: str, started: int, attributes: dict[str, Any]) -> None:
        if not self._emit_events:
            return
        attributes["duration_ms"] = (time.perf_counter_ns() - started) / 1e6
        try:
            get_pipeline().emit(EventType.TOOL_CALL_END, name=name, attributes=attributes)
        except Exception as internal:  # noqa: BLE001 - the tool's own outcome must win
            _internal.report_internal_error("tracking.tool", internal, reraise=False)

    def _record(
        self,
        name: str,
        exc: BaseException,
        *,
        latency_ms: float | None = None,
        category: Category | None = None,
    ) -> None:
        try:
            if recorded_failure(exc) is not None:
                return  # a nested wrapper already recorded this very failure
            tracker = self._tracker if self._tracker is not None else get_failure_tracker()
            if not tracker.settings.track_tools:
                return
            tracker.record_failure(
                exc,
                category=category,
                tool_name=name,
                graph_node=self._graph_node or current_node(),
                latency_ms=latency_ms,
            )
        except Exception as internal:  # noqa: BLE001 - the tool's own exception must win
            _internal.report_internal_error("tracking.tool", internal, reraise=False)

    def _unknown(self, name: str) -> UnknownToolError:
        error = UnknownToolError(str(name), tuple(self.names()))
        self._record(str(name), error, category=Category.TOOL_NOT_FOUND)
        return error
