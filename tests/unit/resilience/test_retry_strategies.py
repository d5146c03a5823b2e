"""Backoff strategies, jitter, error types and the Retry-After extractor."""

from __future__ import annotations

import email.utils
import json
import random
import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkeel import ConfigurationError
from agentkeel.events import Category
from agentkeel.resilience._error_types import (
    ErrorType,
    classify_error_type,
    classify_in_full,
    error_type_of_category,
    is_transient,
)
from agentkeel.resilience._errors import CircuitOpenError, RateLimitExceededError
from agentkeel.resilience._retry_strategies import (
    Adaptive,
    Backoff,
    BackoffSum,
    Exponential,
    Fixed,
    Jitter,
    JitterMode,
    adaptive,
    default_retry_after,
    exponential,
    fixed,
    linear,
    uses_learning,
)

# -- backoffs --------------------------------------------------------------------


def test_exponential_grows_by_the_multiplier_up_to_max() -> None:
    backoff = exponential(initial=0.5, multiplier=3, max=10)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_exponential_defaults() -> None:
    backoff = exponential()
    assert backoff == Exponential(initial=0.1, multiplier=2.0, max=30.0)
    assert [backoff.delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]


def test_exponential_survives_huge_attempt_numbers() -> None:
    assert exponential(max=7).delay(100_000) == 7.0


def test_linear_grows_by_the_increment_up_to_max() -> None:
    backoff = linear(initial=1, increment=timedelta(seconds=2), max=6)
    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 3.0, 5.0, 6.0, 6.0]


def test_fixed_is_fixed() -> None:
    backoff = fixed(timedelta(milliseconds=250))
    assert isinstance(backoff, Fixed)
    assert {backoff.delay(n) for n in range(1, 10)} == {0.25}


def test_backoffs_add_up() -> None:
    combined = fixed(1) + exponential(initial=1, max=8)
    assert isinstance(combined, BackoffSum)
    assert [combined.delay(n) for n in (1, 2, 3)] == [2.0, 3.0, 5.0]
    assert (fixed(1) + fixed(2) + fixed(3)).delay(1) == 6.0


def test_adding_something_that_is_not_a_backoff_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        fixed(1) + 3  # type: ignore[operator]


def test_adaptive_stretches_the_base_delay_when_retries_rarely_work() -> None:
    backoff = adaptive(fixed(1), slowdown=4, max=100)
    assert backoff.delay(1, None) == 1.0  # nothing known: no penalty
    assert backoff.delay(1, 1.0) == 1.0
    assert backoff.delay(1, 0.5) == 3.0
    assert backoff.delay(1, 0.0) == 5.0
    assert adaptive(fixed(10), slowdown=4, max=12).delay(1, 0.0) == 12.0


def test_adaptive_defaults_to_exponential() -> None:
    backoff = adaptive()
    assert isinstance(backoff, Adaptive)
    assert backoff.base == exponential()


def test_uses_learning_sees_through_sums() -> None:
    assert uses_learning(adaptive())
    assert uses_learning(fixed(1) + adaptive())
    assert not uses_learning(fixed(1) + exponential())


def test_a_custom_object_with_delay_is_a_backoff() -> None:
    class Custom:
        def delay(self, attempt: int, /, success_rate: float | None = None) -> float:
            return attempt * 0.01

    assert isinstance(Custom(), Backoff)
    assert (fixed(1) + Custom()).delay(3) == pytest.approx(1.03)


@pytest.mark.parametrize(
    "make",
    [
        lambda: exponential(initial=-1),
        lambda: exponential(max=-1),
        lambda: exponential(multiplier=0.5),
        lambda: exponential(multiplier=float("inf")),
        lambda: exponential(multiplier="2"),  # type: ignore[arg-type]
        lambda: exponential(initial=5, max=1),
        lambda: exponential(initial=float("nan")),
        lambda: linear(increment=-0.1),
        lambda: linear(initial=2, max=1),
        lambda: fixed(-1),
        lambda: fixed(float("inf")),
        lambda: fixed(timedelta(seconds=-1)),
        lambda: adaptive(slowdown=-1),
        lambda: adaptive(slowdown=True),
        lambda: adaptive(base=3),  # type: ignore[arg-type]
        lambda: adaptive(max=-2),
    ],
)
def test_bad_backoffs_fail_at_construction(make: Any) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_a_bad_backoff_says_what_was_wrong() -> None:
    with pytest.raises(ConfigurationError, match=r"max=.*less than initial"):
        exponential(initial=5, max=1)
    with pytest.raises(ValueError, match="multiplier"):  # ConfigurationError is a ValueError
        exponential(multiplier=0.5)


@given(
    initial=st.floats(0, 100),
    multiplier=st.floats(1, 10),
    extra=st.floats(0, 100),
    attempt=st.integers(1, 10_000),
)
def test_exponential_never_exceeds_max_and_never_shrinks(
    initial: float, multiplier: float, extra: float, attempt: int
) -> None:
    backoff = exponential(initial=initial, multiplier=multiplier, max=initial + extra)
    assert 0 <= backoff.delay(attempt) <= backoff.max
    assert backoff.delay(attempt) <= backoff.delay(attempt + 1)


# -- jitter ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (True, Jitter(JitterMode.EQUAL)),
        (False, None),
        (None, None),
        ("none", None),
        ("FULL", Jitter(JitterMode.FULL)),
        ("equal", Jitter(JitterMode.EQUAL)),
        (JitterMode.FULL, Jitter(JitterMode.FULL)),
        (0.25, Jitter(JitterMode.NONE, 0.25)),
        (0, None),
        (Jitter(JitterMode.FULL), Jitter(JitterMode.FULL)),
        (Jitter(JitterMode.NONE), None),
    ],
)
def test_jitter_specs(spec: Any, expected: Jitter | None) -> None:
    assert Jitter.parse(spec) == expected


@pytest.mark.parametrize("spec", ["sometimes", 1.5, -0.1, object()])
def test_bad_jitter_fails(spec: Any) -> None:
    with pytest.raises(ConfigurationError, match="jitter"):
        Jitter.parse(spec)


@given(delay=st.floats(0, 1e6), seed=st.integers())
def test_jitter_stays_in_its_band(delay: float, seed: int) -> None:
    rng = random.Random(seed)
    assert 0 <= Jitter(JitterMode.FULL).apply(delay, rng) <= delay
    assert delay / 2 <= Jitter(JitterMode.EQUAL).apply(delay, rng) <= delay
    assert 0.9 * delay <= Jitter(JitterMode.NONE, 0.1).apply(delay, rng) <= 1.1 * delay
    assert Jitter(JitterMode.NONE).apply(delay, rng) == delay


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    a = [Jitter(JitterMode.FULL).apply(1.0, r) for r in [random.Random(7)] * 5]
    b = [Jitter(JitterMode.FULL).apply(1.0, r) for r in [random.Random(7)] * 5]
    assert a == b
    assert len(set(a)) == 5


# -- error types -----------------------------------------------------------------


class _Status(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class AuthenticationError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionError("reset"), ErrorType.COMMUNICATION_ERROR),
        (_Status(429), ErrorType.COMMUNICATION_ERROR),
        (_Status(503), ErrorType.COMMUNICATION_ERROR),
        (TimeoutError(), ErrorType.TIMEOUT_ERROR),
        (json.JSONDecodeError("bad", "{", 0), ErrorType.VALIDATION_ERROR),
        (ValueError("no"), ErrorType.VALIDATION_ERROR),
        (KeyError("tool"), ErrorType.TOOL_FAILURE),
        (MemoryError(), ErrorType.RESOURCE_ERROR),
        (AuthenticationError("bad key"), ErrorType.CONFIGURATION_ERROR),
        (_Status(401), ErrorType.CONFIGURATION_ERROR),
        (RuntimeError("?"), ErrorType.UNKNOWN_ERROR),
        (CircuitOpenError("svc", 3.0), ErrorType.COMMUNICATION_ERROR),
        (RateLimitExceededError("svc", 1.0), ErrorType.COMMUNICATION_ERROR),
    ],
)
def test_error_types_follow_the_tracking_categories(
    exc: BaseException, expected: ErrorType
) -> None:
    assert classify_error_type(exc) is expected


def test_every_category_has_an_error_type() -> None:
    assert error_type_of_category(Category.LOOP) is ErrorType.INFINITE_LOOP
    assert error_type_of_category(Category.CONFIGURATION) is ErrorType.CONFIGURATION_ERROR
    assert error_type_of_category(Category.LLM) is ErrorType.AGENT_FAILURE
    assert error_type_of_category(Category.STATE) is ErrorType.AGENT_FAILURE
    for category in Category:
        assert isinstance(error_type_of_category(category), ErrorType)


def test_the_error_type_values_are_the_seed_names_in_lower_case() -> None:
    assert [t.name for t in ErrorType] == [
        "AGENT_FAILURE",
        "TOOL_FAILURE",
        "COMMUNICATION_ERROR",
        "TIMEOUT_ERROR",
        "VALIDATION_ERROR",
        "INFINITE_LOOP",
        "RESOURCE_ERROR",
        "CONFIGURATION_ERROR",
        "UNKNOWN_ERROR",
    ]
    assert all(t.value == t.name.lower() for t in ErrorType)


def test_an_exception_can_tag_its_own_error_type() -> None:
    class LoopError(Exception):
        error_type = ErrorType.INFINITE_LOOP

    class ByValue(Exception):
        error_type = "agent_failure"

    class Unrelated(Exception):
        error_type = "some_sdk_code"  # another library's vocabulary: ignored

    class Raising(Exception):
        @property
        def error_type(self) -> str:
            raise RuntimeError("lazy property")

    assert classify_error_type(LoopError()) is ErrorType.INFINITE_LOOP
    assert classify_error_type(ByValue()) is ErrorType.AGENT_FAILURE
    assert classify_error_type(Unrelated()) is ErrorType.UNKNOWN_ERROR
    assert classify_error_type(Raising()) is ErrorType.UNKNOWN_ERROR


def test_overrides_win_and_follow_the_mro() -> None:
    class ToolBroke(Exception):
        pass

    class SpecificToolBroke(ToolBroke):
        pass

    overrides = {ToolBroke: ErrorType.TOOL_FAILURE}
    assert classify_error_type(SpecificToolBroke(), overrides) is ErrorType.TOOL_FAILURE
    assert classify_in_full(SpecificToolBroke(), overrides) == (
        ErrorType.TOOL_FAILURE,
        Category.UNKNOWN,
    )
    assert classify_error_type(ValueError(), overrides) is ErrorType.VALIDATION_ERROR


def test_is_transient() -> None:
    assert is_transient(ConnectionError())
    assert is_transient(TimeoutError())
    assert is_transient(_Status(429))
    assert not is_transient(ValueError())
    assert not is_transient(_Status(401))


# -- the Retry-After extractor ---------------------------------------------------


class _Response:
    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers


class OpenAIStyleRateLimitError(Exception):
    """Like ``openai.RateLimitError``: the httpx response is on ``.response``."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("Rate limit reached")
        self.response = _Response(429, headers)
        self.status_code = 429


class HTTPStatusError(Exception):
    """Like ``httpx.HTTPStatusError``."""

    def __init__(self, response: _Response) -> None:
        super().__init__(f"{response.status_code}")
        self.response = response


def test_retry_after_from_an_openai_style_error() -> None:
    assert default_retry_after(OpenAIStyleRateLimitError({"retry-after": "7"})) == 7.0
    assert default_retry_after(OpenAIStyleRateLimitError({"retry-after-ms": "1500"})) == 1.5


def test_retry_after_from_an_httpx_style_503() -> None:
    assert default_retry_after(HTTPStatusError(_Response(503, {"Retry-After": "12"}))) == 12.0


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    found = default_retry_after(HTTPStatusError(_Response(503, {"Retry-After": when})))
    assert found is not None
    assert 25 <= found <= 31


def test_retry_after_from_our_own_errors() -> None:
    assert default_retry_after(CircuitOpenError("svc", 4.5)) == 4.5
    assert default_retry_after(RateLimitExceededError("svc", 0.25)) == 0.25


def test_retry_after_from_the_cause() -> None:
    class ToolError(Exception):
        pass

    outer = ToolError("search failed")
    outer.__cause__ = OpenAIStyleRateLimitError({"retry-after": "3"})  # raise … from …
    assert default_retry_after(outer) == 3.0


def test_no_retry_after() -> None:
    assert default_retry_after(ConnectionError("reset")) is None
    assert default_retry_after(HTTPStatusError(_Response(500, {}))) is None
    assert default_retry_after(OpenAIStyleRateLimitError({"retry-after": "soon"})) is None

    plain = ConnectionError("reset")
    plain.retry_after = 2  # type: ignore[attr-defined]  # set on the instance later
    assert default_retry_after(plain) == 2.0


def test_retry_after_from_a_property() -> None:
    class Lazy(Exception):
        @property
        def retry_after(self) -> float:
            return 9.0

    assert default_retry_after(Lazy()) == 9.0


def test_classify_in_full_keeps_the_category_of_a_tagged_error() -> None:
    class Looping(TimeoutError):
        error_type = ErrorType.INFINITE_LOOP

    assert classify_in_full(Looping()) == (ErrorType.INFINITE_LOOP, Category.TIMEOUT)
