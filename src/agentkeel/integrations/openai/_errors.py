"""What an OpenAI SDK error means: retry it?, after how long?, which failure category?

These are plain functions so that users with their own retry loop can use them too::

    except openai.APIError as exc:
        if retryable_openai_error(exc):
            time.sleep(openai_retry_after(exc) or backoff)

The retryable set is the SDK's own: rate limits (429), request timeouts (408), lock
conflicts (409), server errors (5xx), timeouts and connection errors; an
``x-should-retry`` header from the server overrides the status, as it does in the SDK.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import openai
import pydantic

from agentkeel._clock import SYSTEM_CLOCK
from agentkeel.events import Category
from agentkeel.resilience import Backoff, Retry, exponential
from agentkeel.tracking import classify_error, parse_retry_after

__all__ = [
    "FALLBACK_ERRORS",
    "openai_error_category",
    "openai_retry",
    "openai_retry_after",
    "retryable_openai_error",
]

_RETRYABLE_STATUS = frozenset({408, 409, 429})

FALLBACK_ERRORS: tuple[type[BaseException], ...] = (
    openai.RateLimitError,
    openai.APIConnectionError,  # APITimeoutError is one
    openai.InternalServerError,  # every 5xx
    openai.NotFoundError,  # the model was retired or never existed
    openai.ConflictError,
)
"""Errors after which another model may answer (``fallback_models=``). A 400 or a 401
would fail the same way with any model, so they do not trigger a fallback."""


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code
    return None


def _header(exc: BaseException, name: str) -> str | None:
    response = getattr(exc, "response", None) if isinstance(exc, openai.APIStatusError) else None
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except Exception:  # noqa: BLE001 - an odd header container means "no header"
        return None
    return value if isinstance(value, str) else None


def retryable_openai_error(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed (the SDK's own rules).

    True for ``RateLimitError``, ``APITimeoutError``, ``APIConnectionError``,
    ``InternalServerError`` (any 5xx) and 408/409; an ``x-should-retry: true|false``
    response header overrides the status. Anything else — a 400, bad credentials, a
    body that does not parse, your own exceptions — is not retried.
    """
    if isinstance(exc, openai.APIConnectionError):
        return True
    status = _status(exc)
    if status is None:
        return False
    should_retry = _header(exc, "x-should-retry")
    if should_retry == "true":
        return True
    if should_retry == "false":
        return False
    return status in _RETRYABLE_STATUS or status >= 500


def openai_retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``Retry-After``.

    ``Retry-After`` may be seconds (fractions allowed) or an HTTP date. ``None`` when
    the error carries no such header (or is not an HTTP status error at all).
    """
    millis = parse_retry_after(_header(exc, "retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    return parse_retry_after(_header(exc, "retry-after"))


def openai_error_category(exc: BaseException) -> Category:
    """The failure category recorded for ``exc`` (see docs/integrations/openai.md)."""
    if isinstance(exc, openai.APITimeoutError):
        return Category.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return Category.NETWORK
    status = _status(exc)
    if status is not None:
        return _category_of_status(status)
    if isinstance(
        exc, openai.APIResponseValidationError | json.JSONDecodeError | pydantic.ValidationError
    ):
        return Category.PARSING  # the body was not what a chat completion looks like
    if isinstance(exc, openai.OpenAIError):
        # Finish-reason errors of parse(), an error event inside a stream: the model
        # or the provider misbehaved, not the network.
        return Category.LLM
    return classify_error(exc).category


_STATUS_CATEGORIES = {
    429: Category.RATE_LIMIT,
    408: Category.TIMEOUT,
    401: Category.AUTH,
    403: Category.AUTH,
    404: Category.CONFIGURATION,  # a model name or base URL that does not exist
    409: Category.NETWORK,  # a lock timeout on the provider's side: transient
}


def _category_of_status(status: int) -> Category:
    known = _STATUS_CATEGORIES.get(status)
    if known is not None:
        return known
    if status >= 500:
        return Category.NETWORK  # as agentkeel.tracking.classify_error files any 5xx
    if 400 <= status < 500:
        return Category.VALIDATION  # the request itself was wrong (400, 422 …)
    return Category.LLM


def openai_retry(
    *,
    attempts: int = 3,
    timeout: float | timedelta | None = 60.0,
    backoff: Backoff | None = None,
    **options: Any,
) -> Retry:
    """A :class:`~agentkeel.resilience.Retry` for OpenAI calls.

    It retries :func:`retryable_openai_error` errors, waits at least what
    :func:`openai_retry_after` asks, and backs off like the SDK (0.5 s doubling to
    8 s, with jitter). Every other :class:`Retry` option can be given (``budget=``,
    ``learner=``, ``on_retry=``, and ``clock=``/``sleep=``/``async_sleep=`` for tests).
    """
    options.setdefault("on", retryable_openai_error)
    options.setdefault("retry_after", openai_retry_after)
    options.setdefault("name", "openai.chat.completions")
    options.setdefault("clock", SYSTEM_CLOCK)
    return Retry(
        attempts=attempts,
        timeout=timeout,
        backoff=backoff if backoff is not None else exponential(initial=0.5, max=8.0),
        **options,
    )
