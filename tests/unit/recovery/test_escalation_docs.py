"""The Python examples of docs/recovery/escalation.md run as written."""

from __future__ import annotations

from _doc_examples import DOCS, doc_blocks, run_doc_examples

DOC = DOCS / "recovery" / "escalation.md"
BLOCKS = doc_blocks(DOC)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 7


def test_examples_run_in_order_and_print_what_they_say() -> None:
    run_doc_examples(DOC)
