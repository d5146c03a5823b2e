"""CrewAI integration: ``instrument_crewai()`` subscribes to CrewAI's event bus.

Needs the ``crewai`` extra (``pip install 'agentkeel[crewai]'``).
"""

from agentkeel.integrations.crewai._instrumentor import (
    CrewAIInstrumentor,
    instrument_crewai,
    run_id_for_kickoff,
)

__all__ = ["CrewAIInstrumentor", "instrument_crewai", "run_id_for_kickoff"]
