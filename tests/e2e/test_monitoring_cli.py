"""``keel health``, ``keel serve``, ``keel monitor`` and ``keel demo --profile``, as
operators run them: real processes, a real store, a real HTTP scrape."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import agentkeel
from agentkeel import EventType

KEEL = Path(sys.executable).parent / "keel"


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"KEEL_STORE"}}
    env.update({"KEEL_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
    return env


def keel(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KEEL), *args],
        capture_output=True,
        text=True,
        env=environment(home),
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chaos_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("keel-home")
    result = keel("demo", "--chaos", "--seed", "7", home=home)
    assert result.returncode == 0, result.stderr
    return home


@pytest.fixture
def served(chaos_home: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(KEEL), "serve", "--port", str(port), "--poll-interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(chaos_home),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    out, err = process.communicate(timeout=5)
                    pytest.fail(f"keel serve did not start: {out}\n{err}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def totals(families: dict[str, Any], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in families[name].samples:
        if s.name.endswith("_total"):
            out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
    return out


def test_metrics_after_a_chaos_demo_hold_tracker_tool_and_pipeline_figures(
    served: str, chaos_home: Path
) -> None:
    status, text = get(f"{served}/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    report = json.loads(keel("failures", "--json", "--limit", "1000", home=chaos_home).stdout)
    # tracker: failures by category, exactly as the store's failure table has them
    by_category = totals(families, "agentkeel_failures", "category")
    expected: dict[str, float] = {}
    for failure in report:
        expected[failure["category"]] = expected.get(failure["category"], 0.0) + 1
    assert by_category == expected
    assert sum(by_category.values()) >= 3
    recovered = sum(totals(families, "agentkeel_failures_recovered", "category").values())
    assert recovered == sum(1 for f in report if f["recovered"])
    # tools: every call ended, some failed; durations observed for each
    calls = totals(families, "agentkeel_tool_calls", "status")
    assert calls["succeeded"] >= 4
    assert calls["failed"] >= 1
    counts = [
        s.value
        for s in families["agentkeel_tool_call_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert sum(counts) == sum(calls.values())
    assert sum(totals(families, "agentkeel_chaos_faults", "tool").values()) >= 3
    assert totals(families, "agentkeel_llm_calls", "model")["scripted-planner-1"] >= 1
    assert totals(families, "agentkeel_runs", "status") == {"succeeded": 1.0}
    # the demo's own pipeline, reported through the store
    emitted = totals(families, "agentkeel_pipeline_events_emitted", "origin")
    written = totals(families, "agentkeel_pipeline_events_written", "origin")
    assert len(emitted) == 1
    (origin,) = emitted
    assert emitted[origin] >= 30
    assert written[origin] == emitted[origin]  # reported after a flush: nothing pending
    assert sum(totals(families, "agentkeel_pipeline_events_dropped", "origin").values()) == 0
    # policy metric families are declared even when no policy ran in the demo
    assert {"agentkeel_retries", "agentkeel_circuit_breaker_transitions"} <= set(families)
    status, body = get(f"{served}/health")
    assert status == 200  # degraded (chaos: a high error rate) is still "up"
    assert json.loads(body)["status"] in {"healthy", "degraded"}


def test_serve_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = keel("serve", "--port", str(port), home=tmp_path)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_serve_reports_an_unreachable_store(tmp_path: Path) -> None:
    result = keel("serve", "--store", "postgresql://127.0.0.1:1/x", home=tmp_path)
    assert result.returncode == 2
    assert "cannot reach PostgreSQL" in result.stderr


def test_serve_without_the_extra_names_it(tmp_path: Path) -> None:
    fake = tmp_path / "no-extra" / "prometheus_client"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated: not installed')\n")
    env = environment(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(fake.parent), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [str(KEEL), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "pip install 'agentkeel[monitoring]'" in result.stderr


def test_health_of_a_fresh_home_is_0(tmp_path: Path) -> None:
    result = keel("health", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1. ✓ store" in result.stdout
    assert "All systems appear healthy" in result.stdout
    data = json.loads(keel("health", "--json", home=tmp_path).stdout)
    assert data["status"] == "healthy"
    assert data["exit_code"] == 0
    assert list(data["checks"]) == [
        "store",
        "pipeline",
        "circuit_breakers",
        "failures",
        "alerts",
        "disk",
        "frameworks",
        "sampling",
    ]


def test_health_of_an_unreachable_store_is_2_with_the_reason(tmp_path: Path) -> None:
    result = keel("health", "--store", "postgresql://127.0.0.1:1/x", home=tmp_path)
    assert result.returncode == 2
    assert "unhealthy: store: store unreachable" in result.stderr
    assert "Connection refused" in result.stderr or "connection" in result.stderr.lower()
    data = json.loads(
        keel("health", "--json", "--store", "postgresql://127.0.0.1:1/x", home=tmp_path).stdout
    )
    assert data["checks"]["store"]["status"] == "unhealthy"


def test_health_with_an_open_breaker_is_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    agentkeel.configure(store=url)
    agentkeel.emit(EventType.CIRCUIT_OPENED, name="weather", severity=3)
    agentkeel.flush()
    agentkeel.shutdown()
    result = keel("health", home=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "open: weather" in result.stdout
    assert "Circuit breakers open: weather" in result.stdout
    agentkeel.configure(store=url)
    agentkeel.emit(EventType.CIRCUIT_CLOSED, name="weather", severity=1)
    agentkeel.shutdown()
    assert keel("health", home=tmp_path).returncode == 0


def test_monitor_prints_health_lines_and_alerts_once(chaos_home: Path, tmp_path: Path) -> None:
    result = keel("monitor", "--interval", "0.1", "--count", "2", home=chaos_home)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    health = [line for line in lines if line["type"] == "health"]
    assert len(health) == 2
    assert {"cpu_percent", "rss_mb", "open_files", "threads"} <= set(health[0]["system"])
    assert health[0]["checks"]["store"]["status"] == "healthy"
    alerts = [line for line in lines if line["type"] == "alert"]
    raised = {(a["component"], a["name"]) for a in alerts if a["action"] == "raised"}
    assert ("calls", "error_rate") in raised  # the chaos demo failed 40% of its calls
    assert result.returncode == health[-1]["exit_code"]
    # a restarted monitor remembers the alert instead of raising it again
    again = keel("monitor", "--interval", "0.1", "--count", "1", home=chaos_home)
    repeat = [json.loads(line) for line in again.stdout.splitlines()]
    assert not [a for a in repeat if a["type"] == "alert" and a["name"] == "error_rate"]
    bad = keel("monitor", "--count", "0", home=tmp_path)
    assert bad.returncode == 1
    assert "--count must be at least 1" in bad.stderr


def test_demo_profile_shows_the_top_functions(tmp_path: Path) -> None:
    result = keel("demo", "--profile", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "profile (cprofile)" in result.stdout
    assert "top 15 functions by cumulative time" in result.stdout
    assert "run_demo" in result.stdout
