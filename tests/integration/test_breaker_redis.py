"""Circuit breakers sharing state through a real Redis (KEEL_TEST_REDIS_URL).

* The Lua script and the Python state machine agree, op for op (Hypothesis).
* Several real processes share one breaker: failures in one open it for all
  within one round trip, half-open's quota holds across processes, and closing
  propagates.
* A Redis that goes away degrades to local state without breaking the caller.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import select
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fake_clock import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkeel import ConfigurationError, _internal
from agentkeel.resilience._breaker import CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import BreakerMachine, CircuitState, Permit, Transition
from agentkeel.resilience._breaker_redis import RedisBreakerState, RedisBreakerStore
from agentkeel.resilience._errors import CircuitOpenError

REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# As tests/conftest.py's service_unavailable (conftest modules are not importable).
REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES", "") not in {"", "0", "false"}
SRC = Path(__file__).resolve().parents[2] / "src"


def service_unavailable(what: str) -> NoReturn:
    """Skip (on a laptop) or fail (in CI) because a server the test needs is absent."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"{what} (set KEEL_REQUIRE_SERVICES=1 to make this a failure)")


def redis_available() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="module")
def redis_url() -> str:
    if not redis_available():
        service_unavailable(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    value = f"agentkeel-test:{uuid.uuid4().hex[:12]}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{value}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[RedisBreakerStore]:
    s = RedisBreakerStore(redis_url, prefix=prefix)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_STORE", "none")


# ---------------------------------------------------------------------- Lua == Python
ACQUIRE = st.tuples(st.just("acquire"))
FINISH = st.tuples(
    st.just("finish"),
    st.integers(0, 10),
    st.sampled_from([0, 0, 1, 1, 2, 3, -1]),  # outcome code; -1: ignored
)
# Calls weigh most: the interesting states (half-open with trials out) need many.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("time"), st.sampled_from([0.0, 0.4, 1.0, 2.5, 7.0])),
        ACQUIRE,
        ACQUIRE,
        FINISH,
        FINISH,
        st.tuples(st.just("by_hand"), st.sampled_from([0, 1, 2, 3])),
        st.tuples(st.just("trip")),
        st.tuples(st.just("force"), st.sampled_from([math.inf, 3.0])),
        st.tuples(st.just("reset")),
        st.tuples(st.just("status")),
    ),
    min_size=5,
    max_size=50,
)
CONFIGS = st.builds(
    CircuitBreakerConfig,
    failure_rate_threshold=st.sampled_from([0.25, 0.5, 2 / 3, 1.0]),
    minimum_calls=st.integers(1, 5),
    sliding_window=st.sampled_from(["count", "time"]),
    window_size=st.integers(1, 4),
    slow_call_rate_threshold=st.sampled_from([0.5, 1.0]),
    wait_in_open=st.sampled_from([0.0, 1.0]),
    half_open_max_calls=st.integers(1, 3),
    success_threshold=st.sampled_from([1, None]),
    max_wait_in_half_open=st.sampled_from([None, 6.0]),
)


def same_transition(ours: Transition | None, theirs: Transition | None) -> None:
    if ours is None or theirs is None:
        assert ours is theirs, (ours, theirs)
        return
    assert (ours.previous, ours.state, ours.reason, ours.calls) == (
        theirs.previous,
        theirs.state,
        theirs.reason,
        theirs.calls,
    )
    assert ours.failure_rate == pytest.approx(theirs.failure_rate)
    assert ours.slow_call_rate == pytest.approx(theirs.slow_call_rate)
    assert ours.retry_after == pytest.approx(theirs.retry_after)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIGS, ops=OPS)
def test_the_lua_script_runs_the_same_rules_as_the_python_machine(
    redis_url: str, config: CircuitBreakerConfig, ops: list[tuple[Any, ...]]
) -> None:
    prefix = f"agentkeel-test:{uuid.uuid4().hex[:12]}:"
    store = RedisBreakerStore(redis_url, prefix=prefix)
    try:
        now = 1_700_000_000.0
        shared = store.bind("diff", config)
        local = BreakerMachine(config.resolved, now)
        held: list[tuple[Permit, Permit]] = []
        theirs_snap, _ = shared.snapshot(now)  # the first op sets Redis's clock too
        for op in ops:
            kind = op[0]
            if kind == "time":
                now += op[1]
                continue
            if kind == "acquire":
                ours_t = local.advance(now)
                ours = local.acquire(now)
                theirs, theirs_t = shared.acquire(now)
                same_transition(ours_t, theirs_t)
                assert ours.rejected == theirs.rejected
                if isinstance(ours, Permit) and isinstance(theirs, Permit):
                    assert ours.generation == theirs.generation
                    held.append((ours, theirs))
                else:
                    assert not isinstance(ours, Permit)
                    assert not isinstance(theirs, Permit)
                    assert ours.retry_at == theirs.retry_at
                    assert ours.half_open == theirs.half_open
            elif kind == "finish" and held:
                ours_p, theirs_p = held.pop(op[1] % len(held))
                if op[2] == -1:
                    local.release(ours_p)
                    shared.release(theirs_p, now)
                else:
                    same_transition(
                        local.record(ours_p, now, op[2]), shared.record(theirs_p, now, op[2])
                    )
            elif kind == "by_hand":
                same_transition(local.record(None, now, op[1]), shared.record(None, now, op[1]))
            elif kind == "trip":
                same_transition(local.trip(now, "resource"), shared.trip(now, "resource"))
            elif kind == "force":
                same_transition(local.force_open(now, op[1]), shared.force_open(now, op[1]))
            elif kind == "reset":
                same_transition(local.reset(now), shared.reset(now))
            ours_t = local.advance(now)
            ours_snap = local.snapshot(now)
            theirs_snap, theirs_t = shared.snapshot(now)
            same_transition(ours_t, theirs_t)
            assert ours_snap == theirs_snap
    finally:
        for key in store.client.scan_iter(match=f"{prefix}*"):
            store.client.delete(key)
        store.close()


# ---------------------------------------------------------------------- in one process
def test_two_breakers_with_one_name_share_state(store: RedisBreakerStore) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, wait_in_open=30)
    a = CircuitBreaker("svc", config, store=store)
    b = CircuitBreaker("svc", config, store=store)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(_boom)
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: "never")
    assert 29 < info.value.retry_after <= 30
    status = b.get_status()
    assert status["shared"] is True
    assert status["state"] == "open"
    assert status["metrics"]["failed_calls"] == 2
    assert status["metrics"]["rejected_calls"] == 1
    assert status["metrics"]["failure_rate"] == 1.0
    b.reset()
    assert a.state is CircuitState.CLOSED
    assert a.get_status()["metrics"]["total_calls"] == 0


def test_force_open_and_by_hand_records_are_shared(store: RedisBreakerStore) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, wait_in_open=1)
    a = CircuitBreaker("svc", config, store=store)
    b = CircuitBreaker("svc", config, store=store)
    a.force_open()
    with pytest.raises(CircuitOpenError, match="forced open"):
        b.call(lambda: 1)
    assert b.get_status()["forced"] is True
    a.reset()
    b.record_failure()
    a.record_failure(ConnectionError("x"))
    assert b.state is CircuitState.OPEN
    a.record_failure(asyncio.CancelledError())  # not counted
    assert a.get_status()["metrics"]["ignored_calls"] == 1


def test_time_window_breaker_in_redis(store: RedisBreakerStore) -> None:
    clock = FakeClock(1_700_000_000.0, wall_offset=0.0)
    config = CircuitBreakerConfig(
        sliding_window="time", window_size=60, minimum_calls=2, slow_call_duration=0.05
    )
    a = CircuitBreaker("tw", config, clock=clock, store=store)

    def slow() -> None:
        clock.now += 0.06

    a.call(lambda: "fast")
    a.call(slow)
    assert a.get_status()["metrics"]["window_slow_calls"] == 1
    a.call(slow)  # 2 of 3 slow; the slow-call threshold is 100 %
    assert a.state is CircuitState.CLOSED
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(_boom)  # 1 then 2 of the window's calls failed: below 50 %
    assert a.state is CircuitState.CLOSED
    clock.now += 61  # all of them leave the window
    assert a.get_status()["metrics"]["window_calls"] == 0
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(_boom)
    assert a.state is CircuitState.OPEN


def test_a_different_config_for_a_shared_name_is_refused(store: RedisBreakerStore) -> None:
    CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=3), store=store)
    with pytest.raises(ConfigurationError, match="already exists in Redis") as info:
        CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=4), store=store)
    assert isinstance(info.value, ValueError)
    store.delete("svc")
    CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=4), store=store)


def test_async_calls_and_blocks_share_state(redis_url: str, prefix: str) -> None:
    store = RedisBreakerStore(redis_url, prefix=prefix)
    config = CircuitBreakerConfig(failure_threshold=2, wait_in_open=0.2, half_open_max_calls=1)
    a = CircuitBreaker("svc", config, store=store)
    b = CircuitBreaker("svc", config, store=store)

    async def aboom() -> None:
        raise ConnectionError("down")

    async def scenario() -> None:
        assert await a.acall(asyncio.sleep, 0, "ok") == "ok"
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await a.acall(aboom)
        with pytest.raises(CircuitOpenError):
            async with b:
                pytest.fail("must not run")
        await asyncio.sleep(0.21)
        async with b:  # the one trial call
            with pytest.raises(CircuitOpenError, match="half-open"):
                await a.acall(asyncio.sleep, 0)
        assert a.state is CircuitState.CLOSED
        await store.aclose()

    asyncio.run(scenario())
    store.close()


# ---------------------------------------------------------------------- when Redis goes away
def test_unreachable_redis_degrades_to_local_state(prefix: str) -> None:
    store = RedisBreakerStore("redis://127.0.0.1:1/0", prefix=prefix, socket_timeout=0.2)
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=2), store=store)
    assert breaker.call(lambda: "still works") == "still works"  # strict mode: not raised
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_boom)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)  # the local state protects meanwhile
    assert _internal.internal_error_counts()["breaker.redis"] >= 1
    assert breaker.get_status()["state"] == "open"


def test_redis_coming_back_is_used_again(store: RedisBreakerStore) -> None:
    import redis

    config = CircuitBreakerConfig(failure_threshold=2)
    breaker = CircuitBreaker("svc", config, store=store)
    other = CircuitBreaker("svc", config, store=store)
    real_eval = store.eval
    store.retry_interval = 0.0

    def outage(*args: Any) -> Any:
        raise redis.ConnectionError("gone")

    store.eval = outage  # type: ignore[method-assign]
    breaker.call(lambda: 1)
    assert breaker._shared is not None
    assert isinstance(breaker._shared, RedisBreakerState)
    assert breaker._shared.degraded
    store.eval = real_eval  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_boom)
    with pytest.raises(CircuitOpenError):
        other.call(lambda: 1)  # the failures went to Redis again
    assert not breaker._shared.degraded


def test_bad_arguments_are_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        RedisBreakerStore("postgresql://x")
    with pytest.raises(ConfigurationError, match=r"a redis:// URL or a redis\.Redis client"):
        RedisBreakerStore(42)
    import redis

    client = redis.Redis.from_url(redis_url)
    assert "prefix" in repr(RedisBreakerStore(client))
    client.close()


def _boom() -> None:
    raise ConnectionError("down")


# ---------------------------------------------------------------------- several processes
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["KEEL_STORE"] = "none"
    from agentkeel.resilience._breaker import CircuitBreaker
    from agentkeel.resilience._breaker_config import CircuitBreakerConfig
    from agentkeel.resilience._breaker_redis import RedisBreakerStore
    from agentkeel.resilience._errors import CircuitOpenError

    url, prefix, name, config = sys.argv[1:5]
    store = RedisBreakerStore(url, prefix=prefix)
    breaker = CircuitBreaker(name, CircuitBreakerConfig(**json.loads(config)), store=store)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        if cmd["op"] == "status":
            print(json.dumps(breaker.get_status()), flush=True)
            continue
        def tool():
            time.sleep(cmd.get("sleep", 0))
            if cmd.get("fail"):
                raise ConnectionError("down")
            return "ok"
        start = time.perf_counter()
        try:
            breaker.call(tool)
            reply = {"result": "ok"}
        except CircuitOpenError as exc:
            reply = {"result": "rejected", "retry_after": exc.retry_after}
        except ConnectionError:
            reply = {"result": "failed"}
        reply["seconds"] = time.perf_counter() - start
        print(json.dumps(reply), flush=True)
    """
)


class Worker:
    """A separate Python process holding a breaker of the given name."""

    def __init__(self, script: Path, url: str, prefix: str, name: str, config: dict[str, Any]):
        env = {**os.environ, "PYTHONPATH": str(SRC), "KEEL_STORE": "none"}
        self.process = subprocess.Popen(
            [sys.executable, str(script), url, prefix, name, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert "ready" in self.receive(timeout=30)

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 10) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, "the worker did not answer in time"
        line = self.process.stdout.readline()
        assert line, f"the worker died (exit code {self.process.poll()})"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, **command: Any) -> dict[str, Any]:
        self.send(op="call", **command)
        return self.receive()

    def status(self) -> dict[str, Any]:
        self.send(op="status")
        return self.receive()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.send(op="exit")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def workers(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Any]:
    script = tmp_path / "breaker_worker.py"
    script.write_text(WORKER)
    started: list[Worker] = []

    def start(n: int, name: str, config: dict[str, Any]) -> list[Worker]:
        new = [Worker(script, redis_url, prefix, name, config) for _ in range(n)]
        started.extend(new)
        return new

    yield start
    for worker in started:
        worker.stop()


def test_processes_share_one_breaker(workers: Any) -> None:
    wait = 1.0
    a, b, c = workers(
        3,
        "shared-tool",
        {
            "failure_threshold": 3,
            "recovery_timeout": wait,
            "half_open_max_calls": 2,
            "success_threshold": 2,
        },
    )
    assert b.call()["result"] == "ok"  # b has talked to Redis before a breaks anything

    # Process A records failures until the breaker opens...
    assert [a.call(fail=True)["result"] for _ in range(3)] == ["failed"] * 3
    opened_at = time.monotonic()
    assert a.status()["state"] == "open"
    # ...and B's very next call is refused, in one round trip.
    reply = b.call()
    assert reply["result"] == "rejected"
    assert 0 < reply["retry_after"] <= wait
    assert reply["seconds"] < 0.5
    assert c.status()["state"] == "open"

    # After wait_in_open, three processes try at once: half-open admits exactly two.
    time.sleep(max(0.0, opened_at + wait + 0.05 - time.monotonic()))
    # (Each trial lasts long enough that all three asks overlap even on a busy machine.)
    for worker in (a, b, c):
        worker.send(op="call", sleep=1.0)
    results = sorted(worker.receive()["result"] for worker in (a, b, c))
    assert results == ["ok", "ok", "rejected"]

    # Two good trials closed it: every process sees it closed and calls go through.
    for worker in (a, b, c):
        assert worker.status()["state"] == "closed"
    assert c.call()["result"] == "ok"
    status = c.status()
    assert status["metrics"]["failed_calls"] == 3
    assert status["metrics"]["rejected_calls"] == 2


def test_a_failed_trial_in_one_process_reopens_for_all(workers: Any) -> None:
    a, b = workers(
        2, "reopen", {"failure_threshold": 2, "recovery_timeout": 1.0, "half_open_max_calls": 1}
    )
    for _ in range(2):
        a.call(fail=True)
    time.sleep(1.05)
    assert b.call(fail=True)["result"] == "failed"  # B's trial fails
    reply = a.call()
    assert reply["result"] == "rejected"
    assert reply["retry_after"] > 0.5  # a fresh wait, not what was left of the first


def test_many_processes_never_exceed_the_half_open_quota(workers: Any) -> None:
    quota = 2
    team = workers(
        6,
        "quota",
        {"failure_threshold": 1, "recovery_timeout": 0.3, "half_open_max_calls": quota},
    )
    for attempt in range(3):
        team[0].call(fail=True)
        if attempt:  # the breaker was closed by the previous round: one failure reopens it
            assert team[1].status()["state"] == "open"
        time.sleep(0.35)
        for worker in team:
            worker.send(op="call", sleep=0.8)
        results = [worker.receive()["result"] for worker in team]
        assert results.count("ok") == quota, results
        assert results.count("rejected") == len(team) - quota
