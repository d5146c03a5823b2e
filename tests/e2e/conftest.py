"""Fixtures of the browser tests: one Chromium per module, a fresh page per test.

Playwright's sync API runs an asyncio loop in the main thread for as long as it is
open, so every ``asyncio.run`` in a later test would fail with "cannot be called from
a running event loop". The browser therefore lives for one module, never a session.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import (
    CHROMIUM_HINT,
    PageProblems,
    artifacts_dir,
    chromium_path,
    service_unavailable,
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        service_unavailable(CHROMIUM_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_unavailable("playwright for Python (pip install playwright; no browser download)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=executable, headless=True, args=["--no-sandbox"]
            )
        except Exception as exc:
            service_unavailable(f"{CHROMIUM_HINT}: it did not start ({exc})")
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash.setdefault(_FAILED, False)
        if report.failed:
            item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(
    browser: Any, request: pytest.FixtureRequest, page_problems: PageProblems
) -> Iterator[Any]:
    """A page 1280x800 in a fresh context; on failure its screenshot is kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    new_page.on("pageerror", lambda exc: page_problems.errors.append(str(exc)))
    new_page.on(
        "console",
        lambda msg: page_problems.console.append(msg.text) if msg.type == "error" else None,
    )
    yield new_page
    if request.node.stash.get(_FAILED, False):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        # A screenshot of a broken page is a bonus, never a second failure.
        with contextlib.suppress(Exception):
            new_page.screenshot(path=str(artifacts_dir("dashboard", "failed") / f"{name}.png"))
    context.close()


@pytest.fixture
def keel_home() -> Path:
    """This test's KEEL_HOME (set by tests/conftest.py), created."""
    home = Path(os.environ["KEEL_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home
