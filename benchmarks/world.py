"""``python -m benchmarks world``: the world frame end to end (up, floor, contacts, steady bones).

    python -m benchmarks world [--quick] [--out DIR] [--quiet] [--cameras N] [--skip-footage]
                               [--iterations N]

The real chain, causally at 30 fps: ``realtime.lift.Lifter(engines.load("default"))`` ->
``realtime.smooth.SkeletonSmoother`` -> ``realtime.body.BodyStage(frame="world", ...)``, once
with the body-axis fallback (``up_model=None``) and once with the shipped learned
``engines.gravity.UpModel``; each with ``ContactSolver()`` and with ``contacts=None``.

1. **Mocap** (the CMU validation subjects of ``training.config.DataConfig``, prepared by
   ``training.data.open_motion``): segments that start standing still and segments that start
   walking (:func:`select_segments`), each filmed by virtual cameras with an explicit pitch
   (-45..+15 degrees), roll (+-20) and height (0.5-2.5 m), drawn per segment and camera from a
   fixed seed, at the distance that keeps the subject in frame (:func:`place_camera`), with the
   lifter's assumed field of view (60 degrees across the longer side) so that the lifter's camera
   frame is the camera's. 2D: the projection with ``training.synth.DETECTOR``'s noise (jitter,
   outliers, swaps, drops) but without its truncation (the feet stay in frame: a world benchmark).
   Truth: the mocap's own y-up world with its floor at y = 0, seen through
   ``realtime.world.from_calibration(camera, up="y")`` (up = R (0, 1, 0), height = the camera
   centre's y), i.e. exactly the frame the stage publishes in.
2. **Real footage** (``../shared/media/pose2sim-demo``, four calibrated 60 fps portrait views):
   MediaPipe as ``benchmarks.footage`` runs it (cached), every 2nd frame fed (30 fps), once
   through and replayed twice in a loop (the clip is only 1.67 s; the estimator settles in about
   2 s). Truth: ``from_calibration`` of each view; the lean reference is the four-view
   triangulation (``benchmarks.footage.reference``).
3. **Cost**: ``BodyStage.__call__`` per frame for one person, beside the smoother on the same
   frames, timed in the same run.

Metrics (definitions in :func:`score_sequence`); times are seconds since the person's first frame.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Variant", "TARGETS", "chain", "film", "main", "markdown", "place_camera", "run", "score_sequence",
           "select_segments", "time_body_stage"]

FPS = 30.0
DT_NS = 33_333_333
TIMES_S = (0.5, 1.0, 2.0, 5.0)
SEGMENT_S = 10.0  # a segment runs this long, or to the clip's end
MIN_SEGMENT_S = 6.0  # shorter segments cannot say where the estimate is after 5 s
PITCH_DEG, ROLL_DEG, HEIGHT_M = (-45.0, 15.0), (-20.0, 20.0), (0.5, 2.5)
IMAGE_SIZES = ((1280, 720), (720, 1280))  # landscape first, portrait when the subject does not fit
IN_FRAME = 0.98  # fraction of joint-frames inside the image (2% margin) for a camera to count
CONTACT_HEIGHT_M = 0.025  # true contact: ankle within this of its resting height ...
CONTACT_SPEED_M_S = 0.2  # ... and slower than this
CALIBRATED_S = 2.0  # bone lengths are fixed after the rig's calibration (RigConfig.calibration_s)
ANKLES = (6, 3)  # left, right (canonical)
THORAX = 8
BONES_CHECKED_AFTER_S = CALIBRATED_S + 1.0 / FPS

TARGETS = {
    "up_deg_after_2s": 3.0,  # median across sequences at t = 2 s and later
    "skate_mm_per_frame": 2.0,  # with contacts
    "bone_std_mm": 1.0,
    "fk_mm": 1.0,
    "footage_up_deg": 5.0,
    "footage_height_cm": 15.0,
    "cost_ms": 0.3,
}


@dataclass(frozen=True)
class Variant:
    """One BodyStage configuration: the learned up model or the body axis, contacts or not."""

    up: str  # "body axis" | "learned up"
    contacts: bool

    @property
    def name(self) -> str:
        return f"{self.up}, {'contacts' if self.contacts else 'no contacts'}"


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def load_up_model() -> tuple[Any, str]:
    """``(engines.gravity.UpModel.load(), "")``, or ``(None, why not)`` when the shipped model cannot
    be read."""
    from engines.gravity import UpModel

    try:
        return UpModel.load(), ""
    except (OSError, ValueError) as exc:
        return None, f"engines.gravity.UpModel.load() failed ({str(exc).splitlines()[0]})"


def variants(up_model) -> list[Variant]:
    ups = ["body axis"] + (["learned up"] if up_model is not None else [])
    return [Variant(u, c) for u in ups for c in (True, False)]


# --- mocap: segments, cameras, 2D --------------------------------------------------------------------


def _speeds(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (F,): the pelvis' horizontal speed; (F, 2): the ankles' 3D speed (m/s, the first
    frame repeats the second's)."""
    pel = np.linalg.norm(np.diff(joints[:, 0, [0, 2]], axis=0), axis=-1) * FPS
    ank = np.linalg.norm(np.diff(joints[:, list(ANKLES)], axis=0), axis=-1) * FPS
    return np.concatenate([pel[:1], pel]), np.concatenate([ank[:1], ank])


def select_segments(archive, groups: tuple[str, ...], segment_s: float = SEGMENT_S,
                    min_s: float = MIN_SEGMENT_S) -> list[dict[str, Any]]:
    """Segments of the clips of ``groups``: at most one ``standing start`` and one ``walk`` per clip.

    * **standing start**: from the first frame where, over the next second, the pelvis moves
      slower than 0.15 m/s on average horizontally and each ankle is slower than 0.2 m/s in 90% of
      the frames;
    * **walk**: from the first frame where, over the next second, the pelvis moves faster than
      0.6 m/s on average and never slower than 0.3 m/s.

    Each runs ``segment_s`` or to the clip's end and needs at least ``min_s``."""
    win, need, length = int(FPS), int(round(min_s * FPS)), int(round(segment_s * FPS))
    out = []
    for ci, (name, group) in enumerate(zip(archive.clip_names, archive.clip_groups)):
        if group not in groups:
            continue
        J = archive.clip_joints(ci).astype(np.float64)
        F = len(J)
        if F < need:
            continue
        pel, ank = _speeds(J)
        found: dict[str, int] = {}
        for s in range(0, F - need + 1):
            p, a = pel[s:s + win], ank[s:s + win]
            if "standing start" not in found and p.mean() < 0.15 and ((a < 0.2).mean(axis=0) >= 0.9).all():
                found["standing start"] = s
            if "walk" not in found and p.mean() > 0.6 and p.min() > 0.3:
                found["walk"] = s
            if len(found) == 2:
                break
        for kind, s in found.items():
            out.append({"clip": name, "clip_index": ci, "kind": kind, "start": s, "stop": min(F, s + length)})
    return out


def make_camera(pitch_deg: float, roll_deg: float, height_m: float, azimuth_deg: float, centre_xz,
                distance_m: float, size: tuple[int, int]):
    """A camera ``distance_m`` from ``centre_xz`` on the floor plan (in direction ``azimuth_deg``),
    ``height_m`` above the floor, facing the centre horizontally, pitched (up positive) and rolled
    as given, with the lifter's assumed field of view across the longer side."""
    from engines.camera import Camera, look_at_rotation
    from engines.models import ASSUMED_FOV_DEG

    w, h = size
    f = 0.5 * max(w, h) / math.tan(math.radians(ASSUMED_FOV_DEG) / 2.0)
    az = math.radians(azimuth_deg)
    away = np.array([math.sin(az), 0.0, math.cos(az)])
    position = np.array([centre_xz[0], 0.0, centre_xz[1]]) + distance_m * away
    position[1] = height_m
    target = position - away + [0.0, math.tan(math.radians(pitch_deg)), 0.0]
    R = look_at_rotation(position[None], target[None], (0.0, 1.0, 0.0), np.array([math.radians(roll_deg)]))[0]
    return Camera("virtual", w, h, f, f, w / 2.0, h / 2.0, R, -R @ position)


def _in_frame(camera, joints: np.ndarray) -> float:
    """Fraction of joint-frames at least 0.5 m in front of the camera and inside the image with a 2% margin."""
    px = camera.project(joints)
    depth = camera.world_to_camera(joints)[..., 2]
    mx, my = 0.02 * camera.width, 0.02 * camera.height
    ok = (np.isfinite(px).all(-1) & (depth > 0.5) & (px[..., 0] >= mx) & (px[..., 0] <= camera.width - mx)
          & (px[..., 1] >= my) & (px[..., 1] <= camera.height - my))
    return float(ok.mean())


def place_camera(rng: np.random.Generator, joints: np.ndarray, tries: int = 60):
    """A camera filming ``joints`` (F, 17, 3) with pitch, roll and height drawn uniformly from the
    benchmark's ranges and the azimuth from 0-360 degrees: the nearest distance (2-10 m, 0.25 m
    steps; landscape, then portrait) where :data:`IN_FRAME` of the joint-frames are in the
    image. Draws that no distance frames (a camera 0.5 m up pitched 45 degrees down sees only the
    floor) are drawn again. Returns ``(camera, description, rejected draws)``."""
    centre = joints[:, 0, [0, 2]].mean(axis=0)
    sub = joints[:: max(1, len(joints) // 60)]
    for attempt in range(tries):
        pitch, roll = rng.uniform(*PITCH_DEG), rng.uniform(*ROLL_DEG)
        height, azimuth = rng.uniform(*HEIGHT_M), rng.uniform(0.0, 360.0)
        for size in IMAGE_SIZES:
            for d in np.arange(2.0, 10.001, 0.25):
                cam = make_camera(pitch, roll, height, azimuth, centre, float(d), size)
                if _in_frame(cam, sub) >= IN_FRAME and _in_frame(cam, joints) >= IN_FRAME:
                    desc = {"pitch_deg": pitch, "roll_deg": roll, "height_m": height, "azimuth_deg": azimuth,
                            "distance_m": float(d), "image": f"{size[0]}x{size[1]}"}
                    return cam, desc, attempt
    raise ValueError(f"no camera in the benchmark's ranges keeps this segment in frame ({tries} draws)")


def detector_noise():
    """``training.synth.DETECTOR`` without its truncation (cut-off feet): the feet stay in view."""
    from training.synth import DETECTOR

    return replace(DETECTOR, truncate=0.0)


def film(rng: np.random.Generator, camera, joints_world: np.ndarray, noise=None) -> np.ndarray:
    """The lifter's input (F, 17, 3) (screen u, v, confidence) for ``camera`` filming
    ``joints_world``, with ``noise`` (a ``training.synth.NoiseModel``; default :func:`detector_noise`)
    applied to the whole sequence as one window, as ``training.evaluate`` does."""
    from engines.camera import normalize_screen

    noise = detector_noise() if noise is None else noise
    px = camera.project(joints_world)
    noisy = noise.apply(rng, px[None], np.array([[camera.width, camera.height]]))[0]
    screen = normalize_screen(noisy[..., :2], camera.width, camera.height)
    kp = np.concatenate([screen, noisy[..., 2:]], axis=-1)
    kp[..., :2] = np.where(kp[..., 2:] > 0, kp[..., :2], 0.0)
    return kp.astype(np.float32)


# --- the chain -------------------------------------------------------------------------------------


def chain(engine, keypoints: np.ndarray, found: np.ndarray | None, stages: dict[str, Any],
          times_ns: np.ndarray | None = None) -> dict[str, Any]:
    """Run the lifter and smoother once over ``keypoints`` (F, 17, 3) and every body stage in
    ``stages`` (name -> BodyStage) on the same smoothed joints, frame by frame, causally.

    ``found`` (F,) bool: frames with the person (None: all). Returns ``raw`` and ``smoothed``
    (F, 17, 3) camera frame and per stage ``joints`` (F, 17, 3) world, ``rows`` (F, N, 7),
    ``up`` (F, 3), ``height`` (F,), ``contacts`` (F, 2); NaN where the person was not found."""
    from realtime.lift import Lifter
    from realtime.smooth import SkeletonSmoother

    F = len(keypoints)
    found = np.ones(F, bool) if found is None else found
    times_ns = np.arange(F, dtype=np.int64) * DT_NS if times_ns is None else times_ns
    lifter, smoother = Lifter(engine), SkeletonSmoother()
    raw, smoothed = np.full((F, 17, 3), np.nan), np.full((F, 17, 3), np.nan)
    out: dict[str, Any] = {"raw": raw, "smoothed": smoothed, "stages": {}}
    per = {name: {"joints": np.full((F, 17, 3), np.nan), "rows": None, "up": np.full((F, 3), np.nan),
                  "height": np.full(F, np.nan), "contacts": np.full((F, 2), np.nan)} for name in stages}
    none = np.zeros(0, np.int64)
    for k in range(F):
        t = int(times_ns[k])
        ids = np.array([1]) if found[k] else none
        kp = keypoints[k:k + 1] if found[k] else keypoints[:0]
        j = lifter(kp, ids)
        if len(ids):
            raw[k] = j[0]
            j = smoother({1: j[0]}, t)[1][None]
            smoothed[k] = j[0]
        else:
            smoother({}, t)
        for name, stage in stages.items():
            b = stage(ids, j, kp, t)
            rec = per[name]
            if b.world is not None:
                rec["up"][k], rec["height"][k] = b.world.up, b.world.height_m
            if len(ids):
                rec["joints"][k], rec["contacts"][k] = b.joints[0], b.contacts[0]
                if rec["rows"] is None:
                    rec["rows"] = np.full((F,) + b.rig.rows.shape[1:], np.nan)
                rec["rows"][k] = b.rig.rows[0]
    out["stages"] = per
    return out


def body_stage(variant: Variant, up_model):
    from realtime.body import BodyStage
    from realtime.contact import ContactSolver

    return BodyStage("world", contacts=ContactSolver() if variant.contacts else None,
                     up_model=up_model if variant.up == "learned up" else None)


# --- scores ----------------------------------------------------------------------------------------


def _at(values: np.ndarray, seconds: float | None) -> float:
    """The value at ``seconds`` since the first frame (None: the last frame); NaN past the end."""
    k = len(values) - 1 if seconds is None else int(round(seconds * FPS)) - 1
    return float(values[k]) if 0 <= k < len(values) else float("nan")


def true_contacts(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and foot ``[left, right]`` (F, 2): the true foot rests on the floor, and each
    foot's resting height (2,).

    A foot is in contact where its true ankle is within :data:`CONTACT_HEIGHT_M` of its resting
    height and slower than :data:`CONTACT_SPEED_M_S` (3D); the resting height is the 10th
    percentile of the ankle's height over its slow frames. The foot-skating measure of motion
    synthesis (e.g. the skating ratio of Karunratanakul et al., *Guided Motion Diffusion*, 2023:
    feet lower than 5 cm and slow count as in contact, their horizontal motion as skating), with
    tighter thresholds for a mocap ankle joint rather than a sole."""
    _, ank = _speeds(truth)
    h = truth[:, list(ANKLES), 1]
    rest = np.array([np.percentile(h[ank[:, f] < CONTACT_SPEED_M_S, f], 10) if (ank[:, f] < CONTACT_SPEED_M_S).any()
                     else h[:, f].min() for f in range(2)])
    return (np.abs(h - rest) < CONTACT_HEIGHT_M) & (ank < CONTACT_SPEED_M_S), rest


def skate_mm(ankles: np.ndarray, contact: np.ndarray) -> float:
    """Mean horizontal displacement per frame (mm) of ``ankles`` (F, 2, 3) over the frame pairs
    where ``contact`` (F, 2) holds in both frames."""
    step = np.linalg.norm(np.diff(ankles[..., [0, 2]], axis=0), axis=-1)
    both = contact[1:] & contact[:-1] & np.isfinite(step)
    return float(1000 * step[both].mean()) if both.any() else float("nan")


def heading_aligned(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """``pred`` (F, 3) turned about the world's y axis (through the origin: the floor point below
    the camera, common to both frames) by the one angle that best fits ``truth`` (F, 3) in the
    least-squares sense over all frames; no translation, no scale. Returns (aligned, angle deg)."""
    p, q = pred[:, [0, 2]], truth[:, [0, 2]]
    ok = np.isfinite(p).all(-1) & np.isfinite(q).all(-1)
    p, q = p[ok], q[ok]
    # rotation by theta about +y maps (x, z) -> (x cos + z sin, -x sin + z cos)
    a = float(np.sum(p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]))
    b = float(np.sum(p[:, 1] * q[:, 0] - p[:, 0] * q[:, 1]))
    theta = math.atan2(b, a)
    c, s = math.cos(theta), math.sin(theta)
    out = pred.copy()
    out[:, 0] = c * pred[:, 0] + s * pred[:, 2]
    out[:, 2] = -s * pred[:, 0] + c * pred[:, 2]
    return out, math.degrees(theta)


def score_sequence(truth_world: np.ndarray, true_up: np.ndarray, true_height: float, result: dict[str, Any]
                   ) -> dict[str, Any]:
    """One sequence's scores per stage (``result`` from :func:`chain`), against ``truth_world``
    (F, 17, 3), the true joints in the frame the stage publishes in, and the true up (3,) and height.

    * ``up_deg`` / ``height_cm``: angle between the estimated and true up, |estimated - true|
      camera height, at :data:`TIMES_S` and the last frame (``signed_height_cm_end`` keeps the sign);
    * ``root_cm``: mean pelvis distance after :func:`heading_aligned` (``root_cm_unaligned``
      without it; ``root_horizontal_cm``/``root_vertical_cm`` its parts after alignment);
    * ``skate_mm``: :func:`skate_mm` of the published ankles over the true contacts of
      :func:`true_contacts` (``skate_truth_mm``: the same of the true ankles, the definition's floor);
    * ``penetration_mean_mm`` / ``_max_mm``: depth of the published ankles below the resting height
      the stage promises (``ANKLE_HEIGHT_M`` above its floor), mean over all ankle-frames (zero
      where above) and max;
    * ``bone_std_mm``: the largest per-bone length std over the frames after the rig's 2 s
      calibration; ``fk_mm``: the largest |published joint - FK(published rig rows)| there;
    * ``p_mpjpe_mm``: P-MPJPE of the published joints; ``p_mpjpe_raw_mm`` / ``_smoothed_mm`` of the
      lifter's raw and smoothed output (``training.metrics``, per-frame similarity alignment)."""
    from engines.skeleton import CANONICAL
    from realtime.rig import canonical_from_rows
    from realtime.world import ANKLE_HEIGHT_M
    from training import metrics

    truth = np.asarray(truth_world, np.float64)
    contact, rest = true_contacts(truth)
    parents = [(j, p) for j, p in enumerate(CANONICAL.parents) if p >= 0]
    late = slice(int(round(BONES_CHECKED_AFTER_S * FPS)), None)
    rel = lambda x: x - x[:, :1]  # noqa: E731
    shared = {"p_mpjpe_raw_mm": 1000 * float(metrics.p_mpjpe(rel(result["raw"]), rel(truth))),
              "p_mpjpe_smoothed_mm": 1000 * float(metrics.p_mpjpe(rel(result["smoothed"]), rel(truth))),
              "skate_truth_mm": skate_mm(truth[:, list(ANKLES)], contact),
              "true_rest_height_m": [float(r) for r in rest], "contact_fraction": float(contact.mean()),
              "frames": int(len(truth))}
    scores = {}
    for name, r in result["stages"].items():
        J = r["joints"]
        up = _angle_deg(r["up"], true_up[None])
        height = np.abs(r["height"] - true_height) * 100
        aligned, theta = heading_aligned(J[:, 0], truth[:, 0])
        d = aligned - truth[:, 0]
        depth = np.maximum(ANKLE_HEIGHT_M - J[:, list(ANKLES), 1], 0.0)
        lengths = np.stack([np.linalg.norm(J[:, j] - J[:, p], axis=-1) for j, p in parents], axis=-1)
        fk = canonical_from_rows(r["rows"][late], frame="rows")
        s = {"up_deg": {str(t): _at(up, t) for t in TIMES_S} | {"end": _at(up, None)},
             "height_cm": {str(t): _at(height, t) for t in TIMES_S} | {"end": _at(height, None)},
             "signed_height_cm_end": 100 * float(r["height"][-1] - true_height),
             "root_cm": 100 * float(np.linalg.norm(d, axis=-1).mean()),
             "root_horizontal_cm": 100 * float(np.linalg.norm(d[:, [0, 2]], axis=-1).mean()),
             "root_vertical_cm": 100 * float(np.abs(d[:, 1]).mean()),
             "root_cm_unaligned": 100 * float(np.linalg.norm(J[:, 0] - truth[:, 0], axis=-1).mean()),
             "heading_deg": theta,
             "skate_mm": skate_mm(J[:, list(ANKLES)], contact),
             "penetration_mean_mm": 1000 * float(depth.mean()), "penetration_max_mm": 1000 * float(depth.max()),
             "bone_std_mm": 1000 * float(lengths[late].std(axis=0).max()),
             "fk_mm": 1000 * float(np.abs(fk - J[late]).max()),
             "p_mpjpe_mm": 1000 * float(metrics.p_mpjpe(rel(J), rel(truth)))}
        scores[name] = s
    return {"shared": shared, "stages": scores}


def _median(values) -> float:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    return float(np.median(v)) if v.size else float("nan")


def summarise(sequences: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Across sequences, per stage: medians (and p90/max where a worst case matters) of every score."""
    out: dict[str, Any] = {}
    for name in names:
        rows = [s["scores"]["stages"][name] for s in sequences]
        shared = [s["scores"]["shared"] for s in sequences]
        summary: dict[str, Any] = {
            "up_deg_median": {k: _median(r["up_deg"][k] for r in rows) for k in rows[0]["up_deg"]},
            "up_deg_p90": {k: float(np.nanpercentile([r["up_deg"][k] for r in rows], 90)) for k in rows[0]["up_deg"]},
            "height_cm_median": {k: _median(r["height_cm"][k] for r in rows) for k in rows[0]["height_cm"]},
            "height_cm_p90": {k: float(np.nanpercentile([r["height_cm"][k] for r in rows], 90))
                              for k in rows[0]["height_cm"]},
            "signed_height_cm_end_median": _median(r["signed_height_cm_end"] for r in rows)}
        for key in ("root_cm", "root_horizontal_cm", "root_vertical_cm", "root_cm_unaligned", "skate_mm",
                    "penetration_mean_mm", "p_mpjpe_mm"):
            summary[f"{key}_median"] = _median(r[key] for r in rows)
            summary[f"{key}_mean"] = float(np.nanmean([r[key] for r in rows]))
        summary["penetration_max_mm"] = float(max(r["penetration_max_mm"] for r in rows))
        summary["bone_std_mm_max"] = float(max(r["bone_std_mm"] for r in rows))
        summary["fk_mm_max"] = float(max(r["fk_mm"] for r in rows))
        summary["p_mpjpe_raw_mm_mean"] = float(np.mean([s["p_mpjpe_raw_mm"] for s in shared]))
        summary["p_mpjpe_smoothed_mm_mean"] = float(np.mean([s["p_mpjpe_smoothed_mm"] for s in shared]))
        summary["p_mpjpe_mm_mean"] = float(np.mean([r["p_mpjpe_mm"] for r in rows]))
        summary["skate_truth_mm_median"] = _median(s["skate_truth_mm"] for s in shared)
        for kind in ("standing start", "walk"):
            pick = [r for r, s in zip(rows, sequences) if s["kind"] == kind]
            if pick:
                summary[f"{kind}: up_deg_median"] = {k: _median(r["up_deg"][k] for r in pick) for k in pick[0]["up_deg"]}
                summary[f"{kind}: height_cm_median"] = {k: _median(r["height_cm"][k] for r in pick)
                                                        for k in pick[0]["height_cm"]}
                summary[f"{kind}: skate_mm_median"] = _median(r["skate_mm"] for r in pick)
        out[name] = summary
    return out


def run_mocap(engine, up_model, cameras: int, quick: bool, progress: bool, seed: int = 0) -> dict[str, Any]:
    from tqdm import tqdm

    from benchmarks.pipeline import shared_dir
    from realtime.world import from_calibration
    from training.config import DataConfig
    from training.data import open_motion

    data = shared_dir() / "data" / "cmu-mocap"
    archive = open_motion(data, progress=progress)
    groups = DataConfig.__dataclass_fields__["validation_groups"].default
    segments = select_segments(archive, groups)
    if quick:  # the two longest of each kind
        segments = [s for kind in ("standing start", "walk")
                    for s in sorted((s for s in segments if s["kind"] == kind),
                                    key=lambda s: s["start"] - s["stop"])[:2]]
    vs = variants(up_model)
    sequences = []
    bar = tqdm(total=len(segments) * cameras, desc="mocap", unit="seq", disable=not progress)
    for seg in segments:
        world = archive.clip_joints(seg["clip_index"])[seg["start"]:seg["stop"]].astype(np.float64)
        for k in range(cameras):
            rng = np.random.default_rng([seed, seg["clip_index"], k])
            cam, desc, rejected = place_camera(rng, world)
            true = from_calibration(cam, up="y")
            kp = film(rng, cam, world)
            result = chain(engine, kp, None, {v.name: body_stage(v, up_model) for v in vs})
            truth = true.to_world(cam.world_to_camera(world))
            sequences.append({"clip": seg["clip"], "kind": seg["kind"], "start_frame": seg["start"],
                              "frames": len(world), "camera": desc, "rejected_draws": rejected,
                              "scores": score_sequence(truth, np.asarray(true.up), true.height_m, result)})
            bar.update()
    bar.close()
    return {"data": str(data), "groups": list(groups), "cameras_per_segment": cameras,
            "segments": [{k: v for k, v in s.items() if k != "clip_index"} for s in segments],
            "variants": [v.name for v in vs], "sequences": sequences,
            "summary": summarise(sequences, [v.name for v in vs])}


# --- real footage ----------------------------------------------------------------------------------


def footage_detections(folder: Path, progress: bool = True):
    """MediaPipe (its smoothing off, as the pipeline runs it) on every view of the Pose2Sim demo:
    ``benchmarks.footage.ViewDetections`` per view (world landmarks not kept), cached in
    ``training.data.cache_dir()`` keyed by the videos' names, sizes and times and MediaPipe's version."""
    from benchmarks.footage import VIEWS, ViewDetections, _run_mediapipe
    from engines.fileio import atomic_path
    from training.data import cache_dir

    import mediapipe

    h = hashlib.sha256(f"mediapipe={mediapipe.__version__}".encode())
    for view in VIEWS:
        st = (folder / f"{view}.mp4").stat()
        h.update(f"{view}|{st.st_size}|{st.st_mtime_ns}".encode())
    cached = cache_dir() / f"world-bench-mediapipe-{h.hexdigest()[:16]}.npz"
    if cached.is_file():
        z = np.load(cached)
    else:
        arrays = {}
        for view in VIEWS:
            if progress:
                print(f"MediaPipe on {view} ...", file=sys.stderr)
            dets = _run_mediapipe(folder / f"{view}.mp4", None, smooth=False)
            F = len(dets)
            kp, px, found = np.zeros((F, 17, 3), np.float32), np.full((F, 17, 2), np.nan), np.zeros(F, bool)
            for i, det in enumerate(dets):
                if det.persons:
                    found[i] = True
                    kp[i], px[i] = det.keypoints[0], det.pixels[0]
                    px[i][det.keypoints[0, :, 2] <= 0] = np.nan
            arrays |= {f"{view}_keypoints": kp, f"{view}_pixels": px, f"{view}_found": found}
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        z = np.load(cached)
    views = {}
    for view in VIEWS:
        F = len(z[f"{view}_found"])
        nan = np.full((F, 17, 3), np.nan)
        views[view] = ViewDetections(z[f"{view}_keypoints"], z[f"{view}_pixels"], nan, nan, z[f"{view}_found"])
    return views


def _lean_axis(joints: np.ndarray) -> np.ndarray:
    return joints[:, THORAX] - 0.5 * (joints[:, ANKLES[0]] + joints[:, ANKLES[1]])


def run_footage(engine, up_model, folder: Path, progress: bool) -> dict[str, Any]:
    from benchmarks.footage import FPS as FOOTAGE_FPS
    from benchmarks.footage import reference
    from engines.calibration import load_calibration
    from realtime.world import from_calibration

    cameras = load_calibration(folder / "Calib.qca.txt")
    views = footage_detections(folder, progress)
    X, ref_stats = reference(views, cameras)  # lab frame (Qualisys, z up)
    vs = [v for v in variants(up_model) if v.contacts]  # contacts do not change up, height or lean
    runs = {"once": 1, "looped twice": 2}
    out: dict[str, Any] = {"video_folder": str(folder), "frames_per_view": len(X), "stride": 2,
                           "fed_fps": FOOTAGE_FPS / 2, "reference": ref_stats, "variants": [v.name for v in vs],
                           "runs": {}}
    for run_name, loops in runs.items():
        per_view: dict[str, Any] = {}
        for cam, (view, det) in zip(cameras, views.items()):
            idx = np.tile(np.arange(0, len(det.found), 2), loops)
            times = np.arange(len(idx), dtype=np.int64) * DT_NS
            true = from_calibration(cam)
            result = chain(engine, det.keypoints[idx], det.found[idx], {v.name: body_stage(v, up_model) for v in vs},
                           times)
            ref_world = true.to_world(cam.world_to_camera(X[idx]))  # the lab, in this camera's true world frame
            ref_axis = _lean_axis(ref_world)
            per_view[view] = {"true_pitch_roll_deg": list(true.tilt_deg), "true_height_m": true.height_m}
            for name, r in result["stages"].items():
                axis = _lean_axis(r["joints"])
                ok = np.isfinite(axis).all(-1) & np.isfinite(ref_axis).all(-1)
                last = np.flatnonzero(np.isfinite(r["height"]))[-1]
                per_view[view][name] = {
                    "up_deg_end": float(_angle_deg(r["up"][last], true.up)),
                    "height_cm_end": 100 * float(r["height"][last] - true.height_m),
                    "estimated_pitch_roll_deg": list(_tilt(r["up"][last])),
                    "lean_vs_reference_deg": float(_angle_deg(axis[ok], ref_axis[ok]).mean()),
                    "lean_deg": float(_angle_deg(axis[ok], np.array([0.0, 1.0, 0.0])).mean()),
                    "reference_lean_deg": float(_angle_deg(ref_axis[ok], np.array([0.0, 1.0, 0.0])).mean()),
                    "frames_scored": int(ok.sum()), "frames_fed": int(len(idx))}
        out["runs"][run_name] = per_view
    return out


def _tilt(up: np.ndarray) -> tuple[float, float]:
    from realtime.world import tilt_from_up

    return tilt_from_up(up)


# --- cost ------------------------------------------------------------------------------------------


def time_body_stage(engine, up_model, iterations: int, seed: int = 0) -> list[dict[str, Any]]:
    """Per-frame microseconds (p50/p95/p99) of ``BodyStage.__call__`` for one person (contacts on),
    with and without the up model, and of ``SkeletonSmoother.__call__`` on the same frames, all
    in this run: a standing-then-moving CMU-like sequence filmed by one tilted camera, lifted once,
    cycled; timestamps advance 1/30 s per call so every estimator runs its steady-state path
    (after a warm-up past the 2 s bone calibration)."""
    from benchmarks.smoothing import _time
    from realtime.rig import warmup
    from realtime.smooth import SkeletonSmoother
    from realtime.smooth import warmup as smooth_warmup

    warmup()
    smooth_warmup(17)
    rng = np.random.default_rng(seed)
    world = _synthetic_walk(rng, int(8 * FPS))
    cam = make_camera(-20.0, 8.0, 1.6, 30.0, world[:, 0, [0, 2]].mean(axis=0), 4.0, IMAGE_SIZES[0])
    kp = film(rng, cam, world)
    base = chain(engine, kp, None, {})
    raw, joints = base["raw"].astype(np.float32), base["smoothed"].astype(np.float32)
    F = len(kp)
    rows = []
    smoother = SkeletonSmoother()
    us = _time(lambda i: smoother({1: raw[i % F]}, i * DT_NS), iterations, 200)
    rows.append(_cost_row("SkeletonSmoother (baseline)", us))
    for v in variants(up_model):
        if not v.contacts:
            continue
        stage = body_stage(v, up_model)
        ids = [1]
        us = _time(lambda i, s=stage: s(ids, joints[i % F][None], kp[i % F][None], i * DT_NS), iterations, 200)
        rows.append(_cost_row(f"BodyStage ({v.name})", us))
    base_p50 = rows[0]["p50_us"]
    for r in rows:
        r["p50_vs_smoother"] = r["p50_us"] / base_p50
    return rows


def _cost_row(what: str, us: np.ndarray) -> dict[str, Any]:
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    return {"what": what, "persons": 1, "iterations": int(len(us)), "p50_us": float(p50), "p95_us": float(p95),
            "p99_us": float(p99), "mean_us": float(us.mean())}


def _synthetic_walk(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames, 17, 3) world y-up: the rest pose of ``tests/fixtures/tiny/cmu31.bvh`` standing for
    2 s, then stepping sideways at 0.3 m/s with a swaying torso and alternate lifted feet: enough
    motion for every stage (the cost benchmark and the unit test use it; no mocap needed)."""
    from training.motion import load_clip

    rest, _, _ = load_clip(Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny" / "cmu31.bvh", fps=FPS)
    pose = rest[0].astype(np.float64)
    pose[:, 1] += 0.08 - pose[list(ANKLES), 1].min()  # ankles at their resting height above y = 0
    t = np.arange(frames) / FPS
    out = np.repeat(pose[None], frames, axis=0)
    moving = np.clip(t - 2.0, 0.0, None)
    out[:, :, 0] += 0.3 * moving[:, None]
    sway = 0.03 * np.sin(2 * np.pi * 0.5 * t)
    upper = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    out[:, upper, 0] += sway[:, None]
    phase = np.sin(2 * np.pi * 1.0 * t) * (moving > 0)
    for foot, knee, sign in ((6, 5, 1.0), (3, 2, -1.0)):
        lift = 0.06 * np.clip(sign * phase, 0.0, None)
        out[:, foot, 1] += lift
        out[:, knee, 1] += 0.5 * lift
    return out + rng.normal(0.0, 0.001, out.shape)


# --- the report ------------------------------------------------------------------------------------


def run(settings: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    import engines
    from benchmarks.machine import describe
    from benchmarks.pipeline import shared_dir

    t0 = time.perf_counter()
    engine = engines.load("default", backend="auto")
    up_model, why = load_up_model()
    report: dict[str, Any] = {"benchmark": "world", "machine": describe("numpy", "numba", "onnxruntime", "mediapipe"),
                              "settings": settings, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "up_model": "engines.gravity.UpModel (shipped default)" if up_model is not None else None,
                              "up_model_missing": why or None, "targets": TARGETS}
    report["mocap"] = run_mocap(engine, up_model, settings["cameras"], settings["quick"], progress)
    if not settings["skip_footage"]:
        folder = Path(settings["footage"]) if settings.get("footage") else shared_dir() / "media" / "pose2sim-demo"
        if not (folder / "Calib.qca.txt").is_file():
            raise FileNotFoundError(f"{folder}/Calib.qca.txt not found; pass --footage or --skip-footage")
        report["footage"] = run_footage(engine, up_model, folder, progress)
    report["cost"] = time_body_stage(engine, up_model, settings["iterations"])
    report["verdicts"] = verdicts(report)
    report["seconds"] = time.perf_counter() - t0
    return report


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against what was measured, per up source."""
    out = []
    summary = report["mocap"]["summary"]
    for name, s in summary.items():
        if name.endswith("no contacts"):
            continue
        up = s["up_deg_median"]
        worst = max(v for k, v in up.items() if k == "end" or float(k) >= 2.0)
        out.append({"target": "mocap: median up error at t >= 2 s <= 3 deg", "variant": name, "value": worst,
                    "met": bool(worst <= TARGETS["up_deg_after_2s"])})
        out.append({"target": "mocap: skating with contacts <= 2 mm/frame (median)", "variant": name,
                    "value": s["skate_mm_median"], "met": bool(s["skate_mm_median"] <= TARGETS["skate_mm_per_frame"])})
        out.append({"target": "mocap: bone length std after 2 s <= 1 mm (max)", "variant": name,
                    "value": s["bone_std_mm_max"], "met": bool(s["bone_std_mm_max"] <= TARGETS["bone_std_mm"])})
        out.append({"target": "mocap: max abs(joints - FK(rows)) <= 1 mm", "variant": name, "value": s["fk_mm_max"],
                    "met": bool(s["fk_mm_max"] <= TARGETS["fk_mm"])})
        out.append({"target": "mocap: P-MPJPE no worse than the lifter's raw output (mean mm)", "variant": name,
                    "value": s["p_mpjpe_mm_mean"], "reference": s["p_mpjpe_raw_mm_mean"],
                    "met": bool(s["p_mpjpe_mm_mean"] <= s["p_mpjpe_raw_mm_mean"])})
    if "footage" in report:
        for run_name, views in report["footage"]["runs"].items():
            for name in report["footage"]["variants"]:
                ups = [v[name]["up_deg_end"] for v in views.values()]
                hs = [abs(v[name]["height_cm_end"]) for v in views.values()]
                out.append({"target": f"footage ({run_name}): up within 5 deg in every view", "variant": name,
                            "value": max(ups), "met": bool(max(ups) <= TARGETS["footage_up_deg"])})
                out.append({"target": f"footage ({run_name}): camera height within 15 cm in every view",
                            "variant": name, "value": max(hs), "met": bool(max(hs) <= TARGETS["footage_height_cm"])})
    for r in report["cost"]:
        if r["what"].startswith("BodyStage"):
            out.append({"target": "cost: BodyStage p50 <= 0.3 ms per frame, one person", "variant": r["what"],
                        "value": r["p50_us"] / 1000, "met": bool(r["p50_us"] <= 1000 * TARGETS["cost_ms"])})
    return out


def markdown(report: dict[str, Any]) -> str:
    from benchmarks.report import md_table

    m = report["machine"]
    mo = report["mocap"]
    times = [str(t) for t in TIMES_S] + ["end"]
    kinds = {k: sum(1 for s in mo["sequences"] if s["kind"] == k) for k in ("standing start", "walk")}
    out = [(f"Machine: {m['cpu']}, {m['cores']} cores; numpy {m['numpy']}, numba {m['numba']}, onnxruntime "
            f"{m['onnxruntime']}, mediapipe {m['mediapipe']}. Started {report['started']}, "
            f"{report['seconds']:.0f} s{' (--quick)' if report['settings']['quick'] else ''}. "
            + ("Learned up model: " + report["up_model"] if report["up_model"] else
               f"No learned up model: {report['up_model_missing']}; only the body-axis rows.")), "",
           "### Targets", "",
           md_table(["target", "variant", "measured", "verdict"],
                    [(v["target"], v["variant"], v["value"], "met" if v["met"] else "**missed**")
                     for v in report["verdicts"]], digits=2), "",
           "### Mocap: CMU validation subjects through tilted virtual cameras", "",
           (f"Subjects {', '.join(mo['groups'])}; {len(mo['segments'])} segments ({kinds['standing start']} sequences "
            f"from a standing start, {kinds['walk']} from a walk), {mo['cameras_per_segment']} camera(s) each: pitch "
            f"{PITCH_DEG[0]:g}..{PITCH_DEG[1]:+g} deg, roll +-{ROLL_DEG[1]:g} deg, height {HEIGHT_M[0]:g}-{HEIGHT_M[1]:g} m, "
            "random azimuth, the nearest distance (2-10 m) that keeps 98% of the joint-frames in frame, the lifter's "
            "assumed 60 deg field of view; 2D with the training detector noise (no truncation). The chain runs "
            "causally at 30 fps from the segment's first frame. Medians across sequences."), "",
           "#### Up-vector error (deg) at t seconds", "",
           md_table(["variant"] + [f"t={t}" for t in times] + ["p90 at end"],
                    [[n] + [s["up_deg_median"][t] for t in times] + [s["up_deg_p90"]["end"]]
                     for n, s in mo["summary"].items() if n.endswith(", contacts")]
                    + [[f"{n} ({k})"] + [s[f"{k}: up_deg_median"][t] for t in times] + [None]
                       for n, s in mo["summary"].items() if n.endswith(", contacts")
                       for k in ("standing start", "walk") if f"{k}: up_deg_median" in s], digits=2), "",
           "#### Camera-height (floor) error (cm) at t seconds", "",
           md_table(["variant"] + [f"t={t}" for t in times] + ["p90 at end", "signed median at end"],
                    [[n] + [s["height_cm_median"][t] for t in times] + [s["height_cm_p90"]["end"],
                                                                         s["signed_height_cm_end_median"]]
                     for n, s in mo["summary"].items() if n.endswith(", contacts")]
                    + [[f"{n} ({k})"] + [s[f"{k}: height_cm_median"][t] for t in times] + [None, None]
                       for n, s in mo["summary"].items() if n.endswith(", contacts")
                       for k in ("standing start", "walk") if f"{k}: height_cm_median" in s], digits=1), "",
           "#### Root, feet, bones and accuracy", "",
           ("Root: mean pelvis distance (cm) in the world frame after turning the published trajectory about the "
            "vertical axis through the world origin (the floor point below the camera) by the one least-squares "
            "angle per sequence; no translation or scale. Skating: mean horizontal displacement per frame (mm) of "
            "the published ankle over frame pairs where the true foot is in contact (true ankle within 2.5 cm of "
            "its resting height and slower than 0.2 m/s; the true ankles themselves move "
            f"{next(iter(mo['summary'].values()))['skate_truth_mm_median']:.2f} mm/frame by this definition). "
            "Penetration: depth of the published ankle below its resting height (8 cm above the published floor), "
            "mean over all ankle-frames and max. Bones: the largest per-bone length std after the 2 s calibration "
            "(max over sequences); FK: max abs(published joints - FK(published rig rows)) after it. P-MPJPE (mm, mean "
            "of sequence means): published joints; the lifter's raw output is "
            f"{next(iter(mo['summary'].values()))['p_mpjpe_raw_mm_mean']:.1f} mm, after the smoother "
            f"{next(iter(mo['summary'].values()))['p_mpjpe_smoothed_mm_mean']:.1f} mm."), "",
           md_table(["variant", "root cm", "root horiz cm", "root vert cm", "root unaligned cm", "skate mm/frame",
                     "penetration mean mm", "penetration max mm", "bone std mm", "FK mm", "P-MPJPE mm"],
                    [[n, s["root_cm_median"], s["root_horizontal_cm_median"], s["root_vertical_cm_median"],
                      s["root_cm_unaligned_median"], s["skate_mm_median"], s["penetration_mean_mm_median"],
                      s["penetration_max_mm"], s["bone_std_mm_max"], s["fk_mm_max"], s["p_mpjpe_mm_mean"]]
                     for n, s in mo["summary"].items()], digits=2), ""]
    if "footage" in report:
        f = report["footage"]
        out += ["### Real footage: Pose2Sim demo, four calibrated views", "",
                (f"{f['frames_per_view']} frames per view at 60 fps, every 2nd fed ({f['fed_fps']:g} fps, "
                 f"{f['frames_per_view'] // 2} frames = {f['frames_per_view'] / 60:.2f} s). `once`: the clip as it "
                 "is, shorter than the estimator's ~2 s settling; `looped twice`: the same frames replayed a second "
                 "time right after (3.3 s; the lifter sees one jump at the seam). Truth: each camera's calibration "
                 "(Qualisys, z up). Lean: mean angle between the published skeleton's axis (ankles' midpoint to "
                 "thorax, world frame) and the four-view triangulation's same axis turned into that camera's true "
                 "world frame."), ""]
        rows = []
        for run_name, views in f["runs"].items():
            for view, v in views.items():
                for name in f["variants"]:
                    s = v[name]
                    rows.append([run_name, view, name, v["true_pitch_roll_deg"][0], v["true_pitch_roll_deg"][1],
                                 s["estimated_pitch_roll_deg"][0], s["estimated_pitch_roll_deg"][1], s["up_deg_end"],
                                 v["true_height_m"], s["height_cm_end"], s["lean_vs_reference_deg"], s["lean_deg"],
                                 s["reference_lean_deg"]])
        out += [md_table(["run", "view", "variant", "true pitch", "true roll", "est. pitch", "est. roll", "up err deg",
                          "true height m", "height err cm", "lean vs ref deg", "lean deg", "ref lean deg"], rows,
                         digits=1), ""]
    out += ["### Cost per frame, one person", "",
            "Each call timed on its own (`time.perf_counter_ns`, garbage collector off) after a warm-up past the "
            "bone calibration; the smoother on the same frames in the same run as the baseline.", "",
            md_table(["what", "iterations", "p50 us", "p95 us", "p99 us", "p50 / smoother"],
                     [[r["what"], r["iterations"], r["p50_us"], r["p95_us"], r["p99_us"], r["p50_vs_smoother"]]
                      for r in report["cost"]], digits=1), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import RESULTS, produce

    ap = argparse.ArgumentParser(prog="python -m benchmarks world", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two segments of each kind, one camera, fewer timings")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results/world, "
                                                "benchmarks/results/world-quick with --quick)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--cameras", type=int, default=None, help="virtual cameras per mocap segment (default 3, 1 with --quick)")
    ap.add_argument("--footage", default=None, help="Pose2Sim-style folder: cam01..04.mp4 + Calib.qca.txt")
    ap.add_argument("--skip-footage", action="store_true", help="no real footage (no MediaPipe)")
    ap.add_argument("--iterations", type=int, default=None, help="timed frames per cost row (default 3000, 500 with --quick)")
    args = ap.parse_args(argv)
    cameras = args.cameras if args.cameras is not None else (1 if args.quick else 3)
    iterations = args.iterations if args.iterations is not None else (500 if args.quick else 3000)
    if cameras < 1 or iterations < 10:
        ap.error("--cameras must be at least 1 and --iterations at least 10")
    args.out = args.out or str(RESULTS / ("world-quick" if args.quick else "world"))
    args.smoke = args.quick
    settings = {"quick": args.quick, "cameras": cameras, "iterations": iterations, "skip_footage": args.skip_footage,
                "footage": args.footage}
    report = produce("world", args, lambda: run(settings, progress=not args.quiet), lambda r: (markdown(r), {}))
    if report is None:
        return 1
    print(markdown(report).split("### Mocap")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
