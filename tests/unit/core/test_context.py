from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

import agentkeel
from agentkeel import (
    ContextThreadPoolExecutor,
    current_scope,
    get_correlation_id,
    propagate,
    set_correlation_id,
    set_global_correlation_id,
)


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    agentkeel.configure(store="none")


def test_empty_scope_outside_a_run() -> None:
    scope = current_scope()
    assert scope.run_id is None
    assert scope.span_id is None


def test_run_sets_ids_and_restores() -> None:
    with agentkeel.run("outer", user_id="u1", session_id="s1", tags=["a"]) as scope:
        assert scope.run_id is not None and scope.run_id.startswith("run-")
        assert current_scope() is scope
        assert scope.user_id == "u1" and scope.tags == ("a",)
        # Without an explicit one, the run's ID is its correlation ID.
        assert get_correlation_id() == scope.run_id
    assert current_scope().run_id is None


def test_nested_run_and_step_have_parents() -> None:
    with agentkeel.run("outer") as outer, agentkeel.step("plan") as plan:
        assert plan.run_id == outer.run_id
        assert plan.parent_span_id == outer.span_id
        with agentkeel.run("inner") as inner:
            assert inner.parent_run_id == outer.run_id
            assert inner.parent_span_id == plan.span_id
            assert inner.user_id == outer.user_id
            assert inner.correlation_id == outer.correlation_id


def test_correlation_follows_asyncio_tasks_independently() -> None:
    async def worker(cid: str) -> tuple[str | None, str | None]:
        set_correlation_id(cid)
        await asyncio.sleep(0)
        inner = await asyncio.create_task(asyncio.sleep(0, result=get_correlation_id()))
        return get_correlation_id(), inner

    async def main() -> list[tuple[str | None, str | None]]:
        return await asyncio.gather(*(worker(f"c{i}") for i in range(20)))

    results = asyncio.run(main())
    assert results == [(f"c{i}", f"c{i}") for i in range(20)]


def test_correlation_follows_threads_through_the_executor() -> None:
    set_correlation_id(uuid.UUID(int=7))
    with ContextThreadPoolExecutor(max_workers=4) as pool:
        seen = list(pool.map(lambda _: get_correlation_id(), range(8)))
    assert set(seen) == {str(uuid.UUID(int=7))}


def test_plain_threads_need_propagate() -> None:
    with agentkeel.run("r") as scope:
        seen: dict[str, str | None] = {}
        plain = threading.Thread(target=lambda: seen.update(plain=current_scope().run_id))
        bound = threading.Thread(
            target=propagate(lambda: seen.update(bound=current_scope().run_id))
        )
        plain.start(), bound.start()
        plain.join(), bound.join()
    assert seen == {"plain": None, "bound": scope.run_id}


def test_global_correlation_is_the_fallback() -> None:
    set_global_correlation_id("global-1")
    try:
        seen: list[str | None] = []
        t = threading.Thread(target=lambda: seen.append(get_correlation_id()))
        t.start()
        t.join()
        assert seen == ["global-1"]
        with agentkeel.run("r", correlation_id="mine"):
            assert get_correlation_id() == "mine"
    finally:
        set_global_correlation_id(None)


@pytest.mark.parametrize("bad", ["", "x" * 201])
def test_bad_correlation_id(bad: str) -> None:
    with pytest.raises(agentkeel.ConfigurationError, match="correlation ID"):
        set_correlation_id(bad)


def test_run_as_decorator_sync_and_async() -> None:
    seen: list[str | None] = []

    @agentkeel.run("decorated")
    def job() -> str:
        seen.append(current_scope().run_id)
        return "ok"

    @agentkeel.run("decorated-async")
    async def ajob() -> str:
        seen.append(current_scope().run_id)
        return "aok"

    assert job() == "ok"
    assert job() == "ok"
    assert asyncio.run(ajob()) == "aok"
    assert len(set(seen)) == 3, "every call is its own run"
    assert job.__name__ == "job"


def test_run_reraises_the_agents_exception_unchanged() -> None:
    error = RuntimeError("boom")
    with pytest.raises(RuntimeError) as caught, agentkeel.run("r"):
        raise error
    assert caught.value is error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "non-empty"),
        ({"name": "x", "run_id": ""}, "run_id"),
        ({"name": "x", "tags": "abc"}, "tags"),
    ],
)
def test_bad_run_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(agentkeel.ConfigurationError, match=message):
        agentkeel.run(**kwargs)  # type: ignore[arg-type]
