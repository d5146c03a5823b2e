"""Profiling a run: the top functions by cumulative time."""

from __future__ import annotations

import sys
import time

import pytest

from agentkeel import ConfigurationError
from agentkeel.monitoring import Profiler, profile_call


def slow_leaf() -> int:
    time.sleep(0.02)
    return 1


def work() -> int:
    return sum(slow_leaf() for _ in range(3))


def test_profile_call_returns_the_result_and_the_top_functions() -> None:
    result, report = profile_call(work)
    assert result == 3
    assert report.engine == "cprofile"
    assert report.wall_seconds >= 0.06
    names = [f.name for f in report.top(15)]
    assert "work" in names
    assert "slow_leaf" in names
    leaf = next(f for f in report.functions if f.name == "slow_leaf")
    assert leaf.calls == 3
    assert leaf.cumulative_seconds >= 0.06
    assert "test_profiling.py" in leaf.location
    text = report.render(limit=5)
    assert "top 5 functions by cumulative time" in text
    assert len(text.splitlines()) == 7
    assert report.to_dict(limit=2)["top"][0]["cumulative_seconds"] > 0


def test_a_failing_call_keeps_its_profile_in_a_with_block() -> None:
    profiler = Profiler()

    def failing() -> None:
        with profiler:
            work()
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        failing()
    assert profiler.report is not None
    assert any(f.name == "work" for f in profiler.report.functions)
    with pytest.raises(ZeroDivisionError):
        profile_call(lambda: 1 / 0)


def test_misuse() -> None:
    with pytest.raises(ConfigurationError, match="unknown profiler"):
        Profiler(engine="perf")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not running"):
        Profiler().stop()
    profiler = Profiler().start()
    try:
        with pytest.raises(ConfigurationError, match="already running"):
            profiler.start()
    finally:
        profiler.stop()


def test_pyinstrument_missing_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyinstrument", None)  # `import pyinstrument` now fails
    with pytest.raises(ConfigurationError, match="pip install pyinstrument"):
        profile_call(work, engine="pyinstrument")


def test_pyinstrument_engine() -> None:  # pyinstrument is in the dev extra
    result, report = profile_call(work, engine="pyinstrument")
    assert result == 3
    assert report.engine == "pyinstrument"
    assert any(f.name == "work" for f in report.functions)
    assert report.text
