"""Seed 001's ``ToolCircuitBreaker``: one circuit per tool, checked and fed by hand.

The seed's loop — ``if breaker.is_open(tool): skip``, run the tool, then
``record_success(tool)`` or ``record_failure(tool)`` — keeps working, but each
tool gets a real :class:`CircuitBreaker` underneath (made on first use), with its
events, status and optional shared state.

Differences from the seed's sketch, on purpose:

* ``failure_threshold`` failures *in a row* open the circuit (a success in between
  starts the count again); the seed also forgot failures older than ``timeout``.
* After ``timeout`` (alias ``recovery_timeout``) the circuit is half-open rather
  than simply closed: the next recorded outcome decides — a success closes it, a
  failure opens it for another ``timeout``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.resilience._breaker import BreakerStateStore, CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import OPEN

R = TypeVar("R")

_DEFAULT_THRESHOLD = 5
_DEFAULT_TIMEOUT = 60.0


class ToolCircuitBreaker:
    """A circuit breaker per tool name, with the seed's ``is_open`` / ``record_*`` API.

    ``failure_threshold`` consecutive failures open a tool's circuit for ``timeout``
    seconds (``recovery_timeout`` is the same setting). For finer rules pass a full
    ``config`` instead; ``store`` shares the circuits between processes.
    """

    def __init__(
        self,
        *,
        failure_threshold: int | None = None,
        timeout: float | timedelta | None = None,
        recovery_timeout: float | timedelta | None = None,
        config: CircuitBreakerConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        store: BreakerStateStore | None = None,
    ) -> None:
        if timeout is not None and recovery_timeout is not None and timeout != recovery_timeout:
            raise ConfigurationError(
                f"timeout={timeout!r} and recovery_timeout={recovery_timeout!r} are the same "
                "setting (how long a tool's circuit stays open); give one of them"
            )
        wait = timeout if timeout is not None else recovery_timeout
        if config is not None:
            if failure_threshold is not None or wait is not None:
                raise ConfigurationError(
                    "give either config or failure_threshold/timeout, not both: "
                    "config already says when a circuit opens and for how long"
                )
        else:
            config = CircuitBreakerConfig(
                failure_threshold=(
                    _DEFAULT_THRESHOLD if failure_threshold is None else failure_threshold
                ),
                recovery_timeout=_DEFAULT_TIMEOUT if wait is None else wait,
                # One trial call decides, as the seed's "reset after timeout" suggests.
                half_open_max_calls=1,
            )
        self.config = config
        self._clock = clock
        self._store = store
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def breaker(self, tool_name: str) -> CircuitBreaker:
        """The circuit breaker of ``tool_name`` (made on first use)."""
        breaker = self._breakers.get(tool_name)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(tool_name)
                if breaker is None:
                    breaker = CircuitBreaker(
                        tool_name, self.config, clock=self._clock, store=self._store
                    )
                    self._breakers[tool_name] = breaker
        return breaker

    def is_open(self, tool_name: str) -> bool:
        """True while calls to ``tool_name`` should be skipped.

        Once the open period is over this says False (the circuit is half-open):
        make the call and record how it went.
        """
        return self.breaker(tool_name).state is OPEN

    def record_success(self, tool_name: str) -> None:
        """``tool_name`` worked: resets its run of failures, closes a half-open circuit."""
        self.breaker(tool_name).record_success()

    def record_failure(self, tool_name: str, exc: BaseException | None = None) -> None:
        """``tool_name`` failed (with ``exc``, the config's exception lists apply)."""
        self.breaker(tool_name).record_failure(exc)

    def call(self, tool_name: str, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn`` through ``tool_name``'s breaker (raises CircuitOpenError when open)."""
        return self.breaker(tool_name).call(fn, *args, **kwargs)

    async def acall(
        self, tool_name: str, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> R:
        """Await ``fn`` through ``tool_name``'s breaker."""
        return await self.breaker(tool_name).acall(fn, *args, **kwargs)

    def reset(self, tool_name: str | None = None) -> None:
        """Close one tool's circuit, or every tool's."""
        with self._lock:
            breakers = list(self._breakers.values())
        for breaker in breakers:
            if tool_name is None or breaker.name == tool_name:
                breaker.reset()

    def get_status(self) -> dict[str, dict[str, Any]]:
        """``get_status()`` of every tool's breaker, by tool name."""
        with self._lock:
            breakers = dict(self._breakers)
        return {name: breaker.get_status() for name, breaker in breakers.items()}

    @property
    def tools(self) -> list[str]:
        """The tools seen so far."""
        with self._lock:
            return list(self._breakers)
