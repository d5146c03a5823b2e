"""Observability: structured JSON logging with correlation IDs, redaction and rotation.

::

    from agentkeel.observability import get_logger, log_context

    logger = get_logger(__name__, component="planner")
    with log_context(correlation_id=request_id):
        logger.info("plan ready", metadata={"steps": 4})
"""

from agentkeel._context import get_correlation_id, set_correlation_id, set_global_correlation_id
from agentkeel.observability._logging import (
    KeelLogger,
    async_log_context,
    configure_global_rotation,
    configure_logging,
    flush_logs,
    get_logger,
    log_context,
    logging_stats,
)
from agentkeel.observability._redact import redact
from agentkeel.observability._rotation import LogRotationConfig
from agentkeel.observability._stdlib import JsonFormatter, KeelHandler
from agentkeel.observability._writer import LoggingStats

__all__ = [
    "JsonFormatter",
    "KeelHandler",
    "KeelLogger",
    "LogRotationConfig",
    "LoggingStats",
    "async_log_context",
    "configure_global_rotation",
    "configure_logging",
    "flush_logs",
    "get_correlation_id",
    "get_logger",
    "log_context",
    "logging_stats",
    "redact",
    "set_correlation_id",
    "set_global_correlation_id",
]
