"""The Python examples of docs/integrations/index.md run as written."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import agentkeel
from agentkeel import EventType

DOC = Path(__file__).parents[3] / "docs" / "integrations" / "index.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_examples_run_in_order() -> None:
    assert len(BLOCKS) == 3
    agentkeel.configure(store="memory://")
    # The last example hooks into "myframework": a tiny stand-in with a callback list.
    callbacks: list[object] = []
    framework = types.SimpleNamespace(
        callbacks=types.SimpleNamespace(add=callbacks.append, remove=callbacks.remove)
    )
    namespace: dict[str, object] = {"__name__": "docs_example", "myframework": framework}
    for number, block in enumerate(BLOCKS, 1):
        try:
            exec(compile(block, f"{DOC.name} example {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"example {number} of {DOC.name} failed: {exc!r}\n{block}")
    # The custom instrumentor hooked in, and its callback records a tool call.
    assert len(callbacks) == 1
    callbacks[0]("search", 0.25)  # type: ignore[operator]
    assert agentkeel.flush()
    ends = agentkeel.get_store().list_events(types=[EventType.TOOL_CALL_END])
    assert [(s.event.name, s.event.attributes["duration_ms"]) for s in ends] == [("search", 250.0)]
    health = namespace["health"]
    assert isinstance(health, dict) and health["framework"] == "langchain"
    namespace["handle"].uninstrument()  # type: ignore[attr-defined]
    assert callbacks == []
