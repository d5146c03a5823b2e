"""The Python examples of docs/recovery/loop-detection.md run as written."""

from __future__ import annotations

from _doc_examples import DOCS, doc_blocks, run_doc_examples

DOC = DOCS / "recovery" / "loop-detection.md"
BLOCKS = doc_blocks(DOC)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 6


def test_examples_run_in_order_and_print_what_they_say() -> None:
    run_doc_examples(DOC)
