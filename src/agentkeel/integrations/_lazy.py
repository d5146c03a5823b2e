"""One-line entry points that import their framework only when called."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkeel.integrations._robust import InstrumentationHandle

_EXTRAS = {
    "langchain": "langchain",
    "openai": "openai",
    "crewai": "crewai",
    "autogen": "autogen",
}


def require(framework: str) -> ModuleType:
    """Import ``agentkeel.integrations.<framework>``, naming the extra if it is missing."""
    try:
        return importlib.import_module(f"agentkeel.integrations.{framework}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("agentkeel"):
            raise
        raise ModuleNotFoundError(
            f"the {framework} integration needs {exc.name!r}: "
            f"pip install 'agentkeel[{_EXTRAS[framework]}]'",
            name=exc.name,
        ) from exc


def instrument_langchain(**options: Any) -> InstrumentationHandle:
    """Observe every LangChain/LangGraph run in this process (see the langchain docs page)."""
    handle: InstrumentationHandle = require("langchain").instrument_langchain(**options)
    return handle


def instrument_openai(client: Any, **options: Any) -> InstrumentationHandle:
    """Observe (and optionally protect) the calls of one OpenAI client, sync or async."""
    handle: InstrumentationHandle = require("openai").instrument_openai(client, **options)
    return handle


def instrument_crewai(**options: Any) -> InstrumentationHandle:
    """Observe CrewAI crews, agents, tasks, tools and LLM calls through its event bus."""
    handle: InstrumentationHandle = require("crewai").instrument_crewai(**options)
    return handle


def instrument_autogen(**options: Any) -> InstrumentationHandle:
    """Observe AutoGen (autogen-agentchat 0.4+) agents through its event loggers."""
    handle: InstrumentationHandle = require("autogen").instrument_autogen(**options)
    return handle
