"""Agent diagnostics: five quick checks of a live agent, each ok, warning or critical.

* memory: this process's RSS against ``max_memory_mb`` (needs psutil);
* state: the agent's state can be read and serialised, and is not huge;
* tools: every tool is present and callable (tools are never *called*: a
  diagnostic must not book a flight);
* response time and error rate: from call samples you give, or from the store's
  ``tool.end`` and ``llm.end`` events of a run (by default the current one).

A check that has nothing to judge says ``skipped`` and why. Limits come from
:class:`MonitoringThresholds` (warning at the limit, critical at ``critical_factor``
times it), so diagnostics and alerts agree.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from agentkeel import _context, _runtime
from agentkeel._errors import ConfigurationError, KeelError
from agentkeel.events import Event, EventType
from agentkeel.monitoring._thresholds import MonitoringThresholds
from agentkeel.monitoring._window import percentile
from agentkeel.store import Store

DEFAULT_MAX_STATE_BYTES = 10 * 1024 * 1024


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    SKIPPED = "skipped"


_RANK = {CheckStatus.OK: 0, CheckStatus.SKIPPED: 0, CheckStatus.WARNING: 1, CheckStatus.CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class DiagnosticCheck:
    name: str
    status: CheckStatus
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "summary": self.summary, **self.details}


@dataclass(frozen=True, slots=True)
class DiagnosticsReport:
    """Every check's verdict; ``status`` is the worst of them."""

    agent_name: str
    timestamp: dt.datetime
    checks: dict[str, DiagnosticCheck]

    @property
    def status(self) -> CheckStatus:
        worst = CheckStatus.OK
        for check in self.checks.values():
            if _RANK[check.status] > _RANK[worst]:
                worst = check.status
        return worst

    @property
    def issues(self) -> list[DiagnosticCheck]:
        return [c for c in self.checks.values() if _RANK[c.status] > 0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_name": self.agent_name,
            "timestamp": self.timestamp.isoformat(),
            "status": self.status.value,
            "checks": {name: check.to_dict() for name, check in self.checks.items()},
        }


@dataclass(frozen=True, slots=True)
class CallSample:
    """One call of the agent or a tool: how long it took and whether it worked."""

    duration_ms: float
    ok: bool = True


class AgentDiagnostics:
    """Checks an agent object and its recent calls.

    ``tools``, ``state`` and ``recent_calls`` override what is read from the agent
    (``agent.tools``; ``agent.get_state()`` or ``agent.state``) and from the store.
    ``recent_calls`` takes :class:`CallSample` or ``(duration_ms, ok)`` pairs.
    """

    def __init__(
        self,
        agent: object = None,
        *,
        tools: Mapping[str, Any] | Iterable[Callable[..., Any]] | None = None,
        required_tools: Sequence[str] = (),
        state: Any = None,
        recent_calls: Iterable[CallSample | tuple[float, bool]] | None = None,
        store: Store | None = None,
        run_id: str | None = None,
        thresholds: MonitoringThresholds | None = None,
        max_state_bytes: int = DEFAULT_MAX_STATE_BYTES,
    ) -> None:
        if isinstance(max_state_bytes, bool) or not isinstance(max_state_bytes, int):
            raise ConfigurationError(f"max_state_bytes must be an integer, got {max_state_bytes!r}")
        if max_state_bytes < 1:
            raise ConfigurationError(f"max_state_bytes must be at least 1, got {max_state_bytes}")
        self.agent = agent
        self._tools = tools
        self._required = tuple(required_tools)
        self._state = state
        self._calls = None if recent_calls is None else [_sample(c) for c in recent_calls]
        self._store = store
        self._run_id = run_id
        self.thresholds = thresholds if thresholds is not None else MonitoringThresholds()
        self.max_state_bytes = max_state_bytes

    @property
    def agent_name(self) -> str:
        name = getattr(self.agent, "name", None)
        return str(name) if name else type(self.agent).__name__

    async def run_diagnostics(self) -> DiagnosticsReport:
        """Run every check (they are quick and do not call the agent or its tools)."""
        return self.run_diagnostics_sync()

    def run_diagnostics_sync(self) -> DiagnosticsReport:
        calls, source = self._recent_calls()
        checks = [
            self._check_memory(),
            self._check_state(),
            self._check_tools(),
            self._check_response_time(calls, source),
            self._check_error_rate(calls, source),
        ]
        return DiagnosticsReport(
            agent_name=self.agent_name,
            timestamp=dt.datetime.now(dt.UTC),
            checks={c.name: c for c in checks},
        )

    # ----------------------------------------------------------------- checks
    def _level(self, value: float, limit: float | None) -> CheckStatus:
        if limit is None:
            return CheckStatus.OK
        if value > limit * self.thresholds.critical_factor:
            return CheckStatus.CRITICAL
        return CheckStatus.WARNING if value > limit else CheckStatus.OK

    def _check_memory(self) -> DiagnosticCheck:
        try:
            from agentkeel.monitoring._system import system_resources

            sample = system_resources()
        except ConfigurationError as exc:
            return DiagnosticCheck("memory", CheckStatus.SKIPPED, str(exc))
        limit = self.thresholds.max_memory_mb
        status = self._level(sample.rss_mb, limit)
        details = {
            "rss_mb": round(sample.rss_mb, 2),
            "vms_mb": round(sample.vms_mb, 2),
            "percent": round(sample.memory_percent, 2),
            "limit_mb": limit,
        }
        return DiagnosticCheck(
            "memory", status, f"RSS {sample.rss_mb:.0f} MB (limit {limit} MB)", details
        )

    def _check_state(self) -> DiagnosticCheck:
        state = self._state
        if state is None:
            getter = getattr(self.agent, "get_state", None)
            try:
                if callable(getter):
                    state = getter()
                elif self.agent is not None and hasattr(self.agent, "state"):
                    state = self.agent.state
                else:
                    return DiagnosticCheck(
                        "state", CheckStatus.SKIPPED, "the agent has no get_state() or state"
                    )
            except Exception as exc:  # noqa: BLE001 - reading the state failing is the finding
                return DiagnosticCheck(
                    "state",
                    CheckStatus.CRITICAL,
                    f"reading the state failed: {type(exc).__name__}: {exc}",
                    {"error_type": type(exc).__name__},
                )
        details: dict[str, Any] = {"state_type": type(state).__name__}
        try:
            size = len(msgspec.json.encode(state))
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            details["error"] = str(exc)
            return DiagnosticCheck(
                "state",
                CheckStatus.WARNING,
                f"the state is not JSON-serialisable ({exc}): it cannot be snapshotted or "
                "persisted as it is",
                details,
            )
        details["state_bytes"] = size
        status = self._level(size, self.max_state_bytes)
        return DiagnosticCheck("state", status, f"{size} bytes of {details['state_type']}", details)

    def _tool_table(self) -> dict[str, Any] | None:
        tools: Any = self._tools if self._tools is not None else getattr(self.agent, "tools", None)
        if tools is None:
            return None
        names = getattr(tools, "names", None)
        if callable(names):  # a TrackedToolRegistry
            return {name: tools[name] for name in names()}
        if isinstance(tools, Mapping):
            return dict(tools)
        listed = getattr(tools, "list_tools", None)
        if callable(listed):
            return {str(n): getattr(tools, "get_tool", lambda _n: None)(n) for n in listed()}
        if isinstance(tools, Iterable) and not isinstance(tools, str | bytes):
            return {getattr(t, "__name__", repr(t)): t for t in tools}
        return None

    def _check_tools(self) -> DiagnosticCheck:
        try:
            table = self._tool_table()
        except Exception as exc:  # noqa: BLE001 - a broken tool registry is the finding
            return DiagnosticCheck(
                "tools", CheckStatus.CRITICAL, f"listing the tools failed: {exc!r}"
            )
        if table is None:
            if not self._required:
                return DiagnosticCheck("tools", CheckStatus.SKIPPED, "the agent has no tools")
            table = {}
        not_callable = sorted(name for name, tool in table.items() if not callable(tool))
        missing = sorted(name for name in self._required if name not in table)
        details = {
            "available": len(table) - len(not_callable),
            "total": len(table),
            "not_callable": not_callable,
            "missing": missing,
        }
        if missing or not_callable:
            problems = []
            if missing:
                problems.append(f"missing: {', '.join(missing)}")
            if not_callable:
                problems.append(f"not callable: {', '.join(not_callable)}")
            return DiagnosticCheck("tools", CheckStatus.CRITICAL, "; ".join(problems), details)
        return DiagnosticCheck(
            "tools", CheckStatus.OK, f"{len(table)} tool(s) present and callable", details
        )

    def _recent_calls(self) -> tuple[list[CallSample], str]:
        if self._calls is not None:
            return self._calls, "given samples"
        run_id = self._run_id or _context.current_scope().run_id
        if run_id is None:
            return [], "no run: give recent_calls= or run_id=, or diagnose inside agentkeel.run()"
        store = self._store
        try:
            if store is None:
                _runtime.flush(timeout=2.0)  # the run's latest calls may still be buffered
                store = _runtime.get_store()
            events = _run_events(store, run_id)
        except KeelError as exc:
            return [], f"the store could not be read: {exc}"
        samples = [
            CallSample(float(e.attributes["duration_ms"]), e.attributes.get("status") != "failed")
            for e in events
            if isinstance(e.attributes.get("duration_ms"), int | float)
        ]
        return samples, f"run {run_id}"

    def _check_response_time(self, calls: list[CallSample], source: str) -> DiagnosticCheck:
        if not calls:
            return DiagnosticCheck("response_time", CheckStatus.SKIPPED, f"no calls ({source})")
        durations = [c.duration_ms for c in calls]
        average = sum(durations) / len(durations)
        limit = self.thresholds.max_response_time_ms
        details = {
            "calls": len(calls),
            "average_ms": round(average, 3),
            "p95_ms": round(percentile(durations, 95) or 0.0, 3),
            "max_ms": round(max(durations), 3),
            "min_ms": round(min(durations), 3),
            "limit_ms": limit,
            "source": source,
        }
        summary = f"average {average:.1f} ms over {len(calls)} call(s) (limit {limit} ms)"
        return DiagnosticCheck("response_time", self._level(average, limit), summary, details)

    def _check_error_rate(self, calls: list[CallSample], source: str) -> DiagnosticCheck:
        if not calls:
            return DiagnosticCheck("error_rate", CheckStatus.SKIPPED, f"no calls ({source})")
        failed = sum(1 for c in calls if not c.ok)
        rate = failed / len(calls)
        limit = self.thresholds.max_error_rate
        details = {
            "calls": len(calls),
            "failed": failed,
            "error_rate": rate,
            "limit": limit,
            "source": source,
        }
        limit_text = "off" if limit is None else f"{limit:.0%}"
        summary = f"{failed} of {len(calls)} call(s) failed ({rate:.0%}, limit {limit_text})"
        return DiagnosticCheck("error_rate", self._level(rate, limit), summary, details)


def _run_events(store: Store, run_id: str) -> list[Event]:
    events: list[Event] = []
    after = 0
    types = [EventType.TOOL_CALL_END.value, EventType.LLM_CALL_END.value]
    while True:
        page = store.list_events(run_id=run_id, types=types, after_seq=after, limit=1000)
        events.extend(stored.event for stored in page)
        if len(page) < 1000:
            return events
        after = page[-1].store_seq


def _sample(value: CallSample | tuple[float, bool]) -> CallSample:
    if isinstance(value, CallSample):
        return value
    try:
        duration, ok = value
        return CallSample(float(duration), bool(ok))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"recent_calls takes CallSample(duration_ms, ok) or (duration_ms, ok) pairs, "
            f"got {value!r}"
        ) from exc
