"""Structured JSON logging with correlation IDs: the loggers and their configuration.

``get_logger(name, component=...)`` returns a :class:`KeelLogger`. Its level
methods are plain functions installed on each instance, rebuilt whenever the
configuration changes (the trick of structlog's filtering bound logger):

* a level below the configured one gets a do-nothing function, so a disabled
  ``debug()`` costs one call and nothing else;
* an enabled level captures ``(time, level, message, shallow copy of metadata,
  scope, correlation ID, context fields, exc_info)`` into the writer's bounded
  buffer and returns. Rendering, redaction and I/O happen on the writer thread
  (see ``_writer``); ``sync=True`` does them on the caller's thread instead.

Correlation IDs are agentkeel's own (:mod:`agentkeel._context`): the same ID that
events and runs carry. Inside :func:`agentkeel.run` every line also has the
run's ``run_id`` and ``span_id``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import replace
from datetime import timedelta
from types import TracebackType
from typing import IO, Any, Literal

from agentkeel import _context, _internal
from agentkeel._context import Scope, _scope
from agentkeel._encoding import safe_repr
from agentkeel._errors import ConfigurationError
from agentkeel.observability._render import (
    CRITICAL,
    DEBUG,
    ERROR,
    INFO,
    LEVEL_NAMES,
    WARNING,
    ExcTuple,
)
from agentkeel.observability._rotation import LogRotationConfig
from agentkeel.observability._writer import (
    LogCore,
    LoggingStats,
    Origin,
    Settings,
    make_record,
    wake_threshold,
)

LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ExcInfo = BaseException | bool | ExcTuple | tuple[None, None, None] | None
LogMethod = Callable[..., None]

_LEVELS_BY_NAME: dict[str, int] = {name: no for no, name in LEVEL_NAMES.items()}
_LEVELS_BY_NAME["WARN"] = WARNING
_METHODS: tuple[tuple[str, int, bool], ...] = (
    # (method, level, exc_info by default)
    ("debug", DEBUG, False),
    ("info", INFO, False),
    ("warning", WARNING, False),
    ("error", ERROR, False),
    ("critical", CRITICAL, False),
    ("exception", ERROR, True),
)

# Extra fields set by log_context(); merged into every line's metadata. None (not
# an empty dict) when unset, so the writer can skip the merge with one test.
_fields: ContextVar[Mapping[str, Any] | None] = ContextVar("agentkeel_log_fields", default=None)

_core = LogCore(replace(Settings(), outputs=Settings().build_outputs()))
_registry_lock = threading.RLock()
_cache: dict[tuple[str, str | None], KeelLogger] = {}
_live: weakref.WeakSet[KeelLogger] = weakref.WeakSet()


def _nop(*args: Any, **kwargs: Any) -> None:
    return None


def _capture_exc(exc_info: object) -> ExcTuple | None:
    """Normalise ``exc_info`` on the caller (the traceback is only formatted later)."""
    if isinstance(exc_info, BaseException):
        return (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple):
        if len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
            return (type(exc_info[1]), exc_info[1], exc_info[2])
        return None  # (None, None, None), or not an exc_info at all
    if exc_info is True:
        current = sys.exc_info()
        return current if current[0] is not None else None
    return None


def _coerce_metadata(metadata: object) -> dict[str, Any] | None:
    if metadata is None:
        return None
    try:
        if isinstance(metadata, Mapping):
            return dict(metadata)
    except Exception:  # noqa: BLE001 - a broken mapping is still worth a line
        return {"value": safe_repr(metadata)}
    return {"value": metadata}  # not a mapping: keep it, under one key


class KeelLogger:
    """A named logger; see :func:`get_logger`.

    Methods: ``debug``, ``info``, ``warning``, ``error``, ``critical``,
    ``exception`` (``error`` with the current exception), ``log(level, ...)``, each
    taking ``(message, metadata=None, exc_info=None)``. ``exc_info`` is an
    exception, ``True`` (the one being handled) or a ``sys.exc_info()`` tuple.
    Logging never raises into the caller (except in strict mode, for tests).
    """

    def __init__(
        self,
        name: str,
        component: str | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise ConfigurationError(f"a logger name must be a string, got {name!r}")
        if component is not None and not isinstance(component, str):
            raise ConfigurationError(f"component must be a string or None, got {component!r}")
        self._origin = Origin(name, component, dict(fields) if fields else None)
        with _registry_lock:
            _live.add(self)
            _install(self)

    @property
    def name(self) -> str:
        return self._origin.name

    @property
    def component(self) -> str | None:
        return self._origin.component

    @property
    def fields(self) -> Mapping[str, Any]:
        """The fields added by :meth:`bind` (merged into every line's metadata)."""
        return dict(self._origin.fields or {})

    def __repr__(self) -> str:
        return f"<KeelLogger {self.name!r} component={self.component!r}>"

    # The bodies below run only when the per-instance functions are bypassed
    # (``KeelLogger.info(logger, ...)``); they take the slow path, same result.
    def debug(
        self, message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = None
    ) -> None:
        """Log at DEBUG."""
        self.log(DEBUG, message, metadata, exc_info)

    def info(
        self, message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = None
    ) -> None:
        """Log at INFO."""
        self.log(INFO, message, metadata, exc_info)

    def warning(
        self, message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = None
    ) -> None:
        """Log at WARNING."""
        self.log(WARNING, message, metadata, exc_info)

    def error(
        self, message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = None
    ) -> None:
        """Log at ERROR."""
        self.log(ERROR, message, metadata, exc_info)

    def critical(
        self, message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = None
    ) -> None:
        """Log at CRITICAL."""
        self.log(CRITICAL, message, metadata, exc_info)

    def exception(
        self, message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = True
    ) -> None:
        """Log at ERROR with the exception being handled (inside ``except``)."""
        self.log(ERROR, message, metadata, exc_info)

    def log(
        self,
        level: int | str,
        message: object,
        metadata: Mapping[str, Any] | None = None,
        exc_info: ExcInfo = None,
    ) -> None:
        """Log at any level, given as a name (``"INFO"``) or a number (20)."""
        levelno = _level_number(level)
        if levelno < _core.settings.level:
            return
        try:
            record = _record(levelno, message, _coerce_metadata(metadata), exc_info, self._origin)
        except Exception as exc:  # noqa: BLE001 - never break the caller
            _internal.report_internal_error("logging.log", exc)
            return
        _core.submit(record)

    def is_enabled_for(self, level: int | str) -> bool:
        return _level_number(level) >= _core.settings.level

    def bind(self, **fields: Any) -> KeelLogger:
        """A child logger whose lines carry ``fields`` in their metadata too.

        A line's own metadata wins over bound fields, which win over
        :func:`log_context` fields. Bound loggers are not cached: bind once, reuse.
        """
        merged = dict(self._origin.fields or {})
        merged.update(fields)
        return KeelLogger(self.name, self.component, fields=merged)

    def set_correlation_id(self, correlation_id: object) -> None:
        """Set the correlation ID (a UUID or a string) for the current context.

        Every later line in this thread or asyncio task, from any logger, and the
        tasks and :class:`agentkeel.ContextThreadPoolExecutor` work it starts
        afterwards, carries it (so do agentkeel's events). It does not reach other
        threads or tasks already running: use :func:`set_global_correlation_id`
        for a process-wide default, and :func:`log_context` to scope one to a block.
        """
        _context.set_correlation_id(correlation_id)


def _record(
    levelno: int,
    message: object,
    metadata: dict[str, Any] | None,
    exc_info: object,
    origin: Origin,
) -> Any:
    thread = None
    if _core.settings.stdlib:
        current = threading.current_thread()
        thread = (threading.get_ident(), current.name)
    return make_record(
        ts=time.time(),
        levelno=levelno,
        message=message,
        metadata=metadata,
        scope=_scope.get(),
        global_cid=_context._global_correlation_id,  # read at log time, not render time
        context_fields=_fields.get(),
        exc=_capture_exc(exc_info) if exc_info else None,
        origin=origin,
        thread=thread,
    )


def _fast_method(origin: Origin, levelno: int, exc_default: bool, settings: Settings) -> LogMethod:
    """The enabled-level function: capture, append, return. Everything is a local."""
    buffer = _core.buffer
    append = buffer.append
    wake = _core.wake.set
    drop = _core.drop_full
    capacity = settings.capacity
    wake_at = wake_threshold(settings)
    now = time.time
    scope_get = _scope.get
    fields_get = _fields.get
    context = _context
    capture = _capture_exc
    slow = _slow_path

    def log(
        message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = exc_default
    ) -> None:
        try:
            n = len(buffer)
            if n < capacity:
                append(
                    (
                        now(),
                        levelno,
                        message,
                        dict(metadata) if metadata else None,
                        scope_get(),
                        context._global_correlation_id,
                        fields_get(),
                        capture(exc_info) if exc_info else None,
                        origin,
                        None,
                    )
                )
                if n == wake_at:
                    wake()  # a batch is ready: do not wait for the interval
            else:
                drop()
        except Exception:  # noqa: BLE001 - odd metadata: the slow path copes or reports
            slow(origin, levelno, message, metadata, exc_info)

    return log


def _sync_or_stdlib_method(origin: Origin, levelno: int, exc_default: bool) -> LogMethod:
    """Enabled level in ``sync`` or ``stdlib`` mode: build the record, then submit it."""
    slow = _slow_path

    def log(
        message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = exc_default
    ) -> None:
        slow(origin, levelno, message, metadata, exc_info)

    return log


def _starter_method(logger: KeelLogger, method: str, exc_default: bool) -> LogMethod:
    """Installed until the first line: starts the writer (which installs the fast
    functions on every logger, see ``_core.on_start``), then logs through it."""

    def log(
        message: object, metadata: Mapping[str, Any] | None = None, exc_info: ExcInfo = exc_default
    ) -> None:
        _core.start()
        getattr(logger, method)(message, metadata, exc_info)

    return log


def _slow_path(
    origin: Origin, levelno: int, message: object, metadata: object, exc_info: object
) -> None:
    try:
        record = _record(levelno, message, _coerce_metadata(metadata), exc_info, origin)
    except Exception as exc:  # noqa: BLE001 - never break the caller (strict mode raises)
        _internal.report_internal_error("logging.log", exc)
        return
    _core.submit(record)


def _install(logger: KeelLogger) -> None:
    """(Re)build the logger's level functions for the current settings."""
    settings = _core.settings
    origin = logger._origin
    methods: dict[str, LogMethod] = {}
    for method, levelno, exc_default in _METHODS:
        if levelno < settings.level:
            methods[method] = _nop
        elif settings.sync or settings.stdlib:
            methods[method] = _sync_or_stdlib_method(origin, levelno, exc_default)
        elif not _core.started:
            methods[method] = _starter_method(logger, method, exc_default)
        else:
            methods[method] = _fast_method(origin, levelno, exc_default, settings)
    logger.__dict__.update(methods)


def _install_all() -> None:
    with _registry_lock:
        for logger in list(_live):
            _install(logger)


def get_logger(name: str, component: str | None = None) -> KeelLogger:
    """The logger for ``name`` (usually ``__name__``) and ``component``; cached.

    With no configuration, lines at INFO and above go to stderr as JSON.
    """
    key = (name, component)
    logger = _cache.get(key)
    if logger is None:
        with _registry_lock:
            logger = _cache.get(key)
            if logger is None:
                logger = KeelLogger(name, component)
                _cache[key] = logger
    return logger


def _level_number(level: object) -> int:
    if isinstance(level, str):
        number = _LEVELS_BY_NAME.get(level.strip().upper())
        if number is not None:
            return number
    elif isinstance(level, int) and not isinstance(level, bool) and level >= 0:
        return level
    allowed = ", ".join(LEVEL_NAMES.values())
    raise ConfigurationError(
        f"unknown log level {level!r}: use one of {allowed} (any case) or a number >= 0"
    )


def _positive_seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigurationError(f"{name} must be a positive duration, got {value!r}")
    return float(seconds)


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def configure_logging(
    *,
    level: LevelName | str | int = "INFO",
    stream: IO[str] | IO[bytes] | Literal["stderr", "stdout"] | None = "stderr",
    file: str | os.PathLike[str] | None = None,
    rotation: LogRotationConfig | None = None,
    redact: bool = True,
    sync: bool = False,
    stdlib: bool = False,
    capacity: int = 10_000,
    batch_size: int = 512,
    flush_interval: float | timedelta = 0.1,
) -> None:
    """Set where and how log lines are written, for every logger.

    ``stream``: a text or binary stream, ``"stderr"`` (default; looked up at each
    write, so redirection is followed), ``"stdout"``, or ``None`` for no stream.
    ``file``: a path to append to; ``rotation``: a rotating file instead (not both).
    ``redact``: hide secrets (default on). ``sync``: write on the caller's thread
    (slower; for short scripts that must not lose a line to a crash). ``stdlib``:
    also hand every line to the stdlib logger of the same name, so existing
    handlers receive it (give ``stream=None`` to write through stdlib only).
    ``capacity``: lines buffered before new ones are dropped (and counted);
    ``batch_size`` and ``flush_interval``: how the writer batches.

    Lines already logged are written to the old outputs first. Raises
    :class:`agentkeel.ConfigurationError` for a bad value.
    """
    if file is not None and rotation is not None:
        raise ConfigurationError(
            "give file= or rotation=, not both: a rotating file is named by "
            "rotation.log_dir and rotation.filename"
        )
    if rotation is not None and not isinstance(rotation, LogRotationConfig):
        raise ConfigurationError(f"rotation must be a LogRotationConfig, got {rotation!r}")
    if file is not None and not isinstance(file, str | os.PathLike):
        raise ConfigurationError(f"file must be a path, got {file!r}")
    if not (
        stream is None
        or stream in ("stderr", "stdout")
        or (not isinstance(stream, str) and callable(getattr(stream, "write", None)))
    ):
        raise ConfigurationError(
            f"stream must be a writable stream, 'stderr', 'stdout' or None, got {stream!r}"
        )
    settings = Settings(
        level=_level_number(level),
        stream=stream,
        file=None if file is None else os.fspath(file),
        rotation=rotation,
        redact=_flag(redact, "redact"),
        sync=_flag(sync, "sync"),
        stdlib=_flag(stdlib, "stdlib"),
        capacity=_positive_int(capacity, "capacity"),
        batch_size=_positive_int(batch_size, "batch_size"),
        flush_interval=_positive_seconds(flush_interval, "flush_interval"),
    )
    _apply(settings)


def _apply(settings: Settings) -> None:
    # What was logged under the old settings goes to the old outputs; an error kept
    # for strict mode stays kept, for the next flush_logs() to raise.
    _core.flush(5.0, raise_pending=False)
    with _registry_lock:
        _core.replace_settings(replace(settings, outputs=settings.build_outputs()))
        _install_all()


def configure_global_rotation(*, config: LogRotationConfig | None) -> None:
    """Write log lines to a size-rotated file as well (``None``: stop writing the file).

    The other settings (level, stream, redaction …) stay as they are; a plain
    ``file=`` output is replaced by the rotating one.
    """
    if config is not None and not isinstance(config, LogRotationConfig):
        raise ConfigurationError(f"config must be a LogRotationConfig, got {config!r}")
    _apply(replace(_core.settings, rotation=config, file=None))


def flush_logs(timeout: float | timedelta = 5.0) -> bool:
    """Wait until every line logged before this call is written; False on timeout.

    A line an output failed to take counts as handled (see :func:`logging_stats`)
    and makes this return False. In strict mode an output failure seen since the
    last call is raised here as :class:`agentkeel.PipelineError`.
    """
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if not seconds >= 0:
        raise ConfigurationError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return _core.flush(seconds)


def logging_stats() -> LoggingStats:
    """Counters of the log writer: emitted, written, dropped (by reason), buffered."""
    return _core.stats()


class log_context:  # noqa: N801 - used like contextlib's helpers: `with log_context(...)`
    """Set a correlation ID and extra fields for a block; restored on exit.

    Works with ``with`` and ``async with``. ``correlation_id=None`` keeps the
    current one: no ID is ever invented. Pass ``uuid.uuid4()`` to start a fresh one.
    ``fields`` are merged into the metadata of every line in the block (nested
    contexts add to the outer ones). Entering returns the correlation ID in force.

    Being context variables, both follow asyncio tasks (each task keeps its own)
    and stay out of other threads unless passed on with
    :class:`agentkeel.ContextThreadPoolExecutor` or :func:`agentkeel.propagate`.
    """

    def __init__(self, correlation_id: object | None = None, **fields: Any) -> None:
        self._correlation_id = correlation_id
        self._extra = fields
        self._tokens: list[tuple[Token[Scope] | None, Token[Mapping[str, Any] | None] | None]] = []

    def __enter__(self) -> str | None:
        scope_token = None
        fields_token = None
        if self._correlation_id is not None:
            scope_token = _context.set_correlation_id(self._correlation_id)
        if self._extra:
            outer = _fields.get()
            fields_token = _fields.set({**outer, **self._extra} if outer else dict(self._extra))
        self._tokens.append((scope_token, fields_token))
        return _context.get_correlation_id()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope_token, fields_token = self._tokens.pop()
        if fields_token is not None:
            _fields.reset(fields_token)
        if scope_token is not None:
            _context.reset_scope(scope_token)

    async def __aenter__(self) -> str | None:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def async_log_context(correlation_id: object | None = None, **fields: Any) -> log_context:
    """:class:`log_context` for ``async with`` (the same object serves both)."""
    return log_context(correlation_id, **fields)


def _flush_at_exit() -> None:
    try:
        _core.flush(2.0, raise_pending=False)
    except Exception as exc:  # noqa: BLE001 - interpreter exit must stay clean
        _internal.report_internal_error("logging.atexit", exc, reraise=False)


def _after_fork_in_child() -> None:
    _core.after_fork_in_child()
    global _registry_lock  # noqa: PLW0603 - a lock held by another thread at fork is dead here
    _registry_lock = threading.RLock()
    _install_all()  # back to starter functions: the first line starts a writer here


_core.on_start = _install_all
atexit.register(_flush_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
