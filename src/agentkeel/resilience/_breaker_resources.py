"""Seed 000's ``max_memory_usage`` / ``max_cpu_usage``: trip a breaker when this process is
over budget.

Reading memory costs a system call or a file read, so the guard samples at most once
per ``interval`` (1 s) and only after a call has finished; in between it costs one
float comparison. What is measured, exactly:

* memory: resident set size of this process — ``psutil`` if installed, else
  ``/proc/self/statm`` (Linux), else the *peak* RSS from ``resource.getrusage``.
* CPU: CPU seconds of this process (all threads) per wall second since the
  previous sample, so 0.5 is half a core and 2.0 is two cores. The first sample
  only sets the baseline.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable

INTERVAL_SECONDS = 1.0


def _rss_reader() -> Callable[[], int]:
    try:
        import psutil  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        process = psutil.Process()

        def psutil_rss() -> int:
            return int(process.memory_info().rss)

        return psutil_rss
    if os.path.exists("/proc/self/statm"):
        page = os.sysconf("SC_PAGE_SIZE")

        def statm_rss() -> int:
            with open("/proc/self/statm", "rb") as f:
                return int(f.read().split()[1]) * page

        return statm_rss

    import resource

    # ru_maxrss is the peak, in KiB on Linux and bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024

    def peak_rss() -> int:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale

    return peak_rss


class ResourceGuard:
    """Says which limit this process exceeds, if any, at most once per interval."""

    __slots__ = ("_cpu", "_last", "_max_cpu", "_max_memory", "_next", "_rss", "interval")

    def __init__(
        self,
        *,
        max_memory: int | None,
        max_cpu: float | None,
        interval: float = INTERVAL_SECONDS,
        rss: Callable[[], int] | None = None,
        cpu_seconds: Callable[[], float] = time.process_time,
    ) -> None:
        self._max_memory = max_memory
        self._max_cpu = max_cpu
        self.interval = interval
        self._rss = rss if rss is not None or max_memory is None else _rss_reader()
        self._cpu = cpu_seconds
        self._next = -math.inf
        self._last: tuple[float, float] | None = None  # (now, cpu seconds) at the last sample

    def check(self, now: float) -> str | None:
        """A description of the exceeded limit, or None. ``now`` is monotonic seconds."""
        if now < self._next:
            return None
        # Set first: threads racing here cost at most a duplicate sample.
        self._next = now + self.interval
        if self._max_memory is not None and self._rss is not None:
            rss = self._rss()
            if rss > self._max_memory:
                return f"memory {rss} bytes > max_memory_usage {self._max_memory}"
        if self._max_cpu is not None:
            cpu = self._cpu()
            last, self._last = self._last, (now, cpu)
            if last is not None and now > last[0]:
                usage = (cpu - last[1]) / (now - last[0])
                if usage > self._max_cpu:
                    return f"cpu {usage:.2f} of a core > max_cpu_usage {self._max_cpu:g}"
        return None
