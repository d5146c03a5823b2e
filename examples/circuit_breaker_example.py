"""A flaky search tool behind a circuit breaker: it opens, waits, tests and heals.

Run it: python examples/circuit_breaker_example.py
"""

import time

import agentkeel
from agentkeel.resilience import (
    CircuitBreakerConfig,
    CircuitOpenError,
    get_all_circuit_breakers,
    get_circuit_breaker,
)

agentkeel.configure(store="none")  # this example keeps no events

config = CircuitBreakerConfig(
    failure_rate_threshold=0.5,  # open when half the calls in the window failed...
    minimum_calls=4,  # ...once the window holds at least 4 calls
    window_size=10,  # the window: the last 10 calls
    wait_in_open=0.5,  # refuse calls for 0.5 s, then let trial calls through
    half_open_max_calls=2,  # two trial calls; both must succeed to close
)
search = get_circuit_breaker("web_search", config)

backend_up = False


def web_search(query: str) -> str:
    if not backend_up:
        raise ConnectionError("search backend is down")
    return f"results for {query!r}"


for _ in range(6):
    try:
        print(search.call(web_search, "agent reliability"))
    except ConnectionError as exc:
        print(f"failed: {exc}")
    except CircuitOpenError as exc:
        print(f"skipped: breaker open, retry in {exc.retry_after:.1f} s")

status = search.get_status()
print(f"state={status['state']} failure_rate={status['metrics']['failure_rate']:.0%}")

backend_up = True
time.sleep(0.5)  # wait_in_open


@search  # the decorator form: same breaker, same state
def search_news(query: str) -> str:
    return web_search(f"news: {query}")


print(search_news("agents"))  # trial call 1 (half-open)
print(search.call(web_search, "agents"))  # trial call 2: the breaker closes

for name, breaker in get_all_circuit_breakers().items():
    s = breaker.get_status()
    print(
        f"{name}: {s['state']}, {s['metrics']['total_calls']} calls, "
        f"{s['metrics']['rejected_calls']} rejected"
    )
