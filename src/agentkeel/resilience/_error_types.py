"""The recovery system's error types, and how an exception is sorted into one.

The failure-tracking categories (:class:`agentkeel.events.Category`) say *what*
broke, at the grain an operator reads in a report. Retry and recovery decisions
use a coarser vocabulary, the one users of the error-handling system already know:

=====================  =========================================================
error type             from the tracking categories
=====================  =========================================================
COMMUNICATION_ERROR    network, rate_limit
TIMEOUT_ERROR          timeout
VALIDATION_ERROR       validation, parsing
TOOL_FAILURE           tool_not_found
RESOURCE_ERROR         resource
CONFIGURATION_ERROR    configuration, auth (bad credentials are configuration)
INFINITE_LOOP          loop
AGENT_FAILURE          llm, state (the agent or its model misbehaved)
UNKNOWN_ERROR          unknown
=====================  =========================================================

An exception can also say for itself: an ``error_type`` attribute holding an
:class:`ErrorType` (or its value) wins over the classification, and so does a
mapping from exception classes given by the caller (``overrides``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from agentkeel.events import Category
from agentkeel.tracking import classify_error

__all__ = ["ErrorType", "classify_error_type", "is_transient"]


class ErrorType(enum.StrEnum):
    """What kind of failure happened, as retry and recovery see it."""

    AGENT_FAILURE = "agent_failure"
    TOOL_FAILURE = "tool_failure"
    COMMUNICATION_ERROR = "communication_error"
    TIMEOUT_ERROR = "timeout_error"
    VALIDATION_ERROR = "validation_error"
    INFINITE_LOOP = "infinite_loop"
    RESOURCE_ERROR = "resource_error"
    CONFIGURATION_ERROR = "configuration_error"
    UNKNOWN_ERROR = "unknown_error"


_FROM_CATEGORY: dict[Category, ErrorType] = {
    Category.NETWORK: ErrorType.COMMUNICATION_ERROR,
    Category.RATE_LIMIT: ErrorType.COMMUNICATION_ERROR,
    Category.TIMEOUT: ErrorType.TIMEOUT_ERROR,
    Category.VALIDATION: ErrorType.VALIDATION_ERROR,
    Category.PARSING: ErrorType.VALIDATION_ERROR,
    Category.TOOL_NOT_FOUND: ErrorType.TOOL_FAILURE,
    Category.RESOURCE: ErrorType.RESOURCE_ERROR,
    Category.CONFIGURATION: ErrorType.CONFIGURATION_ERROR,
    Category.AUTH: ErrorType.CONFIGURATION_ERROR,
    Category.LOOP: ErrorType.INFINITE_LOOP,
    Category.LLM: ErrorType.AGENT_FAILURE,
    Category.STATE: ErrorType.AGENT_FAILURE,
    Category.UNKNOWN: ErrorType.UNKNOWN_ERROR,
}
_VALUES = {t.value: t for t in ErrorType}


def error_type_of_category(category: Category) -> ErrorType:
    """The error type a tracking category belongs to."""
    return _FROM_CATEGORY.get(category, ErrorType.UNKNOWN_ERROR)


def _tagged(exc: BaseException) -> ErrorType | None:
    try:
        tag = getattr(exc, "error_type", None)
    except Exception:  # noqa: BLE001 - a raising property is just "no tag"
        return None
    if isinstance(tag, ErrorType):
        return tag
    # Only our own values count: many libraries use ``error_type`` for their own strings.
    return _VALUES.get(tag) if isinstance(tag, str) else None


def classify_error_type(
    exc: BaseException,
    overrides: Mapping[type[Any], ErrorType] | None = None,
) -> ErrorType:
    """The :class:`ErrorType` of ``exc``. Never raises.

    Tried in order: ``overrides`` (the first class in ``exc``'s MRO that it names), an
    ``error_type`` attribute on the exception, then :func:`agentkeel.tracking.classify_error`.
    """
    if overrides:
        for cls in type(exc).__mro__:
            found = overrides.get(cls)
            if found is not None:
                return found
    tag = _tagged(exc)
    if tag is not None:
        return tag
    return _FROM_CATEGORY.get(classify_error(exc).category, ErrorType.UNKNOWN_ERROR)


def classify_in_full(
    exc: BaseException, overrides: Mapping[type[Any], ErrorType] | None = None
) -> tuple[ErrorType, Category]:
    """The error type and the tracking category (for events), classifying only once."""
    category = classify_error(exc).category
    if overrides:
        for cls in type(exc).__mro__:
            found = overrides.get(cls)
            if found is not None:
                return found, category
    tag = _tagged(exc)
    if tag is not None:
        return tag, category
    return _FROM_CATEGORY.get(category, ErrorType.UNKNOWN_ERROR), category


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may help: rate limits, timeouts and network errors.

    A ready-made ``on=`` predicate for :class:`Retry` when the exact exception
    classes are not known (``Retry(on=is_transient)``).
    """
    return classify_error(exc).retryable
