"""``ErrorHandlingSystem``: one front for retry, rollback, escalation, loops and history.

``await handle_error(error, context, recovery_callback)`` runs the orchestrator's
phases and returns a :class:`RecoveryResult`; the subsystems stay reachable as
``retry_system``, ``rollback_system``, ``escalation_system``, ``loop_detector`` and
``history_manager``. Configuration is the seed guide's dict of sections, validated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from agentkeel import _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import EventType, Severity
from agentkeel.recovery._errors import LoopDetectedError
from agentkeel.recovery._escalation import EscalationManager
from agentkeel.recovery._escalation_policy import EscalationConfig
from agentkeel.recovery._history import HistoryConfig, HistoryManager
from agentkeel.recovery._loop_config import LoopDetectionConfig
from agentkeel.recovery._loops import LoopDetector
from agentkeel.recovery._notifiers import Notifier
from agentkeel.recovery._orchestrator import (
    Assessment,
    RecoveryPhase,
    RecoveryResult,
    RecoveryStrategy,
    accepts_keyword,
    select_strategy,
)
from agentkeel.recovery._rollback import RollbackConfig, RollbackManager
from agentkeel.resilience import (
    ErrorType,
    PromptAdjuster,
    Retry,
    SuccessRateLearner,
    classify_error_type,
    exponential,
)
from agentkeel.store import Store
from agentkeel.tracking import classify_error

SECTIONS = ("retry", "rollback", "escalation", "loop_detection", "history")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySystemConfig:
    """The seed's ``retry`` section: how ``handle_error`` retries a recovery callback."""

    max_retries: int = 3
    base_delay: float = 1.0
    backoff_multiplier: float = 2.0
    max_delay: float = 30.0
    adaptive_learning: bool = True
    success_rate_threshold: float = 0.3
    jitter: bool = True

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or (self.max_retries < 1)
        ):
            raise ConfigurationError(
                f"retry.max_retries must be an integer >= 1, got {self.max_retries!r}"
            )
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
                raise ConfigurationError(
                    f"retry.{name} must be zero or positive seconds, got {value!r}"
                )
        if not isinstance(self.backoff_multiplier, int | float) or self.backoff_multiplier < 1:
            raise ConfigurationError(
                f"retry.backoff_multiplier must be >= 1, got {self.backoff_multiplier!r}"
            )
        if not 0 <= self.success_rate_threshold <= 1:
            raise ConfigurationError(
                f"retry.success_rate_threshold must be between 0 and 1, "
                f"got {self.success_rate_threshold!r}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetrySystemConfig:
        allowed = sorted(f.name for f in fields(cls))
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown retry setting(s) {', '.join(unknown)}: allowed are {', '.join(allowed)}"
            )
        return cls(**dict(data))


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorHandlingConfig:
    # Frozen configs: one shared default instance each is safe.
    retry: RetrySystemConfig = RetrySystemConfig()
    rollback: RollbackConfig = RollbackConfig()  # noqa: RUF009
    escalation: EscalationConfig = EscalationConfig()  # noqa: RUF009
    loop_detection: LoopDetectionConfig = LoopDetectionConfig()  # noqa: RUF009
    history: HistoryConfig = HistoryConfig()  # noqa: RUF009

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ErrorHandlingConfig:
        """From the seed guide's dict of sections; unknown sections or keys are refused."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f"config must be a dict of sections ({', '.join(SECTIONS)}), got {data!r}"
            )
        unknown = sorted(str(k) for k in data if k not in SECTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown config section(s) {', '.join(unknown)}: use {', '.join(SECTIONS)}"
            )
        parsers: dict[str, Callable[[Mapping[str, Any]], Any]] = {
            "retry": RetrySystemConfig.from_dict,
            "rollback": RollbackConfig.from_dict,
            "escalation": EscalationConfig.from_dict,
            "loop_detection": LoopDetectionConfig.from_dict,
            "history": HistoryConfig.from_dict,
        }
        values: dict[str, Any] = {}
        for section, section_data in data.items():
            if not isinstance(section_data, Mapping):
                raise ConfigurationError(
                    f"config[{section!r}] must be a dict, got {section_data!r}"
                )
            values[section] = parsers[section](section_data)
        return cls(**values)


class RetrySystem:
    """The retry subsystem: back-off from the config, and success rates it has learned."""

    def __init__(
        self,
        config: RetrySystemConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.learner = (
            SuccessRateLearner(success_rate_threshold=config.success_rate_threshold)
            if config.adaptive_learning
            else None
        )
        self.prompt_adjuster = PromptAdjuster()
        self._clock = clock
        self._sleep = sleep
        self.async_sleep = async_sleep

    def policy(self, name: str) -> Retry:
        c = self.config
        return Retry(
            on=Exception,
            attempts=c.max_retries,
            backoff=exponential(
                initial=c.base_delay, multiplier=c.backoff_multiplier, max=c.max_delay
            ),
            jitter=c.jitter,
            timeout=None,
            learner=self.learner,
            name=name,
            clock=self._clock,
            sleep=self._sleep,
            async_sleep=self.async_sleep,
        )

    def get_statistics(self) -> dict[str, Any]:
        return {
            "adaptive_learning": self.learner is not None,
            "learner": self.learner.stats() if self.learner is not None else None,
        }


class ErrorHandlingSystem:
    """Chooses and runs a recovery for an agent's error; escalates what it cannot fix.

    ``config`` is the seed guide's dict (sections ``retry``, ``rollback``,
    ``escalation``, ``loop_detection``, ``history``) or an :class:`ErrorHandlingConfig`.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | ErrorHandlingConfig | None = None,
        *,
        store: Store | None = None,
        notifiers: tuple[Notifier, ...] = (),
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = (
            config
            if isinstance(config, ErrorHandlingConfig)
            else (ErrorHandlingConfig.from_dict(config))
        )
        c = self.config
        self.retry_system = RetrySystem(c.retry, clock=clock, sleep=sleep, async_sleep=async_sleep)
        self.rollback_system = RollbackManager.from_config(c.rollback, store=store, clock=clock)
        self.escalation_system = EscalationManager(
            config=c.escalation, store=store, notifiers=notifiers, clock=clock
        )
        self.loop_detector = LoopDetector(c.loop_detection, clock=clock)
        self.history_manager = HistoryManager.from_config(c.history, store=store, clock=clock)
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._by_strategy: Counter[str] = Counter()
        self._failed_recoveries: Counter[tuple[str | None, str | None]] = Counter()
        self._active = 0
        self._closed = False

    # ------------------------------------------------------------------ handling
    async def handle_error(
        self,
        error: BaseException,
        context: Mapping[str, Any] | None = None,
        recovery_callback: Callable[..., Any] | None = None,
    ) -> RecoveryResult:
        """Assess ``error``, choose a strategy, run it, validate it, record it.

        ``context`` may hold ``agent_id``, ``task_id``, ``prompt`` (adjusted for the
        callback's ``adjusted_prompt=`` on each try), ``validate`` (a callable
        ``result -> bool``: a recovery succeeds only if it says so) and
        ``state_corrupted`` (roll back before retrying). The callback may be sync or
        async. The agent's error is never raised from here.
        """
        if not isinstance(error, BaseException):
            raise ConfigurationError(f"handle_error needs the exception, got {error!r}")
        if self._closed:
            raise ConfigurationError("this ErrorHandlingSystem has been shut down")
        ctx = dict(context or {})
        started = time.perf_counter()
        with self._lock:
            self._active += 1
            self._stats["total_errors"] += 1
        phases: list[str] = []
        try:
            assessment = await self._assess(error, ctx, recovery_callback, phases)
            strategy = self._phase(
                phases,
                RecoveryPhase.STRATEGY_SELECTION,
                select_strategy(
                    assessment,
                    max_auto_recovery_attempts=self.config.escalation.max_auto_recovery_attempts,
                ),
            )
            outcome = await self._execute(
                strategy, error, assessment, ctx, recovery_callback, phases
            )
            outcome = self._validate(outcome, ctx, phases)
            if not outcome["success"] and outcome.get("escalation_ticket") is None:
                outcome["escalation_ticket"] = await self._escalate(error, assessment, outcome, ctx)
            result = RecoveryResult(
                success=bool(outcome["success"]),
                strategy=strategy,
                error_type=assessment.error_type,
                severity=assessment.severity,
                attempts=int(outcome.get("attempts", 0)),
                result=outcome.get("result"),
                error=outcome.get("error"),
                escalation_ticket=outcome.get("escalation_ticket"),
                snapshot_id=outcome.get("snapshot_id"),
                phases=tuple(phases),
                duration_ms=(time.perf_counter() - started) * 1000,
            )
            self._complete(result, assessment, phases)
            return dataclasses.replace(result, phases=tuple(phases))
        finally:
            with self._lock:
                self._active -= 1

    def handle_error_sync(
        self,
        error: BaseException,
        context: Mapping[str, Any] | None = None,
        recovery_callback: Callable[..., Any] | None = None,
    ) -> RecoveryResult:
        """:meth:`handle_error` for code without an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.handle_error(error, context, recovery_callback))
        raise ConfigurationError(
            "handle_error_sync was called inside a running event loop: await handle_error instead"
        )

    # ------------------------------------------------------------------ phases
    def _phase(
        self, phases: list[str], phase: RecoveryPhase, value: Any = None, **attrs: Any
    ) -> Any:
        phases.append(phase.value)
        detail = value.value if isinstance(value, RecoveryStrategy) else None
        get_pipeline().emit(
            EventType.RECOVERY_PHASE,
            name=phase.value,
            attributes={"phase": phase.value, **({"strategy": detail} if detail else {}), **attrs},
        )
        return value

    async def _assess(
        self,
        error: BaseException,
        ctx: dict[str, Any],
        callback: Callable[..., Any] | None,
        phases: list[str],
    ) -> Assessment:
        agent_id = _opt_str(ctx.get("agent_id"))
        task_id = _opt_str(ctx.get("task_id"))
        get_pipeline().emit(
            EventType.RECOVERY_START,
            name=type(error).__name__,
            severity=Severity.MEDIUM,
            attributes={
                "agent_id": agent_id,
                "task_id": task_id,
                "error_message": str(error)[:500],
            },
        )
        info = classify_error(error)
        error_type = (
            ErrorType.INFINITE_LOOP
            if isinstance(error, LoopDetectedError)
            else classify_error_type(error)
        )
        critical = error_type.value in self.config.escalation.critical_error_types
        has_snapshot = False
        if agent_id is not None:
            try:
                has_snapshot = bool(await self.rollback_system.list_snapshots(agent_id))
            except Exception as exc:  # noqa: BLE001 - a broken store must not stop the recovery
                _internal.report_internal_error("recovery.assess", exc, reraise=False)
        with self._lock:
            previous = self._failed_recoveries[(agent_id, task_id)]
        assessment = Assessment(
            error_type=error_type,
            severity=Severity.CRITICAL if critical else Severity(info.severity),
            category=str(info.category),
            retryable=info.retryable,
            agent_id=agent_id,
            task_id=task_id,
            has_callback=callback is not None,
            has_snapshot=has_snapshot,
            previous_failures=previous,
            critical=critical,
            state_corrupted=bool(ctx.get("state_corrupted")),
            retry_after=info.retry_after,
        )
        self._phase(
            phases,
            RecoveryPhase.ASSESSMENT,
            error_type=error_type.value,
            severity=assessment.severity.name.lower(),
        )
        return assessment

    async def _execute(  # noqa: PLR0917 - private; the phases' inputs, in order
        self,
        strategy: RecoveryStrategy,
        error: BaseException,
        a: Assessment,
        ctx: dict[str, Any],
        callback: Callable[..., Any] | None,
        phases: list[str],
    ) -> dict[str, Any]:
        self._phase(phases, RecoveryPhase.EXECUTION, strategy)
        outcome: dict[str, Any] = {"success": False, "attempts": 0}
        if strategy in (RecoveryStrategy.ROLLBACK, RecoveryStrategy.HYBRID):
            restored = await self.rollback_system.rollback(a.agent_id or "")
            outcome["snapshot_id"] = restored.snapshot_id
            if not restored.success:
                outcome["error"] = f"rollback failed: {restored.reason}"
                return outcome
            ctx.setdefault("restored_state", restored.state)
            if strategy is RecoveryStrategy.ROLLBACK or callback is None:
                outcome.update(success=True, result=restored.state)
                return outcome
            if a.critical or a.error_type is ErrorType.INFINITE_LOOP:
                # Restored, but the cause is not fixed: a person decides what runs next.
                outcome.update(
                    success=False,
                    result=restored.state,
                    error="state restored; escalated for review",
                )
                return outcome
        if strategy in (RecoveryStrategy.ESCALATION, RecoveryStrategy.MANUAL) or callback is None:
            outcome["error"] = f"{strategy.value}: needs a person"
            return outcome
        if strategy is RecoveryStrategy.CIRCUIT_BREAKER and a.retry_after is not None:
            # The breaker said when it will let a trial through: wait that long, once.
            await self.retry_system.async_sleep(min(a.retry_after, self.config.retry.max_delay))
        return await self._retry(error, a, ctx, callback, outcome)

    async def _retry(
        self,
        error: BaseException,
        a: Assessment,
        ctx: dict[str, Any],
        callback: Callable[..., Any],
        outcome: dict[str, Any],
    ) -> dict[str, Any]:
        prompt = ctx.get("prompt")
        wants_prompt = isinstance(prompt, str) and accepts_keyword(callback, "adjusted_prompt")
        last_error: list[BaseException] = [error]
        adjuster = self.retry_system.prompt_adjuster

        async def attempt() -> Any:
            outcome["attempts"] += 1
            kwargs: dict[str, Any] = {}
            if wants_prompt:
                kwargs["adjusted_prompt"] = adjuster.adjust(
                    str(prompt),
                    error=last_error[0],
                    error_type=classify_error_type(last_error[0]),
                    attempt=outcome["attempts"] + 1,
                )
            try:
                value = callback(**kwargs)
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                last_error[0] = exc
                raise
            return value

        name = f"recovery:{a.agent_id or 'agent'}:{a.task_id or 'task'}"
        try:
            outcome["result"] = await self.retry_system.policy(name).acall(attempt)
        except Exception as exc:  # noqa: BLE001 - reported in the result, never raised
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            return outcome
        outcome["success"] = True
        return outcome

    def _validate(
        self, outcome: dict[str, Any], ctx: dict[str, Any], phases: list[str]
    ) -> dict[str, Any]:
        validate = ctx.get("validate")
        verdict = "skipped"
        if outcome["success"] and callable(validate):
            try:
                accepted = bool(validate(outcome.get("result")))
            except Exception as exc:  # noqa: BLE001 - a failing validator rejects
                accepted = False
                outcome["error"] = f"validation raised {type(exc).__name__}: {exc}"
            verdict = "accepted" if accepted else "rejected"
            if not accepted:
                outcome["success"] = False
                outcome["error"] = (
                    outcome.get("error") or "the recovered result did not pass validation"
                )
        self._phase(phases, RecoveryPhase.VALIDATION, verdict=verdict)
        return outcome

    async def _escalate(
        self, error: BaseException, a: Assessment, outcome: dict[str, Any], ctx: dict[str, Any]
    ) -> str | None:
        try:
            return await self.escalation_system.create_escalation(
                error,
                recovery_attempts=int(outcome.get("attempts", 0)) + a.previous_failures,
                agent_id=a.agent_id,
                task_id=a.task_id,
                note=str(outcome.get("error") or ""),
            )
        except Exception as exc:  # noqa: BLE001 - escalation trouble must not hide the outcome
            _internal.report_internal_error("recovery.escalate", exc, reraise=False)
            return None

    def _complete(self, result: RecoveryResult, a: Assessment, phases: list[str]) -> None:
        with self._lock:
            self._by_strategy[result.strategy.value] += 1
            if result.success:
                self._stats["successful_recoveries"] += 1
                self._failed_recoveries.pop((a.agent_id, a.task_id), None)
            else:
                self._stats["failed_recoveries"] += 1
                self._failed_recoveries[(a.agent_id, a.task_id)] += 1
            if result.escalation_ticket:
                self._stats["escalations"] += 1
        self._phase(phases, RecoveryPhase.COMPLETION, success=result.success)
        get_pipeline().emit(
            EventType.RECOVERY_SUCCESS if result.success else EventType.RECOVERY_FAILED,
            name=result.strategy.value,
            severity=Severity.INFO if result.success else Severity.HIGH,
            attributes={
                "strategy": result.strategy.value,
                "attempts": result.attempts,
                "escalation_ticket": result.escalation_ticket,
                "error_type": result.error_type.value,
            },
        )
        if a.agent_id is not None:
            try:
                self.history_manager.record_intervention_sync(
                    agent_id=a.agent_id,
                    task_id=a.task_id,
                    kind="automatic",
                    actor="error-handling-system",
                    action=f"{result.strategy.value}: "
                    + ("recovered" if result.success else "not recovered"),
                    details={"attempts": result.attempts, "ticket": result.escalation_ticket},
                )
            except Exception as exc:  # noqa: BLE001 - history is a record, not the recovery
                _internal.report_internal_error("recovery.history", exc, reraise=False)

    # ------------------------------------------------------------------ health
    async def get_system_health(self) -> dict[str, Any]:
        with self._lock:
            stats: dict[str, Any] = {
                "total_errors": self._stats["total_errors"],
                "successful_recoveries": self._stats["successful_recoveries"],
                "failed_recoveries": self._stats["failed_recoveries"],
                "escalations": self._stats["escalations"],
                "by_strategy": dict(self._by_strategy),
            }
            active = self._active
        total = int(stats["total_errors"])
        recovered = int(stats["successful_recoveries"])
        stats["recovery_rate"] = 100.0 * recovered / total if total else 0.0
        subsystems: dict[str, Any] = {}
        for name, probe in (
            ("retry_system", self.retry_system.get_statistics),
            ("escalation_system", self.escalation_system.get_statistics),
            ("loop_detector", self.loop_detector.get_statistics),
        ):
            try:
                subsystems[name] = {"status": "healthy", **probe()}
            except Exception as exc:  # noqa: BLE001 - health reports trouble, it does not raise
                subsystems[name] = {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
        for name, manager in (
            ("rollback_system", self.rollback_system),
            ("history_manager", self.history_manager),
        ):
            try:
                manager.store.schema_status()
                subsystems[name] = {"status": "healthy"}
            except Exception as exc:  # noqa: BLE001
                subsystems[name] = {"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}
        return {"active_errors": active, "stats": stats, "subsystem_status": subsystems}

    async def shutdown(self) -> None:
        """Stop the escalation watchdog and deliver pending notifications."""
        self._closed = True
        await asyncio.to_thread(self.escalation_system.close)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
