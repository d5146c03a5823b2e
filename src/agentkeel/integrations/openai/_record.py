"""What one OpenAI call is recorded as: the attributes of its start and end events.

Everything here reads the SDK's objects defensively (``getattr`` with defaults):
an OpenAI-compatible server may leave out ``usage`` or ``finish_reason``, and a raw
response (``with_raw_response``) is not a ``ChatCompletion`` at all. Reading must
never be why a call fails; the instrumentor runs these functions under ``observe``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, EventType, Severity
from agentkeel.integrations.openai._errors import openai_error_category, openai_retry_after

__all__ = [
    "CallRecord",
    "StreamAccumulator",
    "emit_llm_event",
    "end_attributes",
    "error_attributes",
    "start_attributes",
]

_MAX_CONTENT = 4000  # characters of prompt or completion kept when capturing content
_MAX_MESSAGE = 500
_REQUEST_PARAMETERS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
}
LLM_START = EventType.LLM_CALL_START.value
LLM_END = EventType.LLM_CALL_END.value


def emit_llm_event(
    event_type: str,
    *,
    name: str,
    attributes: dict[str, Any],
    severity: int = Severity.INFO,
    category: str | None = None,
) -> None:
    """Every event of this integration leaves through here (tests make it fail)."""
    get_pipeline().emit(
        event_type, name=name, severity=severity, category=category, attributes=attributes
    )


class CallRecord:
    """One attempt at one model: what was asked, and when."""

    __slots__ = ("attempt", "model", "requested_model", "started", "stream")

    def __init__(self, *, model: str, requested_model: str, attempt: int, stream: bool) -> None:
        self.model = model
        self.requested_model = requested_model
        self.attempt = attempt
        self.stream = stream
        self.started = time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def base(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": self.model,
            "attempt": self.attempt,
        }
        if self.stream:
            attributes["stream"] = True
        if self.model != self.requested_model:
            attributes["fallback_from"] = self.requested_model
        return attributes


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _content_of(messages: object) -> list[dict[str, str]]:
    """Chat messages as role/content pairs, bounded (for ``capture_content=True``)."""
    kept: list[dict[str, str]] = []
    budget = _MAX_CONTENT
    for message in messages if isinstance(messages, list | tuple) else ():
        if not isinstance(message, Mapping) or budget <= 0:
            continue
        content = message.get("content")
        text = content if isinstance(content, str) else repr(content)
        text = _truncate(text, budget)
        budget -= len(text)
        kept.append({"role": str(message.get("role", "")), "content": text})
    return kept


def start_attributes(
    record: CallRecord, kwargs: Mapping[str, Any], *, capture_content: bool
) -> dict[str, Any]:
    attributes = record.base()
    for parameter, key in _REQUEST_PARAMETERS.items():
        value = kwargs.get(parameter)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[key] = value
    if capture_content:
        attributes["gen_ai.input.messages"] = _content_of(kwargs.get("messages"))
    return attributes


def _usage_attributes(usage: object, attributes: dict[str, Any]) -> None:
    if usage is None:
        return
    for source, key in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
    ):
        value = getattr(usage, source, None)
        if isinstance(value, int) and not isinstance(value, bool):
            attributes[key] = value


def end_attributes(record: CallRecord, result: object, *, capture_content: bool) -> dict[str, Any]:
    """The end event of a call that returned ``result`` (a ``ChatCompletion``, usually)."""
    attributes = record.base()
    attributes["duration_ms"] = record.elapsed_ms()
    attributes["status"] = "succeeded"
    model = getattr(result, "model", None)
    if isinstance(model, str):
        attributes["gen_ai.response.model"] = model
    response_id = getattr(result, "id", None)
    if isinstance(response_id, str):
        attributes["gen_ai.response.id"] = response_id
    _usage_attributes(getattr(result, "usage", None), attributes)
    choices = getattr(result, "choices", None)
    if isinstance(choices, list):
        reasons = [str(getattr(c, "finish_reason", None)) for c in choices]
        attributes["gen_ai.response.finish_reasons"] = reasons
        if capture_content:
            texts = [getattr(getattr(c, "message", None), "content", None) for c in choices]
            attributes["gen_ai.output.messages"] = [
                _truncate(t, _MAX_CONTENT) for t in texts if isinstance(t, str)
            ]
    return attributes


def error_attributes(record: CallRecord, error: BaseException) -> tuple[dict[str, Any], Category]:
    """The end event of a call that raised ``error``, and the error's category."""
    category = openai_error_category(error)
    attributes = record.base()
    attributes["duration_ms"] = record.elapsed_ms()
    attributes["status"] = "failed"
    attributes["error_type"] = type(error).__name__
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
        message = f"<unprintable {type(error).__name__}>"
    attributes["error_message"] = _truncate(message, _MAX_MESSAGE)
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        attributes["http.response.status_code"] = status
    retry_after = openai_retry_after(error)
    if retry_after is not None:
        attributes["retry_after_s"] = retry_after
    return attributes, category


class StreamAccumulator:
    """Reads a stream's chunks as they pass: model, usage, finish reasons, first token.

    :meth:`add` runs once per chunk on the caller's path, so it is cheap and never
    raises: the first error it meets is kept in :attr:`broken` (and reported once,
    when the stream ends) and accumulation stops.
    """

    __slots__ = (
        "broken",
        "chunks",
        "finish_reasons",
        "first_token_ms",
        "model",
        "response_id",
        "texts",
        "usage",
    )

    def __init__(self, *, capture_content: bool) -> None:
        self.chunks = 0
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: object = None
        self.finish_reasons: dict[int, str] = {}
        self.first_token_ms: float | None = None
        self.texts: dict[int, list[str]] | None = {} if capture_content else None
        self.broken: Exception | None = None

    def add(self, chunk: object, record: CallRecord) -> None:
        if self.broken is not None:
            return
        try:
            self.chunks += 1
            if self.model is None:
                model = getattr(chunk, "model", None)
                self.model = model if isinstance(model, str) and model else None
                response_id = getattr(chunk, "id", None)
                self.response_id = response_id if isinstance(response_id, str) else None
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                self.usage = usage
            for choice in getattr(chunk, "choices", None) or ():
                index = getattr(choice, "index", 0)
                content = getattr(getattr(choice, "delta", None), "content", None)
                if content:
                    if self.first_token_ms is None:
                        self.first_token_ms = record.elapsed_ms()
                    if self.texts is not None:
                        self.texts.setdefault(index, []).append(content)
                reason = getattr(choice, "finish_reason", None)
                if reason is not None:
                    self.finish_reasons[index] = str(reason)
        except Exception as exc:  # noqa: BLE001 - reported when the stream ends
            self.broken = exc

    def end_attributes(self, record: CallRecord, *, completed: bool) -> dict[str, Any]:
        if self.broken is not None:
            raise self.broken  # observe() counts it; the stream itself is unharmed
        attributes = record.base()
        attributes["duration_ms"] = record.elapsed_ms()
        attributes["status"] = "succeeded"
        attributes["stream_chunks"] = self.chunks
        if not completed:
            attributes["stream_completed"] = False  # the caller stopped reading early
        if self.model is not None:
            attributes["gen_ai.response.model"] = self.model
        if self.response_id is not None:
            attributes["gen_ai.response.id"] = self.response_id
        if self.first_token_ms is not None:
            attributes["time_to_first_token_ms"] = self.first_token_ms
        _usage_attributes(self.usage, attributes)
        if self.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = [
                self.finish_reasons[i] for i in sorted(self.finish_reasons)
            ]
        if self.texts is not None:
            attributes["gen_ai.output.messages"] = [
                _truncate("".join(self.texts[i]), _MAX_CONTENT) for i in sorted(self.texts)
            ]
        return attributes
