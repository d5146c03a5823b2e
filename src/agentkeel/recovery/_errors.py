"""Exceptions raised by the recovery subsystems themselves.

The agent's own exceptions always pass through unchanged (a loop detected on a
failing step keeps the step's exception as ``__cause__``)::

    KeelError
    └── RecoveryError                         a recovery subsystem refused or failed
        ├── LoopDetectedError                 the step would repeat a loop; carries ``verdict``
        ├── AgentPausedError                  the agent is paused until ``resume_agent``
        ├── DecisionLoopError                 a decision maker ran too long or oscillates
        ├── DeadlockError                     a wait-for cycle; carries ``cycle``
        ├── UnknownTicketError (LookupError)  no escalation ticket has that ID (or prefix)
        ├── TicketStateError                  the ticket's status does not allow the change
        ├── NotificationError                 a notifier gave up (never raised into agents)
        ├── CorruptStateError                 a stored state failed its checksum or won't decode
        │   ├── CorruptSnapshotError          … a snapshot; names the next older intact one
        │   └── CorruptVersionError           … a recorded state version
        ├── UnknownSnapshotError (LookupError)  no snapshot has that ID
        ├── UnknownVersionError (LookupError)   no recorded version has that ID
        └── StateEncodingError (TypeError)    the state holds what JSON cannot, and no hook took it
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentkeel._errors import KeelError

if TYPE_CHECKING:
    from agentkeel.recovery._loop_fingerprint import LoopVerdict


class RecoveryError(KeelError):
    """A recovery subsystem refused a step or could not do what was asked."""


class LoopDetectedError(RecoveryError):
    """The agent is repeating itself; ``verdict`` says how (kind, actions, count)."""

    keel_category = "loop"  # classified as a loop (error type infinite_loop) everywhere

    def __init__(self, verdict: LoopVerdict) -> None:
        self.verdict = verdict
        super().__init__(
            f"{verdict.message}; agent {verdict.agent_id!r} is stopped"
            + (" and paused: call resume_agent() once the cause is fixed" if verdict.paused else "")
        )


class AgentPausedError(RecoveryError):
    """The agent was paused (by loop detection or by hand); ``resume_agent`` lets it go on."""

    def __init__(self, agent_id: str, reason: str, verdict: LoopVerdict | None = None) -> None:
        self.agent_id = agent_id
        self.reason = reason
        self.verdict = verdict
        super().__init__(
            f"agent {agent_id!r} is paused ({reason}); "
            f"call resume_agent({agent_id!r}) or reset_agent({agent_id!r}) to let it run again"
        )


class DecisionLoopError(RecoveryError):
    """A decision maker exceeded its iterations or keeps flipping between options.

    ``kind`` is max_iterations, oscillation or converged; ``best`` the best decision seen.
    """

    def __init__(self, kind: str, message: str, *, iterations: int, best: object = None) -> None:
        self.kind = kind
        self.iterations = iterations
        self.best = best
        super().__init__(message)


class DeadlockError(RecoveryError):
    """Waiting would close a cycle in the wait-for graph; ``cycle`` lists who waits on whom."""

    def __init__(self, cycle: tuple[str, ...]) -> None:
        self.cycle = cycle
        path = " -> ".join((*cycle, cycle[0]))
        super().__init__(f"deadlock: {path} wait on each other; release one of them first")


class UnknownTicketError(RecoveryError, LookupError):
    """No escalation ticket matches the given ID or ID prefix."""


class TicketStateError(RecoveryError):
    """The ticket's current status does not allow that change (e.g. resolving it twice)."""


class NotificationError(RecoveryError):
    """A notifier gave up after its retries. Logged and noted on the ticket, never raised
    into the agent."""


class CorruptStateError(RecoveryError):
    """A stored state failed its SHA-256 check or could not be decoded: it is never used."""


class CorruptSnapshotError(CorruptStateError):
    """A snapshot is corrupt; ``fallback_id`` is the next older intact snapshot, if any."""

    def __init__(
        self, snapshot_id: str, agent_id: str, problem: str, fallback_id: str | None
    ) -> None:
        self.snapshot_id = snapshot_id
        self.agent_id = agent_id
        self.problem = problem
        self.fallback_id = fallback_id
        advice = (
            f"the next older intact snapshot is {fallback_id!r}: roll back to it "
            f"(keel rollback {agent_id} --snapshot {fallback_id})"
            if fallback_id is not None
            else f"agent {agent_id!r} has no older intact snapshot"
        )
        super().__init__(
            f"snapshot {snapshot_id!r} of agent {agent_id!r} is corrupt ({problem}) and "
            f"will not be restored; {advice}"
        )


class CorruptVersionError(CorruptStateError):
    """A recorded state version is corrupt; it is never returned or compared."""

    def __init__(self, agent_id: str, task_id: str, version_id: str, problem: str) -> None:
        self.agent_id = agent_id
        self.task_id = task_id
        self.version_id = version_id
        self.problem = problem
        super().__init__(
            f"version {version_id} of agent {agent_id!r}, task {task_id!r} is corrupt "
            f"({problem}); list the intact versions with `keel history {agent_id} --task "
            f"{task_id}`"
        )


class UnknownSnapshotError(RecoveryError, LookupError):
    """No snapshot has that ID (it may have been pruned by the retention limits)."""


class UnknownVersionError(RecoveryError, LookupError):
    """No recorded state version has that ID (it may have been pruned by retention)."""


class StateEncodingError(RecoveryError, TypeError):
    """The state holds a value JSON cannot represent and no ``encode_hook`` converted it."""
