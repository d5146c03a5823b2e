"""Recovery: escalate to people, detect loops, guard decisions, and roll back.

Escalation (:class:`EscalationManager`) opens prioritised tickets, announces them
through signed webhooks, Slack-style webhooks or email, moves them up a level when
nobody answers, and reports on them; tickets are events in the store, so ``keel
escalations`` sees them too. Loop detection (:class:`LoopDetector`) stops an agent
that repeats itself; :class:`DecisionLoopGuard` and :class:`DeadlockDetector` guard
decision loops and waits.

Rollback (:class:`RollbackManager`) snapshots an agent's state and restores it,
never from a snapshot that fails its SHA-256 check; history (:class:`HistoryManager`)
records numbered versions of it, diffs them, and keeps a timeline of interventions.
"""

from agentkeel.recovery._diff import Change, StateDiff, diff_states
from agentkeel.recovery._errors import (
    AgentPausedError,
    CorruptSnapshotError,
    CorruptStateError,
    CorruptVersionError,
    DeadlockError,
    DecisionLoopError,
    LoopDetectedError,
    NotificationError,
    RecoveryError,
    StateEncodingError,
    TicketStateError,
    UnknownSnapshotError,
    UnknownTicketError,
    UnknownVersionError,
)
from agentkeel.recovery._escalation import EscalationManager
from agentkeel.recovery._escalation_policy import (
    ErrorFacts,
    EscalationConfig,
    TimeoutDecision,
    choose_level,
    describe_error,
    plan_timeouts,
    score_priority,
)
from agentkeel.recovery._escalation_report import EscalationReport
from agentkeel.recovery._guards import DeadlockDetector, DecisionLoopGuard, DecisionProgress
from agentkeel.recovery._history import (
    HistoryConfig,
    HistoryManager,
    Intervention,
    StateVersion,
    TimelineEntry,
    VersionInfo,
)
from agentkeel.recovery._loop_config import LoopDetectionConfig
from agentkeel.recovery._loop_fingerprint import LoopKind, LoopVerdict
from agentkeel.recovery._loops import LoopDetector, StepGuard
from agentkeel.recovery._notifiers import (
    EmailNotifier,
    Notification,
    Notifier,
    SlackNotifier,
    WebhookNotifier,
    sign_payload,
    slack_payload,
    verify_signature,
)
from agentkeel.recovery._orchestrator import (
    Assessment,
    RecoveryPhase,
    RecoveryResult,
    RecoveryStrategy,
    select_strategy,
)
from agentkeel.recovery._rollback import (
    RollbackAttempt,
    RollbackConfig,
    RollbackManager,
    RollbackResult,
    Snapshot,
    SnapshotInfo,
    SnapshotValidator,
)
from agentkeel.recovery._state_codec import DecodeHook, EncodeHook
from agentkeel.recovery._system import (
    ErrorHandlingConfig,
    ErrorHandlingSystem,
    RetrySystem,
    RetrySystemConfig,
)
from agentkeel.recovery._ticket import (
    EscalationLevel,
    Ticket,
    TicketChange,
    TicketStatus,
    fold_ticket,
    fold_tickets,
)

# Plain sorted() order, which tests/unit/core/test_public_api.py checks for every package.
__all__ = [
    "AgentPausedError",
    "Assessment",
    "Change",
    "CorruptSnapshotError",
    "CorruptStateError",
    "CorruptVersionError",
    "DeadlockDetector",
    "DeadlockError",
    "DecisionLoopError",
    "DecisionLoopGuard",
    "DecisionProgress",
    "DecodeHook",
    "EmailNotifier",
    "EncodeHook",
    "ErrorFacts",
    "ErrorHandlingConfig",
    "ErrorHandlingSystem",
    "EscalationConfig",
    "EscalationLevel",
    "EscalationManager",
    "EscalationReport",
    "HistoryConfig",
    "HistoryManager",
    "Intervention",
    "LoopDetectedError",
    "LoopDetectionConfig",
    "LoopDetector",
    "LoopKind",
    "LoopVerdict",
    "Notification",
    "NotificationError",
    "Notifier",
    "RecoveryError",
    "RecoveryPhase",
    "RecoveryResult",
    "RecoveryStrategy",
    "RetrySystem",
    "RetrySystemConfig",
    "RollbackAttempt",
    "RollbackConfig",
    "RollbackManager",
    "RollbackResult",
    "SlackNotifier",
    "Snapshot",
    "SnapshotInfo",
    "SnapshotValidator",
    "StateDiff",
    "StateEncodingError",
    "StateVersion",
    "StepGuard",
    "Ticket",
    "TicketChange",
    "TicketStateError",
    "TicketStatus",
    "TimelineEntry",
    "TimeoutDecision",
    "UnknownSnapshotError",
    "UnknownTicketError",
    "UnknownVersionError",
    "VersionInfo",
    "WebhookNotifier",
    "choose_level",
    "describe_error",
    "diff_states",
    "fold_ticket",
    "fold_tickets",
    "plan_timeouts",
    "score_priority",
    "select_strategy",
    "sign_payload",
    "slack_payload",
    "verify_signature",
]
