"""Tools the isolation tests run in subprocesses. Standard library only, on purpose:
the subprocess then starts in milliseconds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str) -> None:
    raise ValueError(message)


class ToolBroke(Exception):
    pass


def fail_custom() -> None:
    raise ToolBroke("custom")


def noisy(x: int) -> int:
    print("print() from the tool")
    os.write(1, b"raw write to fd 1\n")
    subprocess.run([sys.executable, "-c", "print('a child writes to stdout')"], check=True)
    sys.stderr.write("and to stderr\n")
    return x


def exit_with(code: int) -> None:
    os._exit(code)


def sys_exit(code: int) -> None:
    sys.exit(code)


def abort() -> None:
    os.abort()


def not_json() -> set[int]:
    return {1, 2}


def hang() -> None:
    time.sleep(60)


def _spawn(pid_file: str) -> None:
    child = subprocess.Popen(SLEEPER)
    with open(pid_file, "w") as f:
        f.write(str(child.pid))


def spawn_and_hang(pid_file: str) -> None:
    _spawn(pid_file)
    time.sleep(60)


def spawn_and_return(pid_file: str) -> str:
    _spawn(pid_file)
    return "done"


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * 1024 * 1024))


def burn_cpu() -> None:
    while True:
        pass


def env(name: str) -> str | None:
    return os.environ.get(name)


def cwd() -> str:
    return os.getcwd()


def pid() -> int:
    return os.getpid()


async def async_add(a: int, b: int) -> int:
    return a + b


class Tools:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    def method(self) -> None:
        return None
