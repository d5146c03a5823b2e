from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeel import ChaosError, ConfigurationError
from agentkeel.events import Category, EventType
from agentkeel.tracking import (
    INJECTABLE_CATEGORIES,
    ChaosConfig,
    ChaosMonkey,
    FailureTracker,
    Fault,
    TrackedToolRegistry,
    classify_error,
)
from agentkeel.tracking._chaos import corrupt

if TYPE_CHECKING:
    from conftest import CapturedEvents


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.calls.append(seconds)


def _sequence(monkey: ChaosMonkey, tool: str, n: int) -> list[Fault | None]:
    return [monkey.decide(tool) for _ in range(n)]


def test_same_seed_same_faults() -> None:
    config = ChaosConfig(seed=42, failure_rate=0.3, latency_rate=0.2, malformed_rate=0.1)
    assert _sequence(ChaosMonkey(config), "search", 200) == _sequence(
        ChaosMonkey(config), "search", 200
    )


def test_different_seeds_differ() -> None:
    a = ChaosMonkey(ChaosConfig(seed=1, failure_rate=0.5))
    b = ChaosMonkey(ChaosConfig(seed=2, failure_rate=0.5))
    assert _sequence(a, "search", 200) != _sequence(b, "search", 200)


def test_tools_have_independent_sequences() -> None:
    config = ChaosConfig(seed=7, failure_rate=0.5)
    alone = _sequence(ChaosMonkey(config), "search", 100)
    mixed = ChaosMonkey(config)
    interleaved = []
    for _ in range(100):
        mixed.decide("other")
        interleaved.append(mixed.decide("search"))
    assert interleaved == alone


def test_thread_interleaving_does_not_change_outcomes() -> None:
    config = ChaosConfig(seed="replay-me", failure_rate=0.4, latency_rate=0.2)
    expected = {tool: _sequence(ChaosMonkey(config), tool, 300) for tool in ("a", "b", "c")}
    shared = ChaosMonkey(config)
    got: dict[str, list[Fault | None]] = {}

    def work(tool: str) -> None:
        got[tool] = _sequence(shared, tool, 300)

    threads = [threading.Thread(target=work, args=(tool,)) for tool in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == expected


@settings(max_examples=50)
@given(
    seed=st.integers() | st.text(max_size=20), tool=st.text(max_size=20), k=st.integers(0, 10**6)
)
def test_fault_at_is_a_pure_function(seed: int | str, tool: str, k: int) -> None:
    config = ChaosConfig(seed=seed, failure_rate=0.25, latency_rate=0.25, hang_rate=0.25)
    assert ChaosMonkey(config).fault_at(tool, k) == ChaosMonkey(config).fault_at(tool, k)


def test_random_seed_is_reported_for_replay() -> None:
    monkey = ChaosMonkey(ChaosConfig(failure_rate=0.5))
    replay = ChaosMonkey(ChaosConfig(seed=monkey.seed, failure_rate=0.5))
    assert _sequence(monkey, "t", 50) == _sequence(replay, "t", 50)


def test_rates_are_roughly_respected() -> None:
    config = ChaosConfig(
        seed=2024, failure_rate=0.2, latency_rate=0.1, hang_rate=0.05, malformed_rate=0.15
    )
    monkey = ChaosMonkey(config)
    n = 10_000
    kinds = Counter(f.kind if f else "none" for f in (monkey.decide("tool") for _ in range(n)))
    for kind, rate in (("error", 0.2), ("latency", 0.1), ("hang", 0.05), ("malformed", 0.15)):
        assert abs(kinds[kind] / n - rate) < 0.02, (kind, kinds)
    stats = monkey.stats()
    assert stats.calls == n
    assert stats.by_kind == {k: v for k, v in kinds.items() if k != "none"}
    assert sum(stats.by_category.values()) == kinds["error"]
    assert stats.injected == n - kinds["none"]
    # Categories are drawn evenly.
    for category in INJECTABLE_CATEGORIES:
        share = stats.by_category[category.value] / kinds["error"]
        assert abs(share - 1 / len(INJECTABLE_CATEGORIES)) < 0.04


def test_zero_rates_inject_nothing() -> None:
    monkey = ChaosMonkey(ChaosConfig(seed=1))
    assert set(_sequence(monkey, "t", 1000)) == {None}


@pytest.mark.parametrize("category", INJECTABLE_CATEGORIES, ids=lambda c: c.value)
def test_each_injected_error_classifies_as_its_category(category: Category) -> None:
    fault = Fault("error", "tool", 0, category, retry_after=2.5)
    exc = fault.exception()
    assert isinstance(exc, ChaosError)
    assert classify_error(exc).category is category
    assert "tool" in str(exc)


def test_injected_errors_are_their_natural_types() -> None:
    def make(category: Category) -> Exception:
        return Fault("error", "t", 0, category, retry_after=3.0).exception()

    assert isinstance(make(Category.NETWORK), ConnectionError)
    assert isinstance(make(Category.TIMEOUT), TimeoutError)
    assert isinstance(make(Category.AUTH), PermissionError)
    assert isinstance(make(Category.VALIDATION), ValueError)
    assert isinstance(make(Category.PARSING), json.JSONDecodeError)
    assert isinstance(make(Category.TOOL_NOT_FOUND), KeyError)
    assert isinstance(make(Category.RESOURCE), OSError)
    rate_limited: Any = make(Category.RATE_LIMIT)
    assert (rate_limited.status_code, rate_limited.retry_after) == (429, 3.0)
    assert classify_error(rate_limited).retry_after == 3.0


def test_wrap_sync_with_fake_sleep(events: CapturedEvents) -> None:
    sleep = FakeSleep()
    config = ChaosConfig(
        seed=5, failure_rate=0.25, latency_rate=0.25, hang_rate=0.25, hang_seconds=30
    )
    monkey = ChaosMonkey(config, sleep=sleep)
    calls = []

    def search(q: str) -> str:
        calls.append(q)
        return f"results for {q}"

    chaotic = monkey.wrap(search)
    assert chaotic.__name__ == "search"
    expected = [monkey.fault_at("search", k) for k in range(40)]
    for k, fault in enumerate(expected):
        if fault is not None and fault.kind == "error":
            with pytest.raises(ChaosError):
                chaotic(str(k))
        else:
            assert chaotic(str(k)) == f"results for {k}"
    delays = [f.delay for f in expected if f is not None and f.kind in ("latency", "hang")]
    assert sleep.calls == delays
    assert 30.0 in sleep.calls
    assert all(0.05 <= d <= 0.3 for d in sleep.calls if d != 30.0)
    assert len(calls) == sum(1 for f in expected if f is None or f.kind != "error")
    injected = events.of_type(EventType.CHAOS_INJECTED)
    assert len(injected) == sum(1 for f in expected if f is not None)
    assert {e.attributes["kind"] for e in injected} == {"error", "latency", "hang"}
    assert all(e.name == "search" and e.attributes["seed"] == 5 for e in injected)


def test_wrap_async_with_fake_sleep() -> None:
    sleep = FakeSleep()
    monkey = ChaosMonkey(
        ChaosConfig(seed=9, latency_rate=0.5, hang_rate=0.5), async_sleep=sleep.async_sleep
    )

    async def fetch() -> int:
        return 1

    chaotic = monkey.wrap(fetch, name="fetch")

    async def main() -> list[int]:
        return [await chaotic() for _ in range(20)]

    assert asyncio.run(main()) == [1] * 20
    assert len(sleep.calls) == 20


def test_malformed_output(events: CapturedEvents) -> None:
    monkey = ChaosMonkey(ChaosConfig(seed=3, malformed_rate=1.0))
    as_json = monkey.wrap(lambda: json.dumps({"temp": 21, "city": "Paris"}), name="weather")
    with pytest.raises(json.JSONDecodeError):
        json.loads(as_json())
    assert monkey.wrap(lambda: {"temp": 21, "city": "Paris"}, name="d")() == {
        "temp_corrupted": 21,
        "city": "Paris",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abcdef", "abc"),
        (b"abcd", b"ab"),
        ([1, 2, 3], [1, 2]),
        ({"a": 1}, {"a_corrupted": 1}),
        (42, None),
        (None, None),
        ("x", None),
        ({}, None),
    ],
)
def test_corrupt(value: object, expected: object) -> None:
    assert corrupt(value) == expected


def test_chaos_failures_are_tracked(tracker: FailureTracker) -> None:
    monkey = ChaosMonkey(ChaosConfig(seed=11, failure_rate=1.0, categories=("rate_limit",)))
    registry = TrackedToolRegistry(monkey.wrap_all({"search": lambda q: q}), tracker=tracker)
    for _ in range(3):
        with pytest.raises(ChaosError):
            registry.call("search", "x")
    assert [r.category for r in tracker.failures] == ["rate_limit"] * 3
    assert all(r.tool_name == "search" for r in tracker.failures)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_rate": 1.5}, "failure_rate must be a number between 0 and 1"),
        ({"latency_rate": -0.1}, "latency_rate"),
        ({"hang_rate": "0.1"}, "hang_rate"),
        ({"failure_rate": 0.6, "malformed_rate": 0.6}, "at most 1"),
        ({"latency_seconds": (0.5, 0.1)}, "low <= high"),
        ({"latency_seconds": (0.1,)}, "pair"),
        ({"latency_seconds": (-1, 0.1)}, "latency_seconds"),
        ({"hang_seconds": float("inf")}, "hang_seconds"),
        ({"categories": ()}, "at least one"),
        ({"categories": ("loop",)}, "cannot inject loop"),
        ({"categories": ("sideways",)}, "unknown category"),
        ({"categories": "network"}, "list of categories"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ChaosConfig(**kwargs)


def test_config_normalises_categories() -> None:
    config = ChaosConfig(categories=["network", Category.TIMEOUT], latency_seconds=[0, 1])  # type: ignore[arg-type]
    assert config.categories == (Category.NETWORK, Category.TIMEOUT)
    assert config.latency_seconds == (0.0, 1.0)


# ------------------------------------------------------------------------ edges


def test_more_config_errors() -> None:
    with pytest.raises(ConfigurationError, match="number of seconds"):
        ChaosConfig(latency_seconds=("a", 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ChaosConfig"):
        ChaosMonkey({"failure_rate": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="callable"):
        ChaosMonkey().wrap(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="raises no exception"):
        Fault("latency", "t", 0, delay=1.0).exception()


def test_async_errors_and_malformed_output() -> None:
    errors = ChaosMonkey(ChaosConfig(seed=1, failure_rate=1.0, categories=("timeout",)))
    garbled = ChaosMonkey(ChaosConfig(seed=1, malformed_rate=1.0))

    async def fetch() -> str:
        return '{"ok": true}'

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await errors.wrap(fetch)()
        assert await garbled.wrap(fetch)() == '{"ok":'

    asyncio.run(main())


def test_event_errors_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkeel import _internal
    from agentkeel.tracking import _chaos

    class Broken:
        def emit(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("pipeline bug")

    monkeypatch.setattr(_chaos, "get_pipeline", Broken)
    monkeypatch.setattr(_internal, "_strict", False)
    before = _internal.internal_error_counts().get("tracking.chaos", 0)
    assert ChaosMonkey(ChaosConfig(seed=1, malformed_rate=1.0)).decide("t") is not None
    assert _internal.internal_error_counts()["tracking.chaos"] == before + 1
