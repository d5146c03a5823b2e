"""At most N calls at once, shared by threads and tasks (docs/resilience/bulkhead.md)."""

import asyncio

from agentkeel.resilience import Bulkhead, BulkheadFullError

browser = Bulkhead(2, max_wait=0.5, name="browser")  # two headless browsers at most


@browser
async def render(url: str) -> str:
    await asyncio.sleep(0.05)  # stands in for the real work
    return f"rendered {url}"


async def main() -> None:
    pages = await asyncio.gather(*(render(f"https://example.org/{i}") for i in range(6)))
    print(len(pages), "pages, never more than 2 at once")

    impatient = Bulkhead(1, name="impatient")  # max_wait=0: refuse at once when full
    async with impatient:
        try:
            async with impatient:
                pass
        except BulkheadFullError as exc:
            print("refused:", exc)
    print(impatient.stats())


if __name__ == "__main__":
    asyncio.run(main())
