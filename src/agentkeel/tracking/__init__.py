"""Failure tracking: classify, record, log and report what went wrong in a run.

Record failures with a :class:`FailureTracker` (or let :class:`TrackedToolRegistry`
and :func:`track_node` do it), read the crash-safe per-run log back with
:func:`read_failure_log`, and show it with :meth:`FailureTracker.generate_report` or
:func:`display_failure_report`. :class:`ChaosMonkey` injects failures on purpose.
"""

from agentkeel.tracking._chaos import (
    INJECTABLE_CATEGORIES,
    ChaosAuthError,
    ChaosConfig,
    ChaosMonkey,
    ChaosNetworkError,
    ChaosParsingError,
    ChaosRateLimitError,
    ChaosResourceError,
    ChaosStats,
    ChaosTimeoutError,
    ChaosToolNotFoundError,
    ChaosValidationError,
    Fault,
)
from agentkeel.tracking._classify import (
    Classification,
    classify_error,
    fingerprint,
    normalize_message,
    parse_retry_after,
)
from agentkeel.tracking._display import display_failure_report, render_failure_report
from agentkeel.tracking._executor import current_node, executor_with_tracking, track_node
from agentkeel.tracking._jsonl import CorruptLogWarning, read_failure_log
from agentkeel.tracking._registry import TrackedToolRegistry, UnknownToolError
from agentkeel.tracking._report import generate_report, summarize_failures
from agentkeel.tracking._settings import TrackingSettings
from agentkeel.tracking._tracker import (
    FailureTracker,
    get_failure_tracker,
    set_failure_tracker,
    use_failure_tracker,
)

# Plain sorted() order, which tests/unit/core/test_public_api.py checks for every package.
__all__ = [  # noqa: RUF022
    "ChaosAuthError",
    "ChaosConfig",
    "ChaosMonkey",
    "ChaosNetworkError",
    "ChaosParsingError",
    "ChaosRateLimitError",
    "ChaosResourceError",
    "ChaosStats",
    "ChaosTimeoutError",
    "ChaosToolNotFoundError",
    "ChaosValidationError",
    "Classification",
    "CorruptLogWarning",
    "FailureTracker",
    "Fault",
    "INJECTABLE_CATEGORIES",
    "TrackedToolRegistry",
    "TrackingSettings",
    "UnknownToolError",
    "classify_error",
    "current_node",
    "display_failure_report",
    "executor_with_tracking",
    "fingerprint",
    "generate_report",
    "get_failure_tracker",
    "normalize_message",
    "parse_retry_after",
    "read_failure_log",
    "render_failure_report",
    "set_failure_tracker",
    "summarize_failures",
    "track_node",
    "use_failure_tracker",
]
