"""Fallback: when a call fails, try ordered alternatives (another model, another provider).

The primary is the function the policy guards; the alternatives are tried in the
order given, each with the same arguments, as long as the failures match ``on``.
The first answer wins. Which one answered is recorded twice: a ``fallback`` event
(``primary``, ``answered_by``, ``index``, ``errors``), and, for the caller, the
``*_with_source`` methods, which return ``(result, name)``; a return value is the
one thread- and task-safe place for it.

When every alternative fails, the *last* exception is raised unchanged, so the
agent's own ``except`` clauses keep working. The earlier failures are not lost: each
exception's ``__context__`` points to the one before (as if each alternative had
been called while handling the previous failure, which is what happened), and a
note lists them all. We deliberately do not raise an ``ExceptionGroup``: it would
hide ``ConnectionError`` and friends from every plain ``except``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

from agentkeel._errors import ConfigurationError
from agentkeel._runtime import get_pipeline
from agentkeel.events import EventType, Severity
from agentkeel.resilience._base import PolicyBase
from agentkeel.resilience._naming import describe

__all__ = ["Fallback"]

R = TypeVar("R")

Alternative: TypeAlias = Callable[..., Any] | tuple[str, Callable[..., Any]]
"""A callable, or ``(name, callable)`` to give it the name recorded in events."""

_MAX_ERROR_TEXT = 200


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


def _chain(exc: BaseException, previous: BaseException) -> None:
    """Make ``previous`` the context of ``exc``, as ``raise`` inside ``except`` would."""
    if exc.__context__ is not None or exc is previous:
        return
    seen: BaseException | None = previous
    while seen is not None:  # never build a cycle
        if seen is exc:
            return
        seen = seen.__context__
    exc.__context__ = previous


class Fallback(PolicyBase):
    """Try ``alternatives`` in order when the guarded call raises one of ``on``.

    ::

        answer = Fallback(("claude", ask_claude), ("local", ask_local_model), on=(APIError,))
        text, source = answer.call_with_source(ask_gpt, prompt)

    An alternative is a callable or a ``(name, callable)`` pair and gets the same
    arguments as the primary. Under ``acall`` alternatives may be sync or async;
    under ``call`` they must be sync. Exceptions outside ``on`` propagate at once.
    """

    def __init__(
        self,
        *alternatives: Alternative,
        on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        name: str | None = None,
    ) -> None:
        if not alternatives:
            raise ConfigurationError(
                "Fallback needs at least one alternative: Fallback(backup_fn, ...)"
            )
        self._alternatives: tuple[tuple[str, Callable[..., Any], bool], ...] = tuple(
            self._alternative(i, alt) for i, alt in enumerate(alternatives, start=1)
        )
        on_types = on if isinstance(on, tuple) else (on,)
        if not on_types or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in on_types
        ):
            raise ConfigurationError(
                f"on must be an exception class or a tuple of them, got {on!r}"
            )
        self.on: tuple[type[BaseException], ...] = on_types
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigurationError(f"name must be a non-empty string or None, got {name!r}")
        self.name = name

    @staticmethod
    def _alternative(index: int, alt: Alternative) -> tuple[str, Callable[..., Any], bool]:
        if isinstance(alt, tuple):
            if len(alt) != 2 or not isinstance(alt[0], str) or not alt[0] or not callable(alt[1]):
                raise ConfigurationError(
                    f"alternative {index} must be a callable or a (name, callable) pair, "
                    f"got {alt!r}"
                )
            label, fn = alt
        elif callable(alt):
            label, fn = describe(alt), alt
        else:
            raise ConfigurationError(f"alternative {index} is not callable: {alt!r}")
        return label, fn, inspect.iscoroutinefunction(fn)

    @property
    def alternatives(self) -> tuple[str, ...]:
        """The alternatives' names, in the order they are tried."""
        return tuple(label for label, _, _ in self._alternatives)

    def __repr__(self) -> str:
        return f"Fallback({', '.join(self.alternatives)}, name={self.name!r})"

    # ------------------------------------------------------------------ sync
    def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        try:
            return fn(*args, **kwargs)
        except self.on as exc:
            first = exc
        # Alternatives run outside the handler: Python would otherwise set each one's
        # __context__ to the primary's error instead of to the failure just before it.
        result: R = self._fall_back(fn, first, args, kwargs)[0]
        return result

    def call_with_source(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> tuple[R, str]:
        """Like :meth:`call`, and also the name of whichever callable answered."""
        try:
            return fn(*args, **kwargs), describe(fn)
        except self.on as exc:
            first = exc
        return self._fall_back(fn, first, args, kwargs)

    def _fall_back(
        self,
        fn: Callable[..., Any],
        first: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, str]:
        errors: list[tuple[str, BaseException]] = [(describe(fn), first)]
        for index, (label, alternative, is_async) in enumerate(self._alternatives, start=1):
            if is_async:
                raise ConfigurationError(
                    f"alternative {label!r} is a coroutine function and cannot answer a sync "
                    "call: use acall() (or decorate an async def), or give a sync alternative"
                ) from errors[-1][1]
            try:
                result = alternative(*args, **kwargs)
            except self.on as exc:
                _chain(exc, errors[-1][1])
                errors.append((label, exc))
                continue
            self._answered(errors, label, index)
            return result, label
        raise self._exhausted(errors)

    # ------------------------------------------------------------------ async
    async def acall(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        try:
            return await fn(*args, **kwargs)
        except self.on as exc:
            first = exc
        result: R = (await self._afall_back(fn, first, args, kwargs))[0]
        return result

    async def acall_with_source(
        self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any
    ) -> tuple[R, str]:
        """Like :meth:`acall`, and also the name of whichever callable answered."""
        try:
            return await fn(*args, **kwargs), describe(fn)
        except self.on as exc:
            first = exc
        return await self._afall_back(fn, first, args, kwargs)

    async def _afall_back(
        self,
        fn: Callable[..., Any],
        first: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[Any, str]:
        errors: list[tuple[str, BaseException]] = [(describe(fn), first)]
        for index, (label, alternative, _) in enumerate(self._alternatives, start=1):
            try:
                result = alternative(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except self.on as exc:
                _chain(exc, errors[-1][1])
                errors.append((label, exc))
                continue
            self._answered(errors, label, index)
            return result, label
        raise self._exhausted(errors)

    # ------------------------------------------------------------------ records
    def _answered(self, errors: list[tuple[str, BaseException]], label: str, index: int) -> None:
        primary = errors[0][0]
        get_pipeline().emit(
            EventType.FALLBACK,
            name=self.name or primary,
            severity=Severity.LOW,
            attributes={
                "outcome": "answered",
                "primary": primary,
                "answered_by": label,
                "index": index,
                "errors": [f"{who}: {_error_text(exc)}" for who, exc in errors],
            },
        )

    def _exhausted(self, errors: list[tuple[str, BaseException]]) -> BaseException:
        primary = errors[0][0]
        get_pipeline().emit(
            EventType.FALLBACK,
            name=self.name or primary,
            severity=Severity.MEDIUM,
            attributes={
                "outcome": "exhausted",
                "primary": primary,
                "answered_by": None,
                "index": None,
                "errors": [f"{who}: {_error_text(exc)}" for who, exc in errors],
            },
        )
        last = errors[-1][1]
        tried = "; ".join(f"{who}: {_error_text(exc)}" for who, exc in errors)
        last.add_note(
            f"agentkeel Fallback {self.name or primary!r}: all {len(errors)} callables "
            f"failed, in order: {tried}"
        )
        return last
