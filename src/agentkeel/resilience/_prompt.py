"""Prompt adjustment: an LLM call that failed is retried with a better prompt.

Asking a model the same thing again often gets the same wrong answer (invalid
JSON, a rambling reply that timed out). On each retry a :class:`PromptAdjuster`
rewrites the *original* prompt — never the previous rewrite, so prompts do not
snowball — with one of four deterministic strategies, chosen by the retry number
and the kind of error:

=================  ===============================================================
CONTEXT_ADDITION   appends what went wrong and how to avoid it ("reply with valid
                   JSON only" after a parsing error)
SIMPLIFICATION     condenses the prompt (blank lines and repeated lines dropped,
                   the middle of a very long prompt cut) and asks for a brief answer
REPHRASING         restates the request with an instruction to read it carefully
EXAMPLES           appends the example outputs you supplied
=================  ===============================================================

:class:`Retry` delivers the result to the callable (see ``prompt_adjuster=`` there);
the iterator form offers it as ``attempt.adjust_prompt(prompt)``.
"""

from __future__ import annotations

import enum
import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from agentkeel._errors import ConfigurationError
from agentkeel.resilience._base import check_count
from agentkeel.resilience._error_types import ErrorType

__all__ = ["PromptAdjuster", "PromptContext", "PromptStrategy", "PromptTransform"]


class PromptStrategy(enum.StrEnum):
    """How a prompt is rewritten for the next attempt."""

    CONTEXT_ADDITION = "context_addition"
    SIMPLIFICATION = "simplification"
    REPHRASING = "rephrasing"
    EXAMPLES = "examples"


@dataclass(frozen=True, slots=True)
class PromptContext:
    """What a transform knows about the failure it is answering."""

    attempt: int  # the attempt the new prompt is for (2 for the first retry)
    error: BaseException
    error_type: ErrorType
    examples: tuple[str, ...]


PromptTransform: TypeAlias = Callable[[str, PromptContext], str]

_ERROR_TEXT = 300  # characters of the error message quoted back to the model
_HINTS = {
    ErrorType.VALIDATION_ERROR: (
        "Reply with output that is valid and well-formed in exactly the requested format "
        "(for JSON: a single JSON value, with no commentary or code fences)."
    ),
    ErrorType.TIMEOUT_ERROR: "Keep the answer short so that it completes quickly.",
    ErrorType.RESOURCE_ERROR: "Keep the answer short and the work small.",
}
_DEFAULT_HINT = "Please try again and avoid that problem."


def _error_line(error: BaseException) -> str:
    try:
        message = " ".join(str(error).split())
    except Exception:  # noqa: BLE001 - a broken __str__ still deserves a retry
        message = ""
    if len(message) > _ERROR_TEXT:
        message = message[: _ERROR_TEXT - 1] + "…"
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def add_context(prompt: str, ctx: PromptContext) -> str:
    hint = _HINTS.get(ctx.error_type, _DEFAULT_HINT)
    return f"{prompt}\n\nThe previous attempt failed with {_error_line(ctx.error)}. {hint}"


def simplify(prompt: str, ctx: PromptContext, *, max_chars: int = 2_000) -> str:
    seen: set[str] = set()
    lines: list[str] = []
    for raw in prompt.splitlines():
        line = " ".join(raw.split())
        if line and line not in seen:  # blank and repeated lines carry nothing new
            seen.add(line)
            lines.append(line)
    text = "\n".join(lines)
    if len(text) > max_chars:
        # Keep both ends: instructions tend to open a prompt and the question to close it.
        head = max_chars * 2 // 3
        tail = max_chars - head
        text = f"{text[:head]}\n[…]\n{text[-tail:]}"
    return f"Answer as simply and briefly as possible.\n\n{text}"


def rephrase(prompt: str, ctx: PromptContext) -> str:
    return (
        "An earlier attempt at the request below did not succeed. Read it carefully, "
        "work through it step by step, and answer exactly what it asks.\n\n"
        f"Request:\n{prompt}"
    )


def add_examples(prompt: str, ctx: PromptContext) -> str:
    blocks = "\n\n".join(f"Example {i}:\n{example}" for i, example in enumerate(ctx.examples, 1))
    return f"{prompt}\n\nExamples of the expected output:\n\n{blocks}"


# The order strategies are tried in, retry after retry, for each kind of failure.
_PLANS: dict[ErrorType, tuple[PromptStrategy, ...]] = {
    ErrorType.VALIDATION_ERROR: (
        PromptStrategy.CONTEXT_ADDITION,
        PromptStrategy.EXAMPLES,
        PromptStrategy.REPHRASING,
        PromptStrategy.SIMPLIFICATION,
    ),
    ErrorType.TIMEOUT_ERROR: (PromptStrategy.SIMPLIFICATION, PromptStrategy.CONTEXT_ADDITION),
    ErrorType.RESOURCE_ERROR: (PromptStrategy.SIMPLIFICATION, PromptStrategy.CONTEXT_ADDITION),
}
_DEFAULT_PLAN = (
    PromptStrategy.CONTEXT_ADDITION,
    PromptStrategy.REPHRASING,
    PromptStrategy.EXAMPLES,
    PromptStrategy.SIMPLIFICATION,
)


class PromptAdjuster:
    """Rewrites a prompt for each retry of a failed LLM call.

    ``strategies`` fixes the order (first retry uses the first, and so on; the last
    is kept once they run out); by default the order depends on the error type:
    validation/parsing errors add context, then examples, then rephrase; timeouts and
    resource errors simplify first; everything else adds context, then rephrases.
    ``examples`` are sample outputs for EXAMPLES (skipped when there are none);
    ``prompt`` is the original prompt for callables that do not take one as an
    argument; ``transforms`` replaces the text transform of a strategy.
    """

    def __init__(
        self,
        *,
        strategies: Sequence[PromptStrategy | str] | None = None,
        examples: Sequence[str] | str | None = None,
        prompt: str | None = None,
        max_chars: int = 2_000,
        transforms: Mapping[PromptStrategy, PromptTransform] | None = None,
    ) -> None:
        self.examples: tuple[str, ...] = (
            (examples,) if isinstance(examples, str) else tuple(examples or ())
        )
        if not all(isinstance(example, str) for example in self.examples):
            raise ConfigurationError("examples must be strings (sample outputs for the model)")
        self.strategies: tuple[PromptStrategy, ...] | None = None
        if strategies is not None:
            self.strategies = tuple(_parse_strategy(s) for s in strategies)
            if not self.strategies:
                raise ConfigurationError("strategies must name at least one PromptStrategy")
            if PromptStrategy.EXAMPLES in self.strategies and not self.examples:
                raise ConfigurationError(
                    "strategies include EXAMPLES but no examples were given: pass examples=[...]"
                )
        if prompt is not None and not isinstance(prompt, str):
            raise ConfigurationError(f"prompt must be a string, got {type(prompt).__name__}")
        self.prompt = prompt
        self.max_chars = check_count(max_chars, "max_chars", minimum=100)
        self._transforms: dict[PromptStrategy, PromptTransform] = {
            PromptStrategy.CONTEXT_ADDITION: add_context,
            PromptStrategy.SIMPLIFICATION: self._simplify,
            PromptStrategy.REPHRASING: rephrase,
            PromptStrategy.EXAMPLES: add_examples,
        }
        for strategy, transform in (transforms or {}).items():
            if not callable(transform):
                raise ConfigurationError(
                    f"transforms[{strategy!r}] must be a callable (prompt, context) -> str"
                )
            self._transforms[_parse_strategy(strategy)] = transform

    def __repr__(self) -> str:
        return f"PromptAdjuster(strategies={self.strategies!r}, examples={len(self.examples)})"

    def _simplify(self, prompt: str, ctx: PromptContext) -> str:
        return simplify(prompt, ctx, max_chars=self.max_chars)

    def choose(self, error_type: ErrorType, attempt: int) -> PromptStrategy:
        """The strategy for ``attempt`` (2 is the first retry) after an ``error_type`` error."""
        plan = self.strategies
        if plan is None:
            plan = _PLANS.get(error_type, _DEFAULT_PLAN)
            if not self.examples:
                plan = tuple(s for s in plan if s is not PromptStrategy.EXAMPLES)
        index = attempt - 2
        return plan[index] if index < len(plan) else plan[-1]

    def adjust(
        self,
        prompt: str,
        *,
        error: BaseException,
        error_type: ErrorType,
        attempt: int,
        strategy: PromptStrategy | None = None,
    ) -> str:
        """``prompt`` rewritten for ``attempt``, by ``strategy`` or else by :meth:`choose`."""
        chosen = strategy if strategy is not None else self.choose(error_type, attempt)
        ctx = PromptContext(
            attempt=attempt, error=error, error_type=error_type, examples=self.examples
        )
        return self._transforms[chosen](prompt, ctx)


def _parse_strategy(value: PromptStrategy | str) -> PromptStrategy:
    try:
        return PromptStrategy(value.lower() if isinstance(value, str) else value)
    except ValueError:
        names = ", ".join(s.name for s in PromptStrategy)
        raise ConfigurationError(f"unknown prompt strategy {value!r}: use one of {names}") from None


ADJUSTED_PROMPT = "adjusted_prompt"


@dataclass(frozen=True, slots=True)
class PromptBinding:
    """Where a callable takes its prompt, worked out once from its signature.

    ``replace`` is the name of the prompt parameter to replace (``prompt_kwarg=``
    mode); otherwise the adjusted text goes to an ``adjusted_prompt=`` keyword and the
    original is read from ``source`` (a parameter named ``prompt``) or the adjuster.
    """

    source: str | None  # parameter holding the original prompt
    position: int | None  # its index when passed positionally
    default: object  # its default value (inspect.Parameter.empty if none)
    replace: bool

    def original(
        self, adjuster: PromptAdjuster, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> object:
        if self.source is not None:
            if self.source in kwargs:
                return kwargs[self.source]
            if self.position is not None and self.position < len(args):
                return args[self.position]
            if self.default is not inspect.Parameter.empty:
                return self.default
        return adjuster.prompt

    def deliver(
        self, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of the next attempt, carrying ``text``."""
        kwargs = dict(kwargs)
        if not self.replace:
            kwargs[ADJUSTED_PROMPT] = text
            return args, kwargs
        assert self.source is not None  # replace mode always has a source
        if self.source not in kwargs and self.position is not None and self.position < len(args):
            return (*args[: self.position], text, *args[self.position + 1 :]), kwargs
        kwargs[self.source] = text
        return args, kwargs


class PromptBindings:
    """Remembers each callable's :class:`PromptBinding`, so a signature is read once."""

    __slots__ = ("_adjuster", "_bound", "_plain", "_prompt_kwarg")

    def __init__(self, adjuster: PromptAdjuster, prompt_kwarg: str | None) -> None:
        self._adjuster = adjuster
        self._prompt_kwarg = prompt_kwarg
        # Bound methods are new objects on every attribute access: key them by their
        # function, apart from plain functions (their signatures differ by ``self``).
        self._plain: weakref.WeakKeyDictionary[Any, PromptBinding] = weakref.WeakKeyDictionary()
        self._bound: weakref.WeakKeyDictionary[Any, PromptBinding] = weakref.WeakKeyDictionary()

    def get(self, fn: Callable[..., Any]) -> PromptBinding:
        """``fn``'s binding; ConfigurationError if it cannot receive an adjusted prompt."""
        func = getattr(fn, "__func__", None)
        cache, key = (self._plain, fn) if func is None else (self._bound, func)
        try:
            found = cache.get(key)
        except TypeError:  # not weak-referenceable (some builtins): no caching
            return bind_prompt(fn, self._adjuster, self._prompt_kwarg)
        if found is None:
            found = cache[key] = bind_prompt(fn, self._adjuster, self._prompt_kwarg)
        return found


def bind_prompt(
    fn: Callable[..., Any], adjuster: PromptAdjuster, prompt_kwarg: str | None
) -> PromptBinding:
    """Work out from ``fn``'s signature where its prompt is; ConfigurationError if nowhere."""
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"cannot read the signature of {name} to pass it an adjusted prompt; wrap it "
            f"in a def that takes adjusted_prompt=None"
        ) from None
    params = signature.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    wanted = prompt_kwarg if prompt_kwarg is not None else "prompt"
    source = params.get(wanted)
    if source is not None and source.kind in (
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    ):
        source = None
    position = (
        list(params).index(wanted)
        if source is not None and source.kind is not inspect.Parameter.KEYWORD_ONLY
        else None
    )
    default = source.default if source is not None else inspect.Parameter.empty
    if prompt_kwarg is not None:
        if source is None and not var_kw:
            raise ConfigurationError(
                f"prompt_kwarg={prompt_kwarg!r} but {name} has no parameter of that name: "
                f"name the parameter that holds the prompt"
            )
        return PromptBinding(source=prompt_kwarg, position=position, default=default, replace=True)
    accepts = ADJUSTED_PROMPT in params and params[ADJUSTED_PROMPT].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.VAR_POSITIONAL,
    )
    if not (accepts or var_kw):
        raise ConfigurationError(
            f"{name} cannot receive the adjusted prompt: give it a parameter "
            f"adjusted_prompt=None (or **kwargs), or pass prompt_kwarg='<its prompt "
            f"parameter>' to have that argument replaced instead"
        )
    if source is None and not var_kw and adjuster.prompt is None:
        raise ConfigurationError(
            f"{name} has no 'prompt' parameter to read the original prompt from: pass "
            f"prompt_kwarg='<its prompt parameter>', or PromptAdjuster(prompt='...')"
        )
    return PromptBinding(
        # With only **kwargs, a prompt= keyword may still arrive there at call time.
        source=wanted if source is not None or var_kw else None,
        position=position,
        default=default,
        replace=False,
    )
