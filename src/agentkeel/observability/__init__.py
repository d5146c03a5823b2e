"""Observability: structured JSON logging with correlation IDs, redaction and rotation.

::

    from agentkeel.observability import get_logger, log_context

    logger = get_logger(__name__, component="planner")
    with log_context(correlation_id=request_id):
        logger.info("plan ready", metadata={"steps": 4})

Traces (OpenTelemetry, GenAI conventions) and adaptive sampling that never drops errors::

    from agentkeel.observability import configure_otlp, instrument_tracing

    handle = instrument_tracing(configure_otlp(endpoint="http://127.0.0.1:4318"), sampling=True)
"""

from agentkeel._context import get_correlation_id, set_correlation_id, set_global_correlation_id
from agentkeel.observability._genai import span_id_for_event, trace_id_for_run
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
from agentkeel.observability._otlp import configure_otlp
from agentkeel.observability._redact import redact
from agentkeel.observability._rotation import LogRotationConfig
from agentkeel.observability._sampling import (
    ERROR_EVENT_TYPES,
    SamplingConfig,
    SamplingManager,
    SamplingStatistics,
    SamplingStrategy,
    TailStatistics,
    get_sampling_manager,
    is_error_event,
)
from agentkeel.observability._stdlib import JsonFormatter, KeelHandler
from agentkeel.observability._tail import TailSampler, TailStats
from agentkeel.observability._tracing import (
    OTelSpanSink,
    TracingHandle,
    TracingStats,
    instrument_tracing,
)
from agentkeel.observability._writer import LoggingStats

__all__ = [
    "ERROR_EVENT_TYPES",
    "JsonFormatter",
    "KeelHandler",
    "KeelLogger",
    "LogRotationConfig",
    "LoggingStats",
    "OTelSpanSink",
    "SamplingConfig",
    "SamplingManager",
    "SamplingStatistics",
    "SamplingStrategy",
    "TailSampler",
    "TailStatistics",
    "TailStats",
    "TracingHandle",
    "TracingStats",
    "async_log_context",
    "configure_global_rotation",
    "configure_logging",
    "configure_otlp",
    "flush_logs",
    "get_correlation_id",
    "get_logger",
    "get_sampling_manager",
    "instrument_tracing",
    "is_error_event",
    "log_context",
    "logging_stats",
    "redact",
    "set_correlation_id",
    "set_global_correlation_id",
    "span_id_for_event",
    "trace_id_for_run",
]
