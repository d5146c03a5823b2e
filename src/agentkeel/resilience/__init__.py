"""Resilience policies: retry, timeout, circuit breaker, isolation, fallback, bulkhead,
rate limiter, and :class:`Guard` to compose them in a fixed order.

Each policy is a pure state machine fed by an injected clock, wrapped by thin sync
(``call``) and async (``acall``) shells; each is also a decorator. The agent's own
exceptions pass through unchanged; the policies' own refusals are
:class:`ResilienceError` subclasses (``CircuitOpenError`` carries ``retry_after``).
"""

from agentkeel.resilience._adaptive import (
    JsonFileLearnerStore,
    LearnerStore,
    SuccessRateLearner,
    SuccessRateStats,
)
from agentkeel.resilience._base import Policy, PolicyBase
from agentkeel.resilience._breaker import BreakerStateStore, CircuitBreaker, SharedBreakerState
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import CircuitState
from agentkeel.resilience._breaker_redis import RedisBreakerStore
from agentkeel.resilience._breaker_registry import (
    CircuitBreakerRegistry,
    default_registry,
    get_all_circuit_breakers,
    get_circuit_breaker,
    reset_all_circuit_breakers,
)
from agentkeel.resilience._budget import BudgetStats, RetryBudget
from agentkeel.resilience._bulkhead import Bulkhead, BulkheadStats
from agentkeel.resilience._error_types import ErrorType, classify_error_type, is_transient
from agentkeel.resilience._errors import (
    BulkheadFullError,
    CircuitOpenError,
    IsolationError,
    RateLimitExceededError,
    ResilienceError,
    ToolTimeoutError,
)
from agentkeel.resilience._fallback import Fallback
from agentkeel.resilience._guard import Guard, guard
from agentkeel.resilience._isolation import (
    Isolated,
    IsolatedCrashError,
    IsolatedOutputError,
    IsolatedToolError,
    IsolatedToolExecutor,
)
from agentkeel.resilience._prompt import (
    PromptAdjuster,
    PromptContext,
    PromptStrategy,
    PromptTransform,
)
from agentkeel.resilience._rate_limiter import RateLimiter, RateLimiterStats, TokenBucket
from agentkeel.resilience._retry import (
    ErrorTypeRule,
    Retry,
    RetryAttempt,
    RetryDecision,
    RetryDetails,
    RetryHook,
    RetryReason,
    set_retry_testing,
)
from agentkeel.resilience._retry_strategies import (
    Adaptive,
    Backoff,
    BackoffSum,
    Exponential,
    Fixed,
    Jitter,
    JitterMode,
    Linear,
    RetryAfterExtractor,
    adaptive,
    default_retry_after,
    exponential,
    fixed,
    linear,
)
from agentkeel.resilience._timeout import Timeout, TimeoutStats, TimeoutToolExecutor
from agentkeel.resilience._tool_breaker import ToolCircuitBreaker

__all__ = [
    "Adaptive",
    "Backoff",
    "BackoffSum",
    "BreakerStateStore",
    "BudgetStats",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadStats",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerRegistry",
    "CircuitOpenError",
    "CircuitState",
    "ErrorType",
    "ErrorTypeRule",
    "Exponential",
    "Fallback",
    "Fixed",
    "Guard",
    "Isolated",
    "IsolatedCrashError",
    "IsolatedOutputError",
    "IsolatedToolError",
    "IsolatedToolExecutor",
    "IsolationError",
    "Jitter",
    "JitterMode",
    "JsonFileLearnerStore",
    "LearnerStore",
    "Linear",
    "Policy",
    "PolicyBase",
    "PromptAdjuster",
    "PromptContext",
    "PromptStrategy",
    "PromptTransform",
    "RateLimitExceededError",
    "RateLimiter",
    "RateLimiterStats",
    "RedisBreakerStore",
    "ResilienceError",
    "Retry",
    "RetryAfterExtractor",
    "RetryAttempt",
    "RetryBudget",
    "RetryDecision",
    "RetryDetails",
    "RetryHook",
    "RetryReason",
    "SharedBreakerState",
    "SuccessRateLearner",
    "SuccessRateStats",
    "Timeout",
    "TimeoutStats",
    "TimeoutToolExecutor",
    "TokenBucket",
    "ToolCircuitBreaker",
    "ToolTimeoutError",
    "adaptive",
    "classify_error_type",
    "default_registry",
    "default_retry_after",
    "exponential",
    "fixed",
    "get_all_circuit_breakers",
    "get_circuit_breaker",
    "guard",
    "is_transient",
    "linear",
    "reset_all_circuit_breakers",
    "set_retry_testing",
]
