"""Open a store from its URL."""

from __future__ import annotations

import os

from agentkeel.store._protocol import Store
from agentkeel.store._url import resolve_store_url


def open_store(
    url: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    migrate: bool = True,
) -> Store:
    """Open (and by default create or upgrade) the store at ``url``.

    ``url`` defaults to ``$KEEL_STORE``, else ``sqlite:///$KEEL_HOME/keel.db``.
    ``postgresql://`` needs the ``postgres`` extra: ``pip install 'agentkeel[postgres]'``.
    """
    resolved = resolve_store_url(url, home=home)
    scheme = resolved.split("://", 1)[0]
    if scheme == "sqlite":
        from agentkeel.store._sqlite import SQLiteStore

        return SQLiteStore(resolved, migrate=migrate)
    if scheme in {"postgresql", "postgres"}:
        from agentkeel.store._postgres import PostgresStore

        return PostgresStore(resolved, migrate=migrate)
    from agentkeel.store._memory import MemoryStore

    return MemoryStore(resolved)
