"""Interop with the stdlib logging module: JsonFormatter, KeelHandler, stdlib=True."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import agentkeel
from agentkeel.observability import (
    JsonFormatter,
    KeelHandler,
    configure_logging,
    flush_logs,
    get_logger,
    log_context,
    set_correlation_id,
)

KEYS = ["timestamp", "level", "message", "logger", "component", "correlation_id", "metadata"]


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, level="DEBUG")
    yield stream
    flush_logs()
    configure_logging()


@pytest.fixture
def std_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("agentkeel.tests.stdlib")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    assert flush_logs(timeout=10)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# ----------------------------------------------------------- JsonFormatter
def test_json_formatter_renders_stdlib_records_in_our_shape(std_logger: logging.Logger) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(component="legacy"))
    std_logger.addHandler(handler)
    set_correlation_id("cid-std")
    std_logger.warning("hello %s", "world", extra={"metadata": {"n": 1, "password": "p"}})
    with agentkeel.run("std-run") as scope:
        std_logger.info("in run")
    first, second = (json.loads(x) for x in out.getvalue().splitlines())
    assert list(first) == KEYS
    assert first["message"] == "hello world"
    assert first["level"] == "WARNING"
    assert first["logger"] == "agentkeel.tests.stdlib"
    assert first["component"] == "legacy"
    assert first["correlation_id"] == "cid-std"
    assert first["metadata"] == {"n": 1, "password": "[REDACTED]"}
    assert second["run_id"] == scope.run_id
    assert second["span_id"] == scope.span_id


def test_json_formatter_exceptions_extra_ids_and_redaction_off(
    std_logger: logging.Logger,
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(redact=False))
    std_logger.addHandler(handler)
    try:
        raise RuntimeError("token=abc")
    except RuntimeError:
        std_logger.exception("failed", extra={"correlation_id": "from-extra", "component": "c"})
    std_logger.info("stack", stack_info=True)
    first, second = (json.loads(x) for x in out.getvalue().split("\n") if x.startswith("{"))
    assert first["correlation_id"] == "from-extra"
    assert first["component"] == "c"
    assert "RuntimeError: token=abc" in first["exception"]  # not redacted: turned off
    assert second["exception"].startswith("Stack (most recent call last):")


# ------------------------------------------------------------ KeelHandler
def test_keel_handler_routes_stdlib_records_into_our_writer(
    sink: io.StringIO, std_logger: logging.Logger
) -> None:
    std_logger.addHandler(KeelHandler(component="lib"))
    with log_context(correlation_id="req-1", tenant="t"):
        std_logger.info("user %s logged in", "bob", extra={"metadata": {"api_key": "k"}})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            std_logger.error("division", exc_info=True)
    std_logger.debug("debug passes: the stdlib logger decides", extra={"metadata": "odd"})
    info, error, debug = lines(sink)
    assert info["message"] == "user bob logged in"
    assert info["logger"] == "agentkeel.tests.stdlib"
    assert info["component"] == "lib"
    assert info["correlation_id"] == "req-1"
    assert info["metadata"] == {"tenant": "t", "api_key": "[REDACTED]"}
    assert "ZeroDivisionError" in error["exception"]
    assert error["level"] == "ERROR"
    assert debug["metadata"] == {"value": "'odd'"}


def test_keel_handler_takes_a_correlation_id_from_extra(
    sink: io.StringIO, std_logger: logging.Logger
) -> None:
    std_logger.addHandler(KeelHandler())
    std_logger.info("x", extra={"correlation_id": "extra-id"})
    set_correlation_id("context-id")
    std_logger.info("y", extra={"correlation_id": "ignored: the context wins"})
    x, y = lines(sink)
    assert x["correlation_id"] == "extra-id"
    assert y["correlation_id"] == "context-id"


def test_keel_handler_in_sync_mode(std_logger: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, sync=True)
    try:
        std_logger.addHandler(KeelHandler())
        std_logger.warning("immediately")
        assert json.loads(stream.getvalue())["message"] == "immediately"
    finally:
        configure_logging()


# ------------------------------------------------------------ stdlib=True
def test_stdlib_mode_forwards_our_lines_to_stdlib_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, stdlib=True)
    try:
        log = get_logger("agentkeel.tests.forward", component="fw")
        with caplog.at_level(logging.INFO, logger="agentkeel.tests.forward"):
            set_correlation_id("fwd-1")
            log.info("forwarded", metadata={"k": 1, "secret": "s"})
            log.debug("below our level: not forwarded")
            try:
                raise ValueError("bad")
            except ValueError as exc:
                log.error("with error", exc_info=exc)
            assert flush_logs()
        records = [r for r in caplog.records if r.name == "agentkeel.tests.forward"]
        assert [r.getMessage() for r in records] == ["forwarded", "with error"]
        first, second = records
        assert first.levelno == logging.INFO
        assert first.correlation_id == "fwd-1"  # type: ignore[attr-defined]
        assert first.component == "fw"  # type: ignore[attr-defined]
        assert first.metadata == {"k": 1, "secret": "[REDACTED]"}  # type: ignore[attr-defined]
        assert first.threadName == threading.current_thread().name  # the caller, not the writer
        assert second.exc_text is not None
        assert "ValueError: bad" in second.exc_text
        assert "ValueError: bad" in caplog.text  # a plain stdlib formatter shows the traceback
        assert len(stream.getvalue().splitlines()) == 2  # our own stream still gets them
    finally:
        configure_logging()


def test_stdlib_mode_through_json_formatter_keeps_the_shape(std_logger: logging.Logger) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    std_logger.addHandler(handler)
    configure_logging(stream=None, stdlib=True)
    try:
        with agentkeel.run("fwd") as scope:
            get_logger("agentkeel.tests.stdlib", component="c").info("via stdlib")
        assert flush_logs()
        (line,) = (json.loads(x) for x in out.getvalue().splitlines())
        assert line["run_id"] == scope.run_id  # from the record, not the writer's context
        assert line["correlation_id"] == scope.correlation_id
        assert line["component"] == "c"
        assert line["message"] == "via stdlib"
    finally:
        configure_logging()


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_keel_handler_on_root_with_stdlib_mode_neither_loops_nor_duplicates() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    keel_handler = KeelHandler()
    other_handler = ListHandler()
    root.addHandler(keel_handler)
    root.addHandler(other_handler)
    configure_logging(stream=stream, stdlib=True)
    try:
        get_logger("agentkeel.tests.loop").warning("ours")
        logging.getLogger("agentkeel.tests.loop.std").warning("theirs")
        assert flush_logs()
        assert flush_logs()
        messages = [json.loads(x)["message"] for x in stream.getvalue().splitlines()]
        assert sorted(messages) == ["ours", "theirs"]
        assert sorted(other_handler.messages) == ["ours", "theirs"]  # each exactly once
    finally:
        root.removeHandler(keel_handler)
        root.removeHandler(other_handler)
        configure_logging()
