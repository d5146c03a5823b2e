"""Retries for flaky tools and LLM calls (docs/resilience/retry.md)."""

import json
from collections import Counter

import agentkeel
from agentkeel.resilience import (
    PromptAdjuster,
    Retry,
    RetryBudget,
    RetryDetails,
    SuccessRateLearner,
    exponential,
    fixed,
    is_transient,
)

retry_events = []  # a sink: here, a list; in production, the store and exporters
agentkeel.configure(store="none", sinks=[retry_events.extend])

budget = RetryBudget(ratio=0.2)  # retries at most 20 % of calls (plus a small floor)
learner = SuccessRateLearner(success_rate_threshold=0.2, min_samples=5)


def log_retry(details: RetryDetails) -> None:
    print(
        f"  {details.name}: attempt {details.attempt} failed with {details.error_type}, "
        f"retrying in {details.delay:.2f} s ({details.reason})"
    )


class RateLimitError(Exception):
    """Stands in for openai.RateLimitError: the HTTP response says when to come back."""

    def __init__(self) -> None:
        super().__init__("429 Too Many Requests")
        self.status_code = 429
        self.response = type("Response", (), {"headers": {"retry-after": "0.3"}})()


attempts_made = Counter()


@Retry(
    on=is_transient,  # network errors, timeouts, rate limits
    attempts=4,
    timeout=20,  # seconds, all attempts and waits included
    backoff=exponential(initial=0.05, max=1),
    budget=budget,
    learner=learner,
    on_retry=log_retry,
    name="weather",
)
def weather(city: str) -> str:
    attempts_made["weather"] += 1
    if attempts_made["weather"] == 1:
        raise ConnectionError("connection reset by peer")
    if attempts_made["weather"] == 2:
        raise RateLimitError()  # the next wait is the Retry-After, 0.3 s
    return f"sunny in {city}"


print(weather("Lisbon"))

# An LLM that answers with broken JSON gets a better prompt on the next attempt.
replies = iter(["Sure! Here it is: {cities: [Lisbon]}", '{"cities": ["Lisbon", "Porto"]}'])


def plan(prompt: str, adjusted_prompt: str | None = None) -> dict:
    if adjusted_prompt is not None:
        print("  the model is now asked:", adjusted_prompt.splitlines()[-1])
    reply = next(replies)  # really: client.responses.create(input=adjusted_prompt or prompt)
    return json.loads(reply)


llm_retry = Retry(
    on=json.JSONDecodeError,
    attempts=3,
    backoff=fixed(0),
    prompt_adjuster=PromptAdjuster(examples=['{"cities": ["Paris", "Lyon"]}']),
    on_retry=log_retry,
    name="plan",
)
print(llm_retry.call(plan, "List two cities in Portugal as JSON."))

# A block of code rather than one call: the iterator form.
for attempt in Retry(on=TimeoutError, backoff=fixed(0.01)).attempts(name="save-state"):
    with attempt:
        if attempt.number == 1:
            raise TimeoutError("state store is slow")
        print("saved on attempt", attempt.number)

for row in learner.stats():
    print(f"learned: {row.operation}/{row.error_type}: {row.successes} of {row.samples} recovered")
stats = budget.stats()
print(f"budget: {stats.retries} retries for {stats.calls} calls, {stats.available} left")

agentkeel.flush()
reasons = Counter(
    event.attributes["reason"] for event in retry_events if event.type == "retry.attempt"
)
print("retry events by reason:", dict(sorted(reasons.items())))
