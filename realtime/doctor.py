"""``realtime doctor``: check that this machine can run posestream, end to end on a real source.

It opens the camera (or a video file), runs MediaPipe Pose on a few frames, maps the landmarks to
posestream's canonical skeleton and reports what it found, together with the versions of the
stack and whether a CUDA GPU is usable; nothing is streamed.
"""

from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass

import numpy as np

from realtime import sources
from realtime.sources import FrameSource, SourceError, SourceSpec

__all__ = ["DoctorReport", "SourceError", "check_source", "open_source", "stack_versions"]


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


def open_source(camera: int | None, video: str | None) -> FrameSource:
    """Open a camera index or a video file (read as fast as it decodes); ``SourceError`` if not."""
    if video is not None:
        return sources.open_source(SourceSpec("video", video, fast=True))
    return sources.open_source(SourceSpec("camera", str(0 if camera is None else camera)))


@dataclass(frozen=True)
class DoctorReport:
    frames: int
    with_person: int
    last_pose_world: np.ndarray | None  # (17, 3) canonical joints, metres, MediaPipe world frame


def check_source(source: FrameSource, frames: int) -> DoctorReport:
    """Run MediaPipe Pose on up to ``frames`` frames and map the last pose to the canonical joints."""
    import cv2
    import mediapipe as mp

    from engines.skeleton import MEDIAPIPE_TO_CANONICAL

    read = found = 0
    last = None
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        while read < frames:
            frame = source.read()
            if frame is None:
                break
            read += 1
            result = pose.process(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB))
            if result.pose_world_landmarks is None:
                continue
            found += 1
            world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark])
            last = MEDIAPIPE_TO_CANONICAL(world)
    if read == 0:
        raise SourceError("the source opened but delivered no frames (corrupt video or camera not streaming)")
    return DoctorReport(frames=read, with_person=found, last_pose_world=last)
