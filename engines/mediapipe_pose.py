"""MediaPipe Pose as a 2D detector of the canonical joints: what the real-time pipeline and the
training of the multi-view method (2D of real videos) both run.

Output convention (what the lifter takes, see ``engines.models``): a :class:`Detection` with
``keypoints`` (P, 17, 3) as (u, v, confidence) in *screen coordinates* (pixels rescaled so the
longer image side spans [-1, 1], centred), ``pixels`` (P, 17, 2) the same points in pixels,
``ids`` (P,) person ids that stay the same while a person is tracked. A detector that loses a
joint gives it confidence 0; NaN coordinates never leave this module.

:class:`MediaPipeDetector`: MediaPipe Pose 0.10.21 on the CPU, one person, video mode, the full
landmark model (the only one bundled in the wheel). :func:`to_canonical` maps MediaPipe's 33
landmarks to the canonical joints, for it and for any other detector of the same landmarks.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import numpy as np

from engines.camera import normalize_screen
from engines.skeleton import CANONICAL, MEDIAPIPE_TO_CANONICAL

__all__ = ["Detection", "MediaPipeDetector", "to_canonical"]


@dataclass
class Detection:
    keypoints: np.ndarray  # (P, 17, 3) float32 screen u, v, confidence
    pixels: np.ndarray  # (P, 17, 2) float32
    ids: np.ndarray  # (P,) int64
    scores: np.ndarray  # (P,) float32 person confidence
    t_start_ns: int = 0
    t_end_ns: int = 0
    world: np.ndarray | None = None  # (P, 17, 3) float32: the detector's own 3D, when asked for (see MediaPipeDetector)
    landmarks33: np.ndarray | None = None  # (P, 33, 2) float32 MediaPipe landmarks in pixels
    visibility33: np.ndarray | None = None  # (P, 33) float32 their visibility

    @classmethod
    def empty(cls) -> Detection:
        J = CANONICAL.num_joints
        return cls(np.zeros((0, J, 3), np.float32), np.zeros((0, J, 2), np.float32),
                   np.zeros(0, np.int64), np.zeros(0, np.float32))

    @property
    def persons(self) -> int:
        return int(self.keypoints.shape[0])


@contextlib.contextmanager
def _native_stderr_silenced():
    """MediaPipe's C++ code logs set-up chatter straight to file descriptor 2; hide it while it
    builds its graph (our own errors are raised after this block, never inside it)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class MediaPipeDetector:
    """MediaPipe Pose in video mode (tracking between frames), mapped to the canonical joints.

    ``world_landmarks=True`` also returns MediaPipe's own 3D estimate (``pose_world_landmarks``:
    metres, origin between the hips, camera-aligned axes x right, y down, z away) mapped to the
    canonical joints in ``Detection.world``: what a user of MediaPipe alone gets, for comparisons.
    ``smooth_landmarks`` is MediaPipe's own temporal filter (off for the pipeline, which smooths
    in 3D; MediaPipe's default is on). ``warmup_image`` (BGR, showing a person) is processed once
    while the detector is built, so that both of MediaPipe's networks are loaded before the first
    real frame (a live stream's first frame would otherwise wait for them).
    """

    name = "mediapipe"

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 world_landmarks: bool = False, smooth_landmarks: bool = False,
                 warmup_image: np.ndarray | None = None) -> None:
        import cv2

        self.world_landmarks = world_landmarks
        with _native_stderr_silenced():
            import mediapipe as mp

            settings = {"model_complexity": 1, "smooth_landmarks": smooth_landmarks,
                        "min_detection_confidence": min_detection_confidence,
                        "min_tracking_confidence": min_tracking_confidence}
            if warmup_image is not None:  # load both networks now (static mode: no tracking state carried over)
                with mp.solutions.pose.Pose(static_image_mode=True, **settings) as pose:
                    pose.process(cv2.cvtColor(warmup_image, cv2.COLOR_BGR2RGB))
            self._pose = mp.solutions.pose.Pose(static_image_mode=False, **settings)
            if warmup_image is not None:
                self._pose.process(cv2.cvtColor(np.zeros_like(warmup_image), cv2.COLOR_BGR2RGB))
        self._next_id = 0
        self._tracking = False

    def detect(self, image_bgr: np.ndarray) -> Detection:
        import cv2

        t0 = time.monotonic_ns()
        h, w = image_bgr.shape[:2]
        result = self._pose.process(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        if result.pose_landmarks is None:
            self._tracking = False
            det = Detection.empty()
        else:
            if not self._tracking:  # a new person (or the same one after being lost): a new id
                self._next_id += 1
                self._tracking = True
            lm = result.pose_landmarks.landmark
            px = np.array([[p.x * w, p.y * h] for p in lm], dtype=np.float64)
            vis = np.array([p.visibility for p in lm], dtype=np.float64)
            det = to_canonical(px[None], vis[None], np.array([self._next_id]), w, h)
            if self.world_landmarks and result.pose_world_landmarks is not None:
                xyz = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], dtype=np.float64)
                det.world = MEDIAPIPE_TO_CANONICAL(xyz)[None].astype(np.float32)
        det.t_start_ns, det.t_end_ns = t0, time.monotonic_ns()
        return det

    def close(self) -> None:
        self._pose.close()


def to_canonical(px: np.ndarray, vis: np.ndarray, ids: np.ndarray, w: int, h: int) -> Detection:
    """MediaPipe's 33 landmarks of P people, pixels (P, 33, 2) and visibility (P, 33), as a
    :class:`Detection` of canonical joints; non-finite joints get confidence 0 and coordinates 0."""
    if px.ndim != 3 or px.shape[1:] != (33, 2) or vis.shape != px.shape[:2]:
        raise ValueError(f"expected pixels (P, 33, 2) and visibility (P, 33), got {px.shape} and {vis.shape}")
    canon = MEDIAPIPE_TO_CANONICAL(px.astype(np.float64))
    conf = MEDIAPIPE_TO_CANONICAL.confidence(vis.astype(np.float64))
    bad = ~np.isfinite(canon).all(axis=-1) | ~np.isfinite(conf)
    conf = np.where(bad, 0.0, np.clip(conf, 0.0, 1.0))
    canon = np.where(bad[..., None], 0.0, canon)
    uv = normalize_screen(canon, w, h)
    kp = np.concatenate([np.where(conf[..., None] > 0, uv, 0.0), conf[..., None]], axis=-1)
    return Detection(kp.astype(np.float32), canon.astype(np.float32), np.asarray(ids, np.int64),
                     conf.mean(axis=-1).astype(np.float32), landmarks33=px.astype(np.float32),
                     visibility33=vis.astype(np.float32))
