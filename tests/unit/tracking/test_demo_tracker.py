"""The demo agent borrows the process-wide failure tracker and gives it back."""

from __future__ import annotations

from pathlib import Path

import agentkeel
from agentkeel.demo import DemoOptions, run_demo
from agentkeel.tracking import FailureTracker, get_failure_tracker, set_failure_tracker


def test_the_demo_puts_back_the_tracker_it_replaced(tmp_path: Path) -> None:
    mine = FailureTracker(run_id="run-mine", runtime_dir=tmp_path / "mine")
    set_failure_tracker(mine)
    result = run_demo(DemoOptions(chaos=True, seed=7, runtime_dir=tmp_path / "demo"))
    assert result.tracker is not None and result.tracker is not mine
    assert get_failure_tracker() is mine


def test_after_the_demo_a_new_run_files_its_failures_under_itself(tmp_path: Path) -> None:
    run_demo(DemoOptions(chaos=True, seed=7, runtime_dir=tmp_path))
    with agentkeel.run("after-the-demo") as scope:
        assert get_failure_tracker().run_id == scope.run_id
