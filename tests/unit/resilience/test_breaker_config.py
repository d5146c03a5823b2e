"""CircuitBreakerConfig: validation at construction, and the seed-style names."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import pytest

from agentkeel import ConfigurationError
from agentkeel.resilience._breaker_config import CircuitBreakerConfig


def test_defaults_follow_the_documented_values() -> None:
    r = CircuitBreakerConfig().resolved
    assert r.failure_rate_threshold == 0.5
    assert r.minimum_calls == 10
    assert not r.time_window
    assert r.window_size == 100
    assert math.isinf(r.slow_call_duration)
    assert r.slow_call_rate_threshold == 1.0
    assert r.wait_in_open == 30.0
    assert r.half_open_max_calls == 3
    assert r.success_threshold == 3  # default: every trial call must succeed
    assert r.record_exceptions == (Exception,)
    assert r.ignore_exceptions == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold must be a number between 0"),
        ({"failure_rate_threshold": -0.1}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 0}, "must be above 0"),
        ({"slow_call_rate_threshold": 2}, "slow_call_rate_threshold"),
        ({"slow_call_rate_threshold": float("nan")}, "slow_call_rate_threshold"),
        ({"minimum_calls": 0}, "minimum_calls must be an integer >= 1"),
        ({"minimum_calls": 2.5}, "minimum_calls"),
        ({"window_size": 0}, "window_size (calls)"),
        ({"sliding_window": "sliding"}, "sliding_window must be 'count' or 'time'"),
        ({"sliding_window": "time", "window_size": timedelta(seconds=1.5)}, "whole number"),
        ({"window_size": timedelta(seconds=10)}, "only makes sense with sliding_window='time'"),
        ({"wait_in_open": -1}, "wait_in_open must be zero or positive"),
        ({"wait_in_open": "30s"}, "wait_in_open must be a number of seconds or a timedelta"),
        ({"slow_call_duration": 0}, None),  # zero is allowed: every call is slow
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"success_threshold": 4}, "success_threshold (4) is larger than half_open_max_calls"),
        ({"record_exceptions": "ValueError"}, "record_exceptions must be an exception class"),
        ({"ignore_exceptions": (KeyError, 3)}, "ignore_exceptions must hold exception classes"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"max_memory_usage": -5}, "max_memory_usage"),
        ({"max_cpu_usage": 0}, "max_cpu_usage must be a positive fraction"),
        ({"timeout": -2}, "timeout"),
    ],
)
def test_invalid_settings_fail_at_construction_with_a_value_error(
    kwargs: dict[str, object], message: str | None
) -> None:
    if message is None:
        CircuitBreakerConfig(**kwargs)  # type: ignore[arg-type]
        return
    with pytest.raises(ConfigurationError) as info:
        CircuitBreakerConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)


def test_configuration_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        CircuitBreakerConfig(0.5)  # type: ignore[misc]
    config = CircuitBreakerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.minimum_calls = 3  # type: ignore[misc]


def test_durations_accept_timedelta_and_compare_equal_to_seconds() -> None:
    a = CircuitBreakerConfig(wait_in_open=timedelta(seconds=5), slow_call_duration=0.25)
    b = CircuitBreakerConfig(wait_in_open=5, slow_call_duration=timedelta(milliseconds=250))
    assert a == b
    assert a.wait_in_open == 5.0
    assert a.resolved.slow_call_duration == 0.25


def test_a_single_exception_class_becomes_a_tuple() -> None:
    config = CircuitBreakerConfig(record_exceptions=OSError, ignore_exceptions=[KeyError])
    assert config.record_exceptions == (OSError,)
    assert config.ignore_exceptions == (KeyError,)


def test_count_window_caps_minimum_calls_at_window_size_like_resilience4j() -> None:
    assert CircuitBreakerConfig(window_size=5).resolved.minimum_calls == 5
    timed = CircuitBreakerConfig(sliding_window="time", window_size=5, minimum_calls=20)
    assert timed.resolved.minimum_calls == 20


def test_failure_threshold_means_that_many_consecutive_failures() -> None:
    r = CircuitBreakerConfig(failure_threshold=3).resolved
    assert (r.window_size, r.minimum_calls, r.failure_rate_threshold, r.time_window) == (
        3,
        3,
        1.0,
        False,
    )


def test_failure_threshold_conflicting_with_explicit_rate_settings_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="failure_threshold=3 and minimum_calls=7"):
        CircuitBreakerConfig(failure_threshold=3, minimum_calls=7)
    with pytest.raises(ConfigurationError, match="sliding_window"):
        CircuitBreakerConfig(failure_threshold=3, sliding_window="time")
    # Agreeing values are no conflict, so dataclasses.replace keeps working.
    config = CircuitBreakerConfig(failure_threshold=3, window_size=3, failure_rate_threshold=1.0)
    assert dataclasses.replace(config, wait_in_open=2).resolved.window_size == 3


def test_seed_000_names_map_onto_resilience4j_settings() -> None:
    # The "optimized" configuration of seed 000, verbatim.
    config = CircuitBreakerConfig(
        failure_threshold=3,
        recovery_timeout=15.0,
        success_threshold=2,
        timeout=5.0,
        max_response_time=2.0,
        max_memory_usage=50 * 1024 * 1024,
        max_cpu_usage=0.5,
    )
    r = config.resolved
    assert r.wait_in_open == 15.0
    assert r.success_threshold == 2
    assert r.half_open_max_calls == 3
    assert r.failure_duration == 5.0
    assert r.slow_call_duration == 2.0
    assert r.max_memory_usage == 50 * 1024 * 1024
    assert r.max_cpu_usage == 0.5


def test_alias_and_native_name_must_agree() -> None:
    with pytest.raises(ConfigurationError, match=r"recovery_timeout=10\.0 and wait_in_open=20\.0"):
        CircuitBreakerConfig(recovery_timeout=10, wait_in_open=20)
    with pytest.raises(ConfigurationError, match="max_response_time"):
        CircuitBreakerConfig(max_response_time=1, slow_call_duration=2)
    assert CircuitBreakerConfig(recovery_timeout=10, wait_in_open=10).resolved.wait_in_open == 10


def test_summary_and_fingerprint_describe_the_effective_rules() -> None:
    a = CircuitBreakerConfig(failure_threshold=4).resolved
    b = CircuitBreakerConfig(window_size=4, minimum_calls=4, failure_rate_threshold=1.0).resolved
    assert a.summary() == b.summary()
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != CircuitBreakerConfig().resolved.fingerprint()
    assert a.summary()["slow_call_duration"] is None
