"""Ordered alternatives when a model provider fails (docs/resilience/fallback.md)."""

from agentkeel.resilience import Fallback


class ProviderError(Exception):
    """What a provider SDK raises on an outage."""


def ask_primary(prompt: str) -> str:
    raise ProviderError("503 from the primary provider")


def ask_secondary(prompt: str) -> str:
    raise ProviderError("429 from the secondary provider")


def ask_local(prompt: str) -> str:
    return f"(small local model) {prompt.upper()}"


llm = Fallback(("secondary", ask_secondary), ("local", ask_local), on=ProviderError)


if __name__ == "__main__":
    answer, source = llm.call_with_source(ask_primary, "summarise the ticket")
    print(answer, "- answered by", source)

    try:
        Fallback(ask_secondary, on=ProviderError).call(ask_primary, "hello")
    except ProviderError as exc:  # the last error, unchanged; the earlier ones chained
        print("all failed:", exc, "| before that:", exc.__context__)
