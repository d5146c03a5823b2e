"""The Python examples of docs/recovery/escalation.md run as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import agentkeel

DOC = Path(__file__).parents[3] / "docs" / "recovery" / "escalation.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 7


def test_examples_run_in_order_and_print_what_they_say() -> None:
    agentkeel.configure(store="memory://")
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for number, block in enumerate(BLOCKS, 1):
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block, f"{DOC.name} example {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"example {number} of {DOC.name} failed: {exc!r}\n{block}")
        # "# comment" after a print(...) is the output it promises (up to an ellipsis).
        promised = [
            line.split("#", 1)[1].strip()
            for line in block.splitlines()
            if "print(" in line and "#" in line.split("print(", 1)[1]
        ]
        lines = printed.getvalue().splitlines()
        for promise in promised:
            head = promise.split("…")[0].strip()
            assert any(head in line for line in lines), (number, promise, lines)
