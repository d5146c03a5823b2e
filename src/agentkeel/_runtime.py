"""The process-wide pipeline and store, created on first use with zero configuration.

By default events go to the embedded SQLite store under ``$KEEL_HOME`` (``./.keel``).
``KEEL_STORE`` or :func:`configure` choose another store; ``KEEL_STORE=none`` keeps
events in memory only long enough to drop them (useful for tests of other code).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from agentkeel import _internal
from agentkeel.events import Event
from agentkeel.pipeline import OverflowPolicy, Pipeline, Sink
from agentkeel.store import Store, open_store, resolve_store_url

_lock = threading.RLock()
_pipeline: Pipeline | None = None
_store_sink: StoreSink | None = None


class StoreSink:
    """Writes batches to a store, opening it lazily on the writer thread."""

    def __init__(self, url_or_store: str | Store) -> None:
        if isinstance(url_or_store, str):
            self.url = url_or_store
            self._store: Store | None = None
        else:
            self.url = url_or_store.url
            self._store = url_or_store
        self._open_lock = threading.Lock()

    @property
    def store(self) -> Store:
        with self._open_lock:
            if self._store is None:
                self._store = open_store(self.url)
            return self._store

    def __call__(self, batch: Sequence[Event], /) -> None:
        self.store.write_events(batch)

    def close(self) -> None:
        with self._open_lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def configure(
    *,
    store: str | Store | None = None,
    home: str | os.PathLike[str] | None = None,
    sinks: Sequence[Sink] = (),
    capacity: int = 20_000,
    priority_capacity: int | None = None,
    batch_size: int = 1_000,
    flush_interval: float | timedelta = 0.2,
    overflow: OverflowPolicy = "drop_lowest",
    block_timeout: float | timedelta = 0.05,
) -> Pipeline:
    """Replace the process-wide pipeline (the old one is flushed and closed).

    ``store`` is a URL (``sqlite:///…``, ``postgresql://…``, ``memory://``, or
    ``"none"``) or a Store object; by default ``$KEEL_STORE`` or SQLite under ``home``.
    """
    global _pipeline, _store_sink
    all_sinks: list[Sink] = []
    store_sink: StoreSink | None = None
    if not (isinstance(store, str) and store.lower() == "none"):
        if store is None and os.environ.get("KEEL_STORE", "").lower() == "none":
            pass
        else:
            target = store if store is not None and not isinstance(store, str) else None
            url = resolve_store_url(store if isinstance(store, str) else None, home=home)
            store_sink = StoreSink(target if target is not None else url)
            all_sinks.append(store_sink)
    all_sinks.extend(sinks)
    pipeline = Pipeline(
        sinks=all_sinks,
        capacity=capacity,
        priority_capacity=priority_capacity,
        batch_size=batch_size,
        flush_interval=flush_interval,
        overflow=overflow,
        block_timeout=block_timeout,
        close_sinks=_closer(all_sinks),
    )
    with _lock:
        old, _pipeline, _store_sink = _pipeline, pipeline, store_sink
    if old is not None:
        old.close()
    return pipeline


def _closer(sinks: Sequence[Sink]) -> Any:
    def close() -> None:
        for sink in sinks:
            close_fn = getattr(sink, "close", None)
            if callable(close_fn):
                try:
                    close_fn()
                except Exception as exc:  # noqa: BLE001 - one bad sink must not block the rest
                    _internal.report_internal_error("sink.close", exc, reraise=False)

    return close


def get_pipeline() -> Pipeline:
    """The process-wide pipeline, created with the defaults on first use."""
    pipeline = _pipeline
    # The attribute, not the ``closed`` property: this runs for every emitted event.
    if pipeline is not None and not pipeline._closed:
        return pipeline
    with _lock:
        if _pipeline is None or _pipeline.closed:
            configure()
        assert _pipeline is not None
        return _pipeline


def get_store() -> Store:
    """The store the process-wide pipeline writes to (opened on demand)."""
    get_pipeline()
    sink = _store_sink
    if sink is None:
        from agentkeel._errors import ConfigurationError

        raise ConfigurationError("no store is configured (KEEL_STORE=none): configure(store=...)")
    return sink.store


def emit(
    type: str,
    *,
    name: str = "",
    severity: int = 0,
    category: str | None = None,
    attributes: dict[str, Any] | None = None,
    run_id: str | None = None,
    span_id: str | None = None,
    parent_span_id: str | None = None,
) -> None:
    """Emit one event on the process-wide pipeline (see :meth:`Pipeline.emit`)."""
    get_pipeline().emit(
        type,
        name=name,
        severity=severity,
        category=category,
        attributes=attributes,
        run_id=run_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
    )


def flush(timeout: float | timedelta = 5.0) -> bool:
    """Wait until the store has acknowledged every event emitted so far."""
    return get_pipeline().flush(timeout)


def shutdown(timeout: float | timedelta = 5.0) -> bool:
    """Flush and close the process-wide pipeline; the next emit starts a fresh one."""
    global _pipeline, _store_sink
    with _lock:
        pipeline, _pipeline, _store_sink = _pipeline, None, None
    return pipeline.close(timeout) if pipeline is not None else True
