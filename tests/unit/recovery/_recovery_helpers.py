"""Helpers for the recovery tests: a fake clock and ways to corrupt stored states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentkeel.store import Store
from agentkeel.store._memory import MemoryStore

T0 = 1_700_000_000.0


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - T0

    def advance(self, seconds: float) -> None:
        self.now += seconds


def set_blob(store: Store, snapshot_id: str, blob: bytes) -> None:
    """Overwrite a stored snapshot's bytes behind the store's back."""
    if isinstance(store, MemoryStore):
        seq, row = store._snapshots[snapshot_id]
        store._snapshots[snapshot_id] = (seq, (*row[:7], blob, *row[8:]))
        return
    sql = "UPDATE snapshots SET blob = ? WHERE snapshot_id = ?"
    store._write(lambda tx: tx.run(sql, (blob, snapshot_id)))  # type: ignore[attr-defined]


def flip_byte(store: Store, snapshot_id: str, position: int = -1, mask: int = 0x01) -> None:
    """Flip bits of one byte of a stored snapshot (the last one by default)."""
    record = store.get_snapshot(snapshot_id)
    assert record is not None
    blob = bytearray(record.blob)
    blob[position] ^= mask
    set_blob(store, snapshot_id, bytes(blob))


def set_version_blob(store: Store, agent_id: str, task_id: str, number: int, blob: bytes) -> None:
    if isinstance(store, MemoryStore):
        key = (agent_id, task_id, number)
        row: Any = store._versions[key]
        store._versions[key] = (*row[:7], blob, *row[8:])
        return
    sql = "UPDATE state_versions SET blob = ? WHERE agent_id = ? AND task_id = ? AND version = ?"
    store._write(lambda tx: tx.run(sql, (blob, agent_id, task_id, number)))  # type: ignore[attr-defined]


def run_doc_examples(doc: Path, workdir: Path, *, minimum: int) -> dict[str, Any]:
    """Run every ```python block of ``doc`` in one namespace, on a memory store."""
    import contextlib
    import io
    import os
    import re
    import sys
    import types

    import pytest

    import agentkeel

    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)
    assert len(blocks) >= minimum, f"{doc.name} has {len(blocks)} examples"
    agentkeel.configure(store="memory://")
    # A real module, so that a dataclass defined in an example can find its module.
    module = types.ModuleType(f"docs_example_{doc.stem}")
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        for number, block in enumerate(blocks, 1):
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(block, f"{doc.name} example {number}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"example {number} of {doc.name} failed: {exc!r}\n{block}")
    finally:
        os.chdir(cwd)
        del sys.modules[module.__name__]
    return namespace
