"""Per-frame cost of the One Euro skeleton filter (``realtime.smooth``), Numba vs NumPy.

    python -m benchmarks.smoothing [--iterations 20000] [--numpy-iterations 2000] [--json out.json]

Rows, each for 17-joint skeletons:

* ``kernel``: the bare compiled step ``_one_euro_step_numba`` on float64 state (Numba only);
  what the filter costs without its Python wrapper.
* ``filter``: one ``OneEuroFilter.__call__`` (1 person): input check and conversion to
  float64, the step, and the new float32 output array, i.e. what the pipeline pays per person.
* ``smoother``: one ``SkeletonSmoother.__call__`` with 8 persons (dict in, dict out), the
  per-frame cost of a crowded scene.

Every timed call filters a new frame 1/30 s after the previous one (noisy poses moving at up to
about 1 m/s, so the update path runs, not the rejected-timestamp shortcut). After a warm-up
(Numba compiled, caches hot), each call is timed on its own with ``time.perf_counter_ns`` with
Python's garbage collector off, as ``timeit`` does; the timer's own cost (tens of ns) is included.
Target: p50 <= 5 us per frame for one person with the Numba backend.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TARGET_NUMBA_ONE_PERSON_US = 5.0
JOINTS = 17
FRAME_NS = 33_333_333  # 30 fps
SEQUENCE = 512  # distinct frames cycled through


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    from benchmarks.machine import describe

    return describe("numpy", "numba")


def _frames(persons: int, seed: int = 0) -> np.ndarray:
    """``(SEQUENCE, persons, JOINTS, 3)`` float32 poses: a slow random walk plus 5 mm jitter."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.3, size=(1, persons, JOINTS, 3))
    walk = np.cumsum(rng.normal(scale=0.01, size=(SEQUENCE, persons, JOINTS, 3)), axis=0)
    return (base + walk + rng.normal(scale=0.005, size=walk.shape)).astype(np.float32)


def _time(call: Callable[[int], object], iterations: int, warmup: int) -> np.ndarray:
    """Per-call durations in microseconds; ``call(i)`` runs frame ``i``."""
    for i in range(warmup):
        call(i)
    out = np.empty(iterations, dtype=np.int64)
    clock = time.perf_counter_ns
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(iterations):
            i = warmup + k
            t0 = clock()
            call(i)
            out[k] = clock() - t0
    finally:
        if was_enabled:
            gc.enable()
    return out / 1e3


def _row(what: str, backend: str, persons: int, us: np.ndarray) -> dict[str, Any]:
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    return {"what": what, "backend": backend, "persons": persons, "joints": JOINTS, "iterations": len(us),
            "p50_us": float(p50), "p95_us": float(p95), "p99_us": float(p99), "mean_us": float(us.mean())}


def measure(iterations: int, numpy_iterations: int) -> list[dict[str, Any]]:
    """Time every row; see the module docstring for what each includes."""
    from realtime.smooth import (
        OneEuroConfig,
        OneEuroFilter,
        SkeletonSmoother,
        _one_euro_step_numba,
        new_state,
        warmup,
    )

    warmup(JOINTS)
    rows = []
    one = _frames(1)[:, 0]
    one64 = one.astype(np.float64)
    state, cfg, out = new_state(JOINTS), OneEuroConfig().as_tuple(), np.empty((JOINTS, 3), np.float32)
    rows.append(_row("kernel", "numba", 1, _time(
        lambda i: _one_euro_step_numba(one64[i % SEQUENCE], i / 30.0, state, *cfg, out), iterations, 1000)))

    crowd = _frames(8, seed=1)
    frames8 = [{pid: crowd[i, pid] for pid in range(8)} for i in range(SEQUENCE)]
    for backend, n in (("numba", iterations), ("numpy", numpy_iterations)):
        filt = OneEuroFilter(JOINTS, backend=backend)
        rows.append(_row("filter", backend, 1, _time(
            lambda i, f=filt: f(one[i % SEQUENCE], i * FRAME_NS), n, max(100, n // 20))))
        smoother = SkeletonSmoother(JOINTS, backend=backend)
        rows.append(_row("smoother", backend, 8, _time(
            lambda i, s=smoother: s(frames8[i % SEQUENCE], i * FRAME_NS), n, max(100, n // 20))))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, microseconds per frame."""
    lines = ["| what | backend | persons | iterations | p50 us | p95 us | p99 us |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['backend']} | {r['persons']} | {r['iterations']} | "
                     f"{r['p50_us']:.2f} | {r['p95_us']:.2f} | {r['p99_us']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.smoothing", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20000, help="timed frames per Numba row")
    parser.add_argument("--numpy-iterations", type=int, default=2000, help="timed frames per NumPy row")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.numpy_iterations < 1:
        parser.error("iteration counts must be at least 1")

    info = machine()
    rows = measure(args.iterations, args.numpy_iterations)
    print(f"One Euro filter, {JOINTS} joints, per frame; {info['cpu']}, numba {info['numba']}, numpy {info['numpy']}")
    print()
    print(markdown(rows))
    target_row = next(r for r in rows if r["what"] == "filter" and r["backend"] == "numba")
    met = target_row["p50_us"] <= TARGET_NUMBA_ONE_PERSON_US
    print()
    print(f"Target: one person, Numba filter, p50 <= {TARGET_NUMBA_ONE_PERSON_US:.1f} us: "
          f"{target_row['p50_us']:.2f} us, {'met' if met else 'NOT met'}.")
    if args.json is not None:
        payload = {"benchmark": "smoothing", "machine": info, "target_us": TARGET_NUMBA_ONE_PERSON_US,
                   "target_met": met, "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
