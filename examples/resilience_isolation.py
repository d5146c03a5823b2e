"""Run tools in a subprocess that can be killed (docs/resilience/isolation.md)."""

import os
import time


def word_count(text: str) -> dict[str, int]:
    print("tools may print: this goes to stderr, not into the result")
    return {"words": len(text.split()), "pid": os.getpid()}


def parse(document: str) -> None:
    raise ValueError(f"cannot parse {document!r}")


def stuck() -> None:
    time.sleep(3600)  # a thread could never be stopped; a process can


def segfault_like() -> None:
    os.abort()


if __name__ == "__main__":
    # The subprocess loads this script to find the tools, but skips this block: imports
    # needed only here keep each isolated call's start-up light.
    from agentkeel.resilience import (
        IsolatedCrashError,
        IsolatedToolError,
        IsolatedToolExecutor,
        ToolTimeoutError,
    )

    tools = IsolatedToolExecutor(timeout=0.5, memory_limit_mb=512)
    print(tools.execute(word_count, "run me somewhere safe"))
    try:
        tools.execute(parse, "report.pdf")
    except IsolatedToolError as exc:
        print("the tool raised:", exc.error_type, "-", exc.error_message)
    try:
        tools.execute(stuck)
    except ToolTimeoutError as exc:
        print("timed out and killed:", exc)
    try:
        tools.execute(segfault_like)
    except IsolatedCrashError as exc:
        print("crashed:", exc.signal)
