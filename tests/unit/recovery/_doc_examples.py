"""Run a docs page's Python examples in order and check what they promise to print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import agentkeel

DOCS = Path(__file__).parents[3] / "docs"


def doc_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)


def run_doc_examples(doc: Path) -> None:
    """Each block runs in one shared namespace; ``print(...)  # text`` must print ``text``."""
    agentkeel.configure(store="memory://")
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for number, block in enumerate(doc_blocks(doc), 1):
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block, f"{doc.name} example {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"example {number} of {doc.name} failed: {exc!r}\n{block}")
        promised = [
            line.split("#", 1)[1].strip()
            for line in block.splitlines()
            if "print(" in line and "#" in line.split("print(", 1)[1]
        ]
        lines = printed.getvalue().splitlines()
        for promise in promised:
            head = promise.split("…")[0].strip()  # up to an ellipsis
            assert any(head in line for line in lines), (number, promise, lines)
