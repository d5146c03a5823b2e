"""On-demand profiling of a run: where did the time go?

``cProfile`` (standard library, deterministic: every call counted) by default;
``engine="pyinstrument"`` uses pyinstrument's sampling profiler if it is
installed (lower overhead, wall-clock time including waits). Either way the report
lists the top functions by cumulative time::

    result, report = profile_call(lambda: run_demo(options))
    print(report.render(limit=15))
"""

from __future__ import annotations

import cProfile
import importlib
import os
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from agentkeel._errors import ConfigurationError

R = TypeVar("R")
Engine = Literal["cprofile", "pyinstrument"]
DEFAULT_TOP = 15


@dataclass(frozen=True, slots=True)
class ProfiledFunction:
    """One function's share: own time (``total_seconds``) and with callees (cumulative).

    ``calls`` counts calls for cProfile, and for pyinstrument the call-tree frames
    (identical call stacks are merged, so it is not a call count).
    """

    name: str
    filename: str
    line: int
    calls: int
    total_seconds: float
    cumulative_seconds: float

    @property
    def location(self) -> str:
        if self.filename in {"~", ""}:
            return self.name  # a built-in: its name says it all
        return f"{_short(self.filename)}:{self.line}({self.name})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.location,
            "calls": self.calls,
            "own_seconds": round(self.total_seconds, 6),
            "cumulative_seconds": round(self.cumulative_seconds, 6),
        }


@dataclass(frozen=True, slots=True)
class ProfileReport:
    """What one profiled stretch of code spent its time on, slowest first."""

    engine: str
    wall_seconds: float
    functions: tuple[ProfiledFunction, ...]
    text: str = ""

    def top(self, limit: int = DEFAULT_TOP) -> tuple[ProfiledFunction, ...]:
        return self.functions[:limit]

    def render(self, limit: int = DEFAULT_TOP) -> str:
        """A plain-text table of the top ``limit`` functions by cumulative time."""
        unit = "frames" if self.engine == "pyinstrument" else "calls"
        lines = [
            f"profile ({self.engine}): {self.wall_seconds:.3f} s wall; "
            f"top {min(limit, len(self.functions))} functions by cumulative time",
            f"{'cumulative':>11} {'own':>9} {unit:>8}  function",
        ]
        for f in self.top(limit):
            lines.append(
                f"{f.cumulative_seconds:>9.3f} s {f.total_seconds:>7.3f} s {f.calls:>8}  "
                f"{f.location}"
            )
        return "\n".join(lines)

    def to_dict(self, limit: int = DEFAULT_TOP) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "wall_seconds": round(self.wall_seconds, 6),
            "top": [f.to_dict() for f in self.top(limit)],
        }


class Profiler:
    """Profiles what runs between :meth:`start` and :meth:`stop` (or a with-block).

    The report is kept in :attr:`report` even when the block raises; the exception
    itself passes through unchanged.
    """

    def __init__(self, *, engine: Engine = "cprofile") -> None:
        if engine not in ("cprofile", "pyinstrument"):
            raise ConfigurationError(f"unknown profiler {engine!r}: use cprofile or pyinstrument")
        self.engine = engine
        self.report: ProfileReport | None = None
        self._profiler: Any = None
        self._started = 0.0

    def start(self) -> Profiler:
        if self._profiler is not None:
            raise ConfigurationError("this profiler is already running: stop() it first")
        if self.engine == "pyinstrument":
            try:
                pyinstrument = importlib.import_module("pyinstrument")
            except ImportError as exc:
                raise ConfigurationError(
                    "engine='pyinstrument' needs pyinstrument: pip install pyinstrument "
                    "(or use the default engine, cprofile)"
                ) from exc
            profiler = pyinstrument.Profiler()
        else:
            profiler = cProfile.Profile()
        try:
            self._started = time.perf_counter()
            if self.engine == "pyinstrument":
                profiler.start()
            else:
                profiler.enable()
        except ValueError as exc:  # another profiler (a debugger, coverage …) holds the hook
            raise ConfigurationError(f"cannot start the profiler: {exc}") from exc
        self._profiler = profiler
        return self

    def stop(self) -> ProfileReport:
        profiler, self._profiler = self._profiler, None
        if profiler is None:
            raise ConfigurationError("this profiler is not running: start() it first")
        wall = time.perf_counter() - self._started
        if self.engine == "pyinstrument":
            session = profiler.stop()
            report = ProfileReport(
                "pyinstrument", wall, _pyinstrument_functions(session), profiler.output_text()
            )
        else:
            profiler.disable()
            report = ProfileReport("cprofile", wall, _cprofile_functions(profiler))
        self.report = report
        return report

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def profile_call(fn: Callable[[], R], /, *, engine: Engine = "cprofile") -> tuple[R, ProfileReport]:
    """Call ``fn()`` under a profiler; return its result and the report.

    If ``fn`` raises, the exception propagates (use :class:`Profiler` as a
    with-block to keep the report of a failing call).
    """
    profiler = Profiler(engine=engine).start()
    try:
        result = fn()
    finally:
        report = profiler.stop()
    return result, report


def _cprofile_functions(profile: cProfile.Profile) -> tuple[ProfiledFunction, ...]:
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(
        profile
    ).stats  # type: ignore[attr-defined]  # the documented-in-code table pstats keeps
    rows = [
        ProfiledFunction(
            name=name,
            filename=filename,
            line=line,
            calls=calls,
            total_seconds=own,
            cumulative_seconds=cumulative,
        )
        for (filename, line, name), (_primitive, calls, own, cumulative, _callers) in stats.items()
        if "_lsprof.Profiler" not in name  # the profiler's own disable() call
    ]
    rows.sort(key=lambda f: (-f.cumulative_seconds, -f.total_seconds))
    return tuple(rows)


def _pyinstrument_functions(session: Any) -> tuple[ProfiledFunction, ...]:
    totals: dict[tuple[str, int, str], list[float]] = {}

    def walk(frame: Any, open_keys: frozenset[tuple[str, int, str]]) -> None:
        key = (str(frame.file_path or ""), int(frame.line_no or 0), str(frame.function or "?"))
        if key[2].startswith("["):  # pyinstrument's own [self], [await] … pseudo-frames
            return
        row = totals.setdefault(key, [0, 0.0, 0.0])
        row[0] += 1
        row[1] += float(getattr(frame, "total_self_time", 0.0))
        if key not in open_keys:  # recursion: count the outermost frame's time once
            row[2] += float(frame.time)
        for child in frame.children:
            walk(child, open_keys | {key})

    root = session.root_frame()
    if root is not None:
        walk(root, frozenset())
    rows = [
        ProfiledFunction(name, filename, line, int(n), own, cumulative)
        for (filename, line, name), (n, own, cumulative) in totals.items()
    ]
    rows.sort(key=lambda f: (-f.cumulative_seconds, -f.total_seconds))
    return tuple(rows)


def _short(filename: str) -> str:
    """A path short enough to read: relative to site-packages, the stdlib or the cwd."""
    path = Path(filename)
    for root in sorted({*sys.path, os.getcwd()}, key=len, reverse=True):
        if root and filename.startswith(root.rstrip(os.sep) + os.sep):
            return filename[len(root.rstrip(os.sep)) + 1 :]
    return path.name if len(filename) > 60 else filename
