"""Named circuit breakers: one per name, the same object every time it is asked for.

``get_circuit_breaker("search")`` anywhere in the program returns one breaker,
so every caller of a dependency trips and heals the same circuit, and
``get_all_circuit_breakers()`` gives health checks the whole picture. Asking for
an existing name with a different config is an error: two parts of a program
silently disagreeing about a breaker's rules is a bug worth stopping at.
"""

from __future__ import annotations

import threading

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel.resilience._breaker import BreakerStateStore, CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig


class CircuitBreakerRegistry:
    """A thread-safe set of named breakers sharing a default config, clock and store."""

    def __init__(
        self,
        *,
        default_config: CircuitBreakerConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        store: BreakerStateStore | None = None,
    ) -> None:
        self.default_config = default_config or CircuitBreakerConfig()
        self._clock = clock
        self._store = store
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def configure(
        self,
        *,
        default_config: CircuitBreakerConfig | None = None,
        clock: Clock | None = None,
        store: BreakerStateStore | None = None,
    ) -> None:
        """Change the defaults for breakers made from now on (existing ones keep theirs).

        ``default_registry().configure(store=RedisBreakerStore(url))`` shares every
        breaker from :func:`get_circuit_breaker` through Redis.
        """
        with self._lock:
            if default_config is not None:
                self.default_config = default_config
            if clock is not None:
                self._clock = clock
            if store is not None:
                self._store = store

    def get(self, name: str, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
        """The breaker called ``name``, made with ``config`` (or the default) if new.

        ``config=None`` accepts whatever the existing breaker has; any other config
        must equal it, or :class:`ConfigurationError` (a ``ValueError``) is raised.
        """
        breaker = self._breakers.get(name)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(name)
                if breaker is None:
                    breaker = CircuitBreaker(
                        name,
                        config or self.default_config,
                        clock=self._clock,
                        store=self._store,
                    )
                    self._breakers[name] = breaker
                    return breaker
        if config is not None and config != breaker.config:
            raise ConfigurationError(
                f"circuit breaker {name!r} already exists with another config:\n"
                f"  existing:  {breaker.config}\n  requested: {config}\n"
                "pass config=None to get the existing one, or use another name"
            )
        return breaker

    def get_all(self) -> dict[str, CircuitBreaker]:
        """A copy of name → breaker, in the order they were made."""
        with self._lock:
            return dict(self._breakers)

    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker ``name`` (it keeps working for whoever holds it)."""
        with self._lock:
            return self._breakers.pop(name, None)

    def reset_all(self) -> None:
        """Close every breaker and empty its window and counters."""
        for breaker in self.get_all().values():
            breaker.reset()

    def clear(self) -> None:
        """Forget every breaker (tests start afresh)."""
        with self._lock:
            self._breakers.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)

    def __repr__(self) -> str:
        return f"CircuitBreakerRegistry({len(self)} breakers)"


_default_registry = CircuitBreakerRegistry()


def default_registry() -> CircuitBreakerRegistry:
    """The process-wide registry behind :func:`get_circuit_breaker`."""
    return _default_registry


def get_circuit_breaker(name: str, config: CircuitBreakerConfig | None = None) -> CircuitBreaker:
    """The process-wide breaker called ``name``, made on first use (see the registry)."""
    return _default_registry.get(name, config)


def get_all_circuit_breakers() -> dict[str, CircuitBreaker]:
    """Every breaker made through :func:`get_circuit_breaker`, by name."""
    return _default_registry.get_all()


def reset_all_circuit_breakers() -> None:
    """Close and empty every breaker of the process-wide registry."""
    _default_registry.reset_all()
