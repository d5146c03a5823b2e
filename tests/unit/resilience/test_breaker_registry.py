"""The named registry (seed 000) and ToolCircuitBreaker (seed 001)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fake_clock import FakeClock

from agentkeel import ConfigurationError
from agentkeel.resilience._breaker import CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import CircuitState
from agentkeel.resilience._breaker_registry import (
    CircuitBreakerRegistry,
    default_registry,
    get_all_circuit_breakers,
    get_circuit_breaker,
    reset_all_circuit_breakers,
)
from agentkeel.resilience._errors import CircuitOpenError
from agentkeel.resilience._tool_breaker import ToolCircuitBreaker


@pytest.fixture(autouse=True)
def _empty_default_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


def boom() -> None:
    raise ConnectionError("down")


# ---------------------------------------------------------------------- registry
def test_same_name_same_breaker() -> None:
    a = get_circuit_breaker("langchain_main")
    assert get_circuit_breaker("langchain_main") is a
    assert isinstance(a, CircuitBreaker)
    assert get_all_circuit_breakers() == {"langchain_main": a}


def test_same_config_is_fine_another_config_is_an_error() -> None:
    config = CircuitBreakerConfig(failure_threshold=10, recovery_timeout=30.0, timeout=60.0)
    a = get_circuit_breaker("svc", config)
    assert (
        get_circuit_breaker(
            "svc", CircuitBreakerConfig(failure_threshold=10, recovery_timeout=30, timeout=60)
        )
        is a
    )
    assert get_circuit_breaker("svc") is a
    with pytest.raises(
        ConfigurationError, match="'svc' already exists with another config"
    ) as info:
        get_circuit_breaker("svc", CircuitBreakerConfig(failure_threshold=3))
    assert isinstance(info.value, ValueError)


def test_seed_000_health_check_loop_works() -> None:
    get_circuit_breaker("ok_service")
    bad = get_circuit_breaker("bad_service", CircuitBreakerConfig(failure_threshold=2))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            bad.call(boom)
    open_breakers = [
        name
        for name, breaker in get_all_circuit_breakers().items()
        if breaker.get_status()["state"] == "open"
    ]
    assert open_breakers == ["bad_service"]
    for breaker in get_all_circuit_breakers().values():
        status = breaker.get_status()
        assert 0.0 <= status["metrics"]["failure_rate"] <= 1.0
        assert status["last_state_change"]
    reset_all_circuit_breakers()
    assert bad.state is CircuitState.CLOSED


def test_registry_of_ones_own_with_defaults() -> None:
    clock = FakeClock(50.0)
    registry = CircuitBreakerRegistry(
        default_config=CircuitBreakerConfig(failure_threshold=1), clock=clock
    )
    breaker = registry.get("x")
    assert breaker.config.failure_threshold == 1
    assert "x" in registry
    assert len(registry) == 1
    assert registry.remove("x") is breaker
    assert "x" not in registry
    assert registry.remove("x") is None
    registry.configure(default_config=CircuitBreakerConfig(failure_threshold=7))
    assert registry.get("y").config.failure_threshold == 7
    assert "1 breakers" in repr(registry)
    assert get_all_circuit_breakers() == {}  # the default registry is another one


def test_registry_is_thread_safe() -> None:
    registry = CircuitBreakerRegistry()
    got: list[CircuitBreaker] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        got.append(registry.get("shared"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in got}) == 1


# ---------------------------------------------------------------------- ToolCircuitBreaker
def test_tool_breaker_follows_the_seed_loop() -> None:
    clock = FakeClock(50.0)
    breakers = ToolCircuitBreaker(failure_threshold=3, timeout=60, clock=clock)
    assert not breakers.is_open("search")
    for _ in range(3):
        breakers.record_failure("search")
    assert breakers.is_open("search")
    assert not breakers.is_open("calculator")  # one circuit per tool
    clock.now += 59
    assert breakers.is_open("search")
    clock.now += 1
    assert not breakers.is_open("search")  # half-open: try again
    breakers.record_success("search")
    assert breakers.breaker("search").state is CircuitState.CLOSED
    assert sorted(breakers.tools) == ["calculator", "search"]


def test_tool_breaker_success_resets_the_run_of_failures() -> None:
    breakers = ToolCircuitBreaker(failure_threshold=2, clock=FakeClock(50.0))
    breakers.record_failure("t")
    breakers.record_success("t")
    breakers.record_failure("t")
    assert not breakers.is_open("t")
    breakers.record_failure("t")
    assert breakers.is_open("t")


def test_tool_breaker_failed_trial_reopens() -> None:
    clock = FakeClock(50.0)
    breakers = ToolCircuitBreaker(failure_threshold=1, recovery_timeout=10, clock=clock)
    breakers.record_failure("t")
    clock.now += 10
    assert not breakers.is_open("t")
    breakers.record_failure("t", ConnectionError("still down"))
    assert breakers.is_open("t")
    assert breakers.get_status()["t"]["metrics"]["failed_calls"] == 2
    breakers.reset("t")
    assert not breakers.is_open("t")


def test_tool_breaker_call_and_acall() -> None:
    import asyncio

    breakers = ToolCircuitBreaker(failure_threshold=1, clock=FakeClock(50.0))
    assert breakers.call("t", lambda x: x * 2, 4) == 8
    with pytest.raises(ConnectionError):
        breakers.call("t", boom)
    with pytest.raises(CircuitOpenError):
        breakers.call("t", lambda: 1)

    async def double(x: int) -> int:
        return x * 2

    assert asyncio.run(breakers.acall("u", double, 2)) == 4
    breakers.reset()
    assert breakers.call("t", lambda: 1) == 1


def test_tool_breaker_defaults_and_conflicts() -> None:
    r = ToolCircuitBreaker().config.resolved
    assert (r.window_size, r.failure_rate_threshold, r.wait_in_open, r.half_open_max_calls) == (
        5,
        1.0,
        60.0,
        1,
    )
    with pytest.raises(ConfigurationError, match="same setting"):
        ToolCircuitBreaker(timeout=5, recovery_timeout=6)
    with pytest.raises(ConfigurationError, match="either config or"):
        ToolCircuitBreaker(failure_threshold=2, config=CircuitBreakerConfig())
    custom = CircuitBreakerConfig(minimum_calls=4, window_size=4)
    assert ToolCircuitBreaker(config=custom).breaker("x").config is custom
