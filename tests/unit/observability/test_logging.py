"""Structured logging: line shape, correlation, context, levels, buffering, failures."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import io
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkeel
import agentkeel.observability as obs
from agentkeel import ConfigurationError, PipelineError, _internal
from agentkeel.observability import (
    configure_logging,
    flush_logs,
    get_correlation_id,
    get_logger,
    log_context,
    logging_stats,
    set_correlation_id,
    set_global_correlation_id,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, level="DEBUG")
    yield stream
    flush_logs()  # an output error nobody expected fails the test here
    configure_logging()


def lines(stream: io.StringIO | io.BytesIO) -> list[dict[str, Any]]:
    assert flush_logs(timeout=10)
    text = stream.getvalue()
    if isinstance(text, bytes):
        text = text.decode()
    return [json.loads(line) for line in text.splitlines()]


class BlockingStream(io.StringIO):
    """A stream whose write() waits until released: a stalled output."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(30)
        return super().write(text)


# ----------------------------------------------------------------- shape
def test_a_line_has_the_documented_keys_in_order(sink: io.StringIO) -> None:
    log = get_logger("app.tools", component="codegen")
    log.info("Task started", metadata={"task_id": "123", "domain": "auth"})
    (line,) = lines(sink)
    assert list(line) == [
        "timestamp",
        "level",
        "message",
        "logger",
        "component",
        "correlation_id",
        "metadata",
    ]
    assert TIMESTAMP.match(line["timestamp"])
    assert line["level"] == "INFO"
    assert line["message"] == "Task started"
    assert line["logger"] == "app.tools"
    assert line["component"] == "codegen"
    assert line["correlation_id"] is None
    assert line["metadata"] == {"task_id": "123", "domain": "auth"}


def test_timestamp_is_utc_now_with_milliseconds(sink: io.StringIO) -> None:
    before = dt.datetime.now(dt.UTC)
    get_logger("t").info("x")
    (line,) = lines(sink)
    stamp = dt.datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert before - dt.timedelta(seconds=1) <= stamp <= dt.datetime.now(dt.UTC)


def test_every_level_method(sink: io.StringIO) -> None:
    log = get_logger("levels")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    log.log("WARNING", "by name")
    log.log(15, "custom number")
    assert [(x["level"], x["message"]) for x in lines(sink)] == [
        ("DEBUG", "d"),
        ("INFO", "i"),
        ("WARNING", "w"),
        ("ERROR", "e"),
        ("CRITICAL", "c"),
        ("WARNING", "by name"),
        ("LEVEL15", "custom number"),
    ]


def test_zero_configuration_writes_json_to_stderr_at_info(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging()  # the defaults, as on import
    log = get_logger("zero")
    log.debug("hidden")
    log.info("shown", metadata={"n": 1})
    assert flush_logs()
    err = capsys.readouterr().err
    parsed = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [p["message"] for p in parsed] == ["shown"]


def test_get_logger_is_cached_per_name_and_component() -> None:
    assert get_logger("a") is get_logger("a")
    assert get_logger("a", component="x") is get_logger("a", component="x")
    assert get_logger("a") is not get_logger("a", component="x")
    assert repr(get_logger("a", "x")) == "<KeelLogger 'a' component='x'>"


def test_message_objects_are_turned_into_text(sink: io.StringIO) -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    log = get_logger("text")
    log.info(ValueError("as text"))
    log.info(Broken())
    first, second = lines(sink)
    assert first["message"] == "as text"
    assert "Broken object" in second["message"]


# ----------------------------------------------------------- correlation
def test_logger_set_correlation_id_accepts_a_uuid_and_applies_to_later_lines(
    sink: io.StringIO,
) -> None:
    cid = uuid.uuid4()
    researcher = get_logger("research", component="agent-researcher")
    other = get_logger("other")
    researcher.info("before")
    researcher.set_correlation_id(cid)
    researcher.info("Research started", metadata={"query": "auth patterns"})
    other.info("another logger, same context")
    before, started, another = lines(sink)
    assert before["correlation_id"] is None
    assert started["correlation_id"] == str(cid)
    assert another["correlation_id"] == str(cid)
    assert get_correlation_id() == str(cid)


def test_module_set_correlation_id_is_the_context_one(sink: io.StringIO) -> None:
    set_correlation_id("req-7")
    get_logger("m").info("x")
    assert lines(sink)[0]["correlation_id"] == "req-7"
    with pytest.raises(ConfigurationError):
        set_correlation_id("")


def test_log_context_sets_and_restores_correlation_and_fields(sink: io.StringIO) -> None:
    log = get_logger("ctx")
    set_correlation_id("outer")
    with log_context(correlation_id="inner", request="r1") as cid:
        assert cid == "inner"
        log.info("in", metadata={"n": 1})
        with log_context(step="s2"):
            log.info("nested")
    log.info("after")
    inside, nested, after = lines(sink)
    assert inside["correlation_id"] == "inner"
    assert inside["metadata"] == {"request": "r1", "n": 1}
    assert nested["correlation_id"] == "inner"
    assert nested["metadata"] == {"request": "r1", "step": "s2"}
    assert after["correlation_id"] == "outer"
    assert after["metadata"] == {}


def test_log_context_without_an_id_keeps_the_current_one_and_invents_none(
    sink: io.StringIO,
) -> None:
    log = get_logger("ctx")
    with log_context(user="u1") as cid:
        assert cid is None
        log.info("no id")
    set_correlation_id("kept")
    with log_context(user="u2"):
        log.info("kept id")
    first, second = lines(sink)
    assert first["correlation_id"] is None
    assert second["correlation_id"] == "kept"


def test_log_context_restores_after_an_exception(sink: io.StringIO) -> None:
    with pytest.raises(KeyError), log_context(correlation_id="temp", a=1):
        raise KeyError("x")
    assert get_correlation_id() is None
    get_logger("ctx").info("after")
    assert lines(sink)[0]["metadata"] == {}


def test_async_log_context_gives_each_task_its_own_id(sink: io.StringIO) -> None:
    log = get_logger("async", component="workflow")

    async def handle(request_id: str) -> None:
        async with obs.async_log_context(correlation_id=request_id, request=request_id):
            for phase in ("research", "generation"):
                log.info("Phase started", metadata={"phase": phase})
                await asyncio.sleep(0)  # let the other tasks interleave
            log.info("done")
        log.info("outside")

    async def main() -> None:
        await asyncio.gather(*(handle(f"req-{i}") for i in range(5)))

    asyncio.run(main())
    got = lines(sink)
    assert len(got) == 5 * 4
    for line in got:
        if line["message"] == "outside":
            assert line["correlation_id"] is None
            assert line["metadata"] == {}
        else:
            assert line["correlation_id"] == line["metadata"]["request"]


def test_set_correlation_id_inside_a_task_stays_in_that_task(sink: io.StringIO) -> None:
    log = get_logger("tasks")

    async def worker(name: str) -> None:
        log.set_correlation_id(name)
        await asyncio.sleep(0)
        log.info(name)

    async def main() -> None:
        await asyncio.gather(worker("t1"), worker("t2"))
        log.info("parent")

    asyncio.run(main())
    by_message = {line["message"]: line["correlation_id"] for line in lines(sink)}
    assert by_message == {"t1": "t1", "t2": "t2", "parent": None}


def test_global_correlation_id_reaches_every_thread_and_context_wins(sink: io.StringIO) -> None:
    set_global_correlation_id(uuid.UUID(int=1))
    log1 = get_logger("one")
    log2 = get_logger("two")

    def in_thread(i: int) -> None:
        log1.info("from thread", metadata={"i": i})

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log2.info("main")
    set_correlation_id("local")
    log2.info("context wins")
    got = lines(sink)
    gid = str(uuid.UUID(int=1))
    assert [line["correlation_id"] for line in got[:5]] == [gid] * 5
    assert got[5]["correlation_id"] == "local"
    # The global ID is read when the line is logged, not when it is written.
    set_global_correlation_id("later")
    assert got[0]["correlation_id"] == gid


def test_run_id_and_span_id_inside_a_run(sink: io.StringIO) -> None:
    log = get_logger("runner")
    with agentkeel.run("x") as scope:
        log.info("inside")
        with agentkeel.step("s") as step_scope:
            log.info("in step")
    log.info("outside")
    inside, in_step, outside = lines(sink)
    assert inside["run_id"] == scope.run_id
    assert inside["span_id"] == scope.span_id
    assert inside["correlation_id"] == scope.correlation_id
    assert in_step["run_id"] == scope.run_id
    assert in_step["span_id"] == step_scope.span_id
    assert "run_id" not in outside
    assert "span_id" not in outside


def test_context_reaches_threads_started_with_the_context_pool(sink: io.StringIO) -> None:
    log = get_logger("pool")
    with (
        log_context(correlation_id="pooled", job="j"),
        agentkeel.ContextThreadPoolExecutor(2) as ex,
    ):
        ex.submit(log.info, "in pool").result()
    (line,) = lines(sink)
    assert line["correlation_id"] == "pooled"
    assert line["metadata"] == {"job": "j"}


# -------------------------------------------------------------- bind
def test_bind_adds_fields_with_call_metadata_winning(sink: io.StringIO) -> None:
    base = get_logger("bound", component="c")
    child = base.bind(tenant="t1", shared="bound")
    assert child is not base
    assert child.fields == {"tenant": "t1", "shared": "bound"}
    assert child.name == "bound"
    assert child.component == "c"
    with log_context(shared="context", ctx=1):
        child.info("x", metadata={"shared": "call"})
        child.bind(extra=2).info("y")
    base.info("z")
    x, y, z = lines(sink)
    assert x["metadata"] == {"ctx": 1, "shared": "call", "tenant": "t1"}
    assert y["metadata"] == {"ctx": 1, "shared": "bound", "tenant": "t1", "extra": 2}
    assert z["metadata"] == {}


# ---------------------------------------------------------- exceptions
def test_exc_info_as_exception_renders_the_traceback(sink: io.StringIO) -> None:
    log = get_logger("errors")
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        log.error("Validation failed", metadata={"operation": "validate"}, exc_info=exc)
    (line,) = lines(sink)
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad input" in line["exception"]
    assert "test_exc_info_as_exception_renders_the_traceback" in line["exception"]
    assert list(line)[-1] == "exception"


def test_exc_info_true_exception_method_and_tuple(sink: io.StringIO) -> None:
    import sys

    log = get_logger("errors")
    try:
        raise KeyError("k")
    except KeyError:
        log.critical("true", exc_info=True)
        log.exception("method")
        log.warning("tuple", exc_info=sys.exc_info())
    log.error("outside except", exc_info=True)
    log.exception("outside except too")
    got = lines(sink)
    for line in got[:3]:
        assert "KeyError: 'k'" in line["exception"]
    assert got[1]["level"] == "ERROR"
    assert "exception" not in got[3]
    assert "exception" not in got[4]


def test_chained_exceptions_are_rendered(sink: io.StringIO) -> None:
    log = get_logger("errors")
    try:
        try:
            raise OSError("disk")
        except OSError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        log.error("failed", exc_info=exc)
    text = lines(sink)[0]["exception"]
    assert "OSError: disk" in text
    assert "RuntimeError: outer" in text


def test_huge_traceback_keeps_its_end(sink: io.StringIO) -> None:
    log = get_logger("errors")
    log.error("big", exc_info=ValueError("x" * 100_000 + " THE END"))
    text = lines(sink)[0]["exception"]
    assert text.startswith("…[truncated ")
    assert text.endswith("THE END")
    assert len(text) < 40_000


# --------------------------------------------------------------- levels
def test_level_filtering_and_recomputing_when_the_level_changes() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="warning")
    try:
        log = get_logger("filter")
        bound = log.bind(b=1)
        assert not log.is_enabled_for("INFO")
        assert log.is_enabled_for(40)
        before = logging_stats().emitted
        log.debug("no")
        log.info("no")
        bound.info("no")
        log.warning("yes")
        assert logging_stats().emitted == before + 1
        assert log.info is log.debug  # both the shared do-nothing function
        configure_logging(stream=stream, level=10)
        log.debug("now yes")
        bound.info("bound too")
        assert [x["message"] for x in lines(stream)] == ["yes", "now yes", "bound too"]
    finally:
        configure_logging()


@pytest.mark.parametrize("level", ["verbose", "", -1, True, 2.5, None])
def test_invalid_level_is_a_configuration_error_naming_the_choices(level: Any) -> None:
    with pytest.raises(ConfigurationError, match="DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        configure_logging(level=level)
    with pytest.raises(ValueError, match="unknown log level"):
        get_logger("x").log(level, "m")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity"),
        ({"batch_size": -1}, "batch_size"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"flush_interval": dt.timedelta(seconds=-1)}, "flush_interval"),
        ({"stream": 42}, "stream"),
        ({"stream": "stdin"}, "stream"),
        ({"redact": "yes"}, "redact"),
        ({"sync": 1}, "sync"),
        ({"file": 3}, "file"),
        ({"rotation": "daily"}, "rotation"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        configure_logging(**kwargs)


def test_logger_names_must_be_strings() -> None:
    with pytest.raises(ConfigurationError):
        get_logger(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        get_logger("x", component=3)  # type: ignore[arg-type]


# ------------------------------------------------------- odd metadata
class Colour(enum.Enum):
    RED = "red"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_odd_metadata_values_never_lose_the_line(sink: io.StringIO) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(30):
        node["d"] = {}
        node = node["d"]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    log = get_logger("odd")
    log.info(
        "odd",
        metadata={
            "obj": object(),
            "broken": BrokenRepr(),
            "set": {3, 1, 2},
            "bytes": b"\xffraw",
            "when": dt.datetime(2025, 1, 15, 9, 30, tzinfo=dt.UTC),
            "id": uuid.UUID(int=5),
            "colour": Colour.RED,
            "path": Path("/tmp/x"),
            "error": ValueError("boom"),
            "deep": deep,
            "cyclic": cyclic,
            "tuple": (1, "a"),
            7: "int key",  # type: ignore[dict-item]
            "float": float("nan"),
        },
    )
    (line,) = lines(sink)
    meta = line["metadata"]
    assert meta["obj"].startswith("<object object at")
    assert "BrokenRepr object (repr failed" in meta["broken"]
    assert meta["set"] == [1, 2, 3]
    assert meta["bytes"] == "\ufffdraw"
    assert meta["when"] == "2025-01-15T09:30:00Z"
    assert meta["id"] == str(uuid.UUID(int=5))
    assert meta["colour"] == "red"
    assert meta["path"] == "/tmp/x"
    assert meta["error"] == "ValueError: boom"
    assert meta["tuple"] == [1, "a"]
    assert meta["7"] == "int key"
    depth, node = 0, meta["deep"]
    while isinstance(node, dict) and "d" in node:
        depth, node = depth + 1, node["d"]
    assert depth <= 12
    assert node["repr"].startswith("{'d'")  # what is too deep is kept as a bounded repr
    assert isinstance(meta["cyclic"], list)


def test_metadata_that_is_not_a_mapping_is_kept_under_value(sink: io.StringIO) -> None:
    log = get_logger("odd")
    log.info("list", metadata=[1, 2])  # type: ignore[arg-type]
    log.info("str", metadata="plain")  # type: ignore[arg-type]
    first, second = lines(sink)
    assert first["metadata"] == {"value": [1, 2]}
    assert second["metadata"] == {"value": "plain"}


def test_metadata_is_copied_when_logged(sink: io.StringIO) -> None:
    meta = {"state": "before"}
    get_logger("copy").info("x", metadata=meta)
    meta["state"] = "after"
    meta["new"] = "key"
    assert lines(sink)[0]["metadata"] == {"state": "before"}


def test_a_one_megabyte_message_and_huge_values_are_cut(sink: io.StringIO) -> None:
    log = get_logger("big")
    log.info("m" * 1_000_000, metadata={"v": "v" * 1_000_000, "many": list(range(5_000))})
    (line,) = lines(sink)
    assert len(line["message"]) < 9_000
    assert line["message"].endswith("…[truncated 991808 chars]")
    assert len(line["metadata"]["v"]) < 9_000
    assert len(line["metadata"]["many"]) == 1_001
    assert line["metadata"]["many"][-1] == "…[4000 more items truncated]"


# ------------------------------------------------------- buffer & flush
def test_flush_logs_waits_for_everything_logged_before_it(sink: io.StringIO) -> None:
    log = get_logger("flush")
    for i in range(2_000):
        log.info("line", metadata={"i": i})
    assert flush_logs(timeout=10)
    got = [json.loads(x) for x in sink.getvalue().splitlines()]
    assert [x["metadata"]["i"] for x in got] == list(range(2_000))
    stats = logging_stats()
    assert stats.buffered == 0
    assert stats.emitted == stats.written + stats.dropped


def test_flush_logs_validates_its_timeout() -> None:
    with pytest.raises(ConfigurationError):
        flush_logs(timeout=-1)
    assert flush_logs(timeout=dt.timedelta(seconds=1))


def test_a_full_buffer_drops_and_counts_while_the_output_stalls() -> None:
    stream = BlockingStream()
    configure_logging(stream=stream, capacity=10, batch_size=1, flush_interval=0.01)
    try:
        before = logging_stats()
        log = get_logger("stall")
        log.info("first")  # the writer takes it and blocks in write()
        assert stream.entered.wait(5)
        for i in range(25):
            log.info("queued", metadata={"i": i})
        stats = logging_stats()
        assert stats.dropped - before.dropped == 15
        assert (
            stats.dropped_by_reason["buffer_full"] - before.dropped_by_reason.get("buffer_full", 0)
            == 15
        )
        assert stats.buffered == 10
        assert not flush_logs(timeout=0.05)  # still stalled
        stream.release.set()
        assert flush_logs(timeout=10)
        written = [json.loads(x)["message"] for x in stream.getvalue().splitlines()]
        assert written == ["first"] + ["queued"] * 10
        after = logging_stats()
        assert after.emitted - before.emitted == 26
        assert after.written - before.written == 11
    finally:
        stream.release.set()
        configure_logging()


def test_a_logging_call_costs_no_io_on_the_caller() -> None:
    stream = BlockingStream()
    configure_logging(stream=stream, flush_interval=0.01)
    try:
        log = get_logger("cheap")
        log.info("blocks the writer")
        assert stream.entered.wait(5)
        start = time.perf_counter()
        for _ in range(100):
            log.info("still returns at once")
        assert time.perf_counter() - start < 1.0  # the writer is stuck for 30 s
    finally:
        stream.release.set()
        configure_logging()


# ------------------------------------------------------------ failures
def test_a_broken_stream_is_reported_and_raised_at_flush_in_strict_mode() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        stream.close()
        before = logging_stats()
        get_logger("broken").info("lost")  # must not raise here
        with pytest.raises(PipelineError, match="log output failed") as info:
            flush_logs()
        assert isinstance(info.value.__cause__, ValueError)
        stats = logging_stats()
        assert stats.output_errors > before.output_errors
        assert stats.dropped_by_reason["output_failed"] >= 1
        assert stats.last_error is not None
        assert "closed file" in stats.last_error
        assert flush_logs() is True  # raised once, then cleared
    finally:
        configure_logging()


def test_a_broken_stream_never_raises_outside_strict_mode() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    _internal.set_strict(False)
    try:
        stream.close()
        get_logger("broken").info("lost")
        assert flush_logs() is False  # the line could not be written
        configure_logging(stream=stream, sync=True)
        get_logger("broken").info("lost in sync mode too")
    finally:
        _internal.set_strict(True)
        configure_logging()


def test_sync_mode_writes_on_the_caller_and_raises_in_strict_mode() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, sync=True)
    try:
        get_logger("sync").info("now", metadata={"a": 1})
        assert json.loads(stream.getvalue())["message"] == "now"  # no flush needed
        stream.close()
        with pytest.raises(PipelineError):
            get_logger("sync").info("fails")
        assert flush_logs() is True  # not raised a second time
    finally:
        configure_logging()


def test_binary_streams_and_files(tmp_path: Path) -> None:
    raw = io.BytesIO()
    path = tmp_path / "logs" / "app.log"
    configure_logging(stream=raw, file=path)
    try:
        get_logger("bin").info("to both")
        assert lines(raw)[0]["message"] == "to both"
        assert json.loads(path.read_text())["message"] == "to both"
    finally:
        configure_logging()


def test_stream_none_and_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    configure_logging(stream="stdout")
    try:
        get_logger("out").info("to stdout")
        assert flush_logs()
        assert json.loads(capsys.readouterr().out)["message"] == "to stdout"
        configure_logging(stream=None, file=tmp_path / "only.log")
        get_logger("out").info("file only")
        assert flush_logs()
        assert capsys.readouterr() == ("", "")
        assert "file only" in (tmp_path / "only.log").read_text()
    finally:
        configure_logging()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_writer(tmp_path: Path) -> None:
    path = tmp_path / "fork.log"
    configure_logging(stream=None, file=path)
    try:
        log = get_logger("fork")
        log.info("parent")
        assert flush_logs()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 0
            try:
                log.info("child")
                code = 0 if flush_logs(timeout=10) else 1
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert [json.loads(x)["message"] for x in path.read_text().splitlines()] == [
            "parent",
            "child",
        ]
    finally:
        configure_logging()


# ------------------------------------------------------------- public API
def test_public_api_is_curated_and_sorted() -> None:
    assert obs.__all__ == sorted(obs.__all__)
    for name in obs.__all__:
        assert getattr(obs, name) is not None
    assert obs.get_correlation_id is agentkeel.get_correlation_id
    assert obs.set_global_correlation_id is agentkeel.set_global_correlation_id


def test_a_rendering_bug_still_writes_a_line_and_raises_at_flush_in_strict_mode(
    sink: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkeel.observability import _writer

    def broken_render(**kwargs: Any) -> Any:
        raise RuntimeError("render bug")

    monkeypatch.setattr(_writer, "render", broken_render)
    get_logger("bug").warning("kept anyway")
    with pytest.raises(PipelineError, match="render bug"):
        flush_logs()
    (line,) = [json.loads(x) for x in sink.getvalue().splitlines()]
    assert line["level"] == "WARNING"
    assert line["logger"] == "bug"
    assert "render bug" in line["metadata"]["render_error"]


def test_exc_info_that_is_not_an_exception_is_ignored(sink: io.StringIO) -> None:
    log = get_logger("exc")
    log.error("odd tuple", exc_info=(1, 2, 3))  # type: ignore[arg-type]
    log.error("none tuple", exc_info=(None, None, None))
    log.error("false", exc_info=False)
    assert all("exception" not in line for line in lines(sink))


def test_zero_config_in_a_fresh_interpreter_is_flushed_at_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "from agentkeel.observability import get_logger\n"
        "log = get_logger('fresh', component='cli')\n"
        "log.debug('not at INFO')\n"
        "for i in range(3):\n"
        "    log.info('bye', metadata={'i': i})\n"
        # no flush: the atexit hook must write the buffered lines
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KEEL_HOME": str(tmp_path)},
        check=True,
    )
    parsed = [json.loads(line) for line in done.stderr.splitlines()]
    assert [p["metadata"]["i"] for p in parsed] == [0, 1, 2]
    assert {p["component"] for p in parsed} == {"cli"}
    assert done.stdout == ""
