"""Prompt adjustment: the transforms, the choice of strategy, and delivery to callables."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from _policy_events import CapturedEvents, async_test

from agentkeel import ConfigurationError, EventType
from agentkeel.resilience._error_types import ErrorType
from agentkeel.resilience._prompt import (
    PromptAdjuster,
    PromptContext,
    PromptStrategy,
)
from agentkeel.resilience._retry import Retry, RetryDetails

CONTEXT = PromptStrategy.CONTEXT_ADDITION
SIMPLE = PromptStrategy.SIMPLIFICATION
REPHRASE = PromptStrategy.REPHRASING
EXAMPLES = PromptStrategy.EXAMPLES


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


def parse_error() -> json.JSONDecodeError:
    return json.JSONDecodeError("Expecting value", "not json", 0)


def adjust(
    adjuster: PromptAdjuster,
    prompt: str,
    error: BaseException,
    attempt: int = 2,
    error_type: ErrorType = ErrorType.VALIDATION_ERROR,
) -> str:
    return adjuster.adjust(prompt, error=error, error_type=error_type, attempt=attempt)


# -- choosing a strategy -----------------------------------------------------------


def test_validation_errors_add_context_then_rephrase_then_simplify() -> None:
    adjuster = PromptAdjuster()
    plan = [adjuster.choose(ErrorType.VALIDATION_ERROR, n) for n in range(2, 7)]
    assert plan == [CONTEXT, REPHRASE, SIMPLE, SIMPLE, SIMPLE]


def test_examples_join_the_plan_when_there_are_some() -> None:
    adjuster = PromptAdjuster(examples='{"city": "Paris"}')
    plan = [adjuster.choose(ErrorType.VALIDATION_ERROR, n) for n in range(2, 6)]
    assert plan == [CONTEXT, EXAMPLES, REPHRASE, SIMPLE]


def test_timeouts_simplify_first() -> None:
    adjuster = PromptAdjuster()
    assert adjuster.choose(ErrorType.TIMEOUT_ERROR, 2) is SIMPLE
    assert adjuster.choose(ErrorType.RESOURCE_ERROR, 2) is SIMPLE
    assert adjuster.choose(ErrorType.UNKNOWN_ERROR, 2) is CONTEXT
    assert adjuster.choose(ErrorType.UNKNOWN_ERROR, 3) is REPHRASE


def test_an_explicit_order_is_followed_and_its_last_kept() -> None:
    adjuster = PromptAdjuster(strategies=["rephrasing", SIMPLE])
    assert [adjuster.choose(ErrorType.TIMEOUT_ERROR, n) for n in (2, 3, 4)] == [
        REPHRASE,
        SIMPLE,
        SIMPLE,
    ]


# -- the transforms ----------------------------------------------------------------


def test_context_addition_says_what_failed_and_asks_for_valid_output() -> None:
    text = adjust(PromptAdjuster(strategies=[CONTEXT]), "List three cities as JSON.", parse_error())
    assert text.startswith("List three cities as JSON.\n\n")
    assert "JSONDecodeError: Expecting value" in text
    assert "valid and well-formed" in text


def test_context_addition_quotes_only_the_start_of_a_long_error() -> None:
    text = adjust(
        PromptAdjuster(strategies=[CONTEXT]),
        "Q",
        RuntimeError("x" * 5_000),
        error_type=ErrorType.UNKNOWN_ERROR,
    )
    assert len(text) < 500
    assert "…" in text
    assert "try again" in text


def test_context_addition_survives_an_unprintable_error() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    text = adjust(PromptAdjuster(strategies=[CONTEXT]), "Q", Unprintable())
    assert "failed with Unprintable." in text


def test_simplification_condenses() -> None:
    prompt = "Answer   the question.\n\n\nAnswer   the question.\n  Be\tbrief. \n"
    text = adjust(PromptAdjuster(strategies=[SIMPLE]), prompt, TimeoutError())
    assert text == "Answer as simply and briefly as possible.\n\nAnswer the question.\nBe brief."


def test_simplification_keeps_both_ends_of_a_long_prompt() -> None:
    prompt = "INSTRUCTIONS\n" + "\n".join(f"context line {i}" for i in range(1_000)) + "\nQUESTION?"
    text = adjust(PromptAdjuster(strategies=[SIMPLE], max_chars=300), prompt, TimeoutError())
    assert "INSTRUCTIONS" in text
    assert text.endswith("QUESTION?")
    assert "[…]" in text
    assert len(text) < 400


def test_rephrasing_restates_the_request() -> None:
    text = adjust(PromptAdjuster(strategies=[REPHRASE]), "What is 2+2?", ValueError())
    assert "step by step" in text
    assert text.endswith("Request:\nWhat is 2+2?")


def test_examples_are_appended() -> None:
    adjuster = PromptAdjuster(strategies=[EXAMPLES], examples=['{"a": 1}', '{"a": 2}'])
    text = adjust(adjuster, "Give JSON.", parse_error())
    assert text == (
        "Give JSON.\n\nExamples of the expected output:\n\n"
        'Example 1:\n{"a": 1}\n\nExample 2:\n{"a": 2}'
    )


def test_a_transform_can_be_replaced() -> None:
    def shout(prompt: str, ctx: PromptContext) -> str:
        return f"{prompt.upper()} (attempt {ctx.attempt}, {ctx.error_type})"

    adjuster = PromptAdjuster(strategies=[REPHRASE], transforms={REPHRASE: shout})
    assert adjust(adjuster, "hi", ValueError(), attempt=3) == "HI (attempt 3, validation_error)"


def test_an_explicit_strategy_wins_over_the_choice() -> None:
    adjuster = PromptAdjuster()
    text = adjuster.adjust(
        "Q", error=ValueError(), error_type=ErrorType.VALIDATION_ERROR, attempt=2, strategy=REPHRASE
    )
    assert text.startswith("An earlier attempt")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategies": []}, "at least one"),
        ({"strategies": [EXAMPLES]}, "examples"),
        ({"strategies": ["shouting"]}, "unknown prompt strategy"),
        ({"examples": [1, 2]}, "examples"),
        ({"prompt": 42}, "prompt"),
        ({"max_chars": 10}, "max_chars"),
        ({"transforms": {REPHRASE: "loud"}}, "transforms"),
        ({"transforms": {"nope": lambda p, c: p}}, "unknown prompt strategy"),
    ],
)
def test_bad_adjuster_settings_fail(options: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PromptAdjuster(**options)


# -- delivery: adjusted_prompt= ------------------------------------------------------


class FakeLLM:
    """Answers badly ``bad`` times, then well; records what it was asked."""

    def __init__(self, bad: int = 2) -> None:
        self.bad = bad
        self.seen: list[dict[str, Any]] = []

    def answer(self, **seen: Any) -> str:
        self.seen.append(seen)
        if len(self.seen) <= self.bad:
            raise parse_error()
        return '{"ok": true}'


def retrying(**options: Any) -> Retry:
    options.setdefault("on", json.JSONDecodeError)
    options.setdefault("prompt_adjuster", PromptAdjuster())
    return Retry(sleep=lambda s: None, jitter=False, **options)


def test_later_attempts_receive_an_adjusted_prompt(events: CapturedEvents) -> None:
    llm = FakeLLM(bad=2)

    def ask(prompt: str, adjusted_prompt: str | None = None) -> str:
        return llm.answer(prompt=prompt, adjusted=adjusted_prompt)

    assert retrying(name="ask").call(ask, "List cities as JSON.") == '{"ok": true}'
    first, second, third = llm.seen
    assert first == {"prompt": "List cities as JSON.", "adjusted": None}
    assert second["prompt"] == "List cities as JSON."  # the original is left alone
    assert second["adjusted"].startswith("List cities as JSON.\n\nThe previous attempt failed")
    assert third["adjusted"].startswith("An earlier attempt")  # rephrased, from the original
    assert "previous attempt failed" not in third["adjusted"]
    strategies = [e.attributes["prompt_strategy"] for e in events.of_type(EventType.RETRY)]
    assert strategies == ["context_addition", "rephrasing"]


def test_a_callback_without_a_prompt_uses_the_adjusters_prompt() -> None:
    llm = FakeLLM(bad=1)

    async def recovery_callback(adjusted_prompt: str | None = None) -> str:
        return llm.answer(adjusted=adjusted_prompt)

    retry = retrying(prompt_adjuster=PromptAdjuster(prompt="Plan the trip."))

    @async_test
    async def run() -> None:
        assert await retry.acall(recovery_callback) == '{"ok": true}'

    run()
    assert llm.seen[0] == {"adjusted": None}
    assert llm.seen[1]["adjusted"].startswith("Plan the trip.\n\nThe previous attempt")


def test_kwargs_catch_the_adjusted_prompt_and_the_prompt() -> None:
    llm = FakeLLM(bad=1)

    def ask(**kwargs: Any) -> str:
        return llm.answer(**kwargs)

    assert retrying().call(ask, prompt="Q?") == '{"ok": true}'
    assert llm.seen[1]["prompt"] == "Q?"
    assert llm.seen[1]["adjusted_prompt"].startswith("Q?\n\n")


def test_a_prompt_default_is_the_original() -> None:
    llm = FakeLLM(bad=1)

    def ask(prompt: str = "Default question", adjusted_prompt: str | None = None) -> str:
        return llm.answer(adjusted=adjusted_prompt)

    retrying().call(ask)
    assert llm.seen[1]["adjusted"].startswith("Default question")


def test_a_prompt_that_is_not_text_is_passed_unchanged() -> None:
    llm = FakeLLM(bad=1)

    def ask(prompt: list[dict[str, str]], adjusted_prompt: str | None = None) -> str:
        return llm.answer(adjusted=adjusted_prompt)

    retrying().call(ask, [{"role": "user", "content": "hi"}])
    assert llm.seen == [{"adjusted": None}, {"adjusted": None}]


# -- delivery: prompt_kwarg= ------------------------------------------------------------


def test_prompt_kwarg_replaces_the_prompt_itself() -> None:
    llm = FakeLLM(bad=2)

    def ask(model: str, question: str, *, temperature: float = 0.0) -> str:
        return llm.answer(model=model, question=question, temperature=temperature)

    retry = retrying(prompt_kwarg="question")
    assert retry.call(ask, "small", "Cities?", temperature=0.5) == '{"ok": true}'
    assert [s["model"] for s in llm.seen] == ["small"] * 3
    assert [s["temperature"] for s in llm.seen] == [0.5] * 3
    assert llm.seen[0]["question"] == "Cities?"
    assert llm.seen[1]["question"].startswith("Cities?\n\nThe previous attempt")
    assert llm.seen[2]["question"].endswith("Request:\nCities?")

    llm = FakeLLM(bad=1)
    retry.call(ask, "small", question="Towns?")  # by keyword as well
    assert llm.seen[1]["question"].startswith("Towns?\n\n")


def test_prompt_kwarg_with_keyword_only_and_var_kwargs() -> None:
    llm = FakeLLM(bad=1)

    def ask(*, text: str) -> str:
        return llm.answer(text=text)

    retrying(prompt_kwarg="text").call(ask, text="Q")
    assert llm.seen[1]["text"].startswith("Q\n\n")

    llm = FakeLLM(bad=1)

    def ask_any(**kwargs: Any) -> str:
        return llm.answer(**kwargs)

    retrying(prompt_kwarg="text").call(ask_any, text="Q")
    assert llm.seen[1]["text"].startswith("Q\n\n")


def test_bound_methods_are_understood() -> None:
    class Agent:
        def __init__(self) -> None:
            self.llm = FakeLLM(bad=1)

        def ask(self, question: str) -> str:
            return self.llm.answer(question=question)

    agent = Agent()
    retry = retrying(prompt_kwarg="question")
    for _ in range(2):
        agent.llm = FakeLLM(bad=1)
        retry.call(agent.ask, "Why?")
        assert agent.llm.seen[1]["question"].startswith("Why?\n\n")


# -- callables that cannot take the prompt -----------------------------------------


def test_a_callable_that_cannot_receive_the_prompt_fails_up_front() -> None:
    calls = 0

    def ask(prompt: str) -> str:
        nonlocal calls
        calls += 1
        return "never"

    retry = retrying()
    with pytest.raises(ConfigurationError, match="adjusted_prompt=None"):
        retry(ask)  # at decoration time
    with pytest.raises(ConfigurationError, match="adjusted_prompt=None"):
        retry.call(ask, "Q")  # or before the first attempt
    assert calls == 0


def test_a_callable_with_no_prompt_anywhere_fails() -> None:
    def ask(question: str, adjusted_prompt: str | None = None) -> str:
        return question

    with pytest.raises(ConfigurationError, match="no 'prompt' parameter"):
        retrying().call(ask, "Q")


def test_prompt_kwarg_must_name_a_parameter() -> None:
    def ask(question: str) -> str:
        return question

    with pytest.raises(ConfigurationError, match="prompt_kwarg='text'"):
        retrying(prompt_kwarg="text").call(ask, "Q")


def test_an_unreadable_signature_fails_clearly() -> None:
    with pytest.raises(ConfigurationError, match="signature"):
        retrying(on=ValueError).call(math.log, 1.0)


@pytest.mark.parametrize("kwarg", ["", 3])
def test_prompt_kwarg_must_be_a_name(kwarg: Any) -> None:
    with pytest.raises(ConfigurationError, match="prompt_kwarg"):
        retrying(prompt_kwarg=kwarg)


# -- hooks, async, the iterator form --------------------------------------------------


def test_hooks_see_the_strategy() -> None:
    heard: list[RetryDetails] = []

    def ask(prompt: str, adjusted_prompt: str | None = None) -> str:
        return FakeLLM(bad=0).answer() if adjusted_prompt else FakeLLM(bad=1).answer()

    retrying(on_retry=heard.append).call(ask, "Q")
    assert [d.prompt_strategy for d in heard] == [CONTEXT]


@async_test
async def test_acall_adjusts_prompts_too() -> None:
    llm = FakeLLM(bad=1)

    async def ask(prompt: str) -> str:
        return llm.answer(prompt=prompt)

    assert await retrying(prompt_kwarg="prompt").acall(ask, "Q") == '{"ok": true}'
    assert llm.seen[1]["prompt"].startswith("Q\n\nThe previous attempt")


def test_the_iterator_form_offers_adjust_prompt() -> None:
    llm = FakeLLM(bad=2)
    prompts = []
    for attempt in retrying(prompt_adjuster=PromptAdjuster(strategies=[SIMPLE])).attempts():
        with attempt:
            prompts.append(attempt.adjust_prompt("Q  ?"))
            llm.answer()
    assert prompts == [
        "Q  ?",
        "Answer as simply and briefly as possible.\n\nQ ?",
        "Answer as simply and briefly as possible.\n\nQ ?",
    ]


def test_adjust_prompt_without_an_adjuster_is_the_identity() -> None:
    for attempt in Retry(on=ValueError).attempts():
        with attempt:
            assert attempt.adjust_prompt("Q") == "Q"


def test_repr() -> None:
    assert repr(PromptAdjuster(strategies=[SIMPLE], examples="x")) == (
        "PromptAdjuster(strategies=(<PromptStrategy.SIMPLIFICATION: 'simplification'>,), "
        "examples=1)"
    )


def test_callables_that_cannot_be_weakly_referenced_still_work() -> None:
    class Slotted:
        __slots__ = ("llm",)

        def __init__(self) -> None:
            self.llm = FakeLLM(bad=1)

        def __call__(self, prompt: str) -> str:
            return self.llm.answer(prompt=prompt)

    ask = Slotted()
    retrying(prompt_kwarg="prompt").call(ask, "Q")
    assert ask.llm.seen[1]["prompt"].startswith("Q\n\n")


def test_star_prompt_is_not_a_prompt_parameter() -> None:
    def ask(*prompt: str, adjusted_prompt: str | None = None) -> str:
        return "".join(prompt)

    with pytest.raises(ConfigurationError, match="no 'prompt' parameter"):
        retrying().call(ask, "Q")
