"""The Guard example in examples/ runs and prints what the docs say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[3] / "examples" / "resilience_guard.py"


def test_guard_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "KEEL_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert "'forecast': 'sunny'" in out
    assert "2 failures, 100% recovered" in out
