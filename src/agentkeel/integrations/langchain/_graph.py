"""Our policies around LangGraph nodes and LangChain tools, and a loop stop for agents.

* :func:`guard_node` wraps a node function (sync or async) in a
  :class:`~agentkeel.resilience.Guard`: retries, breaker, timeout, fallback.
* :func:`guarded_tool` wraps a ``BaseTool`` the same way, keeping its name, schema and
  description, so the model sees the same tool; ``loop_detector=`` also checks each
  call against a :class:`~agentkeel.recovery.LoopDetector` first.
* :func:`watch_tool_loops` does that for every tool of an agent: the same call with
  the same result a third time is refused before it runs, with
  :class:`~agentkeel.recovery.LoopDetectedError`, and the run ends.

Inside each wrapper the agentkeel scope follows LangChain's run (see
:class:`langchain_scope`), so retries, failures and loop events belong to the run and
the node that the callback handler records.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, overload

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import PrivateAttr

from agentkeel._errors import ConfigurationError
from agentkeel.integrations.langchain._scope import langchain_scope
from agentkeel.recovery import LoopDetector
from agentkeel.resilience import CircuitBreaker, Fallback, Guard, Retry, Timeout

__all__ = ["guard_node", "guarded_tool", "watch_tool_loops"]

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULT_AGENT = "langchain-agent"


def _policy(  # noqa: PLR0917 - private; the public helpers' options, in order
    name: str,
    guard: Guard | None,
    retry: Retry | None,
    breaker: CircuitBreaker | str | None,
    timeout: Timeout | float | timedelta | None,
    fallback: Fallback | Sequence[Any] | None,
    track: bool,
) -> Guard | None:
    if guard is not None:
        if not isinstance(guard, Guard):
            raise ConfigurationError(f"guard must be an agentkeel.resilience.Guard, got {guard!r}")
        if any(p is not None for p in (retry, breaker, timeout, fallback)):
            raise ConfigurationError(
                "give either guard= or the policies (retry=, breaker=, timeout=, fallback=), "
                "not both"
            )
        return guard
    if all(p is None for p in (retry, breaker, timeout, fallback)):
        return None
    if not isinstance(track, bool):
        raise ConfigurationError(f"track must be True or False, got {track!r}")
    # event=None: the callback handler already records the tool's or node's end.
    return Guard(
        name=name,
        retry=retry,
        breaker=breaker,
        timeout=timeout,
        fallback=fallback,
        track=track,
        event=None,
    )


@overload
def guard_node(
    fn: F,
    /,
    *,
    name: str | None = ...,
    guard: Guard | None = ...,
    retry: Retry | None = ...,
    breaker: CircuitBreaker | str | None = ...,
    timeout: Timeout | float | timedelta | None = ...,
    fallback: Fallback | Sequence[Any] | None = ...,
    track: bool = ...,
) -> F: ...
@overload
def guard_node(
    fn: None = ...,
    /,
    *,
    name: str | None = ...,
    guard: Guard | None = ...,
    retry: Retry | None = ...,
    breaker: CircuitBreaker | str | None = ...,
    timeout: Timeout | float | timedelta | None = ...,
    fallback: Fallback | Sequence[Any] | None = ...,
    track: bool = ...,
) -> Callable[[F], F]: ...
def guard_node(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    guard: Guard | None = None,
    retry: Retry | None = None,
    breaker: CircuitBreaker | str | None = None,
    timeout: Timeout | float | timedelta | None = None,
    fallback: Fallback | Sequence[Any] | None = None,
    track: bool = True,
) -> F | Callable[[F], F]:
    """Put policies around a LangGraph node function (sync or async).

    ``guard_node(fn, retry=Retry(on=ConnectionError))`` or as a decorator
    ``@guard_node(timeout=5)``. The signature is kept, so LangGraph still passes the
    ``config``/``runtime`` the function asks for. Failed attempts are recorded as
    failures of the node (recovered when a later attempt succeeds), retries as
    ``retry.attempt`` events of the run.
    """
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigurationError(f"name must be a non-empty string or None, got {name!r}")

    def decorate(node: F) -> F:
        if not callable(node):
            raise ConfigurationError(f"guard_node needs a node function, got {node!r}")
        node_name = name or getattr(node, "__name__", None) or type(node).__name__
        policy = _policy(node_name, guard, retry, breaker, timeout, fallback, track)
        if inspect.iscoroutinefunction(node):

            @functools.wraps(node)
            async def async_node(*args: Any, **kwargs: Any) -> Any:
                with langchain_scope():
                    if policy is None:
                        return await node(*args, **kwargs)
                    return await policy.acall(node, *args, **kwargs)

            return typing.cast(F, async_node)

        @functools.wraps(node)
        def sync_node(*args: Any, **kwargs: Any) -> Any:
            with langchain_scope():
                if policy is None:
                    return node(*args, **kwargs)
                return policy.call(node, *args, **kwargs)

        return typing.cast(F, sync_node)

    return decorate if fn is None else decorate(fn)


def _config_param(fn: Callable[..., Any]) -> str | None:
    """The name of ``fn``'s RunnableConfig parameter, as LangChain finds it."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: LangChain finds none either
        return None
    for param, hint in hints.items():
        if hint is RunnableConfig:
            return param
    return None


class _GuardedTool(BaseTool):
    """A tool that runs another tool's body inside our policies and loop check."""

    _inner: BaseTool = PrivateAttr()
    _policy: Guard | None = PrivateAttr(default=None)
    _detector: LoopDetector | None = PrivateAttr(default=None)
    _agent_id: str | None = PrivateAttr(default=None)
    _sync_conventions: tuple[bool, str | None] = PrivateAttr(default=(False, None))
    _async_conventions: tuple[bool, str | None] = PrivateAttr(default=(False, None))

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # The inner tool parses and validates its input exactly as it would alone.
        return self._inner._to_args_and_kwargs(tool_input, tool_call_id)

    def _agent(self, where: langchain_scope) -> str:
        if self._agent_id is not None:
            return self._agent_id
        scope = where.scope
        # One loop window per agentkeel run: a new invocation starts with a clean slate.
        return scope.run_id if scope is not None and scope.run_id else _DEFAULT_AGENT

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        inner = self._inner
        call_kwargs = _inner_kwargs(self._sync_conventions, kwargs, run_manager, config)

        def body() -> Any:
            return inner._run(*args, **call_kwargs)

        body.__qualname__ = body.__name__ = self.name
        policy, detector = self._policy, self._detector
        with langchain_scope() as where:
            if detector is None:
                return body() if policy is None else policy.call(body)
            with detector.guard(self._agent(where), self.name, kwargs or list(args)) as step:
                step.result = result = body() if policy is None else policy.call(body)
            return result

    async def _arun(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        inner = self._inner
        call_kwargs = _inner_kwargs(self._async_conventions, kwargs, run_manager, config)

        async def body() -> Any:
            return await inner._arun(*args, **call_kwargs)

        body.__qualname__ = body.__name__ = self.name
        policy, detector = self._policy, self._detector
        with langchain_scope() as where:
            if detector is None:
                return await (body() if policy is None else policy.acall(body))
            async with detector.guard(self._agent(where), self.name, kwargs or list(args)) as step:
                step.result = result = await (body() if policy is None else policy.acall(body))
            return result


def _as_tool(tool: BaseTool | Callable[..., Any]) -> BaseTool:
    if isinstance(tool, BaseTool):
        return tool
    if callable(tool):
        try:
            if inspect.iscoroutinefunction(tool):
                return StructuredTool.from_function(coroutine=tool)
            return StructuredTool.from_function(tool)
        except ValueError as exc:  # e.g. no docstring to describe it to the model
            raise ConfigurationError(f"cannot make a tool of {tool!r}: {exc}") from exc
    raise ConfigurationError(
        f"expected a LangChain BaseTool or a function, got {type(tool).__name__}: {tool!r}"
    )


def _conventions(method: Callable[..., Any]) -> tuple[bool, str | None]:
    try:
        takes_manager = "run_manager" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes_manager = False
    return takes_manager, _config_param(method)


def _inner_kwargs(
    conventions: tuple[bool, str | None],
    kwargs: dict[str, Any],
    run_manager: Any,
    config: RunnableConfig,
) -> dict[str, Any]:
    """The wrapped tool's keyword arguments, with its run manager and config if it takes them."""
    takes_manager, config_param = conventions
    call_kwargs = dict(kwargs)
    if takes_manager:
        call_kwargs["run_manager"] = run_manager
    if config_param is not None:
        call_kwargs[config_param] = config
    return call_kwargs


def guarded_tool(
    tool: BaseTool | Callable[..., Any],
    *,
    guard: Guard | None = None,
    retry: Retry | None = None,
    breaker: CircuitBreaker | str | None = None,
    timeout: Timeout | float | timedelta | None = None,
    fallback: Fallback | Sequence[Any] | None = None,
    track: bool = True,
    loop_detector: LoopDetector | None = None,
    agent_id: str | None = None,
) -> BaseTool:
    """The same tool (name, description, schema) with policies around every call.

    Give a ready :class:`Guard` or the policies themselves. ``loop_detector`` checks
    each call (name and arguments) before it runs and records its result after: the
    call that completes a loop raises :class:`~agentkeel.recovery.LoopDetectedError`.
    ``agent_id`` names the loop window; by default each agentkeel run (each agent
    invocation) gets its own.
    """
    inner = _as_tool(tool)
    if loop_detector is not None and not isinstance(loop_detector, LoopDetector):
        raise ConfigurationError(
            f"loop_detector must be an agentkeel.recovery.LoopDetector, got {loop_detector!r}"
        )
    if agent_id is not None and (not isinstance(agent_id, str) or not agent_id):
        raise ConfigurationError(f"agent_id must be a non-empty string or None, got {agent_id!r}")
    policy = _policy(inner.name, guard, retry, breaker, timeout, fallback, track)
    wrapped = _GuardedTool(
        name=inner.name,
        description=inner.description,
        args_schema=inner.args_schema,
        return_direct=inner.return_direct,
        response_format=inner.response_format,
        handle_tool_error=inner.handle_tool_error,
        handle_validation_error=inner.handle_validation_error,
        tags=inner.tags,
        metadata=inner.metadata,
        extras=inner.extras,
    )
    wrapped._inner = inner
    wrapped._policy = policy
    wrapped._detector = loop_detector
    wrapped._agent_id = agent_id
    wrapped._sync_conventions = _conventions(inner._run)
    wrapped._async_conventions = _conventions(inner._arun)
    return wrapped


def watch_tool_loops(
    tools: Iterable[BaseTool | Callable[..., Any]],
    detector: LoopDetector | None = None,
    *,
    agent_id: str | None = None,
) -> list[BaseTool]:
    """Every tool of an agent behind one loop detector (a default one if not given).

    ``create_react_agent(model, watch_tool_loops(tools))``: a model that asks for the
    same call again and again is stopped the third time (the detector's
    ``max_repeats``), before the call runs, with ``LoopDetectedError``; a
    ``loop.detected`` event records it. Needs LangGraph's default tool error handling
    (or ``handle_tool_errors`` that does not catch agentkeel's ``RecoveryError``), or
    the stop becomes a message to the model.
    """
    if isinstance(tools, BaseTool) or callable(tools):
        raise ConfigurationError("watch_tool_loops takes a list of tools, not one tool")
    watcher = detector if detector is not None else LoopDetector()
    return [guarded_tool(tool, loop_detector=watcher, agent_id=agent_id) for tool in tools]
