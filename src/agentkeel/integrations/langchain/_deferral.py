"""Callbacks queued on the agent's thread, turned into events on the pipeline's writer.

A LangGraph run calls our handler some sixty times on the agent's thread. Building
each event there cost the agent about as much again as LangChain's own callback
machinery. So a callback only takes a stamp from the pipeline (its event's sequence
number and time, ``Pipeline.stamp``) and queues its raw values with the scope it ran
in; the pipeline's writer calls :meth:`DeferredCallbacks._process_pending` before its
next write, which runs the queued callback bodies through the instrumentor's guard as
if they had run at their stamp. The events keep their place among events emitted
directly (a tool's own) and their time, and every ``flush()`` covers them.

Handled at once instead, on the agent's thread, after everything queued before them:

* errors, so the failure is tracked with its node and tool before the agent moves on;
* retries, whose tenacity state object moves on to the next attempt;
* everything when content is captured: inputs and outputs may change once the
  callback has returned.

Beyond ``_MAX_PENDING`` queued callbacks (the writer is stuck in a sink) the agent's
thread handles them itself, so memory stays bounded and the pipeline's buffer policy
applies as for any other event.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any, cast

from agentkeel._clock import Clock
from agentkeel._context import Scope, _scope, current_scope
from agentkeel._runtime import get_pipeline
from agentkeel.integrations._robust import InstrumentorState, RobustConfig, RobustInstrumentor
from agentkeel.pipeline import Pipeline

__all__ = ["DeferredCallbacks"]

_MAX_PENDING = 10_000
_scope_get = _scope.get

# A queued callback: its body, arguments, whether it is essential, the scope it ran in,
# its stamp and the pipeline the stamp came from. Bookkeeping that makes no event (a
# folded run's end) has no scope, stamp or pipeline.
_Pending = tuple[
    Callable[..., object],
    tuple[Any, ...],
    bool,
    Scope | None,
    tuple[int, int] | None,
    Pipeline | None,
]


class DeferredCallbacks(RobustInstrumentor):
    """The queue of a callback handler's bodies; see the module's docstring.

    While a queued body runs, its stamp, scope and pipeline are set on the handler;
    outside that, all three are None and a body (an error's) works on the live clock,
    scope and pipeline.
    """

    def __init__(self, *, config: RobustConfig | None, clock: Clock, immediate: bool) -> None:
        RobustInstrumentor.__init__(self, config=config, clock=clock)
        self._immediate = immediate  # handle every callback at once (captured content)
        self._pending: deque[_Pending] = deque()
        self._deferred = False  # the pipeline will call _process_pending
        # Reentrant: a failure recorded under it may ask span_for.
        self._processing = threading.RLock()
        self._stamp: tuple[int, int] | None = None
        self._scope: Scope | None = None
        self._pipeline: Pipeline | None = None

    # ------------------------------------------------------------------ queueing
    def _later(self, essential: bool, fn: Callable[..., None], *args: Any) -> None:
        """Queue a callback body for the writer: the agent's whole cost of most callbacks."""
        if self._immediate:
            self._now(essential, fn, *args)
            return
        pipeline = get_pipeline()
        pending = self._pending
        pending.append((fn, args, essential, _scope_get(), pipeline.stamp(), pipeline))
        if not self._deferred:
            self._defer(pipeline)
        if len(pending) > _MAX_PENDING:
            self._process_pending()

    def _bookkeeping_later(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue a call that makes no event, to run after the callbacks queued before it."""
        self._pending.append((fn, args, False, None, None, None))
        if not self._deferred:
            self._defer(get_pipeline())

    def _defer(self, pipeline: Pipeline) -> None:
        # The flag is set before the producer can run: it clears the flag before it
        # pops, so a callback queued while it works is either popped or defers it again.
        self._deferred = True
        pipeline.defer(self._process_pending)

    def _now(self, essential: bool, fn: Callable[..., None], *args: Any) -> None:
        """Run a callback body on the agent's thread, after everything queued before it."""
        with self._processing:
            if self._pending:
                self._process_queued()
            self._observe(fn, essential, args, None)

    # ---------------------------------------------------------------- processing
    def _process_pending(self) -> None:
        """Turn every queued callback into its event (the pipeline's writer calls this)."""
        with self._processing:
            self._deferred = False
            self._process_queued()

    def _process_queued(self) -> None:
        pending = self._pending
        observe = self._observe
        try:
            while pending:
                fn, args, essential, scope, stamp, pipeline = pending.popleft()
                if pipeline is None:
                    fn(*args)  # bookkeeping (see _bookkeeping_later)
                    continue
                self._stamp, self._scope, self._pipeline = stamp, scope, pipeline
                observe(fn, essential, args, None)
                if self._stamp is not None:
                    pipeline.unstamp()  # folded, not sampled or failed: no event
        finally:
            self._stamp = self._scope = self._pipeline = None

    def process_pending(self) -> None:
        """Handle the queued callbacks now, on this thread (the writer does it anyway
        before each write and on every ``flush()``)."""
        self._process_pending()

    def get_health_status(self) -> dict[str, Any]:
        """The handler's health, with every callback so far handled first."""
        self._process_pending()
        return super().get_health_status()

    @property
    def state(self) -> InstrumentorState:
        self._process_pending()
        return self._health.state

    # ------------------------------------------------- what a callback body sees
    def _current_scope(self) -> Scope:
        """The scope the callback being handled ran in."""
        scope = self._scope
        return current_scope() if scope is None else scope

    def _clock_ns(self) -> int:
        """When the callback being handled ran (perf_counter_ns)."""
        stamp = self._stamp
        return perf_counter_ns() if stamp is None else stamp[1]

    def _send(  # noqa: PLR0917 - one call per event
        self,
        type_: str,
        name: str,
        severity: int,
        attributes: dict[str, Any],
        run_id: str | None,
        span_id: str,
        parent_span_id: str | None,
    ) -> None:
        """Emit the event of the callback being handled, at its stamp if it has one."""
        stamp = self._stamp
        if stamp is not None:
            self._stamp = None  # one stamp, one event: a second one is emitted live
            cast(Pipeline, self._pipeline).emit_stamped(
                stamp,
                cast(Scope, self._scope),
                type_,
                name,
                severity,
                attributes,
                run_id,
                span_id,
                parent_span_id,
            )
            return
        get_pipeline().emit(
            type_,
            name=name,
            severity=severity,
            attributes=attributes,
            run_id=run_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
        )
