"""What the loop detector counts as a loop: every threshold, validated at construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agentkeel._errors import ConfigurationError
from agentkeel.recovery import _config_checks as check

__all__ = ["LoopDetectionConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopDetectionConfig:
    """The loop detector's settings (seed names first). Durations: seconds or ``timedelta``.

    The window — what the detector remembers per agent:

    * ``max_iterations`` — the last this-many steps (default 100).
    * ``time_window_seconds`` — and only those of the last this-many seconds (600).

    The rules (each counted within the window; see docs/recovery/loop-detection.md):

    * ``max_repeats`` — the same call (action, arguments, state) succeeding with the
      same result this many times is a loop: default 3, so the 3rd is stopped.
      ``max_repeats_by_action`` raises or lowers it for named actions (a status poll).
    * ``cycle_repeats`` / ``max_cycle_length`` — a run of 2..``max_cycle_length``
      different successful steps repeated ``cycle_repeats`` times (A, B, A, B: 2).
    * ``similarity_threshold`` / ``max_similar`` — the same action with every
      argument alike (strings whose difflib ratio reaches the threshold after case
      and spacing are ignored; numbers equal), returning the same result,
      ``max_similar`` times.
    * ``max_error_repeats`` — the same error this many times with no successful step
      in between (default 4: one more than a default retry policy's 3 attempts).
    * ``max_state_visits`` — the same ``state`` seen this many times.
    * ``max_total_steps`` — optional hard cap on an agent's steps since its last reset.

    What happens: ``enable_auto_pause`` pauses the agent after a loop, so its next
    steps raise ``AgentPausedError`` until ``resume_agent``. ``ignore_actions`` are
    never recorded (sleeps, heartbeats). ``max_agents`` bounds memory: the least
    recently active agent's window is forgotten first (its pause is kept).
    """

    max_iterations: int = 100
    time_window_seconds: float | timedelta = 600.0
    similarity_threshold: float = 0.9
    enable_auto_pause: bool = True
    max_repeats: int = 3
    max_repeats_by_action: Mapping[str, int] = field(default_factory=dict)
    cycle_repeats: int = 2
    max_cycle_length: int = 5
    max_similar: int = 4
    similar_lookback: int = 8
    max_error_repeats: int = 4
    max_state_visits: int = 3
    max_total_steps: int | None = None
    ignore_actions: tuple[str, ...] | frozenset[str] = ()
    max_patterns_kept: int = 50
    max_agents: int = 10_000
    emit_events: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "max_iterations", check.count(self.max_iterations, "max_iterations", minimum=2))
        set_(
            self,
            "time_window_seconds",
            check.seconds(self.time_window_seconds, "time_window_seconds", allow_inf=True),
        )
        set_(
            self,
            "similarity_threshold",
            check.fraction(self.similarity_threshold, "similarity_threshold"),
        )
        if self.similarity_threshold == 0:
            raise ConfigurationError(
                "similarity_threshold must be above 0 (0 would call any two calls similar); "
                "set max_similar higher to make near-duplicates rarer"
            )
        check.flag(self.enable_auto_pause, "enable_auto_pause")
        check.flag(self.emit_events, "emit_events")
        check.count(self.max_repeats, "max_repeats", minimum=2)
        by_action = check.points(self.max_repeats_by_action, "max_repeats_by_action")
        for action, limit in by_action.items():
            check.count(limit, f"max_repeats_by_action[{action!r}]", minimum=2)
        # Action names are case-sensitive, unlike other point tables: keep them as given.
        set_(
            self,
            "max_repeats_by_action",
            {str(k): int(v) for k, v in dict(self.max_repeats_by_action).items()},
        )
        check.count(self.cycle_repeats, "cycle_repeats", minimum=2)
        check.count(self.max_cycle_length, "max_cycle_length", minimum=2)
        check.count(self.max_similar, "max_similar", minimum=2)
        check.count(self.similar_lookback, "similar_lookback", minimum=1)
        check.count(self.max_error_repeats, "max_error_repeats", minimum=2)
        check.count(self.max_state_visits, "max_state_visits", minimum=2)
        if self.max_total_steps is not None:
            check.count(self.max_total_steps, "max_total_steps")
        set_(self, "ignore_actions", frozenset(check.names(self.ignore_actions, "ignore_actions")))
        check.count(self.max_patterns_kept, "max_patterns_kept")
        check.count(self.max_agents, "max_agents")
        longest = self.max_cycle_length * self.cycle_repeats
        if longest > self.max_iterations:
            raise ConfigurationError(
                f"max_cycle_length * cycle_repeats = {longest} steps do not fit in the window "
                f"of max_iterations={self.max_iterations}: raise max_iterations or lower them"
            )

    @property
    def window_seconds(self) -> float:
        """``time_window_seconds`` as float seconds (it is normalised at construction)."""
        value = self.time_window_seconds
        return value.total_seconds() if isinstance(value, timedelta) else float(value)

    def repeats_for(self, action: str) -> int:
        return self.max_repeats_by_action.get(action, self.max_repeats)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopDetectionConfig:
        """Build from a plain mapping (the seed's ``'loop_detection'`` section).

        Unknown keys are an error that lists the allowed ones.
        """
        return check.from_mapping(cls, data, label="loop_detection")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_iterations": self.max_iterations,
            "time_window_seconds": self.window_seconds,
            "similarity_threshold": self.similarity_threshold,
            "enable_auto_pause": self.enable_auto_pause,
            "max_repeats": self.max_repeats,
            "max_repeats_by_action": dict(self.max_repeats_by_action),
            "cycle_repeats": self.cycle_repeats,
            "max_cycle_length": self.max_cycle_length,
            "max_similar": self.max_similar,
            "similar_lookback": self.similar_lookback,
            "max_error_repeats": self.max_error_repeats,
            "max_state_visits": self.max_state_visits,
            "max_total_steps": self.max_total_steps,
            "ignore_actions": sorted(self.ignore_actions),
            "max_patterns_kept": self.max_patterns_kept,
            "max_agents": self.max_agents,
            "emit_events": self.emit_events,
        }
