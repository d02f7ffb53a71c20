"""Real footage accuracy: monocular 3D against a four-camera triangulated reference.

On the Pose2Sim demo (``../shared/media/pose2sim-demo``: four calibrated, synchronised portrait
views, 60 fps, 100 frames, ``Calib.qca.txt``):

1. MediaPipe (``realtime.detect2d``, the pipeline's own detector) runs on every frame of every
   view and gives canonical 17-joint pixels plus MediaPipe's own world landmarks, mapped to the
   same 17 joints; a second pass with MediaPipe's own smoothing on gives its default output.
2. Synchronisation check: for every pair of views, two-view triangulation with the second view
   shifted by -6..6 frames; the shift with the lowest reprojection error should be 0.
3. Reference: our 2D of all four views triangulated (``engines.triangulation``, confidence
   weighted), turned into each camera's frame with the calibration and made root-relative.
4. Per view, our monocular 3D: the view's 2D through ``realtime.lift.Lifter`` (ring buffer,
   ``engines.load("default")``) and the pipeline's One Euro smoother, exactly as ``realtime
   run`` publishes it (and unsmoothed, for reference).

The lifter was trained at 30 fps and the footage is 60 fps; both are evaluated: ``30fps`` feeds
every 2nd frame (the motion at the speed the model learned, a 27-frame window spanning 0.9 s)
and ``60fps`` feeds every frame, as the pipeline would with a 60 fps camera (the window spans
0.45 s and motion looks half as fast). Every method is scored on the same frames.

Metrics (``training.metrics``, root-relative, camera frame, mm): MPJPE, P-MPJPE (per-frame
similarity alignment), MPJVE (velocity error per frame at the rate fed). A joint enters a score
where the reference has it (seen by >= 2 views) and the method produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METHODS", "RATES", "ViewDetections", "detect_views", "evaluate_footage"]

VIEWS = ("cam01", "cam02", "cam03", "cam04")
FPS = 60.0
RATES = {"30fps": 2, "60fps": 1}  # name -> frame stride fed to the lifter
MAX_REPROJECTION_PX = 30.0  # a reference joint must reproject this well into every view it uses
METHODS = ("ours", "ours (no smoothing)", "MediaPipe world", "MediaPipe world (its smoothing)")


@dataclass
class ViewDetections:
    """One view's MediaPipe output over F frames (NaN / confidence 0 where nobody was found)."""

    keypoints: np.ndarray  # (F, 17, 3) screen u, v, confidence: the lifter's input
    pixels: np.ndarray  # (F, 17, 2)
    world: np.ndarray  # (F, 17, 3) MediaPipe world landmarks, its smoothing off
    world_smoothed: np.ndarray  # (F, 17, 3) with MediaPipe's smoothing (its default)
    found: np.ndarray  # (F,) bool


def _run_mediapipe(video: Path, frames: int | None, smooth: bool):
    from realtime.detect2d import MediaPipeDetector
    from realtime.sources import video_frames

    detector = MediaPipeDetector(world_landmarks=True, smooth_landmarks=smooth)
    try:
        out = [detector.detect(img) for img in video_frames(video, count=frames)]
    finally:
        detector.close()
    if not out:
        raise OSError(f"{video}: no frames could be read")
    return out


def detect_views(folder: Path, frames: int | None = None, progress=None) -> dict[str, ViewDetections]:
    """MediaPipe on every view (twice: its smoothing off, then on); ``progress()`` after each pass."""
    J = 17
    views = {}
    for view in VIEWS:
        raw = _run_mediapipe(folder / f"{view}.mp4", frames, smooth=False)
        smoothed = _run_mediapipe(folder / f"{view}.mp4", len(raw), smooth=True)
        F = len(raw)
        kp = np.zeros((F, J, 3), np.float32)
        px, world, world_s = (np.full((F, J, c), np.nan) for c in (2, 3, 3))
        found = np.zeros(F, bool)
        for i, det in enumerate(raw):
            if det.persons:
                found[i] = True
                kp[i], px[i] = det.keypoints[0], det.pixels[0]
                px[i][det.keypoints[0, :, 2] <= 0] = np.nan
                if det.world is not None:
                    world[i] = det.world[0]
        for i, det in enumerate(smoothed[:F]):
            if det.persons and det.world is not None:
                world_s[i] = det.world[0]
        views[view] = ViewDetections(kp, px, world, world_s, found)
        if progress is not None:
            progress()
    n = {len(v.found) for v in views.values()}
    if len(n) != 1:
        raise ValueError(f"the views have different frame counts: {sorted(n)}")
    return views


def sync_check(views: dict[str, ViewDetections], cameras, max_shift: int = 6) -> dict[str, Any]:
    """Every pair of views triangulated with the second shifted by k frames: the median two-view
    reprojection (epipolar) error in pixels per k. Synchronised, consistently calibrated views
    have their minimum at k = 0."""
    from itertools import combinations

    from engines.triangulation import reprojection_error, triangulate

    names = list(views)
    px = np.stack([v.pixels for v in views.values()])  # (V, F, 17, 2)
    F = px.shape[1]
    out: dict[str, Any] = {"pairs": {}}
    for a, b in combinations(range(len(names)), 2):
        errs = {}
        for d in range(-max_shift, max_shift + 1):
            sa, sb = slice(max(0, -d), F - max(0, d)), slice(max(0, d), F - max(0, -d))
            pts = np.stack([px[a, sa], px[b, sb]])
            e = reprojection_error(triangulate(pts, [cameras[a], cameras[b]]), pts, [cameras[a], cameras[b]])
            errs[str(d)] = float(np.nanmedian(e)) if np.isfinite(e).any() else float("nan")
        best = min(errs, key=lambda k: errs[k] if np.isfinite(errs[k]) else np.inf)
        out["pairs"][f"{names[a]}-{names[b]}"] = {"reprojection_px_by_shift": errs, "best_shift": int(best)}
    out["synchronised"] = all(p["best_shift"] == 0 for p in out["pairs"].values())
    return out


def reference(views: dict[str, ViewDetections], cameras, max_error_px: float = MAX_REPROJECTION_PX
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """World-frame reference (F, 17, 3) from the views, and its quality.

    Each joint is triangulated from all views (confidence-weighted DLT); where one view disagrees
    (a left/right swap, a limb hidden behind the body), the view set whose worst reprojection
    error is lowest wins: all views, or all but one. A joint whose chosen set still reprojects
    worse than ``max_error_px`` in one of its views is left out of the reference (NaN), so it is
    not scored.
    """
    from engines.triangulation import reprojection_error, triangulate_robust

    px = np.stack([v.pixels for v in views.values()])  # (V, F, 17, 2)
    conf = np.stack([v.keypoints[..., 2] for v in views.values()]).astype(np.float64)
    X, pick, _ = triangulate_robust(px, cameras, conf, max_error_px)
    err = reprojection_error(X, px, cameras)  # every view, for the record
    kept = np.isfinite(X).all(-1)
    stats = {"max_reprojection_px": max_error_px, "joints_kept_fraction": float(kept.mean()),
             "joints_from_all_views_fraction": float((kept & (pick == 0)).mean()),
             "reprojection_px_median": float(np.nanmedian(err)), "reprojection_px_p95": float(np.nanpercentile(err, 95)),
             "per_view_reprojection_px_median": {k: float(np.nanmedian(e)) for k, e in zip(views, err)}}
    return X, stats


def _lift(keypoints: np.ndarray, found: np.ndarray, stride: int, smooth: bool) -> np.ndarray:
    """The pipeline's lifting (and smoothing) over frames 0, stride, 2*stride...: (F', 17, 3), NaN where no
    person was found. Camera frame, metres."""
    import engines
    from realtime.lift import Lifter
    from realtime.smooth import SkeletonSmoother

    lifter = Lifter(engines.load("default", backend="auto"))
    smoother = SkeletonSmoother() if smooth else None
    idx = np.arange(0, len(found), stride)
    out = np.full((len(idx), 17, 3), np.nan)
    for k, i in enumerate(idx):
        ids = np.array([1]) if found[i] else np.zeros(0, np.int64)
        joints = lifter(keypoints[i:i + 1] if found[i] else keypoints[:0], ids)
        if smoother is not None:
            smoothed = smoother({int(p): j for p, j in zip(ids, joints)}, int(i * 1e9 / FPS))
            joints = np.stack([smoothed[int(p)] for p in ids]) if len(ids) else joints
        if len(ids):
            out[k] = joints[0]
    return out


def _root_relative(x: np.ndarray) -> np.ndarray:
    return x - x[..., :1, :]


def _scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """mm: MPJPE, P-MPJPE, MPJVE (per frame fed), per-joint P-MPJPE; frames scored."""
    from training import metrics

    mask = np.isfinite(pred).all(-1) & np.isfinite(ref).all(-1)
    p, r = np.where(mask[..., None], pred, 0.0), np.where(mask[..., None], ref, 0.0)
    framed = mask.sum(-1) >= 4  # Procrustes needs a few joints
    pm = mask & framed[:, None]
    aligned = metrics.procrustes_align(p, r, mask=pm)
    per_joint = np.where(pm, metrics.per_joint_error(aligned, r), np.nan)
    return {"mpjpe_mm": 1000 * metrics.mpjpe(p, r, mask=mask), "p_mpjpe_mm": 1000 * metrics.p_mpjpe(p, r, mask=pm),
            "mpjve_mm": 1000 * metrics.mpjve(p, r, mask=mask),
            "per_joint_p_mpjpe_mm": list(1000 * np.nanmean(per_joint, axis=0)),
            "frames": int(framed.sum()), "_per_joint_err": per_joint}


def evaluate_footage(folder: Path, frames: int | None = None, progress: bool = True) -> dict[str, Any]:
    """The whole comparison; see the module docstring. Returns the report section."""
    from tqdm import tqdm

    from engines.calibration import load_calibration
    from engines.skeleton import CANONICAL

    cameras = load_calibration(folder / "Calib.qca.txt")
    if [c.name for c in cameras] != list(VIEWS):
        raise ValueError(f"{folder}/Calib.qca.txt has cameras {[c.name for c in cameras]}, expected {list(VIEWS)}")
    bar = tqdm(total=len(VIEWS) * (1 + len(RATES) * 2), desc="real footage", unit="step", disable=not progress)
    views = detect_views(folder, frames, progress=lambda: bar.update())
    X, ref_stats = reference(views, cameras)
    result: dict[str, Any] = {"video_folder": str(folder), "frames_per_view": len(X), "fps": FPS,
                              "sync": sync_check(views, cameras), "reference": ref_stats,
                              "frames_with_person": {k: int(v.found.sum()) for k, v in views.items()},
                              "joints": list(CANONICAL.joint_names), "rates": {}}
    for rate, stride in RATES.items():
        per_view: dict[str, dict[str, Any]] = {}
        errs: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
        for cam, (name, det) in zip(cameras, views.items()):
            ref_cam = _root_relative(X @ cam.R.T + cam.t)[::stride]
            preds = {"ours": _lift(det.keypoints, det.found, stride, True)}
            bar.update()
            preds["ours (no smoothing)"] = _lift(det.keypoints, det.found, stride, False)
            bar.update()
            preds["MediaPipe world"] = det.world[::stride]
            preds["MediaPipe world (its smoothing)"] = det.world_smoothed[::stride]
            per_view[name] = {}
            for method, pred in preds.items():
                s = _scores(_root_relative(pred), ref_cam)
                errs[method].append(s.pop("_per_joint_err"))
                per_view[name][method] = s
        overall = {}
        for method in METHODS:
            e = np.concatenate(errs[method])
            rows = [per_view[v][method] for v in per_view]
            w = np.array([r["frames"] for r in rows], float)
            overall[method] = {k: float(np.average([r[k] for r in rows], weights=w))
                               for k in ("mpjpe_mm", "p_mpjpe_mm", "mpjve_mm")}
            overall[method]["frames"] = int(w.sum())
            overall[method]["per_joint_p_mpjpe_mm"] = list(1000 * np.nanmean(e, axis=0))
        result["rates"][rate] = {"stride": stride, "fed_fps": FPS / stride, "per_view": per_view, "overall": overall}
    bar.close()
    return result
