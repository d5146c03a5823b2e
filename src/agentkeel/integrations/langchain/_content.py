"""What a LangChain callback carries, made small and safe enough to store.

Only used when a handler is built with ``capture_content=True``: prompts, messages,
tool inputs and outputs become plain, bounded, redacted JSON-able values. Everything
else in the integration records names, IDs, counts and timings, never content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage

from agentkeel._encoding import safe_repr, truncate
from agentkeel.observability import redact

_MAX_ITEMS = 50  # items kept of one list or mapping
_MAX_DEPTH = 6


def content(value: object, limit: int) -> Any:
    """``value`` as bounded JSON-able data with secrets redacted."""
    return redact(_plain(value, limit, 0))


def _plain(value: object, limit: int, depth: int) -> Any:  # noqa: PLR0911 - one case per shape
    if isinstance(value, str):
        return truncate(value, limit)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return safe_repr(value, limit)
    if isinstance(value, BaseMessage):
        message: dict[str, Any] = {
            "role": value.type,
            "content": _plain(value.content, limit, depth + 1),
        }
        tool_calls = getattr(value, "tool_calls", None)
        if tool_calls:
            message["tool_calls"] = [
                {"name": call.get("name"), "args": _plain(call.get("args"), limit, depth + 2)}
                for call in tool_calls[:_MAX_ITEMS]
            ]
        return message
    if isinstance(value, Document):
        return {
            "page_content": truncate(value.page_content, limit),
            "metadata": _plain(value.metadata, limit, depth + 1),
        }
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                out["…"] = f"[{len(value) - _MAX_ITEMS} more items]"
                break
            out[key if isinstance(key, str) else safe_repr(key, 100)] = _plain(
                item, limit, depth + 1
            )
        return out
    if isinstance(value, list | tuple):
        items = [_plain(item, limit, depth + 1) for item in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"…[{len(value) - _MAX_ITEMS} more items]")
        return items
    return safe_repr(value, limit)
