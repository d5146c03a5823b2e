"""System resources through psutil, and what happens without the extra."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from agentkeel import ConfigurationError
from agentkeel.monitoring import MonitoringSystem, ResourceSampler, _deps, system_resources


def test_one_reading_of_this_process() -> None:
    sample = system_resources()
    assert sample.pid == os.getpid()
    assert sample.rss_mb > 1
    assert sample.threads >= 1
    assert sample.open_files is None or sample.open_files >= 0
    data = sample.to_dict()
    assert set(data) >= {"cpu_percent", "rss_mb", "open_files", "threads"}


def test_a_sampler_measures_cpu_between_readings() -> None:
    sampler = ResourceSampler()
    sampler.sample()
    sum(i * i for i in range(200_000))
    assert sampler.sample().cpu_percent >= 0


def test_another_process_and_a_missing_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        sampler = ResourceSampler(child.pid)
        assert sampler.sample().pid == child.pid
    finally:
        child.kill()
        child.wait()
    with pytest.raises(ConfigurationError, match="exited"):
        sampler.sample()
    with pytest.raises(ConfigurationError, match="no process with pid"):
        ResourceSampler(2**22 + 12345)


def test_missing_extras_name_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, package: str | None = None) -> object:
        if name in {"prometheus_client", "psutil"}:
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(_deps.importlib, "import_module", fake)
    with pytest.raises(ConfigurationError, match=r"agentkeel\[monitoring\]"):
        system_resources()
    monitoring = MonitoringSystem(emit=None)
    with pytest.raises(ConfigurationError, match="metrics need prometheus_client"):
        monitoring.record_metric_sync(name="x", value=1, metric_type="gauge")
    # health and alerts work without the extra
    monitoring.update_health_status_sync(component="c", healthy=True)
    assert monitoring.get_monitoring_summary()["health"]["overall_status"] == "healthy"
    assert monitoring._sample_resources() is None
