"""Run an integration docs page's Python examples and check what they promise to print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).parents[3] / "docs" / "integrations"

__all__ = ["DOCS", "run_page"]


def run_page(page: str) -> list[str]:
    """Run each ```python block of ``page`` in one namespace; return what they printed.

    A ``print(...)  # text`` line promises that ``text`` (up to an ellipsis) is printed.
    """
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, f"{page} has no python example"
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    printed_all: list[str] = []
    for number, block in enumerate(blocks, 1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block, f"{page} example {number}", "exec"), namespace)
        lines = printed.getvalue().splitlines()
        for line in block.splitlines():
            if "print(" in line and "#" in line.split("print(", 1)[1]:
                promise = line.split("print(", 1)[1].split("#", 1)[1].split("…")[0].strip()
                assert any(promise in out for out in lines), (page, number, promise, lines)
        printed_all.extend(lines)
    return printed_all
