"""Per-frame cost of the humanoid rig (``realtime.rig``) and its VMC bundle (``realtime.vmc``).

    python -m benchmarks rig [--iterations 20000] [--numpy-iterations 2000] [--json out.json]

Rows (17-joint skeletons from a real CMU clip, ../shared/data/cmu-mocap/02/02_06, cycled):

* ``solver``: one ``RigSolver.__call__`` (persons 1 and 8) with the compiled kernel: input check,
  float64 conversion, bone lengths measured and the per-person length tracker updated, rotations
  solved, rig rows (offsets + xyzw quaternions) built. This is the extra per-frame cost the
  pipeline pays for ``--rotations``/``--vmc``/``--record take.bvh``. Target: p50 < 200 us for one
  person.
* ``solver`` with the NumPy reference backend, for comparison.
* ``vmc bundle``: building one frame's OSC bundle (21 messages) from a solved frame (no send).

Every call is timed on its own with ``time.perf_counter_ns`` after a warm-up (Numba compiled,
calibration over), garbage collector off; frames advance 1/30 s so the length tracker runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.smoothing import _time

TARGET_ONE_PERSON_US = 200.0
FRAME_NS = 33_333_333
CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cmu-mocap" / "02" / "02_06.bvh.gz"


def _poses(clip: Path) -> np.ndarray:
    """(F, 17, 3) camera-frame poses from a real clip (world y up -> camera y down)."""
    from realtime.rig import CAMERA_TO_RIG
    from training.motion import load_clip

    joints, _, _ = load_clip(clip, fps=30.0)
    return (joints.astype(np.float64) * CAMERA_TO_RIG).astype(np.float32)


def _row(what: str, backend: str, persons: int, us: np.ndarray) -> dict[str, Any]:
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    return {"what": what, "backend": backend, "persons": persons, "iterations": len(us),
            "p50_us": float(p50), "p95_us": float(p95), "p99_us": float(p99), "mean_us": float(us.mean())}


def measure(poses: np.ndarray, iterations: int, numpy_iterations: int) -> list[dict[str, Any]]:
    from realtime.rig import RigConfig, RigSolver, warmup
    from realtime.vmc import VmcSender

    warmup()
    F = len(poses)
    crowd = [np.stack([poses[(i + 17 * k) % F] + [0.8 * k, 0, 0] for k in range(8)]) for i in range(F)]
    rows = []
    cfg = RigConfig(calibration_s=1.0)
    for backend, n in (("numba", iterations), ("numpy", numpy_iterations)):
        for persons in (1, 8):
            solver = RigSolver(cfg, backend=backend)
            ids = list(range(persons))
            frames = [c[:persons] for c in crowd]
            rows.append(_row("solver", backend, persons, _time(
                lambda i, s=solver, f=frames, ids=ids: s(ids, f[i % F], i * FRAME_NS), n, max(100, n // 20))))
    solver = RigSolver(cfg)
    solved = [solver([0], poses[i][None], i * FRAME_NS) for i in range(F)]
    with VmcSender("127.0.0.1", 39539) as vmc:
        rows.append(_row("vmc bundle", "python", 1, _time(
            lambda i: vmc.bundle(solved[i % F], i * FRAME_NS), iterations, 1000)))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| what | backend | persons | iterations | p50 us | p95 us | p99 us |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['what']} | {r['backend']} | {r['persons']} | {r['iterations']} | "
                     f"{r['p50_us']:.1f} | {r['p95_us']:.1f} | {r['p99_us']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks rig", description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=20000, help="timed frames per compiled row")
    parser.add_argument("--numpy-iterations", type=int, default=2000, help="timed frames per NumPy row")
    parser.add_argument("--clip", type=Path, default=CLIP, help="BVH clip the poses come from")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.numpy_iterations < 1:
        parser.error("iteration counts must be at least 1")
    from benchmarks.machine import describe

    info = describe("numpy", "numba")
    rows = measure(_poses(args.clip), args.iterations, args.numpy_iterations)
    print(f"humanoid rig per frame; {info['cpu']}, numba {info['numba']}, numpy {info['numpy']}")
    print()
    print(markdown(rows))
    one = next(r for r in rows if r["what"] == "solver" and r["backend"] == "numba" and r["persons"] == 1)
    met = one["p50_us"] < TARGET_ONE_PERSON_US
    print()
    print(f"Target: one person, p50 < {TARGET_ONE_PERSON_US:.0f} us: {one['p50_us']:.1f} us, {'met' if met else 'NOT met'}.")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "rig", "machine": info, "target_us": TARGET_ONE_PERSON_US,
                                         "target_met": met, "rows": rows}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
