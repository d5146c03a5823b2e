"""The process-wide handler every LangChain run gets once ``instrument_langchain()`` ran."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from langchain_core.tracers.context import register_configure_hook

if TYPE_CHECKING:
    from agentkeel.integrations.langchain._handler import KeelCallbackHandler


class _ProcessWideHandler:
    """The handler every LangChain run in the process gets, whatever its thread or task.

    ``register_configure_hook`` expects a ContextVar and calls only its ``get()``
    whenever LangChain sets up the callbacks of a run. A real ContextVar set in one
    thread is invisible to the others (and to the threads LangGraph runs nodes on);
    this stand-in answers the same in all of them, and lets ``uninstrument`` take the
    handler out again, which a registered hook cannot be.
    """

    def __init__(self) -> None:
        self.handler: KeelCallbackHandler | None = None
        self._lock = threading.Lock()
        self._registered = False
        # ``get()`` (and ``get(default)``) answer ``self.handler``. LangChain asks
        # twice whenever it sets up a run's callbacks, dozens of times per agent run:
        # a partial of getattr answers without a Python frame.
        self.get: Callable[..., KeelCallbackHandler | None] = functools.partial(
            getattr, self, "handler"
        )

    def install(self, handler: KeelCallbackHandler) -> None:
        with self._lock:
            if not self._registered:
                # inheritable: child runs get the handler from their parent's manager.
                register_configure_hook(cast(ContextVar[Any], self), inheritable=True)
                self._registered = True
            previous, self.handler = self.handler, handler
        if previous is not None and previous is not handler:
            previous.uninstrument()  # one process-wide handler at a time

    def remove(self, handler: KeelCallbackHandler) -> None:
        with self._lock:
            if self.handler is handler:
                self.handler = None


PROCESS_WIDE = _ProcessWideHandler()
