"""Per-call timeouts for sync and async tools (docs/resilience/timeout.md)."""

import asyncio
import threading

from agentkeel.resilience import Timeout, TimeoutToolExecutor, ToolTimeoutError

never = threading.Event()  # stands in for a network call that hangs


@Timeout(0.2, name="search")
def search(query: str) -> str:
    return f"results for {query}"


@Timeout(0.2, name="fetch")
async def fetch(url: str) -> str:
    await asyncio.sleep(10)  # cancelled at the deadline
    return url


def hung_tool() -> str:
    never.wait()  # a sync call cannot be killed: its thread is abandoned
    return "never"


async def main() -> None:
    print(search("weather in Lisbon"))
    try:
        await fetch("https://example.org")
    except ToolTimeoutError as exc:
        print("fetch timed out:", exc.timeout, "s")

    tools = TimeoutToolExecutor(default_timeout=5, max_workers=4)
    print(tools.execute_tool(str.upper, "ok"))
    try:
        tools.execute_tool(hung_tool, timeout=0.1)
    except TimeoutError as exc:  # ToolTimeoutError is also a TimeoutError
        print("hung_tool timed out:", exc)
    print("abandoned threads:", tools.stats().abandoned)


if __name__ == "__main__":
    asyncio.run(main())
    never.set()
