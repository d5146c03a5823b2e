"""The Python examples of docs/recovery/rollback.md run as written, in order."""

from __future__ import annotations

from pathlib import Path

from _recovery_helpers import run_doc_examples

DOC = Path(__file__).parents[3] / "docs" / "recovery" / "rollback.md"


def test_the_rollback_examples_run(tmp_path: Path) -> None:
    namespace = run_doc_examples(DOC, tmp_path, minimum=7)
    assert namespace["result"].tried[-1].outcome == "restored"
