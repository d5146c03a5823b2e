"""The dashboard at scale: server time of its pages over a store of 100,000 runs.

A SQLite store in a temp dir gets 100,000 runs (start and end events with names,
users, statuses; about one run in six has failures, most of them recovered) and one
run of 10,000 events (steps, LLM and tool calls, retries, failures, breaker changes).
They are written through ``Store.write_events`` in batches of 5,000 — the store's
own derivation of runs and failures, without the pipeline's per-event cost.

Then the dashboard's ASGI app is called in-process (Starlette's TestClient: no
sockets, no browser) and each page is timed over ``--requests`` requests after two
warm-up requests: median and p95 against the targets (runs page ≤ 300 ms, run page
≤ 500 ms). A page over its target gets its SQL profiled: each statement it ran,
timed on its own, the slowest with SQLite's EXPLAIN QUERY PLAN (``--explain``: every
page with a target).

This prints; it asserts nothing about time. ``--postgres URL`` runs the same on
PostgreSQL in a scratch schema (dropped afterwards).

    .venv/bin/python bench/dashboard.py [--runs 100000] [--events 10000] [--requests 20]
                                        [--explain] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkeel.events import Category, Event, EventType, Severity
from agentkeel.store import Store, open_store

BATCH = 5_000
RUNS_TARGET_MS = 300.0
RUN_TARGET_MS = 500.0
AGENT_NAMES = (
    "travel-planner",
    "support-triage",
    "code-reviewer",
    "research-agent",
    "checkout-agent",
    "invoice-parser",
    "email-drafter",
    "sql-analyst",
    "onboarding-bot",
    "claims-assessor",
)
TOOLS = ("weather", "flights", "hotels", "search", "sql", "payments", "crm", "calendar")
NODES = ("planner", "executor", "researcher", "summariser")
ERRORS = (
    ("ConnectionError", "connection refused by {tool} API", Category.NETWORK, Severity.MEDIUM),
    ("TimeoutError", "{tool} did not answer within 5 s", Category.TIMEOUT, Severity.HIGH),
    ("RateLimitError", "429 from {tool}: slow down", Category.RATE_LIMIT, Severity.MEDIUM),
    ("ValidationError", "{tool} returned a malformed payload", Category.VALIDATION, Severity.LOW),
    ("PermissionError", "token expired for {tool}", Category.AUTH, Severity.HIGH),
)


# --------------------------------------------------------------------------- seeding
class EventMaker:
    """Events with unique IDs (one origin, counting seq), as a process would emit them."""

    def __init__(self) -> None:
        self.origin = f"bench-{uuid.uuid4().hex[:8]}"
        self.seq = 0

    def __call__(
        self,
        type_: str,
        *,
        name: str,
        run_id: str,
        at: float,
        attributes: dict[str, Any] | None = None,
        severity: int = Severity.INFO,
        category: str | None = None,
        span_id: str | None = None,
        parent_span_id: str | None = None,
    ) -> Event:
        self.seq += 1
        return Event(
            type=type_,
            name=name,
            severity=severity,
            category=category,
            attributes=attributes or {},
            run_id=run_id,
            correlation_id=run_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            wall_ns=int(at * 1e9),
            mono_ns=int(at * 1e9),
            seq=self.seq,
            origin=self.origin,
        )


def _failure(
    make: EventMaker, rng: random.Random, run_id: str, user: str, at: float, n: int, **span: Any
) -> tuple[Event, str]:
    error_type, message, category, severity = rng.choice(ERRORS)
    tool = rng.choice(TOOLS)
    failure_id = f"f-{run_id[4:16]}-{n}"
    event = make(
        EventType.FAILURE,
        name=tool,
        run_id=run_id,
        at=at,
        severity=severity,
        category=category,
        attributes={
            "failure_id": failure_id,
            "user_id": user,
            "graph_node": rng.choice(NODES),
            "tool_name": tool,
            "error_type": error_type,
            "error_message": message.format(tool=tool),
            "latency_ms": round(rng.uniform(5, 5000), 1),
            "recovered": False,
            "recovery_action": None,
            "tags": [],
            "fingerprint": f"{hash((error_type, tool)) & 0xFFFFFFFFFFFF:012x}",
        },
        **span,
    )
    return event, failure_id


def many_runs(make: EventMaker, rng: random.Random, count: int, now: float) -> Iterator[Event]:
    """``count`` runs over the last 30 days, oldest first: start, failures, end."""
    span_s = 30 * 86_400
    for i in range(count):
        run_id = f"run-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        user = f"user-{rng.randrange(500):03d}"
        start = now - span_s + span_s * i / count
        yield make(
            EventType.AGENT_START,
            name=rng.choice(AGENT_NAMES),
            run_id=run_id,
            at=start,
            attributes={
                "user_id": user,
                "session_id": f"sess-{rng.randrange(20_000)}",
                "parent_run_id": None,
                "tags": ["prod"] if rng.random() < 0.8 else ["staging"],
            },
        )
        duration = rng.uniform(0.2, 40.0)
        failed = rng.random() < 0.10
        if failed or rng.random() < 0.06:
            for n in range(1, rng.randint(1, 3) + 1):
                event, failure_id = _failure(make, rng, run_id, user, start + duration * 0.5, n)
                yield event
                if not failed and rng.random() < 0.8:
                    yield make(
                        EventType.FAILURE_RECOVERED,
                        name=event.name,
                        run_id=run_id,
                        at=start + duration * 0.6,
                        attributes={"failure_id": failure_id, "recovery_action": "retried"},
                    )
        if i >= count - count // 200 and rng.random() < 0.5:
            continue  # a few of the newest are still running
        end: dict[str, Any] = {"duration_ms": duration * 1000, "status": "succeeded"}
        if failed:
            end.update(status="failed", error_type="TimeoutError", error_message="gave up")
        yield make(EventType.AGENT_END, name="", run_id=run_id, at=start + duration, attributes=end)


def big_run(make: EventMaker, rng: random.Random, events: int, now: float) -> Iterator[Event]:
    """One run of about ``events`` events: steps of LLM and tool calls, retries, failures."""
    run_id = "run-big0000000000000"
    root = "span-root"
    at = now - 3_600
    yield make(
        EventType.AGENT_START,
        name="long-haul-agent",
        run_id=run_id,
        at=at,
        span_id=root,
        attributes={"user_id": "user-big", "session_id": None, "parent_run_id": None, "tags": []},
    )
    produced, step_no, failure_no = 1, 0, 0
    while produced < events - 1:
        step_no += 1
        step_span = f"span-step-{step_no}"
        span: dict[str, Any] = {"span_id": step_span, "parent_span_id": root}
        node = NODES[step_no % len(NODES)]
        step_events = [
            make(EventType.STEP_START, name=node, run_id=run_id, at=at, **span),
            make(
                EventType.LLM_CALL_END,
                name="gpt-4o-mini",
                run_id=run_id,
                at=at + 0.4,
                attributes={
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": rng.randrange(100, 4000),
                    "gen_ai.usage.output_tokens": rng.randrange(20, 800),
                    "duration_ms": 400.0,
                    "status": "succeeded",
                },
                **span,
            ),
        ]
        for call in range(3):
            tool = rng.choice(TOOLS)
            t = at + 0.5 + call * 0.3
            step_events.append(
                make(EventType.TOOL_CALL_START, name=tool, run_id=run_id, at=t, **span)
            )
            if rng.random() < 0.15:
                failure_no += 1
                failure, failure_id = _failure(make, rng, run_id, "user-big", t, failure_no, **span)
                step_events += [
                    failure,
                    make(
                        EventType.RETRY,
                        name=tool,
                        run_id=run_id,
                        at=t + 0.05,
                        attributes={"attempt": 1, "delay_s": 0.05, "reason": "backoff"},
                        **span,
                    ),
                    make(
                        EventType.FAILURE_RECOVERED,
                        name=tool,
                        run_id=run_id,
                        at=t + 0.1,
                        attributes={"failure_id": failure_id, "recovery_action": "retried"},
                        **span,
                    ),
                ]
            step_events.append(
                make(
                    EventType.TOOL_CALL_END,
                    name=tool,
                    run_id=run_id,
                    at=t + 0.2,
                    attributes={"gen_ai.tool.name": tool, "duration_ms": 200.0, "status": "ok"},
                    **span,
                )
            )
        if step_no % 25 == 0:
            step_events.append(
                make(
                    EventType.CIRCUIT_OPENED,
                    name=f"{TOOLS[0]}-api",
                    run_id=run_id,
                    at=at + 1.5,
                    attributes={"breaker": f"{TOOLS[0]}-api", "to_state": "open"},
                    **span,
                )
            )
        step_events.append(
            make(
                EventType.STEP_END,
                name=node,
                run_id=run_id,
                at=at + 2,
                attributes={"duration_ms": 2000.0, "status": "succeeded"},
                **span,
            )
        )
        at += 2.5
        produced += len(step_events)
        yield from step_events
    yield make(
        EventType.AGENT_END,
        name="long-haul-agent",
        run_id=run_id,
        at=at,
        span_id=root,
        attributes={"duration_ms": (at - now + 3_600) * 1000, "status": "succeeded"},
    )


def _batches(events: Iterator[Event], size: int) -> Iterator[list[Event]]:
    batch: list[Event] = []
    for event in events:
        batch.append(event)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(store: Store, *, runs: int, events: int) -> tuple[str, int, float]:
    """Fill the store; return the big run's ID, the events written and the seconds taken."""
    rng = random.Random(20_240_601)
    make = EventMaker()
    now = time.time()
    written = 0
    t0 = time.perf_counter()
    for stream in (many_runs(make, rng, runs, now - 3_700), big_run(make, rng, events, now)):
        for batch in _batches(stream, BATCH):
            store.write_events(batch)
            written += len(batch)
    return "run-big0000000000000", written, time.perf_counter() - t0


# --------------------------------------------------------------------------- timing
@dataclass
class Case:
    name: str
    path: str
    target_ms: float | None
    times_ms: list[float] = field(default_factory=list)
    status: int = 0
    size: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def verdict(self) -> str:
        if self.status != 200:
            return f"HTTP {self.status}"
        if self.target_ms is None:
            return "-"
        return "ok" if self.p95 <= self.target_ms else "OVER"


def cases(big_run_id: str) -> list[Case]:
    runs_ms, run_ms = RUNS_TARGET_MS, RUN_TARGET_MS
    return [
        Case("runs page (default)", "/runs", runs_ms),
        Case("runs page (status=failed)", "/runs?status=failed", runs_ms),
        Case("runs page (user=user-042)", "/runs?user=user-042", runs_ms),
        Case("runs page (name contains)", "/runs?name=triage", runs_ms),
        Case("runs page (failed, by took)", "/runs?status=failed&sort=-duration_ms", runs_ms),
        Case("runs page (page 1,000)", "/runs?page=1000", runs_ms),
        Case("run page (10k events)", f"/runs/{big_run_id}", run_ms),
        Case("run live poll (200 events)", f"/api/runs/{big_run_id}/events?after=0", None),
        Case("api runs (JSON)", "/api/runs", None),
        Case("failures page", "/failures", None),
        Case("breakers page", "/breakers", None),
        Case("alerts page", "/alerts", None),
        Case("charts page", "/charts", None),
        Case("health page", "/health", None),
    ]


def time_cases(client: Any, all_cases: Sequence[Case], requests: int) -> None:
    for case in all_cases:  # warm-up: templates compiled, caches primed
        for _ in range(2):
            response = client.get(case.path)
            case.status, case.size = response.status_code, len(response.content)
    for _ in range(requests):  # round-robin, so drift on a shared machine hits all alike
        for case in all_cases:
            t0 = time.perf_counter()
            response = client.get(case.path)
            case.times_ms.append((time.perf_counter() - t0) * 1000)
            case.status = response.status_code


def print_table(title: str, all_cases: Sequence[Case], requests: int) -> None:
    print(f"\n{title} — {requests} requests each, server side (in-process ASGI)")
    header = f"{'page':<28} {'path':<36} {'median':>9} {'p95':>9} {'target':>8} {'size':>9}  "
    print(header + "verdict")
    print("-" * (len(header) + 7))
    for c in all_cases:
        target = f"{c.target_ms:.0f} ms" if c.target_ms else "-"
        path = c.path if len(c.path) <= 36 else c.path[:33] + "..."
        print(
            f"{c.name:<28} {path:<36} {c.median:>6.1f} ms {c.p95:>6.1f} ms {target:>8} "
            f"{c.size / 1024:>6.0f} KB  {c.verdict}"
        )


# ------------------------------------------------------------------ SQL profiling
def profile_sql(store: Store, client: Any, case: Case, db_path: Path | None) -> None:
    """The statements one request ran, each timed alone; the slowest explained."""
    conn = getattr(store, "_conn", None)
    if db_path is None or not isinstance(conn, sqlite3.Connection):
        print(f"  (no SQL profile for {case.name}: only the SQLite store is traced)")
        return
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        client.get(case.path)
    finally:
        conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    print(f"\n  {case.name}: {len(statements)} statements, {len(reads)} reads")
    probe = sqlite3.connect(db_path)
    try:
        timed: list[tuple[float, str]] = []
        for sql in dict.fromkeys(reads):
            t0 = time.perf_counter()
            try:
                probe.execute(sql).fetchall()
            except sqlite3.Error as exc:
                print(f"    could not rerun a statement ({exc}): {sql[:120]}")
                continue
            timed.append(((time.perf_counter() - t0) * 1000, sql))
        timed.sort(reverse=True)
        for ms, sql in timed[:3]:
            print(f"    {ms:8.1f} ms  {' '.join(sql.split())[:300]}")
            for row in probe.execute(f"EXPLAIN QUERY PLAN {sql}"):
                print(f"                 plan: {row[-1]}")
    finally:
        probe.close()


# ------------------------------------------------------------------------- main
def bench_store(
    label: str, store: Store, db_path: Path | None, args: argparse.Namespace
) -> list[Case]:
    from starlette.testclient import TestClient

    from agentkeel.dashboard import create_app

    print(f"\n[{label}] seeding {args.runs:,} runs and one run of {args.events:,} events ...")
    big_run_id, written, seconds = seed(store, runs=args.runs, events=args.events)
    print(f"[{label}] wrote {written:,} events in {seconds:.1f} s ({written / seconds:,.0f}/s)")
    all_cases = cases(big_run_id)
    with TestClient(create_app(store=store)) as client:
        time_cases(client, all_cases, args.requests)
        print_table(f"[{label}] dashboard pages", all_cases, args.requests)
        for case in all_cases:
            over = case.target_ms is not None and case.p95 > case.target_ms
            if case.status == 200 and (over or (args.explain and case.target_ms)):
                profile_sql(store, client, case, db_path)
    return all_cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="also run on PostgreSQL, e.g. postgresql://127.0.0.1:5432/test",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="profile the SQL of every page with a target, not only those over it",
    )
    args = parser.parse_args(argv)
    try:
        import starlette.testclient  # noqa: F401

        import agentkeel.dashboard
    except ImportError as exc:
        print(f"dashboard benchmark skipped: {exc} (pip install 'agentkeel[dashboard]')")
        return 0
    if not hasattr(agentkeel.dashboard, "create_app"):
        print("dashboard benchmark skipped: agentkeel.dashboard has no create_app yet")
        return 0
    with tempfile.TemporaryDirectory(prefix="keel-bench-dashboard-") as tmp:
        db_path = Path(tmp) / "keel.db"
        store = open_store(f"sqlite:///{db_path}")
        try:
            bench_store("sqlite", store, db_path, args)
        finally:
            store.close()
    if args.postgres:
        bench_postgres(args)
    print(
        "\nNo peer is compared: the observability UIs that would be peers (Langfuse, Phoenix)"
        "\nare servers with their own ingestion, not installable offline into this venv."
    )
    return 0


def bench_postgres(args: argparse.Namespace) -> None:
    try:
        import psycopg
    except ImportError:
        print("\n[postgres] skipped: psycopg is not installed")
        return
    schema = f"keel_bench_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in args.postgres else "?"
    try:
        store = open_store(f"{args.postgres}{sep}keel_schema={schema}")
    except Exception as exc:
        print(f"\n[postgres] skipped: {exc}")
        return
    try:
        bench_store("postgres", store, None, args)
    finally:
        store.close()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    os.environ.setdefault("KEEL_STRICT", "0")
    sys.exit(main())
