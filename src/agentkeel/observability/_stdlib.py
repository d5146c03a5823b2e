"""Interop with the standard :mod:`logging` module, both ways.

* :class:`JsonFormatter` renders stdlib records as our JSON lines, for handlers the
  application already has.
* :class:`KeelHandler` sends stdlib records into agentkeel's writer, so libraries
  that log through stdlib end up in the same stream, file and rotation as ours.
* ``configure_logging(stdlib=True)`` goes the other way (see ``_writer.StdlibOutput``).

Records we forwarded to stdlib are marked, so a :class:`KeelHandler` on the root
logger does not send them round again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agentkeel import _context
from agentkeel._context import _scope
from agentkeel._encoding import safe_repr
from agentkeel.observability._logging import _core, _fields
from agentkeel.observability._render import format_exception, render
from agentkeel.observability._writer import FORWARDED_ATTR, Origin, make_record

_MISSING = object()


def _metadata_of(record: logging.LogRecord) -> dict[str, Any] | None:
    metadata = record.__dict__.get("metadata")
    if metadata is None:
        return None
    if isinstance(metadata, Mapping):
        return dict(metadata)
    return {"value": safe_repr(metadata)}


def _with_stack(text: str | None, record: logging.LogRecord) -> str | None:
    if not record.stack_info:
        return text
    return f"{text}\n{record.stack_info}" if text else record.stack_info


class JsonFormatter(logging.Formatter):
    """Formats stdlib records as agentkeel JSON lines (the same keys, in the same order).

    ``correlation_id``, ``run_id`` and ``span_id`` come from the record if it has
    them (``extra={...}`` or a record we forwarded), else from the context of the
    thread that formats it. ``extra={"metadata": {...}}`` becomes the line's
    metadata; a ``component`` attribute its component. Secrets are redacted unless
    ``redact=False``.
    """

    def __init__(self, *, redact: bool = True, component: str | None = None) -> None:
        super().__init__()
        self.redact = redact
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        attrs = record.__dict__
        scope = _scope.get()
        cid = attrs.get("correlation_id", _MISSING)
        if cid is _MISSING:
            cid = _context.get_correlation_id()
        run_id = attrs.get("run_id", _MISSING)
        span_id = attrs.get("span_id", _MISSING)
        if record.exc_info and record.exc_info[0] is not None:
            exception: str | None = format_exception(record.exc_info)
        else:
            exception = record.exc_text or None
        exception = _with_stack(exception, record)
        _entry, line = render(
            ts=record.created,
            levelno=record.levelno,
            message=record.getMessage(),
            logger=record.name,
            component=attrs.get("component") or self.component,
            correlation_id=None if cid is None else str(cid),
            run_id=scope.run_id if run_id is _MISSING else run_id,
            span_id=scope.span_id if span_id is _MISSING else span_id,
            metadata=_metadata_of(record),
            exception=exception,
            redacting=self.redact,
            level=record.levelname,  # stdlib's own name, also for custom levels
        )
        return line[:-1].decode("utf-8")


class KeelHandler(logging.Handler):
    """A stdlib handler that writes records through agentkeel's log writer.

    The record is captured like one of our own lines (message formatted now,
    correlation ID and run from the current context) and rendered, redacted and
    written off the caller's thread. The handler's own level filters; agentkeel's
    configured level does not apply (the stdlib logger already decided).
    """

    def __init__(self, level: int = logging.NOTSET, *, component: str | None = None) -> None:
        super().__init__(level)
        self.component = component

    def emit(self, record: logging.LogRecord) -> None:
        if record.__dict__.get(FORWARDED_ATTR):
            return  # one of ours, forwarded to stdlib: it is written already
        try:
            exc: Any = None
            if record.exc_info and record.exc_info[0] is not None:
                exc = record.exc_info
                if record.stack_info:
                    exc = _with_stack(format_exception(exc), record)
            else:
                exc = _with_stack(record.exc_text, record)
            scope = _scope.get()
            cid = record.__dict__.get("correlation_id")
            if cid is not None and scope.correlation_id is None:
                scope = replace(scope, correlation_id=str(cid))
            component = record.__dict__.get("component") or self.component
            origin = Origin(record.name, component, None, from_stdlib=True)
            _core.submit(
                make_record(
                    ts=record.created,
                    levelno=record.levelno,
                    message=record.getMessage(),
                    metadata=_metadata_of(record),
                    scope=scope,
                    global_cid=_context._global_correlation_id,
                    context_fields=_fields.get(),
                    exc=exc,
                    origin=origin,
                )
            )
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - stdlib's convention: report, do not raise
            self.handleError(record)
