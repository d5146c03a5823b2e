from __future__ import annotations

import inspect

import agentkeel.tracking as tracking


def test_all_is_sorted_and_complete() -> None:
    assert tracking.__all__ == sorted(set(tracking.__all__))
    public = {
        name
        for name, value in vars(tracking).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(tracking.__all__)


def test_seed_names_are_available() -> None:
    for name in (
        "FailureTracker",
        "set_failure_tracker",
        "get_failure_tracker",
        "display_failure_report",
        "TrackedToolRegistry",
        "executor_with_tracking",
    ):
        assert name in tracking.__all__
