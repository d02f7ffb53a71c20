"""What a benchmark ran on: CPU model, cores, Python and the versions of the libraries it used."""

from __future__ import annotations

import importlib
import os
import platform
from typing import Any


def describe(*modules: str) -> dict[str, Any]:
    """CPU (model name from /proc/cpuinfo where readable), cores, Python, OS, CUDA GPU if any, and
    ``module.__version__`` for each named module."""
    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                            "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    for name in modules:
        try:
            info[name] = str(importlib.import_module(name).__version__)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what it can
            info[name] = f"missing: {exc}"
    return info
