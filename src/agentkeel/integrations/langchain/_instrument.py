"""instrument_langchain(): one handler for every LangChain / LangGraph run in the process."""

from __future__ import annotations

from typing import Any

from agentkeel._errors import ConfigurationError
from agentkeel.integrations._robust import InstrumentationHandle
from agentkeel.integrations.langchain._handler import KeelCallbackHandler
from agentkeel.integrations.langchain._install import PROCESS_WIDE

__all__ = ["installed_handler", "instrument_langchain"]

_OPTIONS = ("capture_content", "chains", "clock", "config", "max_content_chars")


def instrument_langchain(**options: Any) -> InstrumentationHandle:
    """Record every LangChain / LangGraph run in this process; returns the handle.

    ``handle.uninstrument()`` takes the handler out again. Options are those of
    :class:`KeelCallbackHandler`: ``capture_content``, ``max_content_chars``,
    ``chains``, ``config`` (a RobustConfig) and ``clock``.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"unknown instrument_langchain option(s) {', '.join(unknown)}: "
            f"allowed are {', '.join(_OPTIONS)}"
        )
    return KeelCallbackHandler(**options).instrument()


def installed_handler() -> KeelCallbackHandler | None:
    """The handler :func:`instrument_langchain` installed, if any."""
    return PROCESS_WIDE.handler
