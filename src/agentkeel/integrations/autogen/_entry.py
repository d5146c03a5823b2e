"""The one line: ``instrument_autogen()``."""

from __future__ import annotations

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel.integrations._robust import InstrumentationHandle, RobustConfig
from agentkeel.integrations.autogen._instrumentor import AutoGenInstrumentor

__all__ = ["instrument_autogen"]


def instrument_autogen(
    *,
    config: RobustConfig | None = None,
    capture_content: bool = False,
    record_failures: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> InstrumentationHandle:
    """Observe AutoGen in this process through its event loggers.

    Records each agent tool call (name, call ID, duration, errors as failures), LLM
    calls that model clients log themselves, and message handler exceptions. For
    precise LLM calls wrap the client: ``handle.instrumentor.wrap_client(client)``.
    ``handle.uninstrument()`` removes the logger filters and restores the levels.
    """
    instrumentor = AutoGenInstrumentor(
        config=config, clock=clock, capture_content=capture_content, record_failures=record_failures
    )
    return instrumentor.instrument()
