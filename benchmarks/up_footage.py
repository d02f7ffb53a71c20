"""Gravity on real footage: ``engines.gravity.UpModel`` against the calibration's true up.

On the Pose2Sim demo (``../shared/media/pose2sim-demo``: four calibrated portrait views, 60 fps,
100 frames, Qualisys ``Calib.qca.txt`` with the lab's z axis up) the true up in each camera frame
is ``R @ (0, 0, 1)``. MediaPipe (``benchmarks.footage``'s detector, its smoothing off) gives the
2D per view; every 2nd frame is fed (the 30 fps the models learned, ``benchmarks.footage``'s
``30fps`` rate) through a ring buffer of the up model's window, as ``realtime.lift`` holds it.
Reported per view: the angular error of the causal confidence-weighted running mean at the
clip's end and after 1 s, of the lifter's body axis (thorax minus mean ankle of
``engines.load("default")``) averaged the same way, and of their fusion.

    python -m benchmarks.up_footage [--cache /tmp/up_footage_kp.npz]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["evaluate_up_footage"]

FOLDER = Path(__file__).resolve().parents[1] / ".." / "shared" / "media" / "pose2sim-demo"


def _keypoints(folder: Path, cache: Path | None) -> dict[str, np.ndarray]:
    from benchmarks.footage import VIEWS, _run_mediapipe

    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    out: dict[str, np.ndarray] = {}
    for view in VIEWS:
        raw = _run_mediapipe(folder / f"{view}.mp4", None, smooth=False)
        kp = np.zeros((len(raw), 17, 3), np.float32)
        found = np.zeros(len(raw), bool)
        for i, det in enumerate(raw):
            if det.persons:
                found[i], kp[i] = True, det.keypoints[0]
        out[view], out[view + "_found"] = kp, found
    if cache is not None:
        np.savez(cache, **out)
    return out


def evaluate_up_footage(folder: Path = FOLDER, cache: Path | None = None, stride: int = 2) -> dict[str, Any]:
    """Per-view angular errors (degrees) of the running means; see the module docstring."""
    import engines
    from engines.calibration import load_calibration
    from engines.gravity import UpModel, angle_deg
    from training.up import body_axis_up, ring_windows

    model = UpModel.load()
    engine = engines.load("default", backend="torch", device="cpu")
    cameras = load_calibration(folder / "Calib.qca.txt")
    kp = _keypoints(folder, cache)
    fuse_w = 0.35
    result: dict[str, Any] = {"stride": stride, "fps_fed": 60.0 / stride, "views": {}}
    for cam in cameras:
        truth = cam.R @ np.array([0.0, 0.0, 1.0])
        seq = kp[cam.name][::stride][None]
        found = kp[cam.name + "_found"][::stride]
        win = ring_windows(seq, model.frames)[0]
        up, conf = model.predict(win)
        conf = np.where(found, conf, 0.0)
        axis = body_axis_up(np.asarray(engine.infer(win), np.float64))
        acc = {"model": np.cumsum(up * conf[:, None], 0), "lifter_axis": np.cumsum(axis * found[:, None], 0)}
        acc["fused"] = acc["model"] + fuse_w * acc["lifter_axis"]
        one_s = min(len(win), 30) - 1
        pitch = float(np.degrees(np.arcsin(np.clip(truth[2], -1, 1))))
        roll = float(np.degrees(np.arctan2(truth[0], -truth[1])))
        row: dict[str, Any] = {"true_pitch_deg": pitch, "true_roll_deg": roll, "frames_fed": int(len(win)),
                               "single_window_median_deg": float(np.median(angle_deg(up, truth))),
                               "confidence_median": float(np.median(conf))}
        for name, a in acc.items():
            row[name] = {"end_deg": float(angle_deg(a[-1], truth)), "after_1s_deg": float(angle_deg(a[one_s], truth))}
        result["views"][cam.name] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=FOLDER)
    parser.add_argument("--cache", type=Path, default=None, help="MediaPipe keypoints cache (.npz), made if missing")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    res = evaluate_up_footage(args.folder, args.cache)
    print(f"{'view':6s} {'pitch':>6s} {'roll':>6s} {'model end':>10s} {'1 s':>6s} {'axis end':>9s} {'fused end':>10s}")
    for name, r in res["views"].items():
        print(f"{name:6s} {r['true_pitch_deg']:6.1f} {r['true_roll_deg']:6.1f} {r['model']['end_deg']:10.2f} "
              f"{r['model']['after_1s_deg']:6.2f} {r['lifter_axis']['end_deg']:9.2f} {r['fused']['end_deg']:10.2f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
