"""From inside a LangChain tool or LangGraph node: which agentkeel run and span is this?

LangChain keeps the running tool's or node's config in a ContextVar; its callback
manager names the LangChain run, and our handler knows which run and span of ours
that is. :class:`langchain_scope` makes that the current agentkeel scope (and the
LangGraph node the current graph node), so policies, failures and ``agentkeel.step``
used inside a node land in the right run, nested under the right span.
"""

from __future__ import annotations

from contextvars import Token
from dataclasses import replace
from types import TracebackType

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.runnables.config import var_child_runnable_config

from agentkeel._context import Scope, current_scope, reset_scope, set_scope
from agentkeel.integrations.langchain._handler import KeelCallbackHandler
from agentkeel.tracking._executor import _node as _current_node_var

__all__ = ["langchain_scope"]


def _found() -> tuple[Scope | None, str | None]:
    """The scope of the LangChain run executing here and its LangGraph node, if known."""
    config = var_child_runnable_config.get()
    if not config:
        return None, None
    metadata = config.get("metadata") or {}
    node = metadata.get("langgraph_node")
    callbacks = config.get("callbacks")
    if not isinstance(callbacks, BaseCallbackManager) or callbacks.parent_run_id is None:
        return None, node
    run_id = callbacks.parent_run_id
    for handler in callbacks.handlers:
        if isinstance(handler, KeelCallbackHandler):
            span = handler.span_for(run_id)
            if span is not None:
                keel_run, span_id, parent_span_id, span_node = span
                scope = current_scope()
                return (
                    replace(
                        scope,
                        run_id=keel_run if keel_run is not None else scope.run_id,
                        span_id=span_id,
                        parent_span_id=parent_span_id,
                    ),
                    span_node or node,
                )
    return None, node


class langchain_scope:  # noqa: N801 - used like contextlib's helpers
    """``with langchain_scope():`` inside a tool or node: agentkeel's scope follows LangChain's.

    Outside a LangChain run, or when no :class:`KeelCallbackHandler` records it, the
    scope is left as it is. Works in sync and async code (it is a plain ``with``).
    """

    __slots__ = ("_node_token", "_scope_token", "node", "scope")

    def __init__(self) -> None:
        self._scope_token: Token[Scope] | None = None
        self._node_token: Token[str | None] | None = None
        self.scope: Scope | None = None
        self.node: str | None = None

    def __enter__(self) -> langchain_scope:
        self.scope, self.node = _found()
        if self.scope is not None:
            self._scope_token = set_scope(self.scope)
        if self.node is not None:
            self._node_token = _current_node_var.set(self.node)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._node_token is not None:
            _current_node_var.reset(self._node_token)
            self._node_token = None
        if self._scope_token is not None:
            reset_scope(self._scope_token)
            self._scope_token = None
