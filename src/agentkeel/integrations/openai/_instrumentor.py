"""``instrument_openai``: observe (and optionally protect) one OpenAI client's chat calls.

The wrapper is installed on *that* client instance — an instance attribute
``create`` on ``client.chat.completions`` shadows the class's method — so other
clients, and the SDK itself, are untouched; :meth:`uninstrument` deletes the
attribute again (or puts back whatever was there before).

Each HTTP attempt is one LLM call: ``llm.start`` and ``llm.end`` events named after
the model, and on failure a record in the current :class:`FailureTracker`. With
policies (``retry=``, ``fallback_models=``, ``breaker=``) the attempts run inside a
:class:`~agentkeel.resilience.Guard` (fallback outermost, then retry, tracking and
breaker), which marks the failures recovered when a later attempt or another model
answers. Every observation body runs through :meth:`RobustInstrumentor.observe`, so a
bug here degrades our telemetry and never changes what the caller gets.
"""

from __future__ import annotations

import functools
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import timedelta
from typing import Any

import openai

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.events import Severity
from agentkeel.integrations._robust import (
    InstrumentationHandle,
    RobustConfig,
    RobustInstrumentor,
)
from agentkeel.integrations.openai import _record
from agentkeel.integrations.openai._errors import FALLBACK_ERRORS, openai_retry
from agentkeel.integrations.openai._record import (
    LLM_END,
    LLM_START,
    CallRecord,
    StreamAccumulator,
    end_attributes,
    error_attributes,
    start_attributes,
)
from agentkeel.resilience import CircuitBreaker, CircuitOpenError, Fallback, Guard, Retry
from agentkeel.tracking import FailureTracker, current_node, get_failure_tracker
from agentkeel.tracking._tracker import recorded_failure

__all__ = ["OPERATION", "OpenAIInstrumentor", "instrument_openai"]

OPERATION = "openai.chat.completions"
"""How failures, retries and fallbacks of these calls are named."""

_MARK = "__agentkeel_instrumentor__"  # set on our wrapper: who installed it
_MISSING = object()


def _not_installed(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the OpenAI instrumentor is not installed")


class _Call:
    """One call of ``create`` by the user: its attempts, across retries and models."""

    __slots__ = ("attempts", "failures", "requested_model")

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        self.attempts = 0
        self.requested_model = str(kwargs.get("model", ""))
        # Failures recorded by earlier attempts, marked recovered when one answers.
        self.failures: list[tuple[FailureTracker, str]] | None = None


class _Attempt:
    """One attempt at ``model`` (``None``: the model the caller asked for)."""

    __slots__ = ("__qualname__", "instrumentor", "model")

    def __init__(self, instrumentor: OpenAIInstrumentor, model: str | None) -> None:
        self.instrumentor = instrumentor
        self.model = model
        self.__qualname__ = OPERATION if model is None else model

    def __call__(self, call: _Call, /, *args: Any, **kwargs: Any) -> Any:
        return self.instrumentor._attempt(call, self.model, args, kwargs)


class _AsyncAttempt(_Attempt):
    __slots__ = ()

    async def __call__(self, call: _Call, /, *args: Any, **kwargs: Any) -> Any:
        return await self.instrumentor._aattempt(call, self.model, args, kwargs)


class OpenAIInstrumentor(RobustInstrumentor):
    """The instrumentor behind :func:`instrument_openai` (one per client)."""

    framework = "openai"

    def __init__(
        self,
        client: openai.OpenAI | openai.AsyncOpenAI,
        *,
        retry: Retry | None = None,
        fallback_models: Sequence[str] = (),
        request_timeout: float | None = None,
        breaker: CircuitBreaker | str | None = None,
        config: RobustConfig | None = None,
        capture_content: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(config=config, clock=clock)
        self.client = client
        self.is_async = isinstance(client, openai.AsyncOpenAI)
        self.retry = retry
        self.fallback_models = tuple(fallback_models)
        self.request_timeout = request_timeout
        self.capture_content = capture_content
        attempt_cls = _AsyncAttempt if self.is_async else _Attempt
        self._primary = attempt_cls(self, None)
        self._guard: Guard | None = None
        if retry is not None or breaker is not None or self.fallback_models:
            fallback = (
                Fallback(
                    *((model, attempt_cls(self, model)) for model in self.fallback_models),
                    # An open breaker is the primary failing fast: another model may answer.
                    on=(*FALLBACK_ERRORS, CircuitOpenError),
                    name=OPERATION,
                )
                if self.fallback_models
                else None
            )
            self._guard = Guard(
                name=OPERATION, retry=retry, breaker=breaker, fallback=fallback, event=None
            )
        self._completions: Any = None
        self._previous: Any = _MISSING
        self._wrapper: Callable[..., Any] | None = None
        self._original: Callable[..., Any] = _not_installed

    # ------------------------------------------------------------ lifecycle
    def _install(self) -> None:
        completions = self.client.chat.completions
        own = vars(completions)
        current = own.get("create", _MISSING)
        holder = getattr(current, _MARK, None)
        if isinstance(holder, OpenAIInstrumentor) and holder.is_instrumented:
            raise ConfigurationError(
                "this OpenAI client is instrumented already: call uninstrument() on the "
                "handle instrument_openai returned before instrumenting it again"
            )
        original = completions.create
        wrapper = self._async_wrapper(original) if self.is_async else self._sync_wrapper(original)
        setattr(wrapper, _MARK, self)
        self._completions = completions
        self._original = original
        self._previous = current
        self._wrapper = wrapper
        completions.create = wrapper  # type: ignore[method-assign]

    def _uninstall(self) -> None:
        completions = self._completions
        if completions is None:
            return
        if vars(completions).get("create") is self._wrapper:
            if self._previous is _MISSING:
                del completions.create
            else:
                completions.create = self._previous
        # Otherwise someone wrapped our wrapper: it stays, and passes calls straight on.
        self._completions = None
        self._wrapper = None

    def _sync_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            if not self._installed:
                return original(*args, **kwargs)
            call = _Call(kwargs)
            guard = self._guard
            if guard is None:
                return self._attempt(call, None, args, kwargs)
            return guard.call(self._primary, call, *args, **kwargs)

        return create

    def _async_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def create(*args: Any, **kwargs: Any) -> Any:
            if not self._installed:
                return await original(*args, **kwargs)
            call = _Call(kwargs)
            guard = self._guard
            if guard is None:
                return await self._aattempt(call, None, args, kwargs)
            return await guard.acall(self._primary, call, *args, **kwargs)

        return create

    # ------------------------------------------------------------- attempts
    def _prepare(
        self, call: _Call, model: str | None, kwargs: dict[str, Any]
    ) -> tuple[Callable[..., Any], dict[str, Any]]:
        """What to call for one attempt, and with which keyword arguments."""
        call.attempts += 1
        if model is not None:
            kwargs = {**kwargs, "model": model}
        if self.request_timeout is not None and "timeout" not in kwargs:
            kwargs = {**kwargs, "timeout": self.request_timeout}
        if self.retry is not None:
            # Our retry decides; the SDK's own retries would multiply the attempts and
            # sleep where we cannot see it. The copy shares the connection pool.
            return self.client.with_options(max_retries=0).chat.completions.create, kwargs
        return self._original, kwargs

    def _begin(
        self, call: _Call, model: str | None, kwargs: dict[str, Any]
    ) -> tuple[Callable[..., Any], dict[str, Any], CallRecord]:
        """What to send, with which arguments, and the record whose start is now emitted."""
        send, kwargs = self._prepare(call, model, kwargs)
        record = CallRecord(
            model=str(kwargs.get("model", "")),
            requested_model=call.requested_model,
            attempt=call.attempts,
            stream=kwargs.get("stream") is True,
        )
        self.observe(self._on_start, record, kwargs)
        return send, kwargs, record

    def _attempt(
        self, call: _Call, model: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        send, kwargs, record = self._begin(call, model, kwargs)
        try:
            result = send(*args, **kwargs)
        except Exception as exc:
            self.observe_essential(self._on_error, record, exc, call)
            raise
        if call.failures:
            self.observe_essential(self._recovered, call, model)
        if isinstance(result, openai.Stream):
            self.observe_essential(self._watch_stream, result, record)
        else:
            self.observe_essential(self._on_end, record, result)
        return result

    async def _aattempt(
        self, call: _Call, model: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        send, kwargs, record = self._begin(call, model, kwargs)
        try:
            result = await send(*args, **kwargs)
        except Exception as exc:
            self.observe_essential(self._on_error, record, exc, call)
            raise
        if call.failures:
            self.observe_essential(self._recovered, call, model)
        if isinstance(result, openai.AsyncStream):
            self.observe_essential(self._watch_astream, result, record)
        else:
            self.observe_essential(self._on_end, record, result)
        return result

    # ---------------------------------------------------- observation bodies
    def _on_start(self, record: CallRecord, kwargs: Mapping[str, Any]) -> None:
        attributes = start_attributes(record, kwargs, capture_content=self.capture_content)
        _record.emit_llm_event(LLM_START, name=record.model, attributes=attributes)

    def _on_end(self, record: CallRecord, result: object) -> None:
        attributes = end_attributes(record, result, capture_content=self.capture_content)
        _record.emit_llm_event(LLM_END, name=record.model, attributes=attributes)

    def _on_error(self, record: CallRecord, error: BaseException, call: _Call | None) -> None:
        attributes, category = error_attributes(record, error)
        earlier = recorded_failure(error)
        if earlier is None:
            failure_attributes: dict[str, Any] = {
                "gen_ai.request.model": record.model,
                "attempt": record.attempt,
            }
            for key in ("http.response.status_code", "retry_after_s"):
                if key in attributes:
                    failure_attributes[key] = attributes[key]
            tracker = get_failure_tracker()
            failure = tracker.record_failure(
                error,
                category=category,
                tool_name=OPERATION,
                graph_node=current_node(),
                latency_ms=attributes["duration_ms"],
                attributes=failure_attributes,
            )
            earlier = (tracker, failure.failure_id)
        if call is not None:
            if call.failures is None:
                call.failures = []
            call.failures.append(earlier)
        _record.emit_llm_event(
            LLM_END,
            name=record.model,
            attributes=attributes,
            severity=Severity.LOW,
            category=category.value,
        )

    def _recovered(self, call: _Call, model: str | None) -> None:
        action = (
            f"fallback: answered by {model}"
            if model is not None
            else f"retried: attempt {call.attempts} succeeded"
        )
        for tracker, failure_id in call.failures or ():
            tracker.mark_recovered(failure_id, action)
        call.failures = None

    def _on_stream_end(
        self, accumulator: StreamAccumulator, record: CallRecord, completed: bool
    ) -> None:
        attributes = accumulator.end_attributes(record, completed=completed)
        _record.emit_llm_event(LLM_END, name=record.model, attributes=attributes)

    # --------------------------------------------------------------- streams
    def _watch_stream(self, stream: openai.Stream[Any], record: CallRecord) -> None:
        # The caller gets the SDK's own stream object; only its chunk iterator is
        # wrapped (and close(), so that a stream closed early is recorded at once
        # rather than when the garbage collector finds it).
        observed = self._observed_chunks(stream._iterator, record)
        stream._iterator = observed
        close = stream.close

        @functools.wraps(close)
        def close_observed() -> None:
            try:
                observed.close()
            finally:
                close()

        stream.close = close_observed  # type: ignore[method-assign]

    def _watch_astream(self, stream: openai.AsyncStream[Any], record: CallRecord) -> None:
        observed = self._aobserved_chunks(stream._iterator, record)
        stream._iterator = observed
        close = stream.close

        @functools.wraps(close)
        async def close_observed() -> None:
            try:
                await observed.aclose()
            finally:
                await close()

        stream.close = close_observed  # type: ignore[method-assign]

    def _observed_chunks(
        self, chunks: Iterator[Any], record: CallRecord
    ) -> Generator[Any, None, None]:
        accumulator = StreamAccumulator(capture_content=self.capture_content)
        completed = failed = False
        try:
            for chunk in chunks:
                accumulator.add(chunk, record)
                yield chunk
            completed = True
        except Exception as exc:
            failed = True
            self.observe_essential(self._on_error, record, exc, None)
            raise
        finally:
            # Ended, or abandoned by the caller (closed, or dropped before its end).
            if not failed:
                self.observe_essential(self._on_stream_end, accumulator, record, completed)

    async def _aobserved_chunks(
        self, chunks: AsyncIterator[Any], record: CallRecord
    ) -> AsyncGenerator[Any, None]:
        accumulator = StreamAccumulator(capture_content=self.capture_content)
        completed = failed = False
        try:
            async for chunk in chunks:
                accumulator.add(chunk, record)
                yield chunk
            completed = True
        except Exception as exc:
            failed = True
            self.observe_essential(self._on_error, record, exc, None)
            raise
        finally:
            if not failed:
                self.observe_essential(self._on_stream_end, accumulator, record, completed)


# ------------------------------------------------------------------ the entry point
def _seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        return float(value)
    raise ConfigurationError(
        f"timeout must be seconds > 0 (a number or a timedelta) or None, got {value!r}; "
        "it is sent as each request's own timeout, so a slow answer raises APITimeoutError"
    )


def _retry_policy(retry: object) -> Retry | None:
    if retry is None or retry is False:
        return None
    if retry is True:
        return openai_retry()
    if isinstance(retry, int) and not isinstance(retry, bool):
        if retry < 1:
            raise ConfigurationError(
                f"retry={retry} makes no sense: give the number of attempts (>= 1, the first "
                "included), True for the defaults, or a Retry such as openai_retry(attempts=4)"
            )
        return openai_retry(attempts=retry)
    if isinstance(retry, Retry):
        return retry
    raise ConfigurationError(
        f"retry must be None, True, a number of attempts or a Retry "
        f"(for example openai_retry(attempts=4)), got {retry!r}"
    )


def _model_names(models: object) -> tuple[str, ...]:
    if isinstance(models, str) or not isinstance(models, Sequence):
        raise ConfigurationError(
            f"fallback_models must be a list of model names, e.g. "
            f"fallback_models=['gpt-4o-mini'], got {models!r}"
        )
    for model in models:
        if not isinstance(model, str) or not model:
            raise ConfigurationError(
                f"fallback_models must hold non-empty model names, got {model!r} in {models!r}"
            )
    return tuple(models)


def instrument_openai(
    client: openai.OpenAI | openai.AsyncOpenAI,
    *,
    retry: Retry | int | bool | None = None,
    fallback_models: Sequence[str] = (),
    timeout: float | timedelta | None = None,
    breaker: CircuitBreaker | str | None = None,
    config: RobustConfig | None = None,
    capture_content: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> InstrumentationHandle:
    """Observe one OpenAI client's ``chat.completions.create`` calls, sync or async.

    With no options it only observes: every call is an ``llm.start``/``llm.end``
    pair with model, tokens, finish reasons and latency, and every error goes to the
    failure tracker; what the call returns or raises is unchanged. Options switch
    protection on: ``retry`` (``True``, a number of attempts, or a :class:`Retry`
    such as :func:`openai_retry`; the SDK's own retries are then turned off for these
    calls), ``fallback_models`` (tried in order when the model keeps failing),
    ``timeout`` (seconds per request, unless the call passes its own) and ``breaker``
    (a :class:`CircuitBreaker` or a name in the shared registry). ``capture_content``
    records prompts and answers (off by default: they may hold personal data).
    ``clock`` drives the instrumentor's health timing (tests use a fake).
    """
    if not isinstance(client, openai.OpenAI | openai.AsyncOpenAI):
        raise ConfigurationError(
            "instrument_openai needs an openai.OpenAI or openai.AsyncOpenAI client, e.g. "
            f"instrument_openai(OpenAI()), got {type(client).__name__}: {client!r:.80}"
        )
    if not isinstance(capture_content, bool):
        raise ConfigurationError(f"capture_content must be True or False, got {capture_content!r}")
    if breaker is not None and not isinstance(breaker, CircuitBreaker | str):
        raise ConfigurationError(
            f"breaker must be a CircuitBreaker or the name of one, got {breaker!r}"
        )
    instrumentor = OpenAIInstrumentor(
        client,
        retry=_retry_policy(retry),
        fallback_models=_model_names(fallback_models),
        request_timeout=_seconds(timeout),
        breaker=breaker,
        config=config,
        capture_content=capture_content,
        clock=clock,
    )
    return instrumentor.instrument()
