"""How a policy names the callable it guards, in errors and events."""

from __future__ import annotations

import functools
from typing import Any


def describe(fn: Any) -> str:
    """A short, human name for a callable: its qualname, looking through partials."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if isinstance(name, str):
        # "make_tools.<locals>.search" reads better as "search".
        return name.rpartition("<locals>.")[2]
    # A callable object: name its class rather than printing a repr with an address.
    return type(fn).__qualname__
