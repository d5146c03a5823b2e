"""System resources of a process (CPU, memory, open files, threads) through psutil."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from agentkeel._errors import ConfigurationError
from agentkeel.monitoring._deps import require_psutil

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SystemResources:
    """One reading of a process and of the machine it runs on.

    ``cpu_percent`` is the process's share of one CPU since the previous reading
    (it can exceed 100 with several threads busy); ``open_files`` is None when the
    operating system does not let us see them.
    """

    pid: int
    cpu_percent: float
    rss_mb: float
    vms_mb: float
    memory_percent: float
    open_files: int | None
    threads: int
    system_cpu_percent: float
    system_memory_percent: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "cpu_percent": round(self.cpu_percent, 2),
            "rss_mb": round(self.rss_mb, 2),
            "vms_mb": round(self.vms_mb, 2),
            "memory_percent": round(self.memory_percent, 2),
            "open_files": self.open_files,
            "threads": self.threads,
            "system_cpu_percent": round(self.system_cpu_percent, 2),
            "system_memory_percent": round(self.system_memory_percent, 2),
        }


class ResourceSampler:
    """Reads a process's resources; keep one to get CPU use between two readings.

    ``pid`` defaults to this process. The first reading measures CPU over a short
    ``first_interval`` (psutil needs two points in time).
    """

    def __init__(self, pid: int | None = None, *, first_interval: float = 0.05) -> None:
        self._psutil = require_psutil()
        self.pid = os.getpid() if pid is None else pid
        try:
            self._process = self._psutil.Process(self.pid)
        except self._psutil.NoSuchProcess as exc:
            raise ConfigurationError(
                f"no process with pid {self.pid}: give the pid of a running agent"
            ) from exc
        self._first_interval = first_interval
        self._primed = False
        self._lock = threading.Lock()

    def sample(self) -> SystemResources:
        ps, process = self._psutil, self._process
        with self._lock:
            try:
                with process.oneshot():
                    if self._primed:
                        cpu = process.cpu_percent(interval=None)
                    else:
                        cpu = process.cpu_percent(interval=self._first_interval)
                        self._primed = True
                    memory = process.memory_info()
                    memory_percent = process.memory_percent()
                    threads = process.num_threads()
                    try:
                        open_files: int | None = len(process.open_files())
                    except (ps.AccessDenied, OSError):
                        open_files = None
            except ps.NoSuchProcess as exc:
                raise ConfigurationError(
                    f"process {self.pid} has exited: nothing left to measure"
                ) from exc
        return SystemResources(
            pid=self.pid,
            cpu_percent=float(cpu),
            rss_mb=memory.rss / _MB,
            vms_mb=memory.vms / _MB,
            memory_percent=float(memory_percent),
            open_files=open_files,
            threads=int(threads),
            system_cpu_percent=float(ps.cpu_percent(interval=None)),
            system_memory_percent=float(ps.virtual_memory().percent),
        )


def system_resources(pid: int | None = None) -> SystemResources:
    """One reading of a process (default: this one). For repeated readings keep a
    :class:`ResourceSampler`, whose CPU figure covers the time between readings."""
    return ResourceSampler(pid).sample()
