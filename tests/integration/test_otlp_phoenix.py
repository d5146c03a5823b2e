"""End to end: the demo agent's spans reach a real OTLP receiver, Arize Phoenix, over HTTP.

Phoenix runs from its own virtualenv (``tests/support/phoenix.sh`` creates it on first
use: ~850 MB, a few minutes), on loopback only, with a throwaway working directory and
no telemetry. Without it the test is skipped, or fails under KEEL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentkeel
from agentkeel.demo._agent import DemoOptions, run_demo
from agentkeel.observability import (
    SamplingConfig,
    SamplingManager,
    SamplingStrategy,
    configure_otlp,
    instrument_tracing,
    trace_id_for_run,
)

SUPPORT = Path(__file__).resolve().parent.parent / "support"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


# As tests/conftest.py's service_unavailable (conftest modules are not importable).
REQUIRE_SERVICES = os.environ.get("KEEL_REQUIRE_SERVICES", "") not in {"", "0", "false"}


def service_unavailable(what: str) -> NoReturn:
    """Skip (on a laptop) or fail (in CI) because Phoenix cannot be installed or started."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"{what} (set KEEL_REQUIRE_SERVICES=1 to make this a failure)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def _phoenix_python() -> Path:
    """The interpreter of Phoenix's own virtualenv, installed on first use."""
    env = {
        **os.environ,
        "KEEL_PHOENIX_PYTHON": os.environ.get("KEEL_PHOENIX_PYTHON", sys.executable),
    }
    try:
        done = subprocess.run(
            ["bash", str(SUPPORT / "phoenix.sh")],
            capture_output=True,
            text=True,
            timeout=1000,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        service_unavailable(f"Arize Phoenix could not be installed: {exc!r}")
    if done.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        errors = [line for line in done.stderr.splitlines() if noise not in line]
        service_unavailable(
            "Arize Phoenix could not be installed by tests/support/phoenix.sh: "
            + " | ".join(errors[-5:])
        )
    phoenix = Path(done.stdout.strip().splitlines()[-1])
    return phoenix.parent / "python"


class Phoenix:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def spans(self, project: str, trace_id: str) -> list[dict[str, Any]]:
        url = f"{self.base_url}/v1/projects/{project}/spans?trace_id={trace_id}&limit=1000"
        try:
            return list(_get(url)["data"])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the project exists once its first span arrived
                return []
            raise

    def wait_for(
        self, project: str, trace_id: str, count: int, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            spans = self.spans(project, trace_id)
            if len(spans) >= count:
                return spans
            time.sleep(0.2)
        pytest.fail(f"Phoenix has {len(spans)} of {count} spans of trace {trace_id}")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    python = _phoenix_python()
    workdir = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))},
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        # Its gRPC receiver is bound to loopback by phoenix_serve.py; we use HTTP only.
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "HOME": str(workdir),
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen(
        [str(python), str(SUPPORT / "phoenix_serve.py")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                tail = (workdir / "phoenix.log").read_text(errors="replace")[-2000:]
                service_unavailable(f"Arize Phoenix exited at start ({process.returncode}): {tail}")
            try:
                with urllib.request.urlopen(f"{base_url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    service_unavailable("Arize Phoenix did not become healthy within 120 s")
                time.sleep(0.5)
        yield Phoenix(base_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _provider(phoenix: Phoenix, project: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = configure_otlp(
        endpoint=phoenix.base_url,
        service_name="agentkeel-e2e",
        resource_attributes={"openinference.project.name": project},
    )
    # A copy of what was exported, to check that all of it arrived.
    copy = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(copy))
    return provider, copy


def test_demo_run_spans_arrive_with_genai_and_agentkeel_attributes(
    phoenix: Phoenix, tmp_path: Path
) -> None:
    project = f"keel-{uuid.uuid4().hex[:8]}"
    provider, exported = _provider(phoenix, project)
    agentkeel.configure(store="none")
    handle = instrument_tracing(provider)
    result = run_demo(DemoOptions(chaos=True, seed=7, runtime_dir=tmp_path))
    assert result.failures, "seed 7 injects failures"
    handle.uninstrument()
    assert provider.force_flush(10_000)
    sent = len(exported.get_finished_spans())

    trace_id = trace_id_for_run(result.run_id)
    spans = phoenix.wait_for(project, trace_id, sent)
    provider.shutdown()
    assert len(spans) == sent >= 10

    by_id = {s["context"]["span_id"]: s for s in spans}
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert all(s["parent_id"] in by_id for s in spans if s is not root)
    assert root["name"] == "invoke_agent travel-demo"
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert root["attributes"]["gen_ai.agent.name"] == "travel-demo"
    assert root["attributes"]["agentkeel.run_id"] == result.run_id

    llm = next(s for s in spans if s["name"].startswith("chat "))
    assert llm["attributes"]["gen_ai.operation.name"] == "chat"
    assert llm["attributes"]["gen_ai.request.model"]
    assert llm["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert llm["attributes"]["gen_ai.usage.output_tokens"] > 0

    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    assert {s["attributes"]["gen_ai.tool.name"] for s in tools} >= {"weather", "flights"}
    assert all(s["attributes"]["gen_ai.operation.name"] == "execute_tool" for s in tools)
    failed = [s for s in tools if s["status_code"] == "ERROR"]
    assert failed, "chaos failed some tool calls"
    for span in failed:
        assert span["attributes"]["error.type"]
        assert span["attributes"]["agentkeel.failure.category"]
        assert "failure.recorded" in [e["name"] for e in span["events"]]
    # A failed attempt's span has ended by the time a later attempt or a fallback
    # recovers it, so the recovery is an event on the enclosing step's span.
    recovered = [s for s in spans if s["attributes"].get("agentkeel.failure.recovered")]
    assert recovered and all(
        "failure.recovered" in [e["name"] for e in s["events"]] for s in recovered
    )
    assert {s["name"] for s in recovered} <= {
        s["name"] for s in spans if not s["name"].startswith("execute_tool ")
    }


def test_tail_sampled_export_keeps_the_failed_run_whole(phoenix: Phoenix, tmp_path: Path) -> None:
    project = f"keel-{uuid.uuid4().hex[:8]}"
    provider, exported = _provider(phoenix, project)
    agentkeel.configure(store="none")
    never = SamplingManager(
        SamplingConfig(
            strategy=SamplingStrategy.IMPORTANCE_BASED,
            base_sampling_rate=0.0,
            min_sampling_rate=0.0,
        )
    )
    handle = instrument_tracing(provider, sampling=never)
    healthy = run_demo(DemoOptions(chaos=False, runtime_dir=tmp_path / "healthy"))
    failing = run_demo(DemoOptions(chaos=True, seed=7, runtime_dir=tmp_path / "failing"))
    assert not healthy.failures and failing.failures
    handle.uninstrument()
    assert provider.force_flush(10_000)
    traces = {format(s.context.trace_id, "032x") for s in exported.get_finished_spans()}
    assert traces == {trace_id_for_run(failing.run_id)}
    sent = len(exported.get_finished_spans())
    spans = phoenix.wait_for(project, trace_id_for_run(failing.run_id), sent)
    assert len(spans) == sent
    assert phoenix.spans(project, trace_id_for_run(healthy.run_id)) == []
    provider.shutdown()
