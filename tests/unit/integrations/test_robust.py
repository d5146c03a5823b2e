"""The robust instrumentor: our exceptions never reach the agent, health follows them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fake_clock import FakeClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agentkeel import ConfigurationError, _internal
from agentkeel.integrations import (
    InstrumentationHandle,
    InstrumentorHealth,
    InstrumentorState,
    RobustConfig,
    RobustInstrumentor,
    get_instrumentors,
)
from agentkeel.observability import SamplingConfig


class Recorder(RobustInstrumentor):
    """A minimal integration: it 'hooks in' by flipping a flag, like a real patch."""

    framework = "recorder"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hooked = False
        self.seen: list[str] = []

    def _install(self) -> None:
        self.hooked = True

    def _uninstall(self) -> None:
        self.hooked = False

    def on_event(self, name: str) -> None:
        self.seen.append(name)


def boom(*_: object) -> None:
    raise RuntimeError("bug in our instrumentation")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_offset=0.0)


def make(clock: FakeClock, **config: Any) -> Recorder:
    settings_ = {"max_consecutive_errors": 3, "error_recovery_timeout": 10.0, **config}
    return Recorder(config=RobustConfig(**settings_), clock=clock)


def test_an_exception_in_a_callback_is_swallowed_counted_and_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    inst = make(clock)
    assert inst.observe(boom, "x") is None  # strict mode on, and still not raised
    assert inst.observe(lambda a, b: a + b, 2, 3) == 5
    health = inst.get_health_status()
    assert health["error_count"] == 1
    assert health["last_error"] == "RuntimeError: bug in our instrumentation"
    assert health["state"] == "healthy" and health["is_healthy"]
    assert health["success_rate"] == 0.5
    assert _internal.internal_error_counts()["integrations.recorder"] == 1
    assert "bug in our instrumentation" in caplog.text


def test_degrades_after_consecutive_errors_then_recovers_after_the_timeout(
    clock: FakeClock,
) -> None:
    inst = make(clock, min_functionality_level=0.25, recovery_successes=2)
    for _ in range(3):
        inst.observe(boom)
    health = inst.get_health_status()
    assert health["state"] == "degraded" and not health["is_healthy"]
    assert health["degradation_level"] == 0.75  # error rate 100 %: down to the floor
    # Degraded: a quarter of routine callbacks are observed; essential ones always.
    inst.seen.clear()
    for i in range(40):
        inst.observe(inst.on_event, f"routine-{i}")
    assert len(inst.seen) == 10
    inst.seen.clear()
    for i in range(5):
        inst.observe_essential(inst.on_event, f"error-{i}")
    assert len(inst.seen) == 5
    # The recovery timeout passes: a probation starts and successes end it.
    clock.now += 10.0
    assert inst.get_health_status()["state"] == "recovering"
    inst.observe(inst.on_event, "probe-1")
    inst.observe(inst.on_event, "probe-2")
    health = inst.get_health_status()
    assert health["state"] == "healthy" and health["degradation_level"] == 0.0
    assert health["recovery_attempts"] == 1


def test_failed_probations_end_in_failed_which_observes_nothing(clock: FakeClock) -> None:
    inst = make(clock, max_recovery_attempts=2)
    for _ in range(3):
        inst.observe(boom)
    for _ in range(2):  # two probations, each ended by an error
        clock.now += 10.0
        inst.observe(boom)
    assert inst.state is InstrumentorState.FAILED
    assert inst.get_health_status()["degradation_level"] == 1.0
    inst.observe_essential(inst.on_event, "lost")
    assert inst.seen == []
    # Even FAILED gets another chance once the timeout passes.
    clock.now += 10.0
    inst.observe(inst.on_event, "back")
    assert inst.seen == ["back"] and inst.state is InstrumentorState.RECOVERING


def test_without_degradation_errors_fail_it_at_once(clock: FakeClock) -> None:
    inst = make(clock, enable_degradation=False)
    for _ in range(3):
        inst.observe(boom)
    assert inst.state is InstrumentorState.FAILED


def test_a_high_error_rate_degrades_even_without_a_streak(clock: FakeClock) -> None:
    inst = make(clock, max_consecutive_errors=5, degradation_threshold=0.5)
    for _ in range(3):
        inst.observe(boom)
        inst.observe(lambda: None)
    assert inst.state is InstrumentorState.DEGRADED


def test_successes_counted_off_the_lock_reach_the_health_before_an_error(
    clock: FakeClock,
) -> None:
    # Healthy successes are only counted on the hot path; the error rate must still
    # see them: 4 errors after 20 successes are 40 % of the last 10, not 100 %.
    inst = make(clock, max_consecutive_errors=5, degradation_threshold=0.5, error_window=10)
    for _ in range(20):
        inst.observe(lambda: None)
    for _ in range(4):
        inst.observe(boom)
    health = inst.get_health_status()
    assert health["state"] == "healthy"
    assert health["callbacks"] == 24
    assert health["success_rate"] == 20 / 24
    inst.observe(boom)  # the 5th in a row: a streak, whatever the rate
    assert inst.state is InstrumentorState.DEGRADED


def test_overhead_is_reported_for_the_open_window_too(clock: FakeClock) -> None:
    inst = make(clock, performance_check_interval=60.0)

    def busy() -> None:
        until = time.perf_counter() + 0.001
        while time.perf_counter() < until:
            pass

    for _ in range(3):
        inst.observe(busy)
    assert inst.get_health_status()["overhead_ms"] >= 3.0


def test_overhead_above_the_limit_degrades(clock: FakeClock) -> None:
    inst = make(clock, max_overhead_percentage=5.0, performance_check_interval=1.0)

    def slow_callback() -> None:
        # 2 ms of our own work for every 10 ms of (fake) agent time: 20 % overhead.
        until = time.perf_counter() + 0.002
        while time.perf_counter() < until:
            pass
        clock.now += 0.010

    for _ in range(110):
        inst.observe(slow_callback)
    health = inst.get_health_status()
    assert health["overhead_percentage"] >= 15.0
    assert health["state"] == "degraded"
    assert 0.0 < health["degradation_level"] <= 0.9  # observe about a quarter of callbacks


def test_on_the_system_clock_a_window_closes_when_it_is_due() -> None:
    # Healthy successes skip the accounting until the window is due, timed on the
    # clock the callbacks read anyway: the first callback after that closes it.
    inst = Recorder(config=RobustConfig(performance_check_interval=0.2))

    def busy() -> None:
        until = time.perf_counter() + 0.002
        while time.perf_counter() < until:
            pass

    inst.observe(busy)
    assert inst.get_health_status()["overhead_percentage"] == 0.0  # still open
    time.sleep(0.25)
    inst.observe(busy)
    health = inst.get_health_status()
    assert 0.0 < health["overhead_percentage"] < 100.0
    assert health["callbacks"] == 2 and health["overhead_ms"] >= 4.0


def test_attempt_recovery_forces_a_probation(clock: FakeClock) -> None:
    inst = make(clock)
    for _ in range(3):
        inst.observe(boom)
    assert asyncio.run(inst._attempt_recovery()) is True
    assert inst.state is InstrumentorState.RECOVERING


def test_instrument_returns_a_handle_that_undoes_it(clock: FakeClock) -> None:
    inst = make(clock)
    with inst.instrument() as handle:
        assert isinstance(handle, InstrumentationHandle)
        assert inst.hooked and inst.is_instrumented
        assert inst in get_instrumentors()
        assert handle.get_health_status()["installed"] is True
        assert inst.instrument().instrumentor is inst  # idempotent
        assert "recorder healthy installed=True" in repr(handle)
    assert not inst.hooked and not inst.is_instrumented
    handle.uninstrument()  # twice is harmless


def test_a_failing_install_leaves_nothing_behind(clock: FakeClock) -> None:
    class Refuses(Recorder):
        def _install(self) -> None:
            raise ConfigurationError("cannot hook into this framework version")

    inst = Refuses(clock=clock)
    with pytest.raises(ConfigurationError, match="cannot hook"):
        inst.instrument()
    assert not inst.is_instrumented


def test_adaptive_sampling_decides_per_run_and_hears_our_overhead(clock: FakeClock) -> None:
    inst = make(
        clock,
        adaptive_sampling=True,
        sampling_config=SamplingConfig(base_sampling_rate=0.5, min_sampling_rate=0.5),
    )
    kept = [inst.samples_run(f"run-{i}") for i in range(400)]
    assert 120 < sum(kept) < 280
    assert inst.samples_run("run-7") == kept[7]  # a run is all in or all out
    inst.observe(lambda: None)
    assert inst._sampling is not None
    assert inst._sampling.get_sampling_statistics()["overhead_per_event_ms"] >= 0.0
    assert make(clock).samples_run("anything") is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_consecutive_errors": 0}, "max_consecutive_errors must be an integer >= 1"),
        ({"max_recovery_attempts": True}, "max_recovery_attempts must be an integer >= 1"),
        ({"error_recovery_timeout": -1}, "error_recovery_timeout must be seconds > 0"),
        ({"max_overhead_percentage": 0}, r"max_overhead_percentage must be in \(0, 100\]"),
        ({"degradation_threshold": 1.5}, r"degradation_threshold must be in \[0, 1\]"),
        ({"min_functionality_level": "half"}, r"min_functionality_level must be in \[0, 1\]"),
        ({"sampling_config": {"rate": 1}}, "sampling_config must be a SamplingConfig"),
        ({"error_window": 1}, "error_window must be an integer >= 2"),
    ],
)
def test_bad_configuration_says_what_is_wrong(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RobustConfig(**options)


def test_config_must_be_a_robust_config() -> None:
    with pytest.raises(ConfigurationError, match="config must be a RobustConfig"):
        Recorder(config={"max_consecutive_errors": 3})  # type: ignore[arg-type]


class HealthMachine(RuleBasedStateMachine):
    """Any sequence of outcomes and time steps keeps the health machine consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.config = RobustConfig(
            max_consecutive_errors=3,
            error_recovery_timeout=5.0,
            max_recovery_attempts=2,
            min_functionality_level=0.2,
            recovery_successes=2,
            error_window=10,
        )
        self.health = InstrumentorHealth(self.config)
        self.now = 0.0
        self.outcomes = 0
        self.routine_asked = 0
        self.routine_admitted = 0
        self.episode: tuple[InstrumentorState, float] = (self.health.state, self.health.since)

    @rule(error=st.booleans())
    def outcome(self, error: bool) -> None:
        before = self.health.state
        if error:
            self.health.record_error(RuntimeError("x"), self.now)
        else:
            self.health.record_success(self.now)
        self.outcomes += 1
        after = self.health.state
        if not error:  # a success never makes things worse
            assert not (before is InstrumentorState.HEALTHY and after is not before)
        if error and before is InstrumentorState.HEALTHY and after is not before:
            assert self.health.consecutive_errors >= 3 or self.health.error_rate >= 0.5

    @rule(essential=st.booleans())
    def ask(self, essential: bool) -> None:
        state = self.health.state
        due = self.now - self.health.since >= self.config.error_recovery_timeout
        admitted = self.health.admits(essential=essential, now=self.now)
        if state in {InstrumentorState.HEALTHY, InstrumentorState.RECOVERING}:
            assert admitted
        elif state is InstrumentorState.FAILED:
            assert admitted == due
        elif essential:
            assert admitted
        elif not due:
            if self.episode != (state, self.health.since):  # a new degraded episode
                self.episode = (state, self.health.since)
                self.routine_asked = self.routine_admitted = 0
            self.routine_asked += 1
            self.routine_admitted += admitted

    @rule(seconds=st.floats(min_value=0.0, max_value=8.0))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def consistent(self) -> None:
        h = self.health
        assert h.error_count + h.success_count == self.outcomes
        assert 0.0 <= h.degradation_level <= 1.0
        assert 0.0 <= h.success_rate <= 1.0
        assert (h.degradation_level == 0.0) == (
            h.state in {InstrumentorState.HEALTHY, InstrumentorState.RECOVERING}
            or h.functionality == 1.0
        )
        assert h.functionality >= self.config.min_functionality_level
        # Degraded sampling never starves: within an episode, at least the floor share.
        if self.routine_asked >= 20:
            assert self.routine_admitted >= int(0.2 * self.routine_asked) - 1


TestHealthMachine = HealthMachine.TestCase
TestHealthMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
