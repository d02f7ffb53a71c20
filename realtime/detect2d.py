"""2D detection: an image -> canonical 2D keypoints with confidence, per person.

Both detectors return an ``engines.mediapipe_pose.Detection`` (its docstring states the output
convention: canonical joints in screen coordinates with confidence, per tracked person).

Backends: ``mediapipe`` (MediaPipe Pose 0.10.21 on the CPU, one person, video mode, the full
landmark model: the only one bundled in the wheel) and ``blazepose`` (the same networks ported to
PyTorch, ``realtime.blazepose``: CPU or CUDA, torch or ONNX Runtime, several people with stable
ids). Both map MediaPipe's 33 landmarks to the canonical joints through :func:`to_canonical`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from engines import mediapipe_pose
from engines.mediapipe_pose import Detection, to_canonical

__all__ = ["DETECTORS", "BlazePoseDetector", "Detection", "MediaPipeDetector", "make_detector", "to_canonical"]

DETECTORS = ("mediapipe", "blazepose")


def _warmup_image() -> np.ndarray | None:
    """The first frame of the bundled demo clip: a person, so both of MediaPipe's networks load."""
    import cv2

    cap = cv2.VideoCapture(str(Path(__file__).resolve().parent / "assets" / "demo.mp4"))
    ok, img = cap.read()
    cap.release()
    return img if ok else None


class MediaPipeDetector(mediapipe_pose.MediaPipeDetector):
    """:class:`engines.mediapipe_pose.MediaPipeDetector` warmed up on the first frame of the
    bundled demo clip, so that a stream's first frame does not wait for MediaPipe's networks."""

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 world_landmarks: bool = False, smooth_landmarks: bool = False) -> None:
        super().__init__(min_detection_confidence, min_tracking_confidence, world_landmarks, smooth_landmarks,
                         warmup_image=_warmup_image())


class BlazePoseDetector:
    """MediaPipe's BlazePose networks ported to PyTorch (``realtime.blazepose``), several people.

    ``device``: ``cpu`` or ``cuda``; ``runtime``: ``torch`` or ``onnxruntime`` (default: ONNX
    Runtime on the CPU, torch on CUDA); ``max_persons``: people tracked at once (1 reproduces
    MediaPipe Pose exactly); ``detect_every``: frames between detector runs while fewer than
    ``max_persons`` are tracked (with nobody tracked it runs on every frame).
    """

    name = "blazepose"

    def __init__(self, device: str = "cpu", runtime: str | None = None, max_persons: int = 4,
                 detect_every: int = 5, precision: str = "fp32", smooth_landmarks: bool = False) -> None:
        from realtime.blazepose import BlazePose, BlazePoseConfig

        if runtime is None:
            runtime = "torch" if device == "cuda" else "onnxruntime"
        self.config = BlazePoseConfig(max_persons=max_persons, runtime=runtime, device=device,
                                      precision=precision, detect_every=detect_every, smooth=smooth_landmarks)
        self._pose = BlazePose(self.config)

    def detect(self, image_bgr: np.ndarray, timestamp_s: float | None = None) -> Detection:
        t0 = time.monotonic_ns()
        frame = self._pose.process(image_bgr, timestamp_s)
        h, w = image_bgr.shape[:2]
        det = Detection.empty() if frame.persons == 0 else to_canonical(frame.pixels, frame.visibility, frame.ids, w, h)
        det.t_start_ns, det.t_end_ns = t0, time.monotonic_ns()
        return det

    def close(self) -> None:
        self._pose.close()


def make_detector(name: str, device: str = "cpu", smooth_landmarks: bool = False, **options):
    """A detector by name; ``ValueError`` naming the choices for an unknown one. ``device`` and
    ``options`` (runtime, max_persons, detect_every, precision) apply to ``blazepose``;
    ``smooth_landmarks`` turns on MediaPipe's 2D landmark filter (off: the pipeline smooths in 3D)."""
    if name == "mediapipe":
        if device != "cpu":
            raise ValueError("the mediapipe detector runs on the CPU only; use --detector blazepose for --device cuda")
        return MediaPipeDetector(smooth_landmarks=smooth_landmarks)
    if name == "blazepose":
        if device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {device!r}; choose cpu or cuda")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("--device cuda was requested but no CUDA GPU is visible to torch on this machine")
        return BlazePoseDetector(device=device, smooth_landmarks=smooth_landmarks, **options)
    raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}")
