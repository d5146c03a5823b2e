"""The runnable examples of docs/integrations/langchain.md run and print what they show."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[3] / "docs" / "integrations" / "langchain.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
# The first three blocks are complete programs; the later ones show fragments of a graph.
RUNNABLE = BLOCKS[:3]


def test_the_one_line_the_example_and_the_health_check_run() -> None:
    assert len(BLOCKS) == 5
    printed = io.StringIO()
    for number, block in enumerate(RUNNABLE, 1):
        namespace: dict[str, object] = {"__name__": f"langchain_docs_{number}"}
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block, f"{DOC.name} example {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"example {number} of {DOC.name} failed: {exc!r}\n{block}")
    lines = printed.getvalue().splitlines()
    assert lines == [
        "It is sunny in Lisbon.",
        "exact_repeat 3",
        "LangGraph failed 1 0%",
        "LangGraph succeeded 1 100%",
        "1",
        "healthy",
    ]
    # The commented outputs in the example are the real ones.
    for line in lines[:5]:
        assert f"# {line}" in RUNNABLE[1] or f"   # {line}" in RUNNABLE[1]
