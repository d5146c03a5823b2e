"""Fill a store by running real code: the demo agent with chaos, a hostile run, an
alert, an escalation, snapshots and state versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import agentkeel
from agentkeel.demo import DemoOptions, run_demo
from agentkeel.events import EventType, FailureRecord, failure_event_attributes
from agentkeel.monitoring import AlertManager
from agentkeel.recovery import (
    EscalationConfig,
    EscalationManager,
    HistoryManager,
    RollbackManager,
)
from agentkeel.store import open_store

XSS = '<script>alert(1)</script>" onmouseover="alert(2)'
XSS_TAG = "<script>alert(1)</script>"
ESCAPED_TAG = "&lt;script&gt;alert(1)&lt;/script&gt;"
SECRET = "sk-live1234567890abcdef"


@dataclass(frozen=True)
class Filled:
    url: str
    demo_run: str
    hostile_run: str
    ticket: str
    hostile_ticket: str


def fill(url: str, runtime_dir: Path) -> Filled:
    agentkeel.configure(store=url)
    try:
        demo = run_demo(DemoOptions(chaos=True, seed=7, runtime_dir=runtime_dir))
        hostile = _hostile_run()
        store = agentkeel.get_store()
        alerts = AlertManager(dedup_window=0, emit=agentkeel.emit)
        alerts.raise_alert(component="tools", name="error_rate", severity="critical", message=XSS)
        alerts.raise_alert(component="store", name="lag", severity="warning", message="slow")
        alerts.resolve("store", "lag")
        rollback = RollbackManager(store=store, cleanup_after_hours=None)
        rollback.create_snapshot_sync(agent_id="planner", task_id="trip", state_data={"step": 1})
        history = HistoryManager(store=store, retention_days=None)
        history.record_state_sync(
            agent_id="planner", task_id="trip", state_data={"step": 1, "note": "ok"}
        )
        history.record_state_sync(
            agent_id="planner", task_id="trip", state_data={"step": 2, "note": XSS}
        )
        assert agentkeel.flush(timeout=10)
    finally:
        agentkeel.shutdown(timeout=10)
    # Tickets straight into the store, as `keel escalations` and agents do.
    store = open_store(url)
    try:
        manager = EscalationManager(
            store=store, config=EscalationConfig(notify_in_background=False)
        )
        ticket = manager.create_escalation_sync(
            ConnectionError("payments API refused"), agent_id="payments"
        )
        hostile_ticket = manager.create_escalation_sync(RuntimeError(XSS), agent_id=XSS)
        manager.close()
    finally:
        store.close()
    return Filled(url, demo.run_id, hostile, ticket, hostile_ticket)


def _hostile_run() -> str:
    """A run whose name, tool output, error message and attributes are hostile HTML."""
    with (
        agentkeel.run(XSS, run_id="run-hostile", user_id="mallory") as run,
        agentkeel.step("fetch"),
    ):
        agentkeel.emit(EventType.TOOL_CALL_START, name=XSS)
        agentkeel.emit(
            EventType.TOOL_CALL_END,
            name=XSS,
            attributes={
                "status": "failed",
                "duration_ms": 12.5,
                "output": XSS,
                "error_type": "ValueError",
                "error_message": XSS,
                "api_key": SECRET,
                "header": f"Bearer {SECRET}",
            },
        )
        record = FailureRecord(
            failure_id="f-hostile-1",
            run_id="run-hostile",
            timestamp=0.0,
            category="validation",
            severity="high",
            error_type="ValueError",
            error_message=XSS,
            graph_node=XSS,
            tool_name=XSS,
            fingerprint="fp-hostile",
        )
        agentkeel.emit(
            EventType.FAILURE,
            name=XSS,
            severity=3,
            category="validation",
            attributes=failure_event_attributes(record),
        )
    assert run.run_id is not None
    return run.run_id
