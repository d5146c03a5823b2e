"""The escalation policy's pure parts: error facts, priority, level, config, timeouts."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from agentkeel import ConfigurationError
from agentkeel.recovery import (
    EscalationConfig,
    EscalationLevel,
    Ticket,
    TicketStatus,
    choose_level,
    describe_error,
    plan_timeouts,
    score_priority,
)

CONFIG = EscalationConfig()


def level_and_priority(error_context: object, attempts: int = 0) -> tuple[str, int]:
    facts = describe_error(error_context)
    priority = score_priority(facts, attempts, CONFIG)
    return choose_level(priority, facts, attempts, CONFIG).value, priority


# ------------------------------------------------------------------- priority


@pytest.mark.parametrize(
    ("error_context", "attempts", "expected"),
    [
        # medium (20): below every threshold
        (ValueError("bad input"), 0, ("auto_recovery", 20)),
        # high (30) + 3 attempts (15) = 45; 3 attempts = max_auto_recovery_attempts
        (ConnectionError("refused"), 3, ("supervisor_review", 45)),
        # medium (20) + attempts capped at 20 = 40
        ({"error": "x", "severity": "medium"}, 9, ("supervisor_review", 40)),
        # critical (40) + resource weight (15) + critical type (25) = 80
        (MemoryError("out of memory"), 0, ("critical_alert", 80)),
        # high (30) + data_loss (20) = 50
        ({"error": TimeoutError("slow"), "data_loss": True}, 0, ("human_intervention", 50)),
        # high (30) + user_facing 10 + security 20 + auth 10 = 70
        (
            {"error": PermissionError("denied"), "user_facing": True, "security": True},
            0,
            ("human_intervention", 70),
        ),
        # loop: high (30) + loop weight 15 + critical type "infinite_loop" 25 = 70
        ({"error": "stuck", "category": "loop"}, 0, ("human_intervention", 70)),
        # low (10): auto recovery, but 3 attempts floor it at supervisor review
        ({"error": "meh", "severity": "low"}, 3, ("supervisor_review", 25)),
        # everything at once is clamped to 100
        (
            {
                "error": MemoryError(),
                "data_loss": True,
                "security": True,
                "user_facing": True,
            },
            10,
            ("critical_alert", 100),
        ),
    ],
)
def test_priority_formula_and_level(
    error_context: object, attempts: int, expected: tuple[str, int]
) -> None:
    assert level_and_priority(error_context, attempts) == expected


def test_a_critical_error_type_is_at_least_human_intervention() -> None:
    config = EscalationConfig(critical_error_types=["validation_error"], critical_type_points=0)
    facts = describe_error(ValueError("bad"))
    priority = score_priority(facts, 0, config)
    assert priority == 20
    assert choose_level(priority, facts, 0, config) is EscalationLevel.HUMAN_INTERVENTION


def test_the_tables_and_thresholds_are_configurable() -> None:
    config = EscalationConfig(
        severity_points={"high": 60},
        attempt_points=1,
        level_thresholds={"critical_alert": 60},
        error_type_weights={"ConnectionError": 7},
    )
    facts = describe_error(ConnectionError("x"))
    assert score_priority(facts, 2, config) == 60 + 2 + 7
    assert choose_level(69, facts, 0, config) is EscalationLevel.CRITICAL_ALERT


# ------------------------------------------------------------------ error facts


def test_facts_from_an_exception_use_classification() -> None:
    facts = describe_error(TimeoutError("read timed out after 30s"))
    assert (facts.error_type, facts.category, facts.severity) == ("TimeoutError", "timeout", "high")
    assert facts.retryable is True and len(facts.fingerprint) == 12
    assert facts.fingerprint == describe_error(TimeoutError("read timed out after 9s")).fingerprint


def test_facts_from_a_seed_style_mapping() -> None:
    class ErrorSeverity(enum.Enum):
        HIGH = "high"

    class ErrorType(enum.Enum):
        TOOL_FAILURE = "tool_failure"

    facts = describe_error(
        {
            "error": RuntimeError("tool exploded"),
            "error_type": ErrorType.TOOL_FAILURE,
            "severity": ErrorSeverity.HIGH,
            "agent_id": "agent-1",
            "task_id": "t-9",
            "user_facing": True,
            "additional_context": {"key": "value"},
            "attempt": 3,
        }
    )
    assert facts.error_type == "tool_failure" and facts.severity == "high"
    assert facts.error_message == "tool exploded"
    assert (facts.agent_id, facts.task_id, facts.flags) == ("agent-1", "t-9", ("user_facing",))
    assert facts.context == {"additional_context": "{'key': 'value'}", "attempt": 3}


def test_facts_from_an_object_a_string_and_odd_values() -> None:
    @dataclass(frozen=True, slots=True)
    class ErrorContext:
        error: BaseException
        agent_id: str
        severity: int
        category: str

    facts = describe_error(ErrorContext(KeyError("tool"), "a-1", 4, "my_own_category"))
    assert facts.severity == "critical" and facts.category == "my_own_category"
    assert facts.agent_id == "a-1" and facts.error_type == "KeyError"
    plain = describe_error("the tool said no")
    assert (plain.error_type, plain.error_message, plain.category) == (
        "Error",
        "the tool said no",
        "unknown",
    )
    odd = describe_error({"error": "x", "severity": "very bad", "error_message": "y" * 5_000})
    assert odd.severity == "medium" and len(odd.error_message) < 2_100


# ---------------------------------------------------------------------- config


def test_config_from_the_seed_section() -> None:
    config = EscalationConfig.from_dict(
        {
            "max_auto_recovery_attempts": 5,
            "escalation_timeout": 300,
            "critical_error_types": ["infinite_loop", "resource_error"],
            "notification_channels": {"email": True, "slack": False, "webhook": False},
        }
    )
    assert config.timeout_seconds == 300.0 and config.max_auto_recovery_attempts == 5
    assert not config.channel_enabled("slack") and config.channel_enabled("email")
    assert config.channel_enabled(None)
    assert EscalationConfig(escalation_timeout=timedelta(minutes=2)).timeout_seconds == 120.0


def test_unknown_config_keys_list_the_allowed_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        EscalationConfig.from_dict({"escalation_timout": 3})
    assert "unknown escalation setting(s) escalation_timout" in str(caught.value)
    assert "escalation_timeout" in str(caught.value).split("allowed are")[1]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"escalation_timeout": 0}, "escalation_timeout must be positive"),
        ({"timeout_action": "page"}, "timeout_action must be 'escalate' or 'expire'"),
        ({"severity_points": {"huge": 1}}, "severity_points has an unknown key 'huge'"),
        ({"level_thresholds": {"critical_alert": 10}}, "must rise with the level"),
        ({"notify_on": ["created", "deleted"]}, "notify_on has 'deleted'"),
        ({"notification_channels": {"pager": True}}, "notification_channels must map"),
        ({"notify_min_level": "top"}, "unknown escalation level 'top'"),
        ({"context_flag_points": {"user_facing": "10"}}, r"context_flag_points\['user_facing'\]"),
    ],
)
def test_config_errors_say_what_is_wrong(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        EscalationConfig(**settings)


# -------------------------------------------------------------------- timeouts


def ticket(ticket_id: str, level: EscalationLevel, deadline: float | None, **kw: Any) -> Ticket:
    values: dict[str, Any] = {
        "ticket_id": ticket_id,
        "level": level,
        "priority": 50,
        "status": TicketStatus.OPEN,
        "error_type": "E",
        "error_message": "",
        "category": "unknown",
        "severity": "medium",
        "fingerprint": "",
        "created_at": 0.0,
        "updated_at": 0.0,
        "deadline": deadline,
    }
    values.update(kw)
    return Ticket(**values)


def test_plan_timeouts_escalates_overdue_tickets_and_expires_at_the_top() -> None:
    tickets = [
        ticket("a", EscalationLevel.AUTO_RECOVERY, 100.0),
        ticket("b", EscalationLevel.CRITICAL_ALERT, 50.0),
        ticket("c", EscalationLevel.HUMAN_INTERVENTION, 500.0),
        ticket("d", EscalationLevel.SUPERVISOR_REVIEW, None, status=TicketStatus.ACKNOWLEDGED),
        ticket("e", EscalationLevel.SUPERVISOR_REVIEW, 10.0, status=TicketStatus.RESOLVED),
    ]
    decisions = plan_timeouts(tickets, 100.0, CONFIG)
    assert [(d.ticket_id, d.action, d.level.value, d.deadline) for d in decisions] == [
        ("a", "escalate", "supervisor_review", 700.0),
        ("b", "expire", "critical_alert", None),
    ]
    expire = EscalationConfig(timeout_action="expire")
    assert [d.action for d in plan_timeouts(tickets, 100.0, expire)] == ["expire", "expire"]
