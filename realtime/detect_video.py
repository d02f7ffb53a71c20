"""``realtime detect``: 2D landmarks of every frame of a video, written to one ``.npz``.

The file holds, for F frames and P person slots (P = the most people seen in one frame; a slot
is a position in that frame's list, the person's identity is in ``ids``):

* ``landmarks`` (F, P, 33, 2) float32: MediaPipe's 33 landmarks in pixels, NaN where no person;
* ``visibility`` (F, P, 33) float32: their visibility in [0, 1], 0 where no person;
* ``ids`` (F, P) int64: person ids, stable while a person is tracked, -1 where no person;
* ``keypoints`` (F, P, 17, 3) float32: the canonical joints (screen u, v, confidence) the lifter
  takes, zeros where no person;
* ``timestamps`` (F,) float64 seconds (frame index / fps), ``fps``, ``width``, ``height``,
  ``detector`` and ``video``.

The output is written through ``engines.fileio.atomic_path``: a failure never leaves half a file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.skeleton import CANONICAL

__all__ = ["DetectConfig", "detect_video", "write_keypoints"]


@dataclass(frozen=True)
class DetectConfig:
    video: str
    out: str
    detector: str = "mediapipe"
    device: str = "cpu"
    runtime: str | None = None
    max_persons: int = 4
    smooth: bool = True
    max_frames: int | None = None
    progress: bool = True


def _frame_count(path: str) -> int | None:
    import cv2

    cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    return n if n > 0 else None


def detect_video(config: DetectConfig) -> dict[str, np.ndarray]:
    """Run a detector over every frame; the arrays described in the module docstring."""
    from tqdm import tqdm

    from realtime.detect2d import DETECTORS, make_detector
    from realtime.sources import SourceSpec, open_source

    if config.detector not in DETECTORS:
        raise ValueError(f"unknown detector {config.detector!r}; choose one of: {', '.join(DETECTORS)}")
    if config.device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {config.device!r}; choose cpu or cuda")
    if config.detector == "mediapipe" and config.device == "cuda":
        raise ValueError("the mediapipe detector runs on the CPU only; use --detector blazepose for --device cuda")
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda was requested but no CUDA GPU is visible to torch on this machine")
    if config.max_persons < 1:
        raise ValueError(f"--max-persons must be at least 1, got {config.max_persons}")
    source = open_source(SourceSpec("video", config.video, fast=True))
    options = {}
    if config.detector == "blazepose":
        options = {"runtime": config.runtime, "max_persons": config.max_persons}
    detector = make_detector(config.detector, config.device, smooth_landmarks=config.smooth, **options)
    px, vis, ids, kps = [], [], [], []
    total = _frame_count(config.video)
    if config.max_frames is not None:
        total = min(total or config.max_frames, config.max_frames)
    try:
        with tqdm(total=total, desc=f"{config.detector} {Path(config.video).name}", unit="frame",
                  disable=not config.progress, file=sys.stderr) as bar:
            while config.max_frames is None or len(px) < config.max_frames:
                frame = source.read()
                if frame is None:
                    break
                det = detector.detect(frame.image)
                if det.persons:
                    px.append(det.landmarks33)
                    vis.append(det.visibility33)
                else:
                    px.append(np.zeros((0, 33, 2), np.float32))
                    vis.append(np.zeros((0, 33), np.float32))
                ids.append(det.ids)
                kps.append(det.keypoints)
                bar.update(1)
    finally:
        source.release()
        detector.close()
    f, p = len(px), max((len(i) for i in ids), default=0)
    out = {
        "landmarks": np.full((f, p, 33, 2), np.nan, np.float32),
        "visibility": np.zeros((f, p, 33), np.float32),
        "ids": np.full((f, p), -1, np.int64),
        "keypoints": np.zeros((f, p, CANONICAL.num_joints, 3), np.float32),
    }
    for i in range(f):
        n = len(ids[i])
        out["landmarks"][i, :n] = px[i]
        out["visibility"][i, :n] = vis[i]
        out["ids"][i, :n] = ids[i]
        out["keypoints"][i, :n] = kps[i]
    out.update({"timestamps": np.arange(f) / source.fps, "fps": np.float64(source.fps),
                "width": np.int64(source.width), "height": np.int64(source.height),
                "detector": np.array(config.detector), "video": np.array(str(config.video))})
    return out


def write_keypoints(arrays: dict[str, np.ndarray], out: str | Path) -> Path:
    """Write the arrays to ``out`` (a ``.npz``) atomically."""
    from engines.fileio import atomic_path

    out = Path(out)
    with atomic_path(out, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return out
