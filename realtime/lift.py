"""Lifting stage: per-person ring buffers of the last T frames of 2D keypoints -> 3D joints.

Each tracked person (by detector id) owns a buffer of the last ``T = engine.receptive_field``
frames of (u, v, confidence). Start-up: the first frame fills the whole buffer (the model's
contract: before T frames exist, repeat the first), so a person gets a 3D pose from their first
frame on. A person who disappears loses their buffer; if they come back they start fresh. All
persons of a frame are lifted in one batched ``engine.infer`` call.

``scale`` multiplies every output joint (pelvis included, so the skeleton grows about the camera
and keeps its 2D projection): ``engines.models.height_scale`` turns a user's ``--height`` into it.
"""

from __future__ import annotations

import numpy as np

from engines.skeleton import CANONICAL

__all__ = ["Lifter", "PersonBuffer"]


class PersonBuffer:
    """The last ``frames`` keypoint frames of one person, oldest first (a ring buffer)."""

    def __init__(self, frames: int, joints: int = CANONICAL.num_joints) -> None:
        self.data = np.zeros((frames, joints, 3), np.float32)
        self.pos = 0  # where the next frame goes
        self.count = 0

    def push(self, keypoints: np.ndarray) -> None:
        if self.count == 0:
            self.data[:] = keypoints
        else:
            self.data[self.pos] = keypoints
        self.pos = (self.pos + 1) % len(self.data)
        self.count += 1

    def window(self) -> np.ndarray:
        """(frames, joints, 3), oldest first, the latest frame last."""
        return np.roll(self.data, -self.pos, axis=0)


class Lifter:
    """2D detections -> (P, 17, 3) camera-frame joints through an ``engines`` engine."""

    def __init__(self, engine, scale: float = 1.0) -> None:
        self.engine = engine
        self.scale = float(scale)
        self.frames = int(engine.receptive_field)
        self.buffers: dict[int, PersonBuffer] = {}

    def __call__(self, keypoints: np.ndarray, ids: np.ndarray) -> np.ndarray:
        ids = [int(i) for i in ids]
        for gone in set(self.buffers) - set(ids):
            del self.buffers[gone]  # lost: reset
        if not ids:
            return np.zeros((0, CANONICAL.num_joints, 3), np.float32)
        windows = []
        for pid, kp in zip(ids, keypoints):
            buf = self.buffers.get(pid)
            if buf is None:
                buf = self.buffers[pid] = PersonBuffer(self.frames)
            buf.push(kp)
            windows.append(buf.window())
        out = self.engine.infer(np.stack(windows)).astype(np.float32)
        if self.scale != 1.0:
            out *= np.float32(self.scale)
        return out

    def reset(self) -> None:
        self.buffers.clear()
