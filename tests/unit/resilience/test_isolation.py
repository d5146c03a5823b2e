from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _isolated_decorated
import _isolation_tools as tools
import pytest
from _policy_events import (
    CapturedEvents,
    async_test,
    doc_contains_example,
    run_example,
    wait_until,
)

from agentkeel import ConfigurationError, EventType
from agentkeel.resilience._errors import IsolationError, ToolTimeoutError
from agentkeel.resilience._isolation import (
    Isolated,
    IsolatedCrashError,
    IsolatedOutputError,
    IsolatedToolError,
    IsolatedToolExecutor,
)

HERE = Path(__file__).resolve().parent


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


@pytest.fixture
def executor() -> IsolatedToolExecutor:
    return IsolatedToolExecutor(timeout=10)


def process_gone(pid: int) -> bool:
    """No such process, or a zombie (dead, waiting to be reaped by its new parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def read_pid(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text() != "")
    return int(path.read_text())


# ---------------------------------------------------------------------- results
def test_results_and_arguments_travel_as_json(executor: IsolatedToolExecutor) -> None:
    assert executor.execute("_isolation_tools:add", 2, 3) == 5
    assert executor.execute(tools.add, a=2, b=40) == 42
    assert executor.execute(tools.echo, (1, 2), {"k": [None, 1.5]}, flag=True) == {
        "args": [[1, 2], {"k": [None, 1.5]}],
        "kwargs": {"flag": True},
    }
    assert executor.execute(tools.Tools.double, 21) == 42
    assert executor.execute(tools.pid) != os.getpid()


def test_async_tools_run_in_the_subprocess_event_loop(executor: IsolatedToolExecutor) -> None:
    assert executor.execute(tools.async_add, 1, 2) == 3


def test_what_the_tool_prints_cannot_corrupt_the_reply(executor: IsolatedToolExecutor) -> None:
    assert executor.execute(tools.noisy, 7) == 7


# ---------------------------------------------------------------------- failures
def test_a_tool_exception_comes_back_with_type_message_and_traceback(
    executor: IsolatedToolExecutor,
) -> None:
    with pytest.raises(IsolatedToolError) as caught:
        executor.execute(tools.fail, "bad input")
    error = caught.value
    assert isinstance(error, IsolationError)
    assert (error.error_type, error.error_message) == ("ValueError", "bad input")
    assert "in fail" in error.remote_traceback
    assert str(error) == "isolated tool '_isolation_tools:fail' raised ValueError: bad input"
    with pytest.raises(IsolatedToolError) as custom:
        executor.execute(tools.fail_custom)
    assert custom.value.error_type == "_isolation_tools.ToolBroke"


@pytest.mark.parametrize(
    ("tool", "args", "returncode", "signal_name"),
    [
        (tools.exit_with, (3,), 3, None),
        (tools.sys_exit, (4,), 4, None),
        (tools.sys_exit, (0,), 0, None),
        (tools.abort, (), -signal.SIGABRT, "SIGABRT"),
    ],
)
def test_crashes_and_exits_are_crash_errors(
    executor: IsolatedToolExecutor,
    events: CapturedEvents,
    tool: Any,
    args: tuple[Any, ...],
    returncode: int,
    signal_name: str | None,
) -> None:
    with pytest.raises(IsolatedCrashError) as caught:
        executor.execute(tool, *args)
    assert caught.value.returncode == returncode
    assert caught.value.signal == signal_name
    (event,) = events.of_type("isolation.crashed")
    assert event.attributes["returncode"] == returncode


def test_a_result_that_is_not_json_is_an_output_error(executor: IsolatedToolExecutor) -> None:
    with pytest.raises(IsolatedOutputError, match="not JSON-serialisable"):
        executor.execute(tools.not_json)


def test_arguments_that_are_not_json_are_refused_before_spawning(
    executor: IsolatedToolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_spawning(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a subprocess was started")

    monkeypatch.setattr(subprocess, "Popen", no_spawning)
    with pytest.raises(ConfigurationError, match="JSON-serialisable"):
        executor.execute(tools.echo, {1, 2})
    with pytest.raises(ValueError, match="JSON"):
        executor.execute(tools.echo, when=object())


def test_a_target_that_cannot_be_loaded_is_a_clear_tool_error(
    executor: IsolatedToolExecutor,
) -> None:
    with pytest.raises(IsolatedToolError, match="could not load") as caught:
        executor.execute("no_such_module_for_agentkeel:run")
    assert caught.value.error_type == "ModuleNotFoundError"
    with pytest.raises(IsolatedToolError, match="could not load"):
        executor.execute("_isolation_tools:no_such_function")


@pytest.mark.parametrize(
    ("tool", "match"),
    [
        (lambda: 1, "lambda or is defined inside a function"),
        (tools.Tools().method, "bound method"),
        ("not an import path", "not an import path"),
        ("module.only", "not an import path"),
        (object(), "no import path"),
    ],
)
def test_tools_the_subprocess_cannot_import_are_refused(
    executor: IsolatedToolExecutor, tool: Any, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        executor.execute(tool)


def test_a_closure_is_refused(executor: IsolatedToolExecutor) -> None:
    def local() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="defined inside a function"):
        executor.execute(local)


# ---------------------------------------------------------------------- timeouts and kills
def test_a_timeout_kills_the_whole_process_tree(events: CapturedEvents, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError, match="process group was killed") as caught:
        IsolatedToolExecutor(timeout=1).execute(tools.spawn_and_hang, str(pid_file))
    assert time.monotonic() - started < 4
    assert isinstance(caught.value, TimeoutError)
    grandchild = read_pid(pid_file)
    assert wait_until(lambda: process_gone(grandchild), timeout=3)
    (event,) = events.of_type(EventType.TIMEOUT)
    assert event.attributes == {"timeout_s": 1.0, "mode": "process", "killed": True}


def test_processes_a_tool_leaves_behind_are_killed_when_it_returns(
    executor: IsolatedToolExecutor, tmp_path: Path
) -> None:
    pid_file = tmp_path / "leftover.pid"
    assert executor.execute(tools.spawn_and_return, str(pid_file)) == "done"
    leftover = read_pid(pid_file)
    assert wait_until(lambda: process_gone(leftover), timeout=3)


def test_a_memory_limit_turns_a_huge_allocation_into_a_crash_error() -> None:
    limited = IsolatedToolExecutor(timeout=10, memory_limit_mb=200)
    assert limited.execute(tools.allocate, 10) == 10 * 1024 * 1024
    with pytest.raises(IsolatedCrashError, match="ran out of memory under memory_limit_mb=200"):
        limited.execute(tools.allocate, 1024)


def test_a_cpu_limit_kills_a_busy_loop() -> None:
    with pytest.raises(IsolatedCrashError, match="cpu_seconds=1") as caught:
        IsolatedToolExecutor(timeout=10, cpu_seconds=1).execute(tools.burn_cpu)
    assert caught.value.signal in {"SIGXCPU", "SIGKILL"}


# ---------------------------------------------------------------------- async
@async_test
async def test_aexecute_returns_results_and_times_out(events: CapturedEvents) -> None:
    executor = IsolatedToolExecutor(timeout=10)
    assert await executor.aexecute(tools.add, 1, 2) == 3
    results = await asyncio.gather(*(executor.aexecute(tools.add, i, i) for i in range(4)))
    assert results == [0, 2, 4, 6]
    with pytest.raises(IsolatedToolError, match="nope"):
        await executor.aexecute(tools.fail, "nope")
    with pytest.raises(ToolTimeoutError, match="process group was killed"):
        await IsolatedToolExecutor(timeout=0.3).aexecute(tools.hang)
    assert len(events.of_type(EventType.TIMEOUT)) == 1


@async_test
async def test_cancelling_aexecute_kills_the_subprocess(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    task = asyncio.create_task(
        IsolatedToolExecutor(timeout=30).aexecute(tools.spawn_and_hang, str(pid_file))
    )
    while not pid_file.exists() or not pid_file.read_text():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    grandchild = int(pid_file.read_text())
    assert wait_until(lambda: process_gone(grandchild), timeout=3)


# ---------------------------------------------------------------------- environment
def test_the_environment_is_minimal_unless_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENT_API_KEY", "secret")
    assert IsolatedToolExecutor().execute(tools.env, "AGENT_API_KEY") is None
    given = IsolatedToolExecutor(env={"AGENT_API_KEY": "given", "PATH": os.environ["PATH"]})
    assert given.execute(tools.env, "AGENT_API_KEY") == "given"
    assert IsolatedToolExecutor(cwd=tmp_path).execute(tools.cwd) == str(tmp_path)


def test_another_interpreter_needs_neither_agentkeel_nor_our_sys_path() -> None:
    other = "/usr/bin/python3"
    if not os.access(other, os.X_OK) or os.path.realpath(other) == os.path.realpath(sys.executable):
        pytest.skip("no second interpreter on this machine")
    isolated = IsolatedToolExecutor(python=other, sys_path=[HERE])
    assert isolated.execute("_isolation_tools:add", 1, 2) == 3
    with pytest.raises(IsolatedToolError, match="could not load"):
        IsolatedToolExecutor(python=other).execute("_isolation_tools:add", 1, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"memory_limit_mb": 0}, "memory_limit_mb"),
        ({"cpu_seconds": 1.5}, "cpu_seconds"),
        ({"python": "no-such-python-here"}, "not an executable interpreter"),
        ({"cwd": "/no/such/dir"}, "not a directory"),
        ({"env": {"A": 1}}, "env must map strings"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        IsolatedToolExecutor(**kwargs)


# ---------------------------------------------------------------------- decorator
def test_the_decorator_isolates_and_runs_inline_inside_the_subprocess() -> None:
    result = _isolated_decorated.where(5)
    assert result["x"] == 5
    assert result["pid"] != os.getpid()
    assert result["target"] == "_isolated_decorated:where"
    assert asyncio.run(_isolated_decorated.async_where(6))["pid"] != os.getpid()


def test_the_decorator_refuses_lambdas_and_closures() -> None:
    with pytest.raises(ConfigurationError, match="module-level"):
        Isolated()(lambda: 1)

    with pytest.raises(ConfigurationError, match="module-level"):

        @Isolated()
        def local() -> None:
            return None


# ---------------------------------------------------------------------- docs
def test_the_documented_example_runs() -> None:
    out = run_example("resilience_isolation.py")
    assert "killed" in out
    assert doc_contains_example("isolation.md", "resilience_isolation.py")
