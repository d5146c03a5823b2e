"""Shared fixtures. Our own tests run in strict mode: internal errors are raised."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentkeel
from agentkeel import _context, _internal

# CrewAI is imported while collecting (the public-API test walks every package): keep it
# from phoning home. These flags concern CrewAI alone, so they are safe process-wide.
for _flag, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}.items():
    os.environ.setdefault(_flag, _value)

POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
# CI sets KEEL_REQUIRE_SERVICES=1: a missing server is then a failure, not a skip.
REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES", "") not in {"", "0", "false"}


def service_unavailable(what: str) -> None:
    """Skip (on a laptop) or fail (in CI) because a server the test needs is absent."""
    message = f"{what} (set KEEL_REQUIRE_SERVICES=1 to make this a failure)"
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(message)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@pytest.fixture(autouse=True)
def _strict_and_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Strict mode on; the default store lives in this test's temp dir."""
    if "browser" not in request.fixturenames and _running_loop() is not None:
        # Left by an earlier test (an open sync Playwright does this): every asyncio.run
        # and every *_sync call would fail here for a reason that is not this test's.
        pytest.fail("an asyncio loop is running in the main thread before this test started")
    _internal.set_strict(True)
    _internal.reset()
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "keel-home"))
    monkeypatch.delenv("KEEL_STORE", raising=False)
    token = _context.set_scope(_context.EMPTY_SCOPE)  # no run or correlation leaks between tests
    yield
    _context.reset_scope(token)
    _context.set_global_correlation_id(None)
    agentkeel.shutdown(timeout=5)


def postgres_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL with a schema of its own, dropped after the test."""
    if not postgres_available():
        service_unavailable(f"PostgreSQL at {POSTGRES_URL}")
    import psycopg

    schema = f"keel_test_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}keel_schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
