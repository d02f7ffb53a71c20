"""``realtime doctor``: check that this machine can run posestream, end to end on a real source.

Until the streaming pipeline lands this is the nearest thing to ``realtime run`` that works: it
opens the camera (or a video file), runs MediaPipe Pose on a few frames, maps the landmarks to
posestream's canonical skeleton and reports what it found, together with the versions of the
stack and whether a CUDA GPU is usable.
"""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SourceError", "DoctorReport", "stack_versions", "open_source", "check_source"]


class SourceError(OSError):
    """A camera or video that cannot be opened or read."""


def stack_versions() -> dict[str, str]:
    """Versions of the libraries posestream runs on ('missing: ...' when one does not import)."""
    out = {"python": platform.python_version()}
    for module in ("numpy", "torch", "cv2", "mediapipe", "onnxruntime", "open3d", "zmq", "numba"):
        try:
            out[module] = str(importlib.import_module(module).__version__)
        except Exception as exc:  # noqa: BLE001 - report any import failure, e.g. a missing .so
            out[module] = f"missing: {exc}"
    try:
        import torch

        out["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    except Exception as exc:  # noqa: BLE001
        out["cuda"] = f"unknown: {exc}"
    return out


def open_source(camera: int | None, video: str | None):
    """Open a camera index or a video file with OpenCV; ``SourceError`` in one sentence if not."""
    import cv2

    if video is not None:
        path = Path(video)
        if not path.is_file():
            raise SourceError(f"video file {video} does not exist")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise SourceError(f"{video}: OpenCV could not open it as a video (corrupt or unsupported format)")
        return cap
    index = 0 if camera is None else camera
    cv2.setLogLevel(0)  # OpenCV's own probing warnings would bury our one-line message
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        device = f"/dev/video{index}" if sys.platform.startswith("linux") else f"index {index}"
        raise SourceError(
            f"could not open camera {index} (tried {device} through OpenCV); is a webcam connected "
            "and not in use by another program? Use --video FILE to test with a recording."
        )
    return cap


@dataclass(frozen=True)
class DoctorReport:
    frames: int
    with_person: int
    last_pose_world: np.ndarray | None  # (17, 3) canonical joints, metres, MediaPipe world frame


def check_source(cap, frames: int) -> DoctorReport:
    """Run MediaPipe Pose on up to ``frames`` frames and map the last pose to the canonical joints."""
    import cv2
    import mediapipe as mp

    from engines.skeleton import MEDIAPIPE_TO_CANONICAL

    read = found = 0
    last = None
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        while read < frames:
            ok, frame = cap.read()
            if not ok:
                break
            read += 1
            result = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if result.pose_world_landmarks is None:
                continue
            found += 1
            world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark])
            last = MEDIAPIPE_TO_CANONICAL(world)
    if read == 0:
        raise SourceError("the source opened but delivered no frames (corrupt video or camera not streaming)")
    return DoctorReport(frames=read, with_person=found, last_pose_world=last)
