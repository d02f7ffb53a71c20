"""Learning the gravity direction from people (``engines.gravity.UpModel``): data, training, evaluation.

Data: windows of real CMU motion of the training subjects (the lifter's validation subjects,
``training.config``'s ``validation_groups`` 02, 06 and 09, are held out), filmed by virtual
cameras whose pitch and roll are drawn (``engines.camera.sample_tilted_cameras``: pitch -45..15
degrees, negative looking down; roll -20..20; height 0.5-2.5 m; distance 1.5-8 m; field of view
50-80 degrees; the lifter's image sizes and principal-point jitter), with the lifter's 3D
augmentation (left/right mirror of the body, bone and body scale), the detector noise model
(``training.synth.DETECTOR``), a mirror of the whole image half the time (valid: it negates the
up vector's x) and, for one window in ten, most joints hidden so the model learns what it cannot
see. Target: world up in the camera frame, ``R @ (0, 1, 0)``.

Loss: the negative log likelihood of the von Mises-Fisher distribution over 3D directions whose
mean and concentration the network predicts. Training runs for a wall-clock budget with a cosine
learning rate and keeps the checkpoint with the lowest median angular error on fixed validation
windows.

Evaluation (``evaluate_up``): on the validation subjects with fresh tilted cameras, the angular
error of single windows and of a causal confidence-weighted running mean over the first 2 s
(60 frames at 30 fps) of clip segments (from a clip's start, anywhere, and while walking),
against the body axis of the shipped lifter's 3D (thorax minus mean ankle, averaged the same way)
and a fusion of both.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.camera import CameraBatch, TiltedCameraRanges, sample_tilted_cameras
from engines.gravity import ANKLE_HEIGHT_M, UpConfig, UpModel, UpNet, angle_deg, window_features
from engines.skeleton import CANONICAL
from training.data import group_weights, make_sampler, open_motion, split_by_groups
from training.motion import MotionArchive
from training.synth import DETECTOR, NO_AUGMENTATION, Augmentation, NoiseModel, project_windows

__all__ = ["UpTrainSettings", "measure_ankle_height", "tilted_batch", "train_up", "evaluate_up", "format_evaluation"]

VALIDATION_GROUPS = ("02", "06", "09")
_LA, _RA = CANONICAL.index("left_ankle"), CANONICAL.index("right_ankle")
_THORAX = CANONICAL.index("thorax")
_PELVIS = 0


@dataclass(frozen=True)
class UpTrainSettings:
    minutes: float = 15.0
    seed: int = 0
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    validation_windows: int = 2048
    validate_every_s: float = 30.0
    hidden_fraction: float = 0.1  # windows with most joints hidden
    config: UpConfig = UpConfig()
    cameras: TiltedCameraRanges = TiltedCameraRanges()

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ValueError(f"--minutes must be > 0, got {self.minutes}")
        if self.batch < 1 or self.validation_windows < 1:
            raise ValueError("batch and validation_windows must be >= 1")


def measure_ankle_height(archive: MotionArchive, still_speed: float = 0.15, min_frames: int = 10) -> dict[str, Any]:
    """The ankle joint's height over the archive's floor (y = 0) while the foot rests on it.

    Per clip: the lower of the two ankles in every frame, kept where that ankle moves slower than
    ``still_speed`` m/s (a foot in stance); the median of its height. Returns the median over
    clips with at least ``min_frames`` such frames, and per group. ``engines.gravity.ANKLE_HEIGHT_M``
    holds the number for the shared CMU data.
    """
    J = archive.joints3d
    per_clip, groups = [], np.array(archive.clip_groups)
    by_group: dict[str, list[float]] = {}
    for c in range(archive.num_clips):
        f = np.flatnonzero(archive.clip == c)
        if len(f) < 2:
            continue
        ank = J[f][:, [_LA, _RA]].astype(np.float64)  # (n, 2, 3)
        speed = np.zeros((len(f), 2))
        speed[1:] = np.linalg.norm(np.diff(ank, axis=0), axis=-1) * float(archive.fps)
        lower = np.argmin(ank[:, :, 1], axis=1)
        y = ank[np.arange(len(f)), lower, 1][speed[np.arange(len(f)), lower] < still_speed]
        if len(y) >= min_frames:
            per_clip.append(float(np.median(y)))
            by_group.setdefault(str(groups[c]), []).append(per_clip[-1])
    if not per_clip:
        raise ValueError("no clip has a foot at rest long enough to measure the ankle height")
    return {"ankle_height_m": float(np.median(per_clip)), "clips": len(per_clip),
            "per_group_m": {g: float(np.median(v)) for g, v in sorted(by_group.items())}}


def _floor_of(w3: np.ndarray) -> np.ndarray:
    """(B,) floor height of 3D windows (B, T, J, 3): the lowest ankle minus the ankle height."""
    return np.min(w3[:, :, [_LA, _RA], 1], axis=(1, 2)) - ANKLE_HEIGHT_M


def film_tilted(rng: np.random.Generator, w3: np.ndarray, noise: NoiseModel = DETECTOR,
                augment: Augmentation = NO_AUGMENTATION, ranges: TiltedCameraRanges = TiltedCameraRanges()
                ) -> tuple[np.ndarray, np.ndarray, CameraBatch]:
    """3D windows (B, T, J, 3) (world y-up) -> model inputs (B, T, J, 3), world up in each camera
    (B, 3) and the cameras: one tilted camera per window, framing all of its frames."""
    B, T, J, _ = w3.shape
    cams = sample_tilted_cameras(rng, w3.reshape(B, T * J, 3), ranges, ground_y=_floor_of(w3), max_tries=200,
                                 strict=False)
    batch = project_windows(rng, w3, noise, augment, cameras=cams)
    return batch.inputs, cams.R[:, :, 1].copy(), cams


def tilted_batch(rng: np.random.Generator, sampler, n: int, hidden_fraction: float = 0.1,
                 mirror: bool = True, ranges: TiltedCameraRanges = TiltedCameraRanges()) -> tuple[np.ndarray, np.ndarray]:
    """A training batch: inputs (n, T, 17, 3) float32 and world up in the camera frame (n, 3)."""
    w3 = sampler.gather(sampler.sample_ends(rng, n))
    inputs, up, _ = film_tilted(rng, w3, DETECTOR, Augmentation(aim_offset_m=(0.0, 0.0, 0.0)), ranges)
    if mirror:
        m = rng.uniform(size=n) < 0.5
        inputs[m] = CANONICAL.flip(inputs[m], axis=0)  # u -> -u (screen is centred), left <-> right
        up[m, 0] = -up[m, 0]
    hide = np.flatnonzero(rng.uniform(size=n) < hidden_fraction)
    for b in hide:  # most joints hidden for the whole window: a person too close or mostly occluded
        keep = rng.uniform(size=CANONICAL.num_joints) < rng.uniform(0.0, 0.4)
        inputs[b, :, ~keep] = 0.0
    return inputs, up


def _vmf_nll(raw, target):
    """Mean von Mises-Fisher negative log likelihood of unit ``target`` (N, 3) under raw outputs (N, 4)."""
    import torch

    mu = torch.nn.functional.normalize(raw[:, :3], dim=-1)
    log_kappa = 9.0 * torch.sigmoid(raw[:, 3])
    kappa = torch.exp(log_kappa)
    cos = (mu * target).sum(-1)
    # -log C3(kappa) - kappa cos, C3 = kappa / (4 pi sinh kappa); log sinh k = k + log(1 - e^-2k) - log 2
    nll = -log_kappa + kappa * (1.0 - cos) + torch.log1p(-torch.exp(-2.0 * kappa) + 1e-12) + math.log(2.0 * math.pi)
    return nll.mean()


def _median_error(model: UpModel, inputs: np.ndarray, up: np.ndarray) -> float:
    pred, _ = model.predict(inputs)
    return float(np.median(angle_deg(pred, up)))


def train_up(data: str | os.PathLike, out: str | os.PathLike, settings: UpTrainSettings = UpTrainSettings(),
             progress: bool = True) -> dict[str, Any]:
    """Train an up-direction model for ``settings.minutes`` of wall clock; write the best to ``out``."""
    import torch

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    archive = open_motion(data, progress=progress)
    split = split_by_groups(archive, VALIDATION_GROUPS)
    cfg = settings.config
    sampler = make_sampler(archive, cfg.frames, split.train_frames, group_weights(archive, split.train_frames, 0.5))
    val_sampler = make_sampler(archive, cfg.frames, split.val_frames)
    vrng = np.random.default_rng(12345)
    val_in, val_up = tilted_batch(vrng, val_sampler, settings.validation_windows, hidden_fraction=0.0)

    net = UpNet.build(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    budget = settings.minutes * 60.0
    start = last_val = time.monotonic()
    best, steps, history = float("inf"), 0, []
    meta_train = {"data": str(data), "validation_groups": list(VALIDATION_GROUPS), "minutes": settings.minutes,
                  "seed": settings.seed, "batch": settings.batch, "loss": "von Mises-Fisher NLL",
                  "cameras": {k: getattr(settings.cameras, k) for k in ("pitch_deg", "roll_deg", "height_m", "distance_m", "fov_deg")}}
    while True:
        elapsed = time.monotonic() - start
        done = elapsed >= budget
        if done or time.monotonic() - last_val >= settings.validate_every_s:
            last_val = time.monotonic()
            err = _median_error(UpNet.to_numpy(net), val_in, val_up)
            history.append({"seconds": round(elapsed, 1), "steps": steps, "val_median_deg": round(err, 3)})
            if progress:
                print(f"[train-up] {elapsed:6.0f} s  step {steps:6d}  validation median {err:5.2f} deg", flush=True)
            if err < best:
                best = err
                UpNet.save(net, out, {"training": {**meta_train, "steps": steps, "seconds": round(elapsed, 1),
                                                   "val_median_deg": round(err, 3)}})
        if done:
            break
        for group in opt.param_groups:
            group["lr"] = settings.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / budget)))
        inputs, up = tilted_batch(rng, sampler, settings.batch, settings.hidden_fraction, ranges=settings.cameras)
        x, _ = window_features(inputs, cfg)
        loss = _vmf_nll(net(torch.from_numpy(x)), torch.from_numpy(up.astype(np.float32)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return {"out": str(out), "steps": steps, "seconds": round(time.monotonic() - start, 1),
            "val_median_deg": best, "history": history}


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------
def body_axis_up(joints_cam: np.ndarray) -> np.ndarray:
    """Up estimate (..., 3) from camera-frame 3D joints (..., 17, 3): unit(thorax - mean ankle)."""
    v = joints_cam[..., _THORAX, :] - 0.5 * (joints_cam[..., _LA, :] + joints_cam[..., _RA, :])
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)


def ring_windows(frames: np.ndarray, T: int) -> np.ndarray:
    """(S, F, J, 3) consecutive inputs -> (S, F, T, J, 3): at frame t the last T frames, the first
    repeated before the clip has T (what ``realtime.lift.PersonBuffer`` holds)."""
    F = frames.shape[1]
    idx = np.maximum(np.arange(F)[:, None] + np.arange(-T + 1, 1)[None, :], 0)
    return frames[:, idx]


def running_mean(up: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Causal weighted mean direction (S, F, 3) of per-frame directions (S, F, 3), weights (S, F)."""
    acc = np.cumsum(up * weight[..., None], axis=1)
    return acc / (np.linalg.norm(acc, axis=-1, keepdims=True) + 1e-12)


def _segments(archive: MotionArchive, frames: np.ndarray, length: int, rng: np.random.Generator, count: int,
              kind: str) -> np.ndarray:
    """Start frames of ``count`` segments of ``length`` frames inside one clip each, among ``frames``."""
    clip = archive.clip
    starts = np.zeros(len(clip), np.int64)
    change = np.flatnonzero(np.diff(clip)) + 1
    for s, e in zip(np.concatenate([[0], change]), np.concatenate([change, [len(clip)]])):
        starts[s:e] = s
    ends_ok = np.zeros(len(clip), bool)
    last = np.concatenate([change, [len(clip)]])
    for s, e in zip(np.concatenate([[0], change]), last):
        ends_ok[s:max(s, e - length + 1)] = True
    cand = frames[ends_ok[frames]]
    if kind == "start":
        cand = cand[cand == starts[cand]]
    elif kind == "walk":
        pel = archive.joints3d[:, _PELVIS, :].astype(np.float64)
        disp = np.linalg.norm(pel[np.minimum(cand + length - 1, len(pel) - 1)][:, [0, 2]] - pel[cand][:, [0, 2]], axis=-1)
        speed = disp / ((length - 1) / float(archive.fps))
        upright = archive.joints3d[cand, _THORAX, 1] - archive.joints3d[cand, _PELVIS, 1] > 0.35
        cand = cand[(speed > 0.8) & (speed < 2.0) & upright]
    if len(cand) == 0:
        return cand
    return rng.choice(cand, size=min(count, len(cand)) if kind == "start" else count, replace=kind != "start")


def evaluate_up(data: str | os.PathLike, model: UpModel | None = None, lifter: Any = "default", seed: int = 0,
                windows: int = 2000, segments: int = 150, seconds: float = 2.0, lifter_weight: float = 0.35,
                progress: bool = False) -> dict[str, Any]:
    """Angular errors (degrees) on the validation subjects filmed by tilted cameras.

    ``single``: median / p90 over ``windows`` random windows, for the model, the lifter's body
    axis and their fusion. ``running_<kind>``: a causal running mean over the first ``seconds`` of
    ``segments`` clip segments each filmed by one tilted camera (``start``: clips' first frames;
    ``any``: random starts; ``walk``: horizontal pelvis speed 0.8-2 m/s), the model's votes
    weighted by their confidence, the lifter's equally; the fusion adds the lifter axis to the
    model's votes as a vote of confidence ``lifter_weight`` (a fixed guess, not tuned); errors
    after 1 s and after ``seconds``.
    """
    import engines

    model = UpModel.load() if model is None else model
    engine = engines.load(lifter, backend="torch", device="cpu") if isinstance(lifter, (str, os.PathLike)) else lifter
    T = model.frames
    if engine.receptive_field != T:
        raise ValueError(f"the lifter's window ({engine.receptive_field}) differs from the up model's ({T})")
    archive = open_motion(data, progress=progress)
    split = split_by_groups(archive, VALIDATION_GROUPS)
    rng = np.random.default_rng(seed)
    sampler = make_sampler(archive, T, split.val_frames)
    inputs, truth = tilted_batch(rng, sampler, windows, hidden_fraction=0.0, mirror=False)
    up, conf = model.predict(inputs)
    axis = body_axis_up(np.asarray(engine.infer(inputs), np.float64))
    fuse_w = lifter_weight
    fused = running_mean(np.stack([up, axis], 1), np.stack([conf, np.full_like(conf, fuse_w)], 1))[:, -1]
    res: dict[str, Any] = {"validation_groups": list(VALIDATION_GROUPS), "seed": seed}

    def stats(err: np.ndarray) -> dict[str, float]:
        return {"median_deg": float(np.median(err)), "p90_deg": float(np.percentile(err, 90)), "n": int(len(err))}

    res["single"] = {"model": stats(angle_deg(up, truth)), "lifter_axis": stats(angle_deg(axis, truth)),
                     "fused": stats(angle_deg(fused, truth)),
                     "confidence_median": float(np.median(conf))}
    hi = conf >= np.median(conf)
    res["single"]["model_confident_half"] = stats(angle_deg(up[hi], truth[hi]))
    L = int(round(seconds * float(archive.fps)))
    one_s = min(L, int(round(float(archive.fps)))) - 1
    for kind in ("start", "any", "walk"):
        starts = _segments(archive, split.val_frames, L, rng, segments, kind)
        if len(starts) == 0:
            res[f"running_{kind}"] = {"segments": 0}
            continue
        w3 = archive.joints3d[starts[:, None] + np.arange(L)[None, :]].astype(np.float64)
        seq, truth_s, _ = film_tilted(rng, w3)
        win = ring_windows(seq, T).reshape(-1, T, CANONICAL.num_joints, 3)
        up_s, conf_s = model.predict(win)
        axis_s = body_axis_up(np.asarray(engine.infer(win), np.float64))
        S = len(starts)
        up_s, conf_s, axis_s = up_s.reshape(S, L, 3), conf_s.reshape(S, L), axis_s.reshape(S, L, 3)
        mean_m = running_mean(up_s, conf_s)
        mean_a = running_mean(axis_s, np.ones((S, L)))
        acc = np.cumsum(up_s * conf_s[..., None] + axis_s * fuse_w, axis=1)
        mean_f = acc / (np.linalg.norm(acc, axis=-1, keepdims=True) + 1e-12)
        entry: dict[str, Any] = {"segments": int(S)}
        for name, est in (("model", mean_m), ("lifter_axis", mean_a), ("fused", mean_f)):
            entry[name] = {"after_1s": stats(angle_deg(est[:, one_s], truth_s)),
                           f"after_{seconds:g}s": stats(angle_deg(est[:, -1], truth_s))}
        res[f"running_{kind}"] = entry
        if progress:
            print(f"[evaluate-up] {kind}: {S} segments", flush=True)
    return res


def format_evaluation(res: dict[str, Any]) -> str:
    """A plain-text table of ``evaluate_up``'s result."""
    lines = [f"{'case':34s} {'model':>15s} {'lifter axis':>15s} {'fused':>15s}   (median / p90 deg)"]

    def cell(d: dict[str, float]) -> str:
        return f"{d['median_deg']:6.2f} /{d['p90_deg']:6.2f}"

    s = res["single"]
    lines.append(f"{'single window':34s} {cell(s['model']):>15s} {cell(s['lifter_axis']):>15s} {cell(s['fused']):>15s}")
    for kind in ("start", "any", "walk"):
        e = res.get(f"running_{kind}", {})
        if not e.get("segments"):
            continue
        for when in [k for k in e["model"]]:
            label = f"running mean, {kind} ({e['segments']}), {when.replace('_', ' ')}"
            lines.append(f"{label:34s} {cell(e['model'][when]):>15s} {cell(e['lifter_axis'][when]):>15s} "
                         f"{cell(e['fused'][when]):>15s}")
    return "\n".join(lines)
