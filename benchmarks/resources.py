"""CPU and memory use of this process while a benchmark runs, read from ``/proc`` and ``os.times``.

psutil is not a dependency (and not installed here); Linux's ``/proc/self/status`` gives the
resident set size directly. CPU use is this process's user + system time (every thread, the
MediaPipe, ONNX Runtime and ZeroMQ threads included) divided by wall time: 100% is one core busy,
``100 * cores`` the whole machine.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Self

__all__ = ["ResourceMeter", "rss_mib"]


def rss_mib() -> float | None:
    """Resident set size of this process in MiB (None where /proc is unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class ResourceMeter:
    """``with ResourceMeter() as m: ...`` then ``m.result()``: CPU % and RSS mean/peak over the block.

    RSS is sampled every ``interval_s`` by a daemon thread (reading one small /proc file: a few
    microseconds of CPU per sample).
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="posestream-resource-meter", daemon=True)
        self._t0 = self._cpu0 = 0.0
        self.wall_s = self.cpu_s = 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            value = rss_mib()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Self:
        t = os.times()
        self._cpu0, self._t0 = t.user + t.system, time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        t = os.times()
        self.cpu_s, self.wall_s = t.user + t.system - self._cpu0, time.monotonic() - self._t0
        self._stop.set()
        self._thread.join(1.0)

    def result(self) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        pct = 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0
        rss = self.samples or [float("nan")]
        return {"cpu_percent_of_one_core": pct, "cpu_percent_of_machine": pct / cores, "cores": cores,
                "cpu_s": self.cpu_s, "wall_s": self.wall_s,
                "rss_mean_mib": sum(rss) / len(rss), "rss_peak_mib": max(rss), "source": "/proc/self/status, os.times"}
