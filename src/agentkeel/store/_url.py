"""Where the store lives: ``KEEL_STORE`` / ``--store`` URLs and ``KEEL_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

from agentkeel._errors import ConfigurationError

DEFAULT_HOME = ".keel"
DB_FILENAME = "keel.db"


def keel_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The directory for the embedded store and logs: ``home``, ``$KEEL_HOME`` or ``./.keel``."""
    if home is not None:
        return Path(home)
    return Path(os.environ.get("KEEL_HOME") or DEFAULT_HOME)


def resolve_store_url(url: str | None = None, *, home: str | os.PathLike[str] | None = None) -> str:
    """The store URL to use: ``url``, else ``$KEEL_STORE``, else SQLite under the home dir."""
    chosen = url or os.environ.get("KEEL_STORE") or ""
    if not chosen:
        return f"sqlite:///{keel_home(home) / DB_FILENAME}"
    check_store_url(chosen)
    return chosen


def check_store_url(url: str) -> None:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in {"sqlite", "postgresql", "postgres", "memory"}:
        raise ConfigurationError(
            f"unsupported store URL {url!r}: use sqlite:///path/to/keel.db, "
            "postgresql://user@host/db or memory://"
        )
    if scheme == "sqlite" and not url[len("sqlite://") :].strip("/"):
        raise ConfigurationError(f"store URL {url!r} names no file: use sqlite:///path/to/keel.db")


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel/path`` → ``rel/path``; ``sqlite:////abs/path`` → ``/abs/path``."""
    return Path(url[len("sqlite:///") :])
