"""LangChain / LangGraph callbacks turned into agentkeel events, without touching the agent.

:class:`KeelCallbackHandler` is both a LangChain callback handler and a
:class:`~agentkeel.integrations.RobustInstrumentor`: every callback body runs through
the instrumentor's guard, as routine (starts) or essential (ends and errors), so a bug
of ours is counted and degrades the handler, never the run. Most bodies run on the
pipeline's writer, queued by the callback with a stamp of when it happened; errors
and retries run at once (see ``_deferral``).

How LangChain runs become ours:

* span IDs are LangChain's run IDs and parent span IDs its parent run IDs, so the
  timeline nests the way the framework ran;
* the root chain opens a run (``agent.start`` … ``agent.end``, run ID ``run-<LangChain
  run ID>``), or, inside ``agentkeel.run``, becomes a step of that run;
* a LangGraph node is a step named after the node; chat models and LLMs are
  ``llm.*`` events with the model and token usage; tools and retrievers ``tool.*``;
* LangGraph's plumbing inside a node (the node's own runnable sequence, prompt and
  routing functions) is folded into the node: its children hang on the node's span.
  ``chains="all"`` records every chain instead;
* errors become failures through the FailureTracker, with the node and the tool.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._context import current_scope, reset_scope, set_scope
from agentkeel._encoding import truncate
from agentkeel.events import EventType, Severity
from agentkeel.integrations._robust import (
    InstrumentorState,
    RobustConfig,
    RobustInstrumentor,
)
from agentkeel.integrations.langchain._attributes import (
    ChainDetail,
    check_options,
    model_name,
    name_of,
    usage,
)
from agentkeel.integrations.langchain._content import content
from agentkeel.integrations.langchain._deferral import DeferredCallbacks
from agentkeel.integrations.langchain._install import PROCESS_WIDE
from agentkeel.integrations.langchain._span import Span
from agentkeel.tracking import get_failure_tracker
from agentkeel.tracking._tracker import recorded_failure

if TYPE_CHECKING:
    from langchain_core.agents import AgentAction, AgentFinish
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult
    from tenacity import RetryCallState

try:  # an interrupt (human in the loop) is LangGraph's control flow, not a failure
    from langgraph.errors import GraphBubbleUp

    _CONTROL_FLOW: tuple[type[BaseException], ...] = (GraphBubbleUp,)
except ImportError:  # pragma: no cover - langchain-core without langgraph
    _CONTROL_FLOW = ()

__all__ = ["KeelCallbackHandler"]

R = TypeVar("R")
_HEALTHY = InstrumentorState.HEALTHY

# Event types as plain strings: an enum member's attribute lookup costs on every event.
_AGENT_START = EventType.AGENT_START.value
_AGENT_END = EventType.AGENT_END.value
_AGENT_ERROR = EventType.AGENT_ERROR.value
_STEP_START = EventType.STEP_START.value
_STEP_END = EventType.STEP_END.value
_LLM_START = EventType.LLM_CALL_START.value
_LLM_END = EventType.LLM_CALL_END.value
_TOOL_START = EventType.TOOL_CALL_START.value
_TOOL_END = EventType.TOOL_CALL_END.value
_DECISION = EventType.DECISION_COMPLETE.value
_RETRY = EventType.RETRY.value
_CUSTOM = EventType.CUSTOM.value
_HIGH = int(Severity.HIGH)
_LOW = int(Severity.LOW)

_MAX_OPEN_SPANS = 50_000  # spans whose end never came (abandoned streams) are forgotten
_ERROR_MESSAGE_LIMIT = 500


class KeelCallbackHandler(BaseCallbackHandler, DeferredCallbacks):
    """Records LangChain / LangGraph runs as agentkeel events; never changes the run.

    Pass it per run (``config={"callbacks": [KeelCallbackHandler()]}``) or install it
    for the whole process with :func:`instrument_langchain`. Options:

    * ``capture_content`` (False): also record inputs, outputs, messages and tool
      arguments, redacted and cut to ``max_content_chars`` per string;
    * ``chains`` (``"nodes"``): record the root chain, LangGraph nodes and chains
      outside LangGraph; ``"all"`` also records LangGraph's plumbing inside nodes;
    * ``config`` / ``clock``: the :class:`RobustConfig` health settings and the clock
      they run on (tests inject a fake one).

    A plain synchronous handler with ``run_inline = True``: its callbacks only append
    to the event pipeline (no I/O, no waiting), so in async runs LangChain calls them
    directly instead of hopping to a thread pool for each one, which is what an
    ``AsyncCallbackHandler`` or a non-inline sync handler would cost.
    """

    framework = "langchain"
    run_inline = True
    raise_error = False
    # LangChain reads one of these before every callback; in the base class they are
    # properties (a Python call each time), here plain answers.
    ignore_llm = False
    ignore_retry = False
    ignore_chain = False
    ignore_agent = False
    ignore_retriever = False
    ignore_chat_model = False
    ignore_custom_event = False

    def __init__(
        self,
        *,
        capture_content: bool = False,
        max_content_chars: int = 2_000,
        chains: ChainDetail = "nodes",
        config: RobustConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.capture_content, self.max_content_chars, self.chains = check_options(
            capture_content, max_content_chars, chains
        )
        # Captured content could change once a callback has returned: handle it at once.
        DeferredCallbacks.__init__(self, config=config, clock=clock, immediate=self.capture_content)
        self._nodes_only = self.chains == "nodes"
        self._capture = self.capture_content
        # Keyed by the run ID's integer: a UUID's own __hash__ is Python code, the int's is not.
        self._spans: dict[int, Span] = {}
        # LangGraph's plumbing inside a node, folded on the agent's thread before its
        # node's span exists: run key -> the key of the run it folds into.
        self._aliases: dict[int, int] = {}

    def __repr__(self) -> str:
        return (
            f"KeelCallbackHandler(state={self.state.value}, "
            f"capture_content={self.capture_content}, chains={self.chains!r}, "
            f"open_spans={len(self._spans)})"
        )

    def _lookup(self, key: int) -> Span | None:
        """The span recorded for a LangChain run, or for the run it was folded into."""
        span = self._spans.get(key)
        if span is None:
            into = self._aliases.get(key)
            if into is not None:
                span = self._spans.get(into)
        return span

    # --------------------------------------------------------------- plumbing
    def _emit(
        self,
        type_: str,
        name: str,
        attributes: dict[str, Any],
        span: Span,
        severity: int = 0,
    ) -> None:
        """The one place events leave the handler (tests make it fail on purpose)."""
        self._send(
            type_, name, severity, attributes, span.run_id, span.span_id, span.parent_span_id
        )

    def _open(  # noqa: PLR0917 - observe() forwards a callback's values positionally
        self,
        run_id: UUID,
        parent: Span | None,
        parent_run_id: UUID | None,
        name: str,
        node: str | None,
        kind: str,
    ) -> Span:
        if parent is not None:
            span = Span(run_id, parent.span_id, parent.run_id, name, node, kind, self._clock_ns())
        else:
            # A parent we never saw (it started while we were degraded, or the handler
            # was given to a nested call only): keep the link, join the current run. A
            # folded parent links to the run it was folded into, as a recorded one would.
            scope = self._current_scope()
            if parent_run_id is None:
                parent_span_id = scope.span_id
            else:
                into = self._aliases.get(parent_run_id.int)
                parent_span_id = str(parent_run_id if into is None else UUID(int=into))
            span = Span(run_id, parent_span_id, scope.run_id, name, node, kind, self._clock_ns())
        self._spans[run_id.int] = span
        return span

    def _child(
        self, run_id: UUID, parent_run_id: UUID | None, metadata: Mapping[str, Any] | None
    ) -> tuple[Span | None, str | None, bool]:
        """The recorded parent, the LangGraph node, and whether to record this run."""
        parent = self._lookup(parent_run_id.int) if parent_run_id is not None else None
        if parent is not None and not parent.sampled:
            self._spans[run_id.int] = parent  # a run the sampler left out: fold it in
            return parent, None, False
        node = metadata.get("langgraph_node") if metadata else None
        if node is None and parent is not None:
            node = parent.node
        return parent, node, True

    def _end(self, run_id: UUID) -> Span | None:
        key = run_id.int
        span = self._spans.pop(key, None)
        if span is None or span.key != key or not span.sampled:
            return None  # never seen, folded into its parent, or not sampled
        return span

    def _end_attributes(self, span: Span, status: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "duration_ms": (self._clock_ns() - span.started) / 1e6,
            "status": status,
        }
        if span.node is not None:
            attrs["node"] = span.node
        return attrs

    def _failed(
        self, run_id: UUID, error: BaseException, tool_name: str | None = None
    ) -> tuple[Span, dict[str, Any]] | None:
        """Close a span with an error; record the failure once. None if not ours."""
        key = run_id.int
        span = self._spans.pop(key, None)
        if span is None or span.key != key:
            self._aliases.pop(key, None)
            return None
        if isinstance(error, _CONTROL_FLOW):
            status = "interrupted"
        elif isinstance(error, Exception):
            status = "failed"
        else:
            status = "cancelled"  # CancelledError, KeyboardInterrupt, GeneratorExit
        attrs = self._end_attributes(span, status)
        attrs["error_type"] = type(error).__name__
        attrs["error_message"] = truncate(str(error), _ERROR_MESSAGE_LIMIT)
        if status == "failed":
            self._record_failure(span, error, tool_name, attrs["duration_ms"])
        return (span, attrs) if span.sampled else None

    def _record_failure(
        self, span: Span, error: BaseException, tool_name: str | None, latency_ms: float
    ) -> None:
        if recorded_failure(error) is not None:
            return  # a guarded tool or an inner span recorded it already: one error, one failure
        # The tracker of the run the span belongs to (or the one the user made current),
        # with the failure event on the span that failed.
        token = set_scope(
            replace(
                current_scope(),
                run_id=span.run_id,
                span_id=span.span_id,
                parent_span_id=span.parent_span_id,
            )
        )
        try:
            get_failure_tracker().record_failure(
                error,
                graph_node=span.node,
                tool_name=tool_name,
                latency_ms=latency_ms,
                attributes={"framework": "langchain", "span_kind": span.kind},
            )
        finally:
            reset_scope(token)

    def _forget_stale(self) -> None:
        for runs in (self._spans, self._aliases):
            if len(runs) > _MAX_OPEN_SPANS:
                for key in list(itertools.islice(runs, _MAX_OPEN_SPANS // 10)):
                    runs.pop(key, None)

    # ----------------------------------------------------------------- chains
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None:
            # Kept even when degraded: without it the whole run would go missing.
            self._later(True, self._root_start, run_id, serialized, inputs, tags, metadata, kwargs)
        elif not (
            self._nodes_only and metadata and self._folded(run_id, parent_run_id, metadata, kwargs)
        ):
            self._later(
                False,
                self._chain_start,
                run_id,
                parent_run_id,
                serialized,
                inputs,
                metadata,
                kwargs,
            )

    def _folded(
        self,
        run_id: UUID,
        parent_run_id: UUID,
        metadata: Mapping[str, Any],
        kwargs: Mapping[str, Any],
    ) -> bool:
        """Fold LangGraph's plumbing inside a node (half of a graph's callbacks) into the node.

        A few dictionary operations on the agent's thread, instead of a queued callback:
        nothing here can fail on LangChain's arguments, and anything unexpected falls
        back to the queued path. The node's own span may not exist yet (its start is
        queued), so the fold is an alias, resolved when the node's children are handled.
        """
        try:
            node = metadata.get("langgraph_node")
            name = kwargs.get("name")
            if node is None or name is None or name == node:
                return False
            aliases = self._aliases
            parent_key = parent_run_id.int
            aliases[run_id.int] = aliases.get(parent_key, parent_key)
            return True
        except Exception:  # noqa: BLE001 - the guarded path will see and count it
            return False

    def _root_start(  # noqa: PLR0917 - observe() forwards a callback's values positionally
        self,
        run_id: UUID,
        serialized: Mapping[str, Any] | None,
        inputs: Any,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        self._forget_stale()
        name = name_of(serialized, kwargs) or "langchain"
        node = metadata.get("langgraph_node") if metadata else None
        scope = self._current_scope()
        started = self._clock_ns()
        if scope.run_id is not None:  # inside agentkeel.run: a step of that run
            span = Span(run_id, scope.span_id, scope.run_id, name, node, "chain", started)
            type_ = _STEP_START
            attrs: dict[str, Any] = {"kind": "chain", "framework": "langchain"}
        else:
            span = Span(run_id, scope.span_id, "run-" + run_id.hex, name, node, "agent", started)
            span.owns_run = True
            type_ = _AGENT_START
            attrs = {"framework": "langchain"}
            if tags:
                attrs["tags"] = list(tags)
            if metadata:
                user = metadata.get("user_id")
                session = metadata.get("session_id") or metadata.get("thread_id")
                if isinstance(user, str):
                    attrs["user_id"] = user
                if session is not None:
                    attrs["session_id"] = str(session)
        self._spans[run_id.int] = span
        if not self.samples_run(cast(str, span.run_id)):
            span.sampled = False
            return
        if self._capture:
            attrs["input"] = content(inputs, self.max_content_chars)
        self._emit(type_, name, attrs, span)

    def _chain_start(  # noqa: PLR0917 - observe() forwards a callback's values positionally
        self,
        run_id: UUID,
        parent_run_id: UUID,
        serialized: Mapping[str, Any] | None,
        inputs: Any,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        parent, node, record = self._child(run_id, parent_run_id, metadata)
        if not record:
            return
        name = name_of(serialized, kwargs) or "chain"
        is_node = node is not None and name == node
        if self._nodes_only and node is not None and not is_node and parent is not None:
            # LangGraph's plumbing inside a node: its children hang on the node's span.
            self._spans[run_id.int] = parent
            return
        attrs: dict[str, Any]
        if is_node:
            span = self._open(run_id, parent, parent_run_id, name, node, "node")
            attrs = {"kind": "node", "node": node}
            step = metadata.get("langgraph_step") if metadata else None
            if step is not None:
                attrs["langgraph.step"] = step
        else:
            span = self._open(run_id, parent, parent_run_id, name, node, "chain")
            attrs = {"kind": "chain"}
            if node is not None:
                attrs["node"] = node
        if self._capture:
            attrs["input"] = content(inputs, self.max_content_chars)
        self._emit(_STEP_START, name, attrs, span)

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        key: int | None = getattr(run_id, "int", None)
        if key is not None and key in self._aliases:
            # A folded run: nothing of its own was recorded. Its alias goes once the
            # callbacks queued before this end (its children's) have been handled.
            self._bookkeeping_later(self._aliases.pop, key, None)
            return
        self._later(True, self._chain_end, run_id, outputs)

    def _chain_end(self, run_id: UUID, outputs: Any) -> None:
        span = self._end(run_id)
        if span is None:
            return
        attrs = self._end_attributes(span, "succeeded")
        if self._capture:
            attrs["output"] = content(outputs, self.max_content_chars)
        self._emit(_AGENT_END if span.owns_run else _STEP_END, span.name, attrs, span)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._now(True, self._chain_error, run_id, error)

    def _chain_error(self, run_id: UUID, error: BaseException) -> None:
        closed = self._failed(run_id, error)
        if closed is None:
            return
        span, attrs = closed
        severity = _HIGH if attrs["status"] == "failed" else _LOW
        if span.owns_run:
            if severity == _HIGH:
                self._emit(
                    _AGENT_ERROR,
                    span.name,
                    {"error_type": attrs["error_type"], "error_message": attrs["error_message"]},
                    span,
                    _HIGH,
                )
            self._emit(_AGENT_END, span.name, attrs, span, severity)
        else:
            self._emit(_STEP_END, span.name, attrs, span, severity)

    # ------------------------------------------------------------ LLM calls
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(
            False, self._llm_start, run_id, parent_run_id, serialized, messages, metadata, kwargs
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(
            False, self._llm_start, run_id, parent_run_id, serialized, prompts, metadata, kwargs
        )

    def _llm_start(  # noqa: PLR0917 - observe() forwards a callback's values positionally
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        serialized: Mapping[str, Any] | None,
        prompt: Any,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        parent, node, record = self._child(run_id, parent_run_id, metadata)
        if not record:
            return
        model = model_name(serialized, metadata, kwargs)
        span = self._open(run_id, parent, parent_run_id, model, node, "llm")
        attrs: dict[str, Any] = {"gen_ai.request.model": model}
        provider = metadata.get("ls_provider") if metadata else None
        if provider:
            attrs["gen_ai.system"] = provider
        if node is not None:
            attrs["node"] = node
        if self._capture:
            attrs["input"] = content(prompt, self.max_content_chars)
        self._emit(_LLM_START, model, attrs, span)

    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(True, self._llm_end, run_id, response)

    def _llm_end(self, run_id: UUID, response: LLMResult) -> None:
        span = self._end(run_id)
        if span is None:
            return
        attrs = self._end_attributes(span, "succeeded")
        attrs["gen_ai.request.model"] = span.name
        usage(response, attrs)
        if self._capture:
            attrs["output"] = content(
                [
                    [getattr(g, "message", None) or g.text for g in gs]
                    for gs in response.generations
                ],
                self.max_content_chars,
            )
        self._emit(_LLM_END, span.name, attrs, span)

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._now(True, self._llm_error, run_id, error)

    def _llm_error(self, run_id: UUID, error: BaseException) -> None:
        closed = self._failed(run_id, error)
        if closed is not None:
            span, attrs = closed
            attrs["gen_ai.request.model"] = span.name
            self._emit(_LLM_END, span.name, attrs, span, _HIGH)

    # ------------------------------------------------------ tools, retrievers
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(
            False,
            self._tool_start,
            run_id,
            parent_run_id,
            serialized,
            inputs if inputs is not None else input_str,
            metadata,
            kwargs,
            "tool",
        )

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(
            False,
            self._tool_start,
            run_id,
            parent_run_id,
            serialized,
            query,
            metadata,
            kwargs,
            "retriever",
        )

    def _tool_start(  # noqa: PLR0917 - observe() forwards a callback's values positionally
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        serialized: Mapping[str, Any] | None,
        tool_input: Any,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        kind: str,
    ) -> None:
        parent, node, record = self._child(run_id, parent_run_id, metadata)
        if not record:
            return
        name = name_of(serialized, kwargs) or kind
        span = self._open(run_id, parent, parent_run_id, name, node, kind)
        attrs: dict[str, Any] = {"tool": name, "gen_ai.tool.name": name}
        if kind != "tool":
            attrs["kind"] = kind
        call_id = kwargs.get("tool_call_id")
        if call_id:
            attrs["gen_ai.tool.call.id"] = call_id
        if node is not None:
            attrs["node"] = node
        if self._capture:
            attrs["input"] = content(tool_input, self.max_content_chars)
        self._emit(_TOOL_START, name, attrs, span)

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(True, self._tool_end, run_id, output, None)

    def on_retriever_end(
        self,
        documents: Sequence[Document],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(True, self._tool_end, run_id, documents, len(documents))

    def _tool_end(self, run_id: UUID, output: Any, documents: int | None) -> None:
        span = self._end(run_id)
        if span is None:
            return
        attrs = self._end_attributes(span, "succeeded")
        attrs["tool"] = attrs["gen_ai.tool.name"] = span.name
        if documents is not None:
            attrs["kind"] = "retriever"
            attrs["documents"] = documents
        if self._capture:
            attrs["output"] = content(getattr(output, "content", output), self.max_content_chars)
        self._emit(_TOOL_END, span.name, attrs, span)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._now(True, self._tool_error, run_id, error)

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._now(True, self._tool_error, run_id, error)

    def _tool_error(self, run_id: UUID, error: BaseException) -> None:
        span = self._spans.get(run_id.int)
        name = span.name if span is not None and span.key == run_id.int else None
        closed = self._failed(run_id, error, name)
        if closed is not None:
            span, attrs = closed
            attrs["tool"] = attrs["gen_ai.tool.name"] = span.name
            if span.kind != "tool":
                attrs["kind"] = span.kind
            self._emit(_TOOL_END, span.name, attrs, span, _HIGH)

    # ------------------------------------------------- agents, retries, custom
    def on_agent_action(
        self,
        action: AgentAction,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(False, self._decision, run_id, action.tool, action.tool_input)

    def on_agent_finish(
        self,
        finish: AgentFinish,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(False, self._decision, run_id, None, finish.return_values)

    def _decision(self, run_id: UUID, tool: str | None, detail: Any) -> None:
        span = self._lookup(run_id.int)
        if span is None or not span.sampled:
            return
        attrs: dict[str, Any] = (
            {"decision": "finish"} if tool is None else {"decision": "tool", "tool": tool}
        )
        if span.node is not None:
            attrs["node"] = span.node
        if self._capture:
            attrs["input" if tool is not None else "output"] = content(
                detail, self.max_content_chars
            )
        self._emit(_DECISION, tool or "finish", attrs, span)

    def on_retry(
        self,
        retry_state: RetryCallState,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        # At once: tenacity's state object moves on to the next attempt.
        self._now(False, self._retry, run_id, retry_state)

    def _retry(self, run_id: UUID, retry_state: RetryCallState) -> None:
        span = self._lookup(run_id.int)
        if span is None or not span.sampled:
            return
        attrs: dict[str, Any] = {"attempt": retry_state.attempt_number, "source": "langchain"}
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        if error is not None:
            attrs["error_type"] = type(error).__name__
            attrs["error_message"] = truncate(str(error), _ERROR_MESSAGE_LIMIT)
        if span.node is not None:
            attrs["node"] = span.node
        self._emit(_RETRY, span.name, attrs, span, _LOW)

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._later(False, self._custom, run_id, name, data)

    def _custom(self, run_id: UUID, name: str, data: Any) -> None:
        span = self._lookup(run_id.int)
        if span is None or not span.sampled:
            return
        attrs: dict[str, Any] = {"source": "langchain"}
        if self._capture:
            attrs["data"] = content(data, self.max_content_chars)
        self._emit(_CUSTOM, str(name), attrs, span)

    # ------------------------------------------------------------- lifecycle
    def _install(self) -> None:
        PROCESS_WIDE.install(self)

    def _uninstall(self) -> None:
        PROCESS_WIDE.remove(self)

    def process_pending(self) -> None:
        """Handle the queued callbacks now, on this thread (the writer does it anyway
        before each write and on every ``flush()``)."""
        self._process_pending()

    def get_health_status(self) -> dict[str, Any]:
        """The handler's health, with every callback so far handled first."""
        self._process_pending()
        return RobustInstrumentor.get_health_status(self)

    @property
    def state(self) -> InstrumentorState:
        self._process_pending()
        return self._health.state

    def span_for(self, run_id: UUID) -> tuple[str | None, str, str | None, str | None] | None:
        """(agentkeel run ID, span ID, parent span ID, LangGraph node) of a LangChain run
        this handler is recording, or None."""
        with self._processing:
            if self._pending:
                self._process_queued()
            span = self._lookup(run_id.int)
        if span is None:
            return None
        return span.run_id, span.span_id, span.parent_span_id, span.node
