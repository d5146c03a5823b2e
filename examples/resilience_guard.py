"""Guard: retry, circuit breaker, timeout and fallback around one flaky tool."""

import agentkeel
from agentkeel.resilience import Guard, Retry, exponential, is_transient
from agentkeel.tracking import FailureTracker, set_failure_tracker

calls = {"n": 0}


def get_weather(city: str) -> dict[str, object]:
    calls["n"] += 1
    if calls["n"] % 3:  # two calls in three fail
        raise ConnectionError("weather service unreachable")
    return {"city": city, "forecast": "sunny"}


def cached_weather(city: str) -> dict[str, object]:
    return {"city": city, "forecast": "unknown (cache)"}


agentkeel.configure(store="memory://")
with agentkeel.run("guard-example") as scope:
    tracker = FailureTracker(run_id=scope.run_id)
    set_failure_tracker(tracker)
    weather = Guard(
        name="weather",
        retry=Retry(on=is_transient, attempts=3, backoff=exponential(initial=0.01, max=0.05)),
        breaker="weather-api",
        timeout=2.0,
        fallback=[("cache", cached_weather)],
    )
    print(weather.call(get_weather, "Lisbon"))  # third attempt answers
    summary = tracker.get_summary()
    print(summary["total_failures"], "failures,", f"{summary['recovery_rate']:.0f}% recovered")
