"""Fixtures shared by the integrations' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentkeel.integrations import InstrumentationHandle


@pytest.fixture
def handles() -> Iterator[list[InstrumentationHandle]]:
    """Handles a test instruments with; each is undone after the test."""
    made: list[InstrumentationHandle] = []
    yield made
    for handle in made:
        handle.uninstrument()
