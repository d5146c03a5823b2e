from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _policy_events import CapturedEvents, async_test, doc_contains_example, run_example

from agentkeel import ConfigurationError, EventType
from agentkeel.resilience._errors import ToolTimeoutError
from agentkeel.resilience._fallback import Fallback


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


class ProviderDown(Exception):
    pass


def down(name: str) -> Any:
    def ask(prompt: str) -> str:
        raise ProviderDown(f"{name} is down")

    ask.__qualname__ = name
    return ask


def gpt(prompt: str) -> str:
    return f"gpt: {prompt}"


def claude(prompt: str) -> str:
    return f"claude: {prompt}"


# ---------------------------------------------------------------------- sync
def test_a_working_primary_answers_with_no_event(events: CapturedEvents) -> None:
    fallback = Fallback(claude)
    assert fallback.call(gpt, "hi") == "gpt: hi"
    assert fallback.call_with_source(gpt, "hi") == ("gpt: hi", "gpt")
    assert events.of_type(EventType.FALLBACK) == []


def test_the_first_alternative_that_works_answers_and_is_recorded(
    events: CapturedEvents,
) -> None:
    fallback = Fallback(down("mistral"), ("claude-sonnet", claude), gpt, name="llm")
    result, source = fallback.call_with_source(down("gpt-4o"), "hi")
    assert (result, source) == ("claude: hi", "claude-sonnet")
    assert fallback.call(down("gpt-4o"), prompt="hi") == "claude: hi"
    assert fallback.alternatives == ("mistral", "claude-sonnet", "gpt")
    event = events.of_type(EventType.FALLBACK)[0]
    assert event.name == "llm"
    assert event.attributes == {
        "outcome": "answered",
        "primary": "gpt-4o",
        "answered_by": "claude-sonnet",
        "index": 2,
        "errors": [
            "gpt-4o: ProviderDown: gpt-4o is down",
            "mistral: ProviderDown: mistral is down",
        ],
    }


def test_when_all_fail_the_last_error_is_raised_unchanged_with_the_others_chained(
    events: CapturedEvents,
) -> None:
    fallback = Fallback(down("b"), down("c"))
    with pytest.raises(ProviderDown, match="c is down") as caught:
        fallback.call(down("a"), "hi")
    last = caught.value
    assert str(last.__context__) == "b is down"
    assert last.__context__ is not None
    assert str(last.__context__.__context__) == "a is down"
    assert last.__notes__ == [
        "agentkeel Fallback 'a': all 3 callables failed, in order: "
        "a: ProviderDown: a is down; b: ProviderDown: b is down; c: ProviderDown: c is down"
    ]
    (event,) = events.of_type(EventType.FALLBACK)
    assert event.attributes["outcome"] == "exhausted"
    assert event.attributes["answered_by"] is None
    assert len(event.attributes["errors"]) == 3


def test_errors_outside_on_propagate_at_once() -> None:
    called: list[str] = []

    def backup(prompt: str) -> str:
        called.append(prompt)
        return "backup"

    def bug(prompt: str) -> str:
        raise TypeError("a bug, not an outage")

    fallback = Fallback(backup, on=ProviderDown)
    with pytest.raises(TypeError, match="a bug"):
        fallback.call(bug, "hi")
    assert called == []

    def buggy_backup(prompt: str) -> str:
        raise KeyError("bug in the backup")

    with pytest.raises(KeyError):
        Fallback(buggy_backup, gpt, on=(ProviderDown,)).call(down("a"), "hi")


def test_timeouts_and_other_policy_errors_trigger_the_fallback() -> None:
    def slow(prompt: str) -> str:
        raise ToolTimeoutError("slow", 1.0)

    assert Fallback(gpt, on=TimeoutError).call(slow, "x") == "gpt: x"


def test_concurrent_callers_each_learn_their_own_source() -> None:
    fallback = Fallback(claude)
    sources: dict[int, str] = {}

    def worker(k: int) -> None:
        primary = gpt if k % 2 else down("gpt")
        for _ in range(50):
            _, source = fallback.call_with_source(primary, "x")
            assert sources.setdefault(k, source) == source

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sources == {k: "gpt" if k % 2 else "claude" for k in range(6)}


def test_decorator_keeps_the_name() -> None:
    @Fallback(lambda city: "unknown")
    def weather(city: str) -> str:
        raise ProviderDown(city)

    assert weather("Lisbon") == "unknown"
    assert weather.__name__ == "weather"


def test_a_sync_call_cannot_use_an_async_alternative() -> None:
    async def async_backup(prompt: str) -> str:
        return prompt

    with pytest.raises(ConfigurationError, match="acall"):
        Fallback(async_backup).call(down("a"), "hi")


# ---------------------------------------------------------------------- async
@async_test
async def test_async_with_sync_and_async_alternatives(events: CapturedEvents) -> None:
    async def primary(prompt: str) -> str:
        raise ProviderDown("primary")

    async def flaky(prompt: str) -> str:
        raise ProviderDown("flaky")

    async def steady(prompt: str) -> str:
        return f"steady: {prompt}"

    fallback = Fallback(flaky, down("sync-down"), steady)
    assert await fallback.acall(primary, "hi") == "steady: hi"
    assert await Fallback(claude).acall_with_source(primary, "x") == ("claude: x", "claude")
    assert await fallback.acall_with_source(steady, "y") == ("steady: y", "steady")
    first = events.of_type(EventType.FALLBACK)[0]
    assert first.attributes["index"] == 3

    with pytest.raises(ProviderDown, match="flaky"):
        await Fallback(down("x"), flaky).acall(primary, "hi")

    @Fallback(steady)
    async def decorated(prompt: str) -> str:
        raise ProviderDown("decorated")

    assert await decorated("z") == "steady: z"


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((), {}, "at least one alternative"),
        ((42,), {}, "alternative 1 is not callable"),
        ((gpt, ("name",)), {}, "alternative 2 must be"),
        ((("", gpt),), {}, "alternative 1 must be"),
        ((gpt,), {"on": ValueError("x")}, "on must be"),
        ((gpt,), {"on": (ValueError, int)}, "on must be"),
        ((gpt,), {"on": ()}, "on must be"),
        ((gpt,), {"name": ""}, "name"),
    ],
)
def test_invalid_settings_are_refused(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Fallback(*args, **kwargs)


# ---------------------------------------------------------------------- docs
def test_the_documented_example_runs() -> None:
    out = run_example("resilience_fallback.py")
    assert "answered by local" in out
    assert doc_contains_example("fallback.md", "resilience_fallback.py")
