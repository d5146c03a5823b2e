"""A known scenario in a store, written through the library's own APIs.

The dashboard's browser tests (and the docs' screenshots) need every page to have
something on it: runs that failed and recovered, a breaker that opened and closed,
alerts, an escalation ticket, snapshots and two versions of a state to diff, and a
run whose tool output is hostile HTML. Nothing here writes rows by hand: runs come
from ``agentkeel.run``/``step``, tool calls and retries from ``Guard``, breaker
transitions from a ``CircuitBreaker``, alerts from ``MonitoringSystem``, the ticket
from ``EscalationManager``, snapshots and versions from ``RollbackManager`` and
``HistoryManager``. Time is a fake clock, so the breaker opens, waits and closes
without sleeping.

Call :func:`seed_scenario` with the process-wide store configured (the tests'
conftest points it at ``$KEEL_HOME``); it flushes before returning.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from fake_clock import FakeClock

import agentkeel
from agentkeel import EventType, Severity
from agentkeel.monitoring import Measurements, MonitoringSystem, MonitoringThresholds
from agentkeel.recovery import (
    EscalationConfig,
    EscalationManager,
    HistoryManager,
    RollbackManager,
)
from agentkeel.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    Guard,
    Retry,
    fixed,
)

XSS_PAYLOAD = "<script>window.__xss=1</script>"
XSS_USER = '<img src=x onerror="window.__xss=2">'
SCENARIO_AGENT = "booking-agent"
SCENARIO_TASK = "book-trip"


@dataclass(frozen=True, slots=True)
class Scenario:
    """What :func:`seed_scenario` wrote, for the tests to look for."""

    recovered_run_id: str
    failed_run_id: str
    xss_run_id: str | None  # None when seeded with hostile=False
    ticket_id: str
    snapshot_ids: tuple[str, str]
    agent_id: str
    task_id: str
    breaker_name: str


class FlakyPayments:
    """A payments API that refuses the first ``failures`` calls, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures_left = failures

    def __call__(self, order_id: str) -> dict[str, str]:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise ConnectionError(f"payments API refused the connection for {order_id}")
        return {"order_id": order_id, "status": "paid"}


def _recovered_run(clock: FakeClock, breaker: CircuitBreaker) -> str:
    """A run whose payment call fails twice, opens the breaker, and recovers."""
    guard = Guard(
        name="payments",
        retry=Retry(
            on=ConnectionError,
            attempts=5,
            backoff=fixed(0.5),
            jitter=False,
            timeout=None,
            clock=clock,
            sleep=clock.sleep,
        ),
        breaker=breaker,
        graph_node="checkout",
    )
    payments = FlakyPayments(failures=2)
    with agentkeel.run("checkout-agent", user_id="alice", tags=["scenario"]) as scope:
        with agentkeel.step("plan"):
            agentkeel.emit(
                EventType.LLM_CALL_END,
                name="gpt-4o-mini",
                attributes={
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 45,
                    "status": "succeeded",
                    "duration_ms": 310.0,
                },
            )
        with agentkeel.step("checkout"), agentkeel.step("charge-card"):
            guard.call(payments, "order-1042")
    assert scope.run_id is not None
    return scope.run_id


def _failed_run() -> str:
    """A run that ends in an exception: status failed, one unrecovered failure."""
    guard = Guard(name="inventory", graph_node="reserve")

    def reserve_seat(flight: str) -> str:
        raise TimeoutError(f"inventory service did not answer for {flight}")

    scope_run = agentkeel.run("research-agent", user_id="bob", tags=["scenario"])
    try:
        with scope_run, agentkeel.step("reserve"):
            guard.call(reserve_seat, "TP1234")
    except TimeoutError:
        pass  # the run records the error and re-raises it; the scenario wants that record
    assert scope_run.run_id is not None
    return scope_run.run_id


def _xss_run() -> str:
    """A run whose tool answered with a script tag, for a user whose name is HTML."""
    run = agentkeel.run("scraper-agent", user_id=XSS_USER, tags=["scenario"])
    with run, agentkeel.step("scrape"):
        agentkeel.emit(
            EventType.TOOL_CALL_START,
            name="fetch_page",
            attributes={"gen_ai.tool.name": "fetch_page", "tool": "fetch_page"},
        )
        agentkeel.emit(
            EventType.TOOL_CALL_END,
            name="fetch_page",
            attributes={
                "gen_ai.tool.name": "fetch_page",
                "tool": "fetch_page",
                "status": "failed",
                "output": XSS_PAYLOAD,
                "error_type": "ValueError",
                "error_message": XSS_PAYLOAD,
                "duration_ms": 12.5,
            },
        )
        guard = Guard(name="fetch_page", graph_node="scrape")

        def parse_page() -> str:
            raise ValueError(XSS_PAYLOAD)

        # The failure is what the page must show, as text.
        with contextlib.suppress(ValueError):
            guard.call(parse_page)
    assert run.run_id is not None
    return run.run_id


def _alerts() -> None:
    """Two alerts raised (a critical error rate, an open breaker), stored as events."""
    monitoring = MonitoringSystem(thresholds=MonitoringThresholds(max_error_rate=0.1))
    monitoring.evaluate(
        measurements=Measurements(calls=50, error_rate=0.3, breakers={"payments-api": "open"})
    )


def _escalation(run_id: str) -> str:
    escalations = EscalationManager(config=EscalationConfig(notify_in_background=False))
    return escalations.create_escalation_sync(
        ConnectionError("payments API refused the connection"),
        recovery_attempts=["retry 1: refused", "retry 2: refused", "retry 3: refused"],
        agent_id=SCENARIO_AGENT,
        task_id=SCENARIO_TASK,
        note=f"opened by the scenario for run {run_id}",
    )


def _snapshots_and_versions() -> tuple[str, str]:
    rollback = RollbackManager()
    first = rollback.create_snapshot_sync(
        agent_id=SCENARIO_AGENT,
        task_id=SCENARIO_TASK,
        state_data={"step": 1, "plan": ["search", "book"]},
        metadata={"checkpoint": "before booking"},
    )
    second = rollback.create_snapshot_sync(
        agent_id=SCENARIO_AGENT,
        task_id=SCENARIO_TASK,
        state_data={"step": 2, "plan": ["search", "pay"], "paid": True},
        metadata={"checkpoint": "after payment"},
    )
    history = HistoryManager()
    history.record_state_sync(
        agent_id=SCENARIO_AGENT,
        task_id=SCENARIO_TASK,
        state_data={"status": "running", "plan": {"steps": ["search", "book"]}},
        metadata={"phase": "work"},
    )
    history.record_state_sync(
        agent_id=SCENARIO_AGENT,
        task_id=SCENARIO_TASK,
        state_data={"status": "completed", "plan": {"steps": ["search", "pay"]}, "result": "ok"},
        metadata={"phase": "final"},
    )
    return first, second


def seed_scenario(*, hostile: bool = True) -> Scenario:
    """Write the whole scenario to the process-wide store and wait until it is stored.

    ``hostile=False`` leaves out the run with HTML in its tool output and user name
    (the docs' screenshots do not need it)."""
    clock = FakeClock(wall_offset=time.time() - 1_000.0)  # wall time near now
    breaker = CircuitBreaker(
        "payments-api",
        CircuitBreakerConfig(
            failure_rate_threshold=0.5,
            minimum_calls=2,
            window_size=4,
            wait_in_open=0.2,
            half_open_max_calls=1,
        ),
        clock=clock,
    )
    recovered = _recovered_run(clock, breaker)
    failed = _failed_run()
    xss = _xss_run() if hostile else None
    _alerts()
    ticket_id = _escalation(recovered)
    snapshot_ids = _snapshots_and_versions()
    agentkeel.emit(
        EventType.CUSTOM,
        name="scenario.seeded",
        severity=Severity.INFO,
        attributes={"runs": [r for r in (recovered, failed, xss) if r]},
    )
    if not agentkeel.flush(timeout=10):
        raise RuntimeError("the scenario's events did not reach the store within 10 s")
    return Scenario(
        recovered_run_id=recovered,
        failed_run_id=failed,
        xss_run_id=xss,
        ticket_id=ticket_id,
        snapshot_ids=snapshot_ids,
        agent_id=SCENARIO_AGENT,
        task_id=SCENARIO_TASK,
        breaker_name=breaker.name,
    )
