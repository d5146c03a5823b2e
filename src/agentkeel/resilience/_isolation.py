"""Run a tool in a subprocess that can be killed: ``IsolatedToolExecutor`` and ``@Isolated``.

A thread cannot be stopped; a process can. Each call starts a fresh interpreter
(no shell) in a new session, so the tool and everything it starts form one process
group. Arguments go in as JSON on stdin; the result comes back as one JSON line on
a channel the tool's own output cannot reach (see ``_isolation_worker``). At the
timeout the whole group is killed with SIGKILL. When the call ends, for whatever
reason, anything the tool left running in its group is killed too.

Failures are told apart::

    IsolationError
    ├── IsolatedToolError    the tool raised; carries the remote type, message, traceback
    ├── IsolatedCrashError   the process died without a reply: exit status, signal,
    │                        memory or CPU limit (a MemoryError inside counts too)
    └── IsolatedOutputError  the reply was not JSON, or the result was not serialisable
    ToolTimeoutError         the call ran out of time; the process tree was killed

This is fault containment, not a security sandbox: the tool runs as the same user,
with the same files. POSIX only. Memory limits use ``RLIMIT_AS`` (address space,
which Linux enforces; macOS does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar, overload

from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import Category, EventType, Severity
from agentkeel.resilience._base import PolicyBase, as_seconds, check_count
from agentkeel.resilience._errors import IsolationError, ToolTimeoutError
from agentkeel.resilience._isolation_worker import TARGET_ENV

__all__ = [
    "Isolated",
    "IsolatedCrashError",
    "IsolatedOutputError",
    "IsolatedToolError",
    "IsolatedToolExecutor",
]

P = ParamSpec("P")
R = TypeVar("R")

_WORKER = str(Path(__file__).with_name("_isolation_worker.py"))
_STDERR_TAIL_BYTES = 4096
_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# Variables a tool commonly needs that carry no secrets; everything else stays out
# unless ``env`` names it.
_MINIMAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT")
CRASH_EVENT = "isolation.crashed"


class IsolatedToolError(IsolationError):
    """The isolated tool raised. Its exception cannot cross the process boundary, so
    its type name, message and formatted traceback are carried instead."""

    def __init__(
        self, target: str, error_type: str, error_message: str, remote_traceback: str
    ) -> None:
        self.target = target
        self.error_type = error_type
        self.error_message = error_message
        self.remote_traceback = remote_traceback
        super().__init__(f"isolated tool {target!r} raised {error_type}: {error_message}")


class IsolatedCrashError(IsolationError):
    """The subprocess ended without a reply: it crashed, exited, or hit a limit.

    ``returncode`` is the exit status (negative: killed by ``signal``); ``stderr_tail``
    the end of what it wrote to stderr, for diagnosis.
    """

    def __init__(
        self,
        target: str,
        reason: str,
        *,
        returncode: int | None,
        stderr_tail: str = "",
    ) -> None:
        self.target = target
        self.returncode = returncode
        self.signal = (
            _signal_name(-returncode) if returncode is not None and returncode < 0 else None
        )
        self.stderr_tail = stderr_tail
        tail = f"; stderr ends with: {stderr_tail[-500:]!r}" if stderr_tail else ""
        super().__init__(f"isolated tool {target!r} {reason}{tail}")


class IsolatedOutputError(IsolationError):
    """The subprocess replied with something that is not the expected JSON."""

    def __init__(self, target: str, detail: str, *, stderr_tail: str = "") -> None:
        self.target = target
        self.stderr_tail = stderr_tail
        super().__init__(f"isolated tool {target!r}: {detail}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ---------------------------------------------------------------------- targets
def _resolve_target(tool: str | Callable[..., Any]) -> tuple[str, str | None]:
    """``("module:qualname", main_script_path_or_None)`` for a tool given as either."""
    if isinstance(tool, str):
        if not _TARGET_RE.match(tool):
            raise ConfigurationError(
                f"tool {tool!r} is not an import path: use 'package.module:function'"
            )
        return tool, None
    if inspect.ismethod(tool):
        raise ConfigurationError(
            f"{tool!r} is a bound method: its instance cannot cross the process boundary; "
            "isolate a module-level function instead"
        )
    module = getattr(tool, "__module__", None)
    qualname = getattr(tool, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ConfigurationError(
            f"{tool!r} has no import path (__module__ and __qualname__): pass "
            "'package.module:function' or a module-level function"
        )
    if "<" in qualname:  # <lambda>, <locals>
        raise ConfigurationError(
            f"{module}.{qualname} is a lambda or is defined inside a function: the "
            "subprocess can only import module-level functions; move it to module level"
        )
    found_in = module
    main_path = None
    if module in {"__main__", "__mp_main__"}:
        found_in = "__main__"
        module, main_path = _main_module()
    obj: Any = sys.modules.get(found_in)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not _wraps(obj, tool):
        raise ConfigurationError(
            f"{module}:{qualname} does not lead back to {tool!r} (is it replaced, or "
            "created at run time?); isolate a plain module-level function"
        )
    return f"{module}:{qualname}", main_path


def _wraps(obj: Any, fn: Any) -> bool:
    """Whether ``obj`` is ``fn`` or a decorator's wrapper around it (``__wrapped__``)."""
    for _ in range(100):  # a bound on pathological __wrapped__ chains
        if obj is fn:
            return True
        obj = getattr(obj, "__wrapped__", None)
        if obj is None:
            return False
    return False


def _main_module() -> tuple[str, str | None]:
    """How the subprocess finds the parent's ``__main__``: by name or by script path."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in {"__main__", "__mp_main__"}:
        return spec.name, None  # run with ``python -m pkg.mod``: importable by name
    path = getattr(main, "__file__", None)
    if not path:
        raise ConfigurationError(
            "functions defined in an interactive session cannot be isolated: the "
            "subprocess cannot import them; move the function into a module"
        )
    return "__main__", os.path.abspath(path)


# ---------------------------------------------------------------------- executor
class IsolatedToolExecutor:
    """Runs tools in a fresh subprocess each call: killable, limited, JSON in and out.

    ``execute(tool, *args, **kwargs)`` and ``await aexecute(...)``, where ``tool`` is
    ``"package.module:function"`` or a module-level function (resolved to that path;
    functions of the main script work as with multiprocessing, so keep the script's
    work under ``if __name__ == "__main__":``). Arguments and the result must be
    JSON: tuples arrive as lists and dict keys as strings.

    * ``timeout``: seconds for the whole call, interpreter start included; then the
      process group is killed and :class:`ToolTimeoutError` raised.
    * ``memory_limit_mb`` / ``cpu_seconds``: ``RLIMIT_AS`` / ``RLIMIT_CPU`` in the child.
    * ``python``: the interpreter (another virtualenv's, say; it needs no agentkeel).
    * ``env``: the child's whole environment; by default only PATH, HOME, locale, TMPDIR
      and TZ are passed on, so API keys do not leak into tools by accident.
    * ``cwd``: the child's working directory.
    * ``sys_path``: extra import paths. With the parent's own interpreter, the child
      also gets the parent's ``sys.path``, so whatever imports here imports there.
    """

    def __init__(
        self,
        *,
        timeout: float | timedelta = 30.0,
        memory_limit_mb: int | None = None,
        cpu_seconds: int | None = None,
        python: str | os.PathLike[str] = sys.executable,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        sys_path: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        if os.name != "posix":
            raise ConfigurationError(
                "IsolatedToolExecutor needs a POSIX system (process groups, rlimits)"
            )
        self.timeout = as_seconds(timeout, "timeout", allow_zero=False)
        self.memory_limit_mb = (
            None if memory_limit_mb is None else check_count(memory_limit_mb, "memory_limit_mb")
        )
        self.cpu_seconds = None if cpu_seconds is None else check_count(cpu_seconds, "cpu_seconds")
        self.python = self._interpreter(python)
        if env is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ConfigurationError("env must map strings to strings")
        self.env: dict[str, str] = (
            {k: os.environ[k] for k in _MINIMAL_ENV if k in os.environ}
            if env is None
            else dict(env)
        )
        if cwd is not None and not os.path.isdir(cwd):
            raise ConfigurationError(f"cwd {os.fspath(cwd)!r} is not a directory")
        self.cwd = None if cwd is None else os.fspath(cwd)
        self.sys_path = [os.path.abspath(p) for p in sys_path]
        # Compared without resolving symlinks: another virtualenv's python is usually a
        # symlink to the same base interpreter, yet must not get this one's sys.path.
        self._same_interpreter = os.path.abspath(self.python) == os.path.abspath(sys.executable)

    @staticmethod
    def _interpreter(python: str | os.PathLike[str]) -> str:
        path = os.fspath(python)
        found = shutil.which(path) if os.sep not in path else path
        if not found or not os.access(found, os.X_OK):
            raise ConfigurationError(
                f"python {path!r} is not an executable interpreter: give a path or a name on PATH"
            )
        return found

    def __repr__(self) -> str:
        return f"IsolatedToolExecutor(timeout={self.timeout:g}, python={self.python!r})"

    def _request(
        self, target: str, main_path: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bytes:
        if self._same_interpreter:
            # '' on sys.path means "the current directory": the parent's, not the child's.
            parent_path = [os.path.abspath(p or os.curdir) for p in sys.path]
            path = [*self.sys_path, *parent_path]
        else:
            path = list(self.sys_path)
        try:
            return json.dumps(
                {
                    "target": target,
                    "args": list(args),
                    "kwargs": kwargs,
                    "sys_path": path,
                    "main_path": main_path,
                    "memory_limit_mb": self.memory_limit_mb,
                    "cpu_seconds": self.cpu_seconds,
                }
            ).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"arguments for isolated tool {target!r} must be JSON-serialisable "
                f"(str, int, float, bool, None, lists and str-keyed dicts): {exc}"
            ) from exc

    def _command(self) -> list[str]:
        # -u: unbuffered, so a crash does not swallow the tool's last words on stderr.
        return [self.python, "-u", _WORKER]

    def execute(self, tool: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``tool(*args, **kwargs)`` in a subprocess and return its JSON result."""
        target, main_path = _resolve_target(tool)
        return self._run(target, main_path, args, kwargs)

    async def aexecute(self, tool: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`execute`, without blocking the event loop."""
        target, main_path = _resolve_target(tool)
        return await self._arun(target, main_path, args, kwargs)

    def _run(
        self, target: str, main_path: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = self._request(target, main_path, args, kwargs)
        with tempfile.TemporaryFile() as errors:
            # stderr goes to a file, not a pipe: processes the tool leaves behind could
            # hold a pipe open and make us wait for them.
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self._command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
            try:
                out, _ = proc.communicate(request, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.communicate()
                raise self._timed_out(target) from None
            finally:
                _kill_group(proc.pid)  # leftovers of the tool, and the child if interrupted
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            return self._outcome(target, proc.returncode, out, errors)

    async def _arun(
        self, target: str, main_path: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = self._request(target, main_path, args, kwargs)
        with tempfile.TemporaryFile() as errors:
            proc = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
            deadline = asyncio.timeout(self.timeout)
            try:
                async with deadline:
                    out, _ = await proc.communicate(request)
            except TimeoutError:
                if not deadline.expired():
                    raise
                _kill_group(proc.pid)
                await proc.wait()
                raise self._timed_out(target) from None
            finally:
                # Also on cancellation: the tool must not outlive the call.
                _kill_group(proc.pid)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            return self._outcome(target, proc.returncode, out, errors)

    # ------------------------------------------------------------------ outcomes
    def _timed_out(self, target: str) -> ToolTimeoutError:
        get_pipeline().emit(
            EventType.TIMEOUT,
            name=target,
            severity=Severity.MEDIUM,
            category=Category.TIMEOUT,
            attributes={"timeout_s": self.timeout, "mode": "process", "killed": True},
        )
        return ToolTimeoutError(
            target,
            self.timeout,
            f"isolated tool {target!r} did not finish within {self.timeout:g} s; "
            "its process group was killed",
        )

    def _outcome(self, target: str, returncode: int | None, out: bytes, errors: IO[bytes]) -> Any:
        if out:
            try:
                reply = json.loads(out)
            except ValueError:
                reply = None
            if not isinstance(reply, dict) or "ok" not in reply:
                raise IsolatedOutputError(
                    target,
                    f"the reply is not the expected JSON object: {out[:200]!r}",
                    stderr_tail=_tail(errors),
                )
            if reply["ok"]:
                return reply.get("result")
            return self._failure(target, reply, returncode, errors)
        raise self._crashed(target, returncode, _tail(errors))

    def _failure(
        self, target: str, reply: dict[str, Any], returncode: int | None, errors: IO[bytes]
    ) -> Any:
        kind = reply.get("kind")
        error_type = str(reply.get("error_type", "?"))
        message = str(reply.get("error_message", ""))
        if kind == "tool":
            raise IsolatedToolError(target, error_type, message, str(reply.get("traceback", "")))
        if kind == "memory":
            limit = f" under memory_limit_mb={self.memory_limit_mb}" if self.memory_limit_mb else ""
            raise self._crashed(
                target, returncode, _tail(errors), reason=f"ran out of memory{limit}"
            )
        if kind == "import":
            raise IsolatedToolError(
                target,
                error_type,
                f"could not load {target!r} in the subprocess ({message}); is its module on "
                "the child's sys.path (see sys_path) and importable without side effects?",
                str(reply.get("traceback", "")),
            )
        raise IsolatedOutputError(target, message or f"unknown reply {reply!r}")

    def _crashed(
        self, target: str, returncode: int | None, tail: str, *, reason: str | None = None
    ) -> IsolatedCrashError:
        if reason is None:
            reason = self._crash_reason(returncode)
        get_pipeline().emit(
            CRASH_EVENT,
            name=target,
            severity=Severity.HIGH,
            category=Category.RESOURCE,
            attributes={"returncode": returncode, "reason": reason},
        )
        return IsolatedCrashError(target, reason, returncode=returncode, stderr_tail=tail)

    def _crash_reason(self, returncode: int | None) -> str:
        if returncode is None or returncode >= 0:
            return f"exited with status {returncode} without returning a result"
        number = -returncode
        reason = f"was killed by {_signal_name(number)}"
        if number == signal.SIGXCPU or (number == signal.SIGKILL and self.cpu_seconds):
            reason += f" (cpu_seconds={self.cpu_seconds} may have run out)"
        elif number == signal.SIGKILL:
            reason += " (out of memory?)"
        return reason


def _kill_group(pid: int) -> None:
    # The child leads its own group (start_new_session), so its pid is the group's id.
    # Called after the child is reaped, the group may already be empty: that is fine.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0, os.SEEK_END)
    size = errors.tell()
    errors.seek(max(0, size - _STDERR_TAIL_BYTES))
    return errors.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------- policy
class Isolated(PolicyBase):
    """The policy form of :class:`IsolatedToolExecutor`, mainly as a decorator::

        @Isolated(timeout=10, memory_limit_mb=512)
        def render_chart(spec: dict) -> str: ...

    Decorate module-level functions only (the subprocess imports them by name).
    Inside the subprocess the decorated function runs directly, not isolated again.
    Takes the same keyword options as the executor.
    """

    def __init__(
        self,
        *,
        timeout: float | timedelta = 30.0,
        memory_limit_mb: int | None = None,
        cpu_seconds: int | None = None,
        python: str | os.PathLike[str] = sys.executable,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        sys_path: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.executor = IsolatedToolExecutor(
            timeout=timeout,
            memory_limit_mb=memory_limit_mb,
            cpu_seconds=cpu_seconds,
            python=python,
            env=env,
            cwd=cwd,
            sys_path=sys_path,
        )

    def __repr__(self) -> str:
        return f"Isolated(timeout={self.executor.timeout:g})"

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        qualname = getattr(fn, "__qualname__", "")
        if "<" in qualname:
            raise ConfigurationError(
                f"@Isolated cannot isolate {qualname}: the subprocess can only import "
                "module-level functions (no lambdas, no functions defined inside functions)"
            )
        return super().__call__(fn)

    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        target, main_path = _resolve_target(fn)
        if os.environ.get(TARGET_ENV) == target:
            return fn(*args, **kwargs)  # we are the subprocess already
        result: R = self.executor._run(target, main_path, args, kwargs)
        return result

    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        target, main_path = _resolve_target(fn)
        if os.environ.get(TARGET_ENV) == target:
            return await fn(*args, **kwargs)
        result: R = await self.executor._arun(target, main_path, args, kwargs)
        return result
