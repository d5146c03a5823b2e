"""docs/integrations/autogen.md's example runs offline and prints what it says."""

from __future__ import annotations

import pytest
from _integration_docs import run_page
from _no_network import no_network

__all__ = ["no_network"]  # the fixture, re-exported for pytest


@pytest.mark.usefixtures("no_network")
def test_the_autogen_page_example_runs() -> None:
    printed = run_page("autogen.md")
    events = [line.strip() for line in printed if line.startswith(("agent.", "tool.", "llm."))]
    assert events == [
        "agent.start calc-agent",
        "llm.start replay-model",
        "llm.end replay-model 8",
        "tool.start add",
        "tool.end add",
        "llm.start replay-model",
        "llm.end replay-model 6",
        "agent.end calc-agent",
    ]
