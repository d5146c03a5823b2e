"""The Python examples of docs/tracing.md and docs/sampling.md run as written.

Blocks fenced as ``python`` run in order, sharing one namespace per page; blocks fenced
as ``py`` need a server (an OTLP collector) and are run for real by
tests/integration/test_otlp_phoenix.py instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

import agentkeel

DOCS = Path(__file__).parents[3] / "docs"


def blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.DOTALL)


@pytest.mark.parametrize(("page", "at_least"), [("tracing.md", 3), ("sampling.md", 3)])
def test_examples_run_in_order(
    page: str, at_least: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # The pages configure the process-wide sampling manager: give them their own.
    monkeypatch.setattr("agentkeel.observability._sampling._manager", None)
    examples = blocks(page)
    assert len(examples) >= at_least
    namespace: dict[str, object] = {"__name__": "docs_example"}
    for number, block in enumerate(examples, 1):
        try:
            exec(compile(block, f"{page} example {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"example {number} of {page} failed: {exc!r}\n{block}")
    agentkeel.shutdown()
