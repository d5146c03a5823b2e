"""The subprocess side of ``IsolatedToolExecutor``: import one function, call it, report.

Standard library only, and no import of ``agentkeel``: the parent runs this file by
its path, so a call pays for a bare interpreter start (~20 ms) rather than for
importing the package (~200 ms), and the tool may run under another interpreter or
virtualenv that does not have agentkeel installed.

Protocol (one exchange per process):

* stdin: one JSON object ``{"target": "pkg.mod:qual.name", "args": [...],
  "kwargs": {...}, "sys_path": [...], "main_path": str | null,
  "memory_limit_mb": int | null, "cpu_seconds": int | null}``.
* the process's original stdout: one JSON line, ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "kind": ..., "error_type": ..., "error_message": ...,
  "traceback": ...}`` with ``kind`` one of ``tool`` (the tool raised), ``import``
  (the target could not be loaded), ``memory`` (MemoryError), ``output`` (the
  result is not JSON) or ``request`` (the request was malformed).

Before the tool runs, file descriptor 1 is pointed at stderr and the protocol keeps
a private, non-inheritable copy of the original stdout: whatever the tool, its C
extensions or its child processes print cannot corrupt the reply. A tool that exits
the process (``sys.exit``, ``os._exit``, a crash) leaves no reply; the parent reads
that from the exit status.
"""

from __future__ import annotations

import json
import os
import sys

# Not ``from typing import Any`` at run time: importing typing costs the subprocess
# ~5 ms on every call (mypy reads this constant as typing.TYPE_CHECKING).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TARGET_ENV = "AGENTKEEL_ISOLATED_TARGET"
"""Set to the target while it runs, so ``@Isolated`` on it runs inline, not nested."""

_TRACEBACK_LIMIT = 8000


def _reply(out: Any, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload) + "\n")
    out.flush()


def _failure(kind: str, exc: BaseException, *, with_traceback: bool = True) -> dict[str, Any]:
    import traceback

    cls = type(exc)
    module = cls.__module__
    text = "".join(traceback.format_exception(exc)) if with_traceback else ""
    return {
        "ok": False,
        "kind": kind,
        "error_type": cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}",
        "error_message": str(exc),
        "traceback": text[-_TRACEBACK_LIMIT:],
    }


def _apply_limits(memory_limit_mb: int | None, cpu_seconds: int | None) -> None:
    import resource

    def lower(which: int, soft: int, hard: int) -> None:
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        # Lowering the hard limit too keeps the tool from raising its own limit again.
        resource.setrlimit(which, (soft, hard))

    if memory_limit_mb is not None:
        size = memory_limit_mb * 1024 * 1024
        lower(resource.RLIMIT_AS, size, size)
    if cpu_seconds is not None:
        # At the soft limit the kernel sends SIGXCPU (which terminates), one second
        # later SIGKILL: either way the parent sees the signal in the exit status.
        lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)


def _load(target: str, main_path: str | None) -> Any:
    import importlib

    module_name, _, qualname = target.partition(":")
    if module_name == "__main__" and main_path:
        # The parent's main script, loaded under another name so that its
        # main-guarded block does not run again (as multiprocessing does).
        import runpy
        import types

        module = types.ModuleType("__mp_main__")
        module.__dict__.update(runpy.run_path(main_path, run_name="__mp_main__"))
        sys.modules["__main__"] = sys.modules["__mp_main__"] = module
    else:
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is a {type(obj).__name__}, not a callable")
    return obj


def _call(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    import inspect

    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        import asyncio

        async def wait() -> Any:
            return await result

        result = asyncio.run(wait())
    return result


def main() -> None:
    # This file's own directory is on sys.path when it is run by path; drop it so
    # that nothing the tool imports can pick up our private modules by accident.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")  # os.dup: not inherited
    os.dup2(2, 1)
    try:
        request = json.loads(sys.stdin.buffer.read())
        target = request["target"]
        args = request["args"]
        kwargs = request["kwargs"]
        extra_path = [p for p in request["sys_path"] if p not in sys.path]
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
        _reply(out, _failure("request", exc))
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the tool must not read (or wait on) the protocol's stdin
    os.close(devnull)
    sys.path[:0] = extra_path
    os.environ[TARGET_ENV] = target
    try:
        _apply_limits(request.get("memory_limit_mb"), request.get("cpu_seconds"))
        fn = _load(target, request.get("main_path"))
    except MemoryError as exc:
        _reply(out, _failure("memory", exc, with_traceback=False))
        return
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a module is reported too
        _reply(out, _failure("import", exc))
        return
    try:
        result = _call(fn, args, kwargs)
    except MemoryError as exc:
        # Formatting a traceback needs memory we may not have: send the bare facts.
        _reply(out, _failure("memory", exc, with_traceback=False))
        return
    except SystemExit:
        raise  # the tool asked to exit: the parent reads the exit status
    except BaseException as exc:  # noqa: BLE001 - everything the tool raises is reported
        _reply(out, _failure("tool", exc))
        return
    try:
        line = json.dumps({"ok": True, "result": result})
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"the result ({type(result).__name__}) is not JSON-serialisable: {exc}"
        _reply(
            out,
            {
                "ok": False,
                "kind": "output",
                "error_type": type(exc).__name__,
                "error_message": message,
                "traceback": "",
            },
        )
        return
    out.write(line + "\n")
    out.flush()


def run() -> None:
    """Run :func:`main` and leave with the right status, skipping interpreter shutdown."""
    code = 0
    try:
        main()
    except SystemExit as exc:  # the tool asked to exit: the parent reads the status
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a broken reply channel, say: say so and fail
        import traceback

        traceback.print_exc()
        code = 70
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: a non-daemon thread the tool left behind must not hold the process
    # open after the reply is out.
    os._exit(code)


if __name__ == "__main__":
    run()
