"""AutoGen integration (autogen-agentchat 0.4+): event loggers and a recording model client.

``instrument_autogen()`` taps AutoGen's structured event loggers (tool calls, logged
LLM calls, handler exceptions); :class:`KeelChatCompletionClient` wraps any model
client to record each call precisely. Needs the ``autogen`` extra
(``pip install 'agentkeel[autogen]'``). The older ``pyautogen``/``ag2`` API is only
detected by the compatibility manager, not instrumented.
"""

from agentkeel.integrations.autogen._client import KeelChatCompletionClient
from agentkeel.integrations.autogen._entry import instrument_autogen
from agentkeel.integrations.autogen._instrumentor import AutoGenInstrumentor

__all__ = ["AutoGenInstrumentor", "KeelChatCompletionClient", "instrument_autogen"]
