"""Exceptions raised by the resilience policies themselves.

The agent's own exceptions pass through every policy unchanged; when retries run
out, the last original exception is re-raised, never wrapped.
"""

from __future__ import annotations

from agentkeel._errors import KeelError


class ResilienceError(KeelError):
    """A policy refused or cut a call."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker is open: the call was not attempted.

    ``retry_after`` is how many seconds until the breaker lets a trial call through.
    """

    keel_category = "network"  # the dependency behind the breaker is failing

    def __init__(self, name: str, retry_after: float, message: str | None = None) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(
            message
            or f"circuit breaker {name!r} is open; calls are refused for {retry_after:.2f} s more"
        )


class ToolTimeoutError(ResilienceError, TimeoutError):
    """A call took longer than its timeout. Also a ``TimeoutError``."""

    def __init__(self, name: str, timeout: float, message: str | None = None) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(message or f"{name!r} did not finish within {timeout:g} s")


class BulkheadFullError(ResilienceError):
    """Too many calls are running at once and none finished within the wait allowed."""

    keel_category = "resource"


class RateLimitExceededError(ResilienceError):
    """The rate limiter has no token for this call; ``retry_after`` says when one is due."""

    keel_category = "rate_limit"

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(f"rate limit {name!r} exceeded; next call allowed in {retry_after:.3f} s")


class IsolationError(ResilienceError):
    """An isolated call failed in its subprocess (crash, bad output, or the tool raised)."""
