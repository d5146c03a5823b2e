"""agentkeel: keeps AI agents running when things go wrong, and shows what went wrong."""

import logging as _logging

from agentkeel._context import (
    ContextThreadPoolExecutor,
    Scope,
    current_scope,
    get_correlation_id,
    propagate,
    set_correlation_id,
    set_global_correlation_id,
)
from agentkeel._errors import (
    ChaosError,
    ConfigurationError,
    KeelError,
    PipelineError,
    SchemaVersionError,
    StoreCorruptError,
    StoreError,
    StoreUnavailableError,
    UnknownRunError,
)
from agentkeel._internal import set_strict
from agentkeel._runs import run, step
from agentkeel._runtime import configure, emit, flush, get_pipeline, get_store, shutdown
from agentkeel.events import Category, Event, EventType, FailureRecord, Severity

__version__ = "0.1.0"

# A library logs only where its user asks (the logging HOWTO's advice): without this,
# Python's last-resort handler would print our warnings to stderr.
_logging.getLogger("agentkeel").addHandler(_logging.NullHandler())

__all__ = [
    "Category",
    "ChaosError",
    "ConfigurationError",
    "ContextThreadPoolExecutor",
    "Event",
    "EventType",
    "FailureRecord",
    "KeelError",
    "PipelineError",
    "SchemaVersionError",
    "Scope",
    "Severity",
    "StoreCorruptError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownRunError",
    "configure",
    "current_scope",
    "emit",
    "flush",
    "get_correlation_id",
    "get_pipeline",
    "get_store",
    "propagate",
    "run",
    "set_correlation_id",
    "set_global_correlation_id",
    "set_strict",
    "shutdown",
    "step",
]
