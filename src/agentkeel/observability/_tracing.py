"""OpenTelemetry traces built from agentkeel events, following the GenAI conventions.

:class:`OTelSpanSink` is a pipeline sink: on the writer thread it turns start/end
event pairs into spans, after the fact, with the events' own timestamps. A run
becomes an ``invoke_agent`` span, its steps child spans, tool calls
``execute_tool`` spans and LLM calls ``chat`` spans under the step they ran in.
Everything else that happens in a run (retries, breaker transitions, failures,
loop verdicts, escalations, recoveries, fallbacks, chaos) becomes a span event on
the span it concerns, and sets our ``agentkeel.*`` attributes where the GenAI
conventions have nothing to say.

IDs are deterministic: a run's trace ID is derived from its run ID
(:func:`trace_id_for_run`), run and step spans keep agentkeel's span IDs, tool and
LLM spans get IDs derived from their start event. A span can therefore be linked to
its parent even after the parent was exported, and a run can be found in any
tracing backend from its run ID alone.

The tracer provider is the one given, else the one the OpenTelemetry API returns;
the global provider is never set. ``opentelemetry-api`` (and, to export,
``opentelemetry-sdk``) come with the ``otel`` extra.
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel.events import Event, EventType, Severity
from agentkeel.observability._genai import (
    CHILD_ENDS,
    CHILD_STARTS,
    MAX_STRING,
    attempt_of,
    copy_attributes,
    derived_span_id,
    describe_point,
    first_of,
    span_id_int,
    trace_id_int,
)
from agentkeel.pipeline import Pipeline, Sink

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from agentkeel.observability._sampling import SamplingManager
    from agentkeel.observability._tail import TailSampler

__all__ = [
    "OTelSpanSink",
    "TracingHandle",
    "TracingStats",
    "instrument_tracing",
    "require_otel",
]

_SCOPE_STARTS = frozenset({EventType.AGENT_START, EventType.STEP_START})
_SCOPE_ENDS = frozenset({EventType.AGENT_END, EventType.STEP_END})
OTEL_EXTRA_HINT = "pip install 'agentkeel[otel]'"


def require_otel(feature: str) -> None:
    """Raise an ImportError naming the ``otel`` extra if OpenTelemetry is missing."""
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{feature} needs OpenTelemetry, which is not installed: {OTEL_EXTRA_HINT}"
        ) from exc


@dataclass(frozen=True, slots=True)
class TracingStats:
    """Counters of one :class:`OTelSpanSink`."""

    spans_started: int
    spans_ended: int
    open_spans: int
    span_events: int
    point_spans: int
    """Events with no open span to attach to, exported as zero-length spans."""
    unattached_events: int
    """Routine events outside any run or span: not exported."""
    unfinished_spans: int
    """Spans ended without their end event (evicted, parent ended first, or closed)."""


class _Open:
    """A span being built: its OpenTelemetry span and where it sits."""

    __slots__ = (
        "failed_ns",
        "key",
        "kind",
        "last_ns",
        "name",
        "run_id",
        "scope",
        "serial",
        "span",
        "start_type",
    )

    def __init__(
        self,
        span: Span,
        *,
        kind: str,
        key: str,
        run_id: str | None,
        scope: tuple[str | None, str | None],
        start: Event,
        serial: int,
    ) -> None:
        self.span = span
        self.kind = kind  # "run", "step" or "child"
        self.key = key  # our span ID for runs and steps
        self.run_id = run_id
        self.scope = scope  # (run ID, span ID) of the events inside it
        self.name = start.name
        self.start_type = start.type
        self.last_ns = start.wall_ns
        self.failed_ns = 0  # a failure was attached before any end event
        self.serial = serial


class _PrimedIds:
    """Wraps a tracer's ID generator so that the next IDs can be chosen.

    Only the thread that primed an ID gets it; every other caller of the tracer
    gets the wrapped generator's IDs as before.
    """

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.local = threading.local()

    def prime(self, trace_id: int, span_id: int) -> None:
        self.local.trace_id = trace_id
        self.local.span_id = span_id

    def generate_trace_id(self) -> int:
        value = getattr(self.local, "trace_id", 0)
        if value:
            self.local.trace_id = 0
            return int(value)
        return int(self.wrapped.generate_trace_id())

    def generate_span_id(self) -> int:
        value = getattr(self.local, "span_id", 0)
        if value:
            self.local.span_id = 0
            return int(value)
        return int(self.wrapped.generate_span_id())

    def is_trace_id_random(self) -> bool:
        # Our trace IDs are hashes of random run IDs: as random as the wrapped ones.
        return bool(getattr(self.wrapped, "is_trace_id_random", lambda: False)())


class OTelSpanSink:
    """A pipeline sink that exports runs, steps, tool and LLM calls as OpenTelemetry spans.

    ``tracer_provider`` defaults to :func:`opentelemetry.trace.get_tracer_provider`
    (a no-op until the application configures one; never set by us). The service
    name and other resource attributes belong to the provider (see
    :func:`~agentkeel.observability.configure_otlp`). At most ``max_open_spans``
    spans are held open; beyond that the oldest is ended early and marked
    ``agentkeel.unfinished``. Events are processed on the pipeline's writer thread.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        tracer_name: str = "agentkeel",
        max_open_spans: int = 10_000,
    ) -> None:
        require_otel("OTelSpanSink")
        from opentelemetry import trace
        from opentelemetry.context import Context

        if isinstance(max_open_spans, bool) or not isinstance(max_open_spans, int):
            raise ConfigurationError(f"max_open_spans must be an integer, got {max_open_spans!r}")
        if max_open_spans < 1:
            raise ConfigurationError(f"max_open_spans must be at least 1, got {max_open_spans}")
        from agentkeel import __version__

        # Imported once here: an import statement on the per-event path costs a lookup.
        self._trace: Any = trace
        self._context_type: type[Context] = Context
        self._set_span: Callable[[Span, Context], Context] = trace.set_span_in_context
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracer_provider = provider
        self._tracer: Tracer = provider.get_tracer(tracer_name, __version__)
        self._ids = self._prime_ids(self._tracer)
        self._max_open = max_open_spans
        self._lock = threading.Lock()
        self._serial = 0
        self._all: dict[int, _Open] = {}  # every open span, oldest first
        self._spans: dict[str, _Open] = {}  # run and step spans by our span ID
        self._runs: dict[str, _Open] = {}  # run spans by run ID
        self._children: dict[tuple[str | None, str | None], list[_Open]] = {}
        # The last child span ended in each scope, kept unfinished for a moment: the
        # failure that explains it is emitted right after its end event.
        self._pending: dict[tuple[str | None, str | None], tuple[_Open, int, int]] = {}
        self._batches = 0
        self._traces: OrderedDict[str, tuple[int, int]] = OrderedDict()  # run -> trace, flags
        self._counts = dict.fromkeys(
            ("started", "ended", "events", "points", "unattached", "unfinished"), 0
        )
        self._latest_ns = 0
        self._closed = False

    @staticmethod
    def _prime_ids(tracer: Any) -> _PrimedIds | None:
        generator = getattr(tracer, "id_generator", None)
        if generator is None:
            return None  # not the SDK's tracer: IDs are its own, parents still link up
        if isinstance(generator, _PrimedIds):
            return generator
        primed = _PrimedIds(generator)
        tracer.id_generator = primed
        return primed

    # ------------------------------------------------------------------ sink
    def __call__(self, batch: Sequence[Event], /) -> None:
        with self._lock:
            if self._closed:
                return
            self._batches += 1
            for event in batch:
                try:
                    self._handle(event)
                except Exception as exc:  # noqa: BLE001 - one odd event must not stop the rest
                    _internal.report_internal_error("tracing.event", exc)
            # A failure follows its call's end event at once: one more batch is plenty.
            for scope, (_, _, batch_no) in list(self._pending.items()):
                if batch_no < self._batches:
                    self._materialize(scope)

    def flush(self) -> None:
        """End the spans held back for a failure that may follow; open spans stay open."""
        with self._lock:
            for scope in list(self._pending):
                self._materialize(scope)

    def close(self) -> None:
        """End every open span (marked ``agentkeel.unfinished``). Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for scope in list(self._pending):
                self._materialize(scope)
            for open_ in list(self._all.values()):
                if open_.serial in self._all:  # not ended with its parent just before
                    self._end_unfinished(open_, max(self._latest_ns, open_.last_ns))

    def stats(self) -> TracingStats:
        c = self._counts
        return TracingStats(
            spans_started=c["started"],
            spans_ended=c["ended"],
            open_spans=len(self._all) + len(self._pending),
            span_events=c["events"],
            point_spans=c["points"],
            unattached_events=c["unattached"],
            unfinished_spans=c["unfinished"],
        )

    # -------------------------------------------------------------- dispatch
    def _handle(self, event: Event) -> None:
        etype = event.type
        self._latest_ns = max(self._latest_ns, event.wall_ns)
        if etype in _SCOPE_STARTS:
            self._start_scope(event)
        elif etype in _SCOPE_ENDS:
            self._end_scope(event)
        elif etype in CHILD_STARTS:
            self._start_child(event)
        elif etype in CHILD_ENDS:
            self._end_child(event)
        else:
            self._point(event)
        if len(self._all) > self._max_open or len(self._pending) > self._max_open:
            self._evict()

    # -------------------------------------------------------- ids and parents
    def _trace_of(self, run_id: str | None) -> tuple[int, int]:
        if run_id is None:
            return 0, 1
        known = self._traces.get(run_id)
        return known if known is not None else (trace_id_int(run_id), 1)

    def _remember_trace(self, run_id: str, span: Span) -> None:
        ctx = span.get_span_context()
        if ctx.is_valid:
            self._traces[run_id] = (ctx.trace_id, int(ctx.trace_flags))
            self._traces.move_to_end(run_id)
            while len(self._traces) > 4 * self._max_open:
                self._traces.popitem(last=False)

    def _context(self, run_id: str | None, parent_span_id: str | None) -> Context:
        """A context whose current span is the parent, real or rebuilt from its IDs."""
        trace, empty, with_span = self._trace, self._context_type, self._set_span
        if parent_span_id is None:
            return empty()
        parent = self._spans.get(parent_span_id)
        if parent is not None:
            return with_span(parent.span, empty())
        trace_id, flags = self._trace_of(run_id)
        if not trace_id:
            return empty()
        rebuilt = trace.SpanContext(
            trace_id,
            span_id_int(parent_span_id),
            is_remote=False,
            trace_flags=trace.TraceFlags(flags),
        )
        return with_span(trace.NonRecordingSpan(rebuilt), empty())

    def _start_span(
        self,
        name: str,
        event: Event,
        context: Context,
        attributes: dict[str, Any],
        *,
        span_id: int,
        trace_id: int,
        client: bool = False,
    ) -> Span:
        if self._ids is not None:
            self._ids.prime(trace_id, span_id)
        span = self._tracer.start_span(
            name,
            context=context,
            kind=self._trace.SpanKind.CLIENT if client else self._trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=event.wall_ns,
        )
        if self._ids is not None:
            self._ids.prime(0, 0)  # unused if the span was not recorded
        self._counts["started"] += 1
        return span

    def _base_attributes(self, event: Event) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if event.run_id is not None:
            attrs["agentkeel.run_id"] = event.run_id
        if event.correlation_id is not None:
            attrs["agentkeel.correlation_id"] = event.correlation_id
        return attrs

    def _track(self, open_: _Open) -> _Open:
        self._all[open_.serial] = open_
        return open_

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    # ------------------------------------------------------- runs and steps
    def _start_scope(self, event: Event) -> None:
        if event.span_id is None:
            self._point(event)
            return
        is_run = event.type == EventType.AGENT_START
        attrs = self._base_attributes(event)
        source = event.attributes
        run_id = event.run_id
        trace_run = run_id
        if is_run:
            attrs["gen_ai.operation.name"] = "invoke_agent"
            attrs["gen_ai.agent.name"] = event.name
            if source.get("session_id") is not None:
                attrs["gen_ai.conversation.id"] = str(source["session_id"])
            if source.get("user_id") is not None:
                attrs["user.id"] = str(source["user_id"])
            tags = source.get("tags")
            if tags:
                attrs["agentkeel.tags"] = tuple(str(t) for t in tags)
            parent_run = source.get("parent_run_id")
            if isinstance(parent_run, str) and event.parent_span_id is not None:
                trace_run = parent_run  # a nested run lives in its parent's trace
            name = f"invoke_agent {event.name}"
        else:
            attrs["agentkeel.step.name"] = event.name
            name = event.name or "step"
        copy_attributes(source, attrs)
        context = self._context(trace_run, event.parent_span_id)
        trace_id, _ = self._trace_of(trace_run)
        span = self._start_span(
            name, event, context, attrs, span_id=span_id_int(event.span_id), trace_id=trace_id
        )
        if is_run and run_id is not None:
            self._remember_trace(run_id, span)
        open_ = _Open(
            span,
            kind="run" if is_run else "step",
            key=event.span_id,
            run_id=run_id,
            scope=(run_id, event.span_id),
            start=event,
            serial=self._next_serial(),
        )
        self._spans[event.span_id] = self._track(open_)
        if is_run and run_id is not None:
            self._runs[run_id] = open_

    def _end_scope(self, event: Event) -> None:
        open_ = self._spans.get(event.span_id) if event.span_id is not None else None
        if open_ is None:
            self._point(event)
            return
        scope = open_.scope
        self._materialize(scope)
        for child in list(self._children.get(scope, ())):
            if child.failed_ns:
                self._end(child, child.failed_ns)
            else:
                self._end_unfinished(child, event.wall_ns)
        attrs = event.attributes
        span = open_.span
        if attrs.get("status") == "failed":
            self._fail(span, attrs.get("error_type"), attrs.get("error_message"))
            if open_.kind == "step":
                self._exception_event(span, event)
        elif attrs.get("status") is not None and attrs.get("status") != "succeeded":
            span.set_attribute("agentkeel.status", str(attrs["status"]))
        self._end(open_, event.wall_ns)

    # ------------------------------------------------------ tool, LLM, tasks
    def _start_child(self, event: Event) -> None:
        scope = (event.run_id, event.span_id)
        self._materialize(scope)
        for earlier in list(self._children.get(scope, ())):
            # A call that failed without an end event is over once the next one starts.
            if (
                earlier.failed_ns
                and earlier.start_type == event.type
                and earlier.name == event.name
            ):
                self._end(earlier, earlier.failed_ns)
        _, operation, prefix = CHILD_STARTS[event.type]
        source = event.attributes
        attrs = self._base_attributes(event)
        client = False
        if event.type == EventType.TOOL_CALL_START:
            attrs["gen_ai.operation.name"] = "execute_tool"
            attrs["gen_ai.tool.name"] = event.name
            call_id = first_of(source, ("gen_ai.tool.call.id", "tool_call_id", "call_id"))
            if call_id is not None:
                attrs["gen_ai.tool.call.id"] = str(call_id)
            name = f"execute_tool {event.name}"
        elif event.type == EventType.LLM_CALL_START:
            operation = str(source.get("gen_ai.operation.name") or operation)
            model = source.get("gen_ai.request.model") or event.name
            attrs["gen_ai.operation.name"] = operation
            attrs["gen_ai.request.model"] = str(model)
            name = f"{operation} {model}"
            client = True
        else:
            name = f"{prefix}{event.name}"
        attempt = attempt_of(source)
        if attempt is not None:
            attrs["agentkeel.retry.attempt"] = attempt
        copy_attributes(source, attrs)
        context = self._context(event.run_id, event.span_id)
        trace_id, _ = self._trace_of(event.run_id)
        span = self._start_span(
            name,
            event,
            context,
            attrs,
            span_id=derived_span_id(event),
            trace_id=trace_id,
            client=client,
        )
        open_ = _Open(
            span,
            kind="child",
            key="",
            run_id=event.run_id,
            scope=scope,
            start=event,
            serial=self._next_serial(),
        )
        self._children.setdefault(scope, []).append(self._track(open_))

    def _end_child(self, event: Event) -> None:
        scope = (event.run_id, event.span_id)
        start_type = CHILD_ENDS[event.type]
        match = None
        for open_ in self._children.get(scope, ()):
            if open_.start_type == start_type and open_.name == event.name:
                match = open_
                break
        if match is None:
            self._point(event)
            return
        self._materialize(scope)
        attrs = event.attributes
        span = match.span
        status = attrs.get("status")
        if status == "failed" or event.type == EventType.TASK_FAIL:
            self._fail(span, attrs.get("error_type"), attrs.get("error_message"))
        elif status is not None and status != "succeeded":
            span.set_attribute("agentkeel.status", str(status))
        extra: dict[str, Any] = {}
        copy_attributes(attrs, extra)
        if extra:
            span.set_attributes(extra)
        self._detach(match)
        self._pending[scope] = (match, event.wall_ns, self._batches)

    def _materialize(self, scope: tuple[str | None, str | None]) -> None:
        held = self._pending.pop(scope, None)
        if held is not None:
            open_, end_ns, _ = held
            open_.span.end(end_time=end_ns)
            self._counts["ended"] += 1

    # --------------------------------------------------------- point events
    def _target(self, event: Event) -> _Open | None:
        scope = (event.run_id, event.span_id)
        wanted = {event.name}
        tool = event.attributes.get("tool_name")
        if isinstance(tool, str):
            wanted.add(tool)
        children = self._children.get(scope, ())
        for open_ in children:
            if open_.name in wanted:
                return open_
        held = self._pending.get(scope)
        if held is not None and held[0].name in wanted:
            return held[0]
        if len(children) == 1:
            # The one call in flight is where this happened (a model call is named
            # after the model, its failure after the caller's label).
            return children[0]
        self._materialize(scope)
        if event.span_id is not None and event.span_id in self._spans:
            return self._spans[event.span_id]
        if event.run_id is not None:
            return self._runs.get(event.run_id)
        return None

    def _point(self, event: Event) -> None:
        target = self._target(event)
        span_attrs, event_attrs = describe_point(event)
        if target is None:
            self._point_span(event, span_attrs, event_attrs)
            return
        span = target.span
        if span_attrs:
            span.set_attributes(span_attrs)
        if event.type == EventType.FAILURE and target.kind == "child":
            self._fail(
                span, event.attributes.get("error_type"), event.attributes.get("error_message")
            )
            if target.serial in self._all:  # still open: it ends when the next call starts
                target.failed_ns = event.wall_ns
        if event.type == EventType.AGENT_ERROR:
            self._exception_event(span, event)
        else:
            span.add_event(event.type, attributes=event_attrs, timestamp=event.wall_ns)
            self._counts["events"] += 1
        target.last_ns = max(target.last_ns, event.wall_ns)

    def _point_span(
        self, event: Event, span_attrs: dict[str, Any], event_attrs: dict[str, Any]
    ) -> None:
        """An event with nothing open to attach to: a zero-length span, if worth one."""
        in_trace = event.run_id is not None or event.span_id is not None
        if not in_trace and event.severity < Severity.MEDIUM:
            self._counts["unattached"] += 1
            return
        attrs = self._base_attributes(event)
        attrs.update(event_attrs)
        attrs.update(span_attrs)
        context = self._context(event.run_id, event.span_id)
        trace_id, _ = self._trace_of(event.run_id)
        span = self._start_span(
            event.type,
            event,
            context,
            attrs,
            span_id=derived_span_id(event),
            trace_id=trace_id or trace_id_int(event.event_id),
        )
        if event.severity >= Severity.HIGH or event.type == EventType.FAILURE:
            self._fail(span, event.attributes.get("error_type"), None)
        span.end(end_time=event.wall_ns)
        self._counts["ended"] += 1
        self._counts["points"] += 1

    # ------------------------------------------------------------ endings
    def _fail(self, span: Span, error_type: Any, message: Any) -> None:
        kind = str(error_type) if error_type else "error"
        span.set_attribute("error.type", kind)
        description = f"{kind}: {message}" if message else kind
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, description[:MAX_STRING]))

    def _exception_event(self, span: Span, event: Event) -> None:
        attrs = {
            "exception.type": str(event.attributes.get("error_type") or "error"),
            "exception.message": str(event.attributes.get("error_message") or "")[:MAX_STRING],
        }
        span.add_event("exception", attributes=attrs, timestamp=event.wall_ns)
        self._counts["events"] += 1

    def _detach(self, open_: _Open) -> None:
        self._all.pop(open_.serial, None)
        if open_.kind == "child":
            siblings = self._children.get(open_.scope)
            if siblings is not None:
                siblings[:] = [s for s in siblings if s is not open_]
                if not siblings:
                    del self._children[open_.scope]
        else:
            self._spans.pop(open_.key, None)
            if open_.kind == "run" and open_.run_id is not None:
                if self._runs.get(open_.run_id) is open_:
                    del self._runs[open_.run_id]
                self._children.pop(open_.scope, None)

    def _end(self, open_: _Open, end_ns: int) -> None:
        self._detach(open_)
        open_.span.end(end_time=max(end_ns, 1))
        self._counts["ended"] += 1

    def _end_unfinished(self, open_: _Open, end_ns: int) -> None:
        open_.span.set_attribute("agentkeel.unfinished", True)
        self._counts["unfinished"] += 1
        if open_.kind != "child":
            scope = open_.scope
            self._materialize(scope)
            for child in list(self._children.get(scope, ())):
                self._end_unfinished(child, end_ns)
        self._end(open_, end_ns)

    def _evict(self) -> None:
        while len(self._all) > self._max_open:
            oldest = next(iter(self._all.values()))
            self._end_unfinished(oldest, max(oldest.last_ns, self._latest_ns))
        while len(self._pending) > self._max_open:
            self._materialize(next(iter(self._pending)))

    def __repr__(self) -> str:
        return f"OTelSpanSink({self.tracer_provider!r})"


# ------------------------------------------------------------ instrumenting
class TracingHandle:
    """What :func:`instrument_tracing` set up; :meth:`uninstrument` takes it down."""

    __slots__ = ("_active", "pipeline", "sampler", "sink")

    def __init__(self, pipeline: Pipeline, sink: OTelSpanSink, sampler: TailSampler | None) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.sampler = sampler
        self._active = True
        # Registered after the tracer provider's own exit hook, so it runs first:
        # the spans of the last events reach the provider before it shuts down.
        atexit.register(self._at_exit)

    @property
    def active(self) -> bool:
        return self._active

    def uninstrument(self, timeout: float | timedelta = 5.0) -> None:
        """Stop tracing: detach the sink, deliver what it holds, end its open spans."""
        if not self._active:
            return
        self._active = False
        atexit.unregister(self._at_exit)
        outer: Sink = self.sampler if self.sampler is not None else self.sink
        live = not self.pipeline.closed
        if live:
            self.pipeline.flush(timeout)  # what was emitted so far reaches the sink
        self.pipeline.remove_sink(outer)
        if live:
            self.pipeline.flush(timeout)  # and a batch in flight to it completes
        if self.sampler is not None:
            self.sampler.close()  # flushes held runs into the span sink, then closes it
        else:
            self.sink.close()

    def _at_exit(self) -> None:
        try:
            self.uninstrument(timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - interpreter exit must stay clean
            _internal.report_internal_error("tracing.atexit", exc, reraise=False)

    def __repr__(self) -> str:
        state = "active" if self._active else "uninstrumented"
        return f"TracingHandle({self.sink!r}, sampler={self.sampler!r}, {state})"


def instrument_tracing(
    tracer_provider: TracerProvider | None = None,
    *,
    pipeline: Pipeline | None = None,
    sampling: SamplingManager | bool = False,
    tracer_name: str = "agentkeel",
    max_open_spans: int = 10_000,
    max_buffered_events: int = 100_000,
) -> TracingHandle:
    """Export the events of ``pipeline`` (default: the process-wide one) as spans.

    ``sampling=True`` (the process-wide :func:`get_sampling_manager`) or a
    :class:`SamplingManager` puts a :class:`TailSampler` in front of the span sink:
    failed runs are exported whole, healthy ones thinned. The store is not affected.
    """
    sink = OTelSpanSink(tracer_provider, tracer_name=tracer_name, max_open_spans=max_open_spans)
    sampler: TailSampler | None = None
    if sampling is not False:
        from agentkeel.observability._sampling import SamplingManager, get_sampling_manager
        from agentkeel.observability._tail import TailSampler

        if sampling is True:
            manager = get_sampling_manager()
        elif isinstance(sampling, SamplingManager):
            manager = sampling
        else:
            raise ConfigurationError(
                f"sampling must be True, False or a SamplingManager, got {sampling!r}"
            )
        sampler = TailSampler(sink, manager, max_buffered_events=max_buffered_events)
    if pipeline is None:
        from agentkeel._runtime import get_pipeline

        pipeline = get_pipeline()
    pipeline.add_sink(sampler if sampler is not None else sink)
    return TracingHandle(pipeline, sink, sampler)
