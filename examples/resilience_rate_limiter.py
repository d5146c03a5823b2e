"""A token-bucket rate limiter in front of an API (docs/resilience/rate-limiter.md)."""

import asyncio

from agentkeel.resilience import RateLimiter, RateLimitExceededError

# 20 calls a second, bursts of 2; a call may wait up to 1 s for its turn.
llm_limit = RateLimiter(20, per=1.0, burst=2, max_wait=1.0, name="llm")


@llm_limit
async def ask(prompt: str) -> str:
    return f"answer to {prompt!r}"


async def main() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(ask(f"q{i}") for i in range(6)))
    print(len(answers), f"answers in {loop.time() - started:.1f} s")  # 2 at once, then 1 per 0.05 s

    strict = RateLimiter(1, per=60, name="expensive")  # once a minute, never waits
    strict.acquire()
    try:
        strict.acquire()
    except RateLimitExceededError as exc:
        print(f"refused, retry after {exc.retry_after:.0f} s")
    print(strict.stats())


if __name__ == "__main__":
    asyncio.run(main())
