"""The Python examples of docs/recovery/history.md run as written, in order."""

from __future__ import annotations

from pathlib import Path

from _recovery_helpers import run_doc_examples

DOC = Path(__file__).parents[3] / "docs" / "recovery" / "history.md"


def test_the_history_examples_run(tmp_path: Path) -> None:
    namespace = run_doc_examples(DOC, tmp_path, minimum=4)
    assert namespace["long_memory"].config.max_versions == 200
