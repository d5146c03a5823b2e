"""LangChain / LangGraph: record every run with one line, and guard nodes and tools.

``instrument_langchain()`` records every LangChain and LangGraph run in the process
(``handle.uninstrument()`` stops it); ``config={"callbacks": [KeelCallbackHandler()]}``
records one run. ``guard_node``, ``guarded_tool`` and ``watch_tool_loops`` put
agentkeel's policies and loop stop around nodes and tools. See
docs/integrations/langchain.md.
"""

from agentkeel.integrations.langchain._graph import guard_node, guarded_tool, watch_tool_loops
from agentkeel.integrations.langchain._handler import KeelCallbackHandler
from agentkeel.integrations.langchain._instrument import installed_handler, instrument_langchain
from agentkeel.integrations.langchain._scope import langchain_scope

__all__ = [
    "KeelCallbackHandler",
    "guard_node",
    "guarded_tool",
    "installed_handler",
    "instrument_langchain",
    "langchain_scope",
    "watch_tool_loops",
]
