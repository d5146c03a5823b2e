#!/usr/bin/env python3
"""What a snapshot, a rollback and a recorded version of a 100 KB state cost, per backend.

    python bench/rollback_history.py            # results in bench/results/rollback_history.json
    python bench/rollback_history.py --quick
    KEEL_BENCH_POSTGRES_URL=postgresql://host/db python bench/rollback_history.py

The state is a plausible agent state (a conversation, a plan, scores) whose canonical
JSON is about 100 KB and compresses about 4:1. Wall time per operation on the caller's
thread, median and best of the repeats, for:

* ``encode`` / ``decode`` — the codec alone (canonical JSON, zlib, SHA-256 / verify);
* ``create_snapshot`` — encode, save, prune to ``max_snapshots``, emit the event;
* ``get_snapshot`` — read, verify the checksum, decompress, decode;
* ``rollback`` — find the latest snapshot, verify and decode it, note the intervention;
* ``record_state`` — encode, take the next version number, save, prune.

Events go nowhere (``configure(store="none")``), so only the manager's own work counts.
SQLite runs with its durable defaults (WAL, ``synchronous=FULL``): every write is an fsync.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORDS = (
    "search",
    "flight",
    "hotel",
    "book",
    "cancel",
    "refund",
    "price",
    "budget",
    "traveller",
    "date",
    "city",
    "airport",
    "confirm",
    "option",
    "seat",
    "window",
    "aisle",
    "breakfast",
    "museum",
    "tour",
    "weather",
    "rain",
    "sunny",
    "late",
)


def make_state(target: int = 100_000, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    state: dict[str, Any] = {
        "plan": {"goal": "plan a trip", "steps": []},
        "messages": [],
        "scores": {},
    }
    while len(json.dumps(state, separators=(",", ":"))) < target:
        i = len(state["messages"])
        state["messages"].append(
            {"role": rng.choice(["user", "assistant", "tool"]), "turn": i,
             "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 40)))}
        )  # fmt: skip
        state["plan"]["steps"].append({"tool": rng.choice(WORDS), "ok": rng.random() > 0.2})
        state["scores"][f"k{i}"] = round(rng.random(), 6)
    return state


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"median_ms": statistics.median(samples) * 1e3, "best_ms": min(samples) * 1e3}


def bench_backend(url: str, state: dict[str, Any], repeats: int) -> dict[str, Any]:
    from agentkeel.recovery import HistoryManager, RollbackManager
    from agentkeel.store import open_store

    store = open_store(url)
    try:
        rollback = RollbackManager(store=store)
        history = HistoryManager(store=store, max_versions=1_000)
        results = {
            "create_snapshot": timed(
                lambda: rollback.create_snapshot_sync(agent_id="bench", state_data=state), repeats
            ),
        }
        snapshot_id = rollback.create_snapshot_sync(agent_id="bench", state_data=state)
        results |= {
            "get_snapshot": timed(lambda: rollback.get_snapshot_sync(snapshot_id), repeats),
            "rollback": timed(lambda: rollback.rollback_sync("bench"), repeats),
            "record_state": timed(
                lambda: history.record_state_sync(agent_id="bench", task_id="t", state_data=state),
                repeats,
            ),
        }
        restored = rollback.rollback_sync("bench").state
        if restored != state:
            raise AssertionError("the restored state differs from the snapshotted one")
        return results
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    repeats = 15 if args.quick else 60

    import agentkeel
    from agentkeel.recovery._state_codec import StateCodec

    agentkeel.configure(store="none")
    state = make_state()
    codec = StateCodec()
    encoded = codec.encode(state)
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "state_json_bytes": encoded.size,
        "state_stored_bytes": len(encoded.blob),
        "codec": {
            "encode": timed(lambda: codec.encode(state), repeats),
            "decode": timed(
                lambda: codec.decode(encoded.blob, encoded.checksum, encoded.compressed), repeats
            ),
        },
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp}/bench.db"}
        pg = os.environ.get(
            "KEEL_BENCH_POSTGRES_URL", "postgresql://127.0.0.1:5432/test?keel_schema=keel_bench"
        )
        try:
            import psycopg

            base = pg.split("?")[0]
            with psycopg.connect(base, connect_timeout=3, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS keel_bench CASCADE")
            urls["postgres"] = pg
        except Exception as exc:
            print(f"postgres skipped: {exc}")
        for name, url in urls.items():
            report["backends"][name] = bench_backend(url, state, repeats)
        if "postgres" in urls and "keel_schema=keel_bench" in pg:
            with psycopg.connect(pg.split("?")[0], autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS keel_bench CASCADE")
    agentkeel.shutdown()

    print(
        f"state: {report['state_json_bytes'] / 1024:.0f} KB JSON, "
        f"{report['state_stored_bytes'] / 1024:.0f} KB stored"
    )
    for op, row in report["codec"].items():
        print(f"  codec {op:<16} {row['median_ms']:7.2f} ms (best {row['best_ms']:.2f})")
    for backend, ops in report["backends"].items():
        for op, row in ops.items():
            print(f"  {backend:<8} {op:<16} {row['median_ms']:7.2f} ms (best {row['best_ms']:.2f})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rollback_history.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
