"""``python -m agentkeel.examples`` runs the recovery guide's scenarios for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_examples_run_and_report(tmp_path: Path) -> None:
    env = {**os.environ, "KEEL_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "agentkeel.examples"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    for title in (
        "simple retry",
        "rollback",
        "loop detection with auto-pause",
        "escalation workflow",
        "history comparison",
        "system health",
    ):
        assert f"== {title}" in out
    assert "success True after 3 attempts" in out
    assert "equal to the snapshot: True" in out
    assert (
        "repeated 3 times" in out and "paused: True" in out and "after reset, paused: False" in out
    )
    assert "is resolved: freed 20 GB" in out
    assert "v0001 → v0002: 4 changes" in out
    assert "errors 2, recovered 1, escalated 1" in out
