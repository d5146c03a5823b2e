"""The Python examples of docs/monitoring.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import agentkeel
from agentkeel.monitoring import set_monitoring_system

DOC = Path(__file__).parents[3] / "docs" / "monitoring.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 7


def test_examples_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    agentkeel.configure(store="memory://")
    set_monitoring_system(None)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    try:
        for number, block in enumerate(BLOCKS, 1):
            try:
                exec(compile(block, f"{DOC.name} example {number}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"example {number} of {DOC.name} failed: {exc!r}\n{block}")
    finally:
        set_monitoring_system(None)
