"""The harness of the dashboard's browser tests: a real server, a real browser.

``keel dashboard`` runs as a subprocess on a free loopback port, against the same
``KEEL_HOME`` as the test, so the test writes with the library and reads through
HTTP and the page, like a user would. The browser is Debian's Chromium, driven by
Playwright (its own browser downloads are never used).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
# As tests/conftest.py's service_unavailable (conftest modules are not importable).
REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES", "") not in {"", "0", "false"}
CHROMIUM_HINT = "Debian's chromium (apt-get install chromium chromium-driver)"
SERVER_START_TIMEOUT = 30.0  # seconds; a cold start on a busy 2-core machine takes ~2 s


def service_unavailable(what: str) -> NoReturn:
    """Skip (on a laptop) or fail (in CI) because a server the test needs is absent."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"{what} (set KEEL_REQUIRE_SERVICES=1 to make this a failure)")


def chromium_path() -> str | None:
    """The system Chromium, if there is one (``KEEL_CHROMIUM`` overrides)."""
    configured = os.environ.get("KEEL_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def artifacts_dir(*parts: str) -> Path:
    """Where screenshots go: ``$KEEL_ARTIFACTS`` or ``test-artifacts/`` (gitignored)."""
    base = Path(os.environ.get("KEEL_ARTIFACTS") or REPO / "test-artifacts")
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def keel_command(*args: str) -> list[str]:
    """``keel ARGS`` with this interpreter, so the tests use the code under test."""
    return [sys.executable, "-m", "agentkeel", *args]


def keel_env(home: Path | None = None) -> dict[str, str]:
    """The environment for a ``keel`` subprocess: this test's home, no browser opened."""
    env = dict(os.environ)
    if home is not None:
        env["KEEL_HOME"] = str(home)
    env.pop("KEEL_STORE", None)
    env["BROWSER"] = "true"  # if the command opens a browser, it opens `true`
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_keel(*args: str, home: Path | None = None, timeout: float = 120.0) -> str:
    """Run ``keel ARGS`` to completion; its stdout, or a failure with its output."""
    done = subprocess.run(
        keel_command(*args),
        env=keel_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"keel {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
    return done.stdout


@dataclass
class PageProblems:
    """JavaScript errors and console errors a page reported while the test ran."""

    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@dataclass
class DashboardServer:
    """A running ``keel dashboard``; ``url`` is its base URL."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra_args: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def dashboard_server(
    log_dir: Path, *extra_args: str, home: Path | None = None
) -> Iterator[DashboardServer]:
    """Start ``keel dashboard`` on a free loopback port; stop it on the way out."""
    port = free_port()
    log_path = log_dir / f"dashboard-{port}.log"
    args = ("dashboard", "--host", "127.0.0.1", "--port", str(port), "--no-open", *extra_args)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            keel_command(*args),
            env=keel_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    server = DashboardServer(process=process, port=port, log_path=log_path, extra_args=extra_args)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _port_open(port):
            if process.poll() is not None:
                pytest.fail(
                    f"keel dashboard exited with {process.returncode} before listening\n"
                    f"{server.log()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"keel dashboard did not listen on {port} within 30 s\n{server.log()}")
            time.sleep(0.05)  # polling a subprocess's port: no clock to fake here
        yield server
    finally:
        _stop(process)
