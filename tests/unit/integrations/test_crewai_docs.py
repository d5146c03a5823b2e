"""docs/integrations/crewai.md's example runs offline and prints what it says."""

from __future__ import annotations

import pytest
from _crewai_fakes import crewai_environment
from _integration_docs import run_page
from _no_network import no_network

__all__ = ["crewai_environment", "no_network"]  # fixtures, re-exported for pytest


@pytest.mark.usefixtures("crewai_environment", "no_network")
def test_the_crewai_page_example_runs() -> None:
    printed = run_page("crewai.md")
    kinds = ("agent.", "task.", "step.", "tool.", "llm.")
    events = [line for line in printed if line.startswith(kinds)]
    # Stored in handler order, which CrewAI's thread pool may shuffle slightly: no order here.
    for expected in (
        "agent.start calc-crew",
        "agent.end calc-crew",
        "task.start Add 2 and 3.",
        "step.start agent calculator",
        "tool.start adder",
        "tool.end adder",
        "llm.end scripted-model",
    ):
        assert expected in events, (expected, events)
