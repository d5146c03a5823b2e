"""Offline CrewAI for tests: environment first, then a scripted LLM, tools and a crew factory.

CrewAI reads its telemetry switches and writes under ``$HOME`` (credentials, storage) as
soon as it is imported, so the environment is set *before* the import, and only for the
import: the flags (``OTEL_SDK_DISABLED`` above all) and ``HOME`` are restored right after,
so the other tests in this process see their own environment. The tests set them again
with ``monkeypatch`` while CrewAI runs (see :func:`crewai_environment`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

OFFLINE_ENV = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}
_saved = {name: os.environ.get(name) for name in (*OFFLINE_ENV, "HOME")}
os.environ.update(OFFLINE_ENV)
os.environ["HOME"] = tempfile.mkdtemp(prefix="keel-crewai-home-")
try:
    from crewai import Agent, Crew, Task
    from crewai.events import crewai_event_bus
    from crewai.events.types.llm_events import LLMCallType
    from crewai.llms.base_llm import BaseLLM, llm_call_context
    from crewai.tools import BaseTool
finally:
    for _name, _value in _saved.items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value

__all__ = [
    "Adder",
    "BrokenTool",
    "ScriptedLLM",
    "crewai_environment",
    "crewai_event_bus",
    "make_crew",
]

TOOL_THEN_ANSWER = [
    'Thought: I should add the numbers.\nAction: adder\nAction Input: {"a": 2, "b": 3}',
    "Thought: I now know the final answer.\nFinal Answer: The sum is 5",
]


@pytest.fixture
def crewai_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CrewAI's offline switches and a throw-away HOME, for one test."""
    for name, value in OFFLINE_ENV.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    yield
    crewai_event_bus.flush(timeout=10)


class ScriptedLLM(BaseLLM):
    """A CrewAI LLM that answers from a script and emits the bus events a provider would.

    ``fail_with`` makes every call fail (after emitting ``llm_call_failed``, as CrewAI's
    own providers do). ``prompts`` keeps what the agent sent, to compare runs.
    """

    replies: list[str] = []
    prompts: list[Any] = []
    fail_with: str | None = None

    def call(  # type: ignore[override]
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        with llm_call_context():
            self._emit_call_started_event(
                messages=messages, from_task=from_task, from_agent=from_agent
            )
            self.prompts.append(messages if isinstance(messages, str) else list(messages))
            if self.fail_with is not None:
                self._emit_call_failed_event(
                    error=self.fail_with, from_task=from_task, from_agent=from_agent
                )
                raise RuntimeError(self.fail_with)
            index = min(len(self.prompts) - 1, len(self.replies) - 1)
            reply = self.replies[index]
            self._emit_call_completed_event(
                response=reply,
                call_type=LLMCallType.LLM_CALL,
                from_task=from_task,
                from_agent=from_agent,
                messages=messages,
                usage={"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
                finish_reason="stop",
            )
            return reply

    def supports_function_calling(self) -> bool:
        return False

    def supports_stop_words(self) -> bool:
        return False


class Adder(BaseTool):
    name: str = "adder"
    description: str = "Adds two integers a and b and returns the sum."
    runs: int = 0

    def _run(self, a: int, b: int) -> str:
        self.runs += 1
        return str(a + b)


class BrokenTool(BaseTool):
    name: str = "adder"
    description: str = "Adds two integers a and b and returns the sum."
    runs: int = 0

    def _run(self, a: int, b: int) -> str:
        self.runs += 1
        raise ConnectionError("calculator backend unreachable")


def make_crew(
    replies: list[str] | None = None,
    *,
    tool: BaseTool | None = None,
    fail_with: str | None = None,
    name: str = "calc-crew",
) -> tuple[Crew, ScriptedLLM, BaseTool, list[Any]]:
    """A one-agent, one-task crew with a scripted model; returns the crew, its LLM,
    its tool and the list its step callback appends to."""
    llm = ScriptedLLM(
        model="scripted-model",
        replies=list(replies or TOOL_THEN_ANSWER),
        prompts=[],
        fail_with=fail_with,
    )
    the_tool = tool if tool is not None else Adder()
    agent = Agent(
        role="calculator",
        goal="add numbers exactly",
        backstory="You add numbers with your tool.",
        llm=llm,
        tools=[the_tool],
        max_iter=4,
        max_retry_limit=0,
        verbose=False,
    )
    task = Task(description="Add 2 and 3.", expected_output="the sum", agent=agent, name="add")
    steps: list[Any] = []
    crew = Crew(name=name, agents=[agent], tasks=[task], verbose=False, step_callback=steps.append)
    return crew, llm, the_tool, steps
