"""Synthetic 2D from real 3D motion: windows, virtual cameras, augmentation and a detector noise model.

A training sample is a window of ``T`` consecutive frames of one clip ending at frame ``t``
(frames before the clip's start repeat its first frame, as the real-time buffer does at
start-up). The 3D window is augmented (left/right flip, per-bone length scaling and an overall
body scale), a static virtual camera is drawn around the subject (``engines.camera``), the
joints are projected to pixels, the :class:`NoiseModel` turns clean projections into what a real
2D detector delivers, and pixels become screen coordinates (``engines.models`` describes the
model input). Targets are the current frame's joints in the camera frame, metres, with the
root depth expressed for the model's assumed field of view (see :func:`assumed_depth_scale`).

Shapes: windows (B, T, 17, 3) = (u, v, confidence); targets (B, T, 17, 3), every frame of the
window (the causal transformer is supervised on all of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.camera import CameraBatch, VirtualCameraRanges, normalize_screen, sample_camera_batch
from engines.models import ASSUMED_FOV_DEG
from engines.skeleton import CANONICAL

__all__ = [
    "NoiseModel",
    "CLEAN",
    "DETECTOR",
    "Augmentation",
    "Batch",
    "WindowSampler",
    "project_windows",
    "sample_cameras_for",
    "scale_bones",
    "assumed_depth_scale",
    "body_height_2d",
]

_PARENTS = np.array(CANONICAL.parents)
_PAIRS = CANONICAL.left_right_pairs
_ANKLES = [CANONICAL.index("left_ankle"), CANONICAL.index("right_ankle")]
_LOWER_LEGS = _ANKLES + [CANONICAL.index("left_knee"), CANONICAL.index("right_knee")]


@dataclass(frozen=True)
class NoiseModel:
    """What separates a real detector's keypoints from clean projections.

    All sizes are relative to the 2D body height ``h`` (pixel height of the projected skeleton's
    bounding box), so the noise looks the same for a near or far person and any image size.

    * ``jitter``: per-joint Gaussian noise, sigma = ``jitter * h``; with ``jitter_random`` each
      sample draws its own sigma uniformly in [0, jitter] (detectors are sometimes sharp,
      sometimes not). ``jitter_smooth`` of the variance is temporally correlated (an AR(1)
      process with coefficient ``jitter_ar``), the rest is white: real detector noise wobbles.
    * ``outliers``: fraction of joint-frames moved by a random vector of length
      ``outlier_scale * h`` (about 10% of body height) and given a low confidence.
    * ``swap``: per window, the probability that one left/right pair (e.g. the knees) is
      swapped for a run of frames at the end of the window, a classic detector failure.
    * ``drop``: fraction of joint-frames that are missing (confidence 0).
    * confidences of good joints are drawn in [``conf_good_low``, 1]; outliers and swapped
      joints in [0.1, 0.6].
    * joints outside the image: confidence set to 0 with probability ``offscreen_drop`` and
      otherwise to at most 0.3; this is how MediaPipe reports limbs out of frame.
    * ``truncate``: per window, the probability that the frame's bottom edge cuts the body, the
      commonest webcam situation (sitting at a desk): the ankles, or ankles and knees, are
      missing (confidence 0) from a random frame to the end of the window.
    """

    jitter: float = 0.0
    jitter_random: bool = False
    jitter_smooth: float = 0.5
    jitter_ar: float = 0.8
    outliers: float = 0.0
    outlier_scale: float = 0.1
    swap: float = 0.0
    drop: float = 0.0
    conf_good_low: float = 1.0
    offscreen_drop: float = 1.0
    truncate: float = 0.0

    def apply(self, rng: np.random.Generator, pixels: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Noisy keypoints (B, T, J, 3) = (x, y, confidence) from clean pixels (B, T, J, 2)."""
        B, T, J, _ = pixels.shape
        h = body_height_2d(pixels)[..., None, None]  # (B, T, 1, 1), per frame
        xy = pixels.copy()
        conf = rng.uniform(self.conf_good_low, 1.0, (B, T, J)) if self.conf_good_low < 1 else np.ones((B, T, J))
        if self.jitter > 0:
            sigma = self.jitter * (rng.uniform(0, 1, (B, 1, 1, 1)) if self.jitter_random else 1.0)
            white = rng.normal(size=xy.shape)
            smooth = np.empty_like(white)
            smooth[:, 0] = rng.normal(size=(B, J, 2))
            a = self.jitter_ar
            for k in range(1, T):
                smooth[:, k] = a * smooth[:, k - 1] + np.sqrt(1 - a * a) * white[:, k]
            noise = np.sqrt(self.jitter_smooth) * smooth + np.sqrt(1 - self.jitter_smooth) * rng.normal(size=xy.shape)
            xy += noise * sigma * h
        if self.swap > 0:
            swap_now = rng.uniform(size=B) < self.swap
            for b in np.flatnonzero(swap_now):
                a_idx, b_idx = _PAIRS[rng.integers(len(_PAIRS))]
                start = rng.integers(0, T)
                xy[b, start:, [a_idx, b_idx]] = xy[b, start:, [b_idx, a_idx]]
                conf[b, start:, [a_idx, b_idx]] = rng.uniform(0.1, 0.6, (2, T - start))
        if self.outliers > 0:
            hit = rng.uniform(size=(B, T, J)) < self.outliers
            direction = rng.normal(size=xy.shape)
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True) + 1e-9
            length = self.outlier_scale * h * rng.uniform(0.5, 1.5, (B, T, J, 1))
            xy += np.where(hit[..., None], direction * length, 0.0)
            conf = np.where(hit, rng.uniform(0.1, 0.6, hit.shape), conf)
        w = size[:, None, None, 0]
        hgt = size[:, None, None, 1]
        offscreen = (xy[..., 0] < 0) | (xy[..., 0] >= w) | (xy[..., 1] < 0) | (xy[..., 1] >= hgt)
        if offscreen.any():
            gone = rng.uniform(size=offscreen.shape) < self.offscreen_drop
            conf = np.where(offscreen, np.where(gone, 0.0, np.minimum(conf, 0.3)), conf)
        if self.drop > 0:
            conf = np.where(rng.uniform(size=conf.shape) < self.drop, 0.0, conf)
        if self.truncate > 0:
            cut = np.flatnonzero(rng.uniform(size=B) < self.truncate)
            knees_too = rng.uniform(size=len(cut)) < 0.5
            start = rng.integers(0, T, len(cut)) * (rng.uniform(size=len(cut)) < 0.5)  # half: whole window
            for b, knees, s0 in zip(cut, knees_too, start):
                conf[b, s0:, _LOWER_LEGS if knees else _ANKLES] = 0.0
        bad = ~np.isfinite(xy).all(axis=-1)
        conf = np.where(bad, 0.0, conf)
        xy = np.where(bad[..., None], 0.0, xy)
        return np.concatenate([xy, conf[..., None]], axis=-1)


CLEAN = NoiseModel()
"""Exact projections, every joint visible unless outside the image."""

DETECTOR = NoiseModel(jitter=0.02, jitter_random=True, outliers=0.03, swap=0.05, drop=0.03,
                      conf_good_low=0.5, offscreen_drop=0.7, truncate=0.15)
"""The training default: looks like MediaPipe on real footage (noise, outliers, swaps, drops)."""


@dataclass(frozen=True)
class Augmentation:
    """3D augmentation before projection."""

    flip: float = 0.5  # probability of a left/right mirror
    body_scale: tuple[float, float] = (0.85, 1.15)  # overall size, uniform
    bone_scale: float = 0.08  # each bone (left/right together) times U(1 - b, 1 + b)
    # The camera aims this far (uniform, metres, world x/y/z) from the subject's pelvis, so the
    # person appears anywhere in the image (off-centre people are seen obliquely; a walking user
    # leaves the centre), sometimes partly outside it.
    aim_offset_m: tuple[float, float, float] = (0.6, 0.3, 0.6)


NO_AUGMENTATION = Augmentation(flip=0.0, body_scale=(1.0, 1.0), bone_scale=0.0, aim_offset_m=(0.0, 0.0, 0.0))


def scale_bones(joints: np.ndarray, bone_factor: np.ndarray) -> np.ndarray:
    """Rebuild (B, T, J, 3) poses with each bone (child j) scaled by ``bone_factor`` (B, J).

    The pelvis stays where it is; every child moves so that its bone vector keeps its direction
    and gets the new length; descendants follow.
    """
    out = joints.copy()
    for j in range(1, joints.shape[-2]):
        p = _PARENTS[j]
        out[..., j, :] = out[..., p, :] + bone_factor[:, None, j, None] * (joints[..., j, :] - joints[..., p, :])
    return out


def body_height_2d(pixels: np.ndarray) -> np.ndarray:
    """Bounding-box height (or width, if larger) of 2D poses (..., J, 2), ignoring NaNs."""
    finite = np.isfinite(pixels).all(axis=-1, keepdims=True)
    hi = np.where(finite, pixels, -np.inf).max(axis=-2)
    lo = np.where(finite, pixels, np.inf).min(axis=-2)
    ext = (hi - lo).max(axis=-1)  # -inf when no joint is in front of the camera
    return np.maximum(np.where(np.isfinite(ext), ext, 1.0), 1.0)


def assumed_depth_scale(cameras: CameraBatch) -> np.ndarray:
    """(n,) factor turning true depth into the depth the model is trained to predict.

    The model assumes ``ASSUMED_FOV_DEG`` across the longer image side; a camera with focal f
    (pixels) makes the subject look as large as at depth ``z * f_assumed / f`` with that
    assumption. Multiply predictions by the inverse to recover the true depth when f is known.
    """
    f_assumed = 0.5 * cameras.size.max(axis=1) / np.tan(np.radians(ASSUMED_FOV_DEG) / 2)
    return f_assumed / cameras.f[:, 0]


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray  # (B, T, J, 3) float32 screen u, v, confidence
    targets: np.ndarray  # (B, T, J, 3) float32 camera frame metres, root depth for the assumed FOV
    true_targets: np.ndarray  # (B, T, J, 3) float32 camera frame metres, true depth
    cameras: CameraBatch


def sample_cameras_for(rng: np.random.Generator, w3: np.ndarray, ranges: VirtualCameraRanges = VirtualCameraRanges(),
                       aim: np.ndarray | None = None) -> CameraBatch:
    """One camera per 3D window (B, T, J, 3), standing on its floor, aimed at ``aim`` (B, 3)
    (default: the window's last pelvis)."""
    B = len(w3)
    floor = np.min(w3[:, :, [3, 6], 1], axis=(1, 2)) - 0.08  # ankle joint to sole
    cams = sample_camera_batch(rng, B, w3[:, -1, 0, :] if aim is None else aim, ranges, ground_y=0.0)
    # cameras are drawn for a floor at y = 0; lift them to this window's floor
    shift = np.zeros((B, 3))
    shift[:, 1] = floor
    return CameraBatch(R=cams.R, t=cams.t - np.einsum("nij,nj->ni", cams.R, shift), f=cams.f,
                       c=cams.c, size=cams.size, dist=cams.dist)


class WindowSampler:
    """Draws windows from a motion archive's frames, projected through random cameras.

    ``joints3d`` (F, J, 3) world y-up metres, ``clip`` (F,) clip index; ``frames`` restricts the
    window *end* frames (e.g. the training subjects' frames); ``weights`` per end frame.
    """

    def __init__(self, joints3d: np.ndarray, clip: np.ndarray, window: int,
                 frames: np.ndarray | None = None, weights: np.ndarray | None = None) -> None:
        self.joints = np.asarray(joints3d, dtype=np.float64)
        self.clip = np.asarray(clip)
        self.window = int(window)
        starts = np.zeros(len(self.clip), dtype=np.int64)
        change = np.flatnonzero(np.diff(self.clip)) + 1
        bounds = np.concatenate([[0], change])
        for s, e in zip(bounds, np.concatenate([change, [len(self.clip)]])):
            starts[s:e] = s
        self.clip_start = starts
        self.frames = np.arange(len(self.clip)) if frames is None else np.asarray(frames)
        p = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.p = None if p is None else p / p.sum()

    def gather(self, ends: np.ndarray) -> np.ndarray:
        """3D windows (B, T, J, 3) ending at frames ``ends``, clamped at each clip's start."""
        offs = np.arange(-self.window + 1, 1)
        idx = np.maximum(ends[:, None] + offs[None, :], self.clip_start[ends][:, None])
        return self.joints[idx]

    def sample_ends(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self.frames, size=n, p=self.p)

    def make(self, rng: np.random.Generator, ends: np.ndarray, noise: NoiseModel = DETECTOR,
             augment: Augmentation = Augmentation(), ranges: VirtualCameraRanges = VirtualCameraRanges()) -> Batch:
        """A batch for the given window end frames (deterministic for a seeded ``rng``)."""
        return project_windows(rng, self.gather(ends), noise, augment, ranges)


def project_windows(rng: np.random.Generator, w3: np.ndarray, noise: NoiseModel = DETECTOR,
                    augment: Augmentation = Augmentation(), ranges: VirtualCameraRanges = VirtualCameraRanges(),
                    cameras: CameraBatch | None = None, body_scale: float = 1.0) -> Batch:
    """Augment 3D windows (B, T, J, 3) (world y-up, metres), film them and add detector noise.

    One static camera per window, drawn around it unless ``cameras`` (B of them) are given;
    ``body_scale`` scales every body about its pelvis (evaluation of size robustness).
    """
    B = len(w3)
    root = w3[:, -1:, :1, :]
    local = w3 - root
    if augment.flip > 0:
        flip = rng.uniform(size=B) < augment.flip
        local[flip] = CANONICAL.flip(local[flip], axis=0)
    factor = np.ones((B, CANONICAL.num_joints))
    if augment.bone_scale > 0:
        per_bone = rng.uniform(1 - augment.bone_scale, 1 + augment.bone_scale, (B, CANONICAL.num_joints))
        for a, b in _PAIRS:  # left and right bones stay equal
            per_bone[:, b] = per_bone[:, a]
        factor = per_bone
    factor = factor * rng.uniform(*augment.body_scale, (B, 1)) * body_scale
    local = scale_bones(local, factor)
    w3 = local + root
    if cameras is None:
        aim = w3[:, -1, 0, :] + rng.uniform(-1.0, 1.0, (B, 3)) * np.asarray(augment.aim_offset_m)
        cameras = sample_cameras_for(rng, w3, ranges, aim=aim)
    cams = cameras
    pixels = cams.project(w3)  # (B, T, J, 2)
    noisy = noise.apply(rng, pixels, cams.size)
    screen = normalize_screen(noisy[..., :2], cams.size[:, None, None, 0], cams.size[:, None, None, 1])
    inputs = np.concatenate([screen, noisy[..., 2:]], axis=-1)
    inputs[..., :2] = np.where(inputs[..., 2:] > 0, inputs[..., :2], 0.0)
    cam3d = cams.world_to_camera(w3)  # (B, T, J, 3)
    scale = assumed_depth_scale(cams)
    targets = cam3d.copy()
    targets[..., 2] += (scale[:, None, None] - 1.0) * cam3d[..., :1, 2]  # move the root's depth only
    return Batch(inputs.astype(np.float32), targets.astype(np.float32), cam3d.astype(np.float32), cams)
