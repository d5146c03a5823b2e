"""Real LangChain / LangGraph objects driven offline: scripted chat models, tools, retrievers."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, tool

import agentkeel
from agentkeel.events import Event

USAGE = {"input_tokens": 120, "output_tokens": 12, "total_tokens": 132}


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model an agent can bind tools to; answers come from ``messages``."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": call_id}],
        usage_metadata=USAGE,  # type: ignore[arg-type]
        response_metadata={"model_name": "fake-gpt", "finish_reason": "tool_calls"},
    )


def answer(text: str) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata=USAGE,  # type: ignore[arg-type]
        response_metadata={"model_name": "fake-gpt", "finish_reason": "stop"},
    )


def adding_script() -> list[AIMessage]:
    """Three tool calls, then the answer: 4 model calls, 3 tool calls."""
    calls = [tool_call("add", {"a": i, "b": 1}, f"call-{i}") for i in range(3)]
    return [*calls, answer("the sums are 1, 2 and 3")]


def model(messages: Iterable[AIMessage]) -> ScriptedModel:
    return ScriptedModel(messages=iter(messages))


def looping_model() -> ScriptedModel:
    """Asks for the same search again and again, forever."""
    return ScriptedModel(
        messages=(
            tool_call("search", {"query": "cheap flights"}, f"c{i}") for i in itertools.count()
        )
    )


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def search(query: str) -> str:
    """Search the web."""
    return f"the same three links about {query}"


def react_agent(chat_model: ScriptedModel, tools: Sequence[BaseTool]) -> Any:
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():  # deprecated alias of langchain.agents.create_agent
        warnings.simplefilter("ignore")
        return create_react_agent(chat_model, list(tools))


class Library(BaseRetriever):
    """A retriever over a fixed list of documents."""

    documents: list[str]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=d) for d in self.documents if query.lower() in d.lower()]


class BrokenLibrary(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise ConnectionError("index server unreachable")


def stored(*types: str) -> list[Event]:
    """Every stored event (of these types), in store order."""
    assert agentkeel.flush()
    store = agentkeel.get_store()
    return [s.event for s in store.list_events(types=list(types) or None, limit=10_000)]


def runs() -> list[Any]:
    """Every stored run, newest first, once the pipeline has delivered everything."""
    assert agentkeel.flush()
    return agentkeel.get_store().list_runs()
