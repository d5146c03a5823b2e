"""Framework integrations: detection, robust instrumentors, and one line per framework.

The framework-specific parts live in subpackages that import their framework
(``agentkeel.integrations.langchain``, ``.openai``, ``.crewai``, ``.autogen``); the
``instrument_*`` functions here import them only when called, with an error that
names the extra to install when the framework is missing.
"""

from agentkeel.integrations._compat import (
    CompatibilityInfo,
    CompatibilityManager,
    FrameworkInfo,
    FrameworkNotSupportedError,
    FrameworkSpec,
    FrameworkStatus,
    get_compatibility_manager,
)
from agentkeel.integrations._lazy import (
    instrument_autogen,
    instrument_crewai,
    instrument_langchain,
    instrument_openai,
)
from agentkeel.integrations._robust import (
    InstrumentationHandle,
    InstrumentorHealth,
    InstrumentorState,
    RobustConfig,
    RobustInstrumentor,
    get_instrumentors,
)

__all__ = [
    "CompatibilityInfo",
    "CompatibilityManager",
    "FrameworkInfo",
    "FrameworkNotSupportedError",
    "FrameworkSpec",
    "FrameworkStatus",
    "InstrumentationHandle",
    "InstrumentorHealth",
    "InstrumentorState",
    "RobustConfig",
    "RobustInstrumentor",
    "get_compatibility_manager",
    "get_instrumentors",
    "instrument_autogen",
    "instrument_crewai",
    "instrument_langchain",
    "instrument_openai",
]
