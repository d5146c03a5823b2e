"""The OpenAI SDK integration: ``instrument_openai(client)`` and the error helpers.

One line observes a client's chat completions, sync, async and streaming; options add
retries that honour Retry-After, fallback to other models, a per-request timeout and a
circuit breaker. See docs/integrations/openai.md.
"""

from agentkeel.integrations.openai._errors import (
    FALLBACK_ERRORS,
    openai_error_category,
    openai_retry,
    openai_retry_after,
    retryable_openai_error,
)
from agentkeel.integrations.openai._instrumentor import (
    OPERATION,
    OpenAIInstrumentor,
    instrument_openai,
)

__all__ = [
    "FALLBACK_ERRORS",
    "OPERATION",
    "OpenAIInstrumentor",
    "instrument_openai",
    "openai_error_category",
    "openai_retry",
    "openai_retry_after",
    "retryable_openai_error",
]
