"""``--record take.bvh``: the take as a BVH file (Biovision Hierarchy) for Blender and friends.

The hierarchy is the rig of ``realtime.rig`` (VRM bone names, T-pose rest, rig frame: right-handed,
y up, metres, the person facing +z), plus a HeadTop joint at the crown and End Sites after the
hands, feet and HeadTop. Channels: the root (Hips) has 6, ``Xposition Yposition Zposition
Zrotation Xrotation Yrotation``; every other joint 3, ``Zrotation Xrotation Yrotation``. Angles
are degrees, composed in the written order (``R = Rz @ Rx @ Ry``, intrinsic), the usual BVH (and
CMU) convention that Blender's importer and ``training.bvh`` read. Offsets are the person's bone
lengths at the end of the take (the calibrated ones); rotations do not depend on lengths, so
every frame is the recorded pose on that skeleton. ``training prepare take.bvh`` reads it back
to the canonical joints (``engines.skeleton`` recipe "posestream").

Frames: ``Frame Time`` is one source frame (1 / the source's frame rate). The take starts at the
person's first appearance; a frame the pipeline dropped or where the person was out of view
repeats the last pose, so time stays true. A BVH file holds one skeleton: the person seen in
the most frames goes to ``take.bvh``, every other person to ``take.person<ID>.bvh`` beside it.
Everything is kept in memory and written atomically at the end (also after Ctrl-C).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engines.rotations import euler_from_matrix, matrix_from_quat
from realtime.outputs import FrameResult, Output
from realtime.rig import RIG_NODES, RIG_PARENTS

__all__ = ["BvhRecorder", "bvh_text", "euler_zxy_deg"]

_ROOT_CHANNELS = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
_JOINT_CHANNELS = "CHANNELS 3 Zrotation Xrotation Yrotation"
_END_SITES = {  # leaf -> End Site offset in its own frame (rest axes), metres; cosmetic bone tails
    "LeftHand": (0.08, 0.0, 0.0),
    "RightHand": (-0.08, 0.0, 0.0),
    "LeftFoot": (0.0, -0.05, 0.13),
    "RightFoot": (0.0, -0.05, 0.13),
    "HeadTop": (0.0, 0.03, 0.0),
}


def euler_zxy_deg(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) angles (z, x, y) in degrees with R = Rz(z) @ Rx(x) @ Ry(y)."""
    return euler_from_matrix(R, "ZXY", degrees=True)


def _hierarchy(offsets: np.ndarray) -> str:
    children: dict[int, list[int]] = {i: [] for i in range(len(RIG_NODES))}
    for i, p in enumerate(RIG_PARENTS):
        if p >= 0:
            children[p].append(i)
    lines = ["HIERARCHY"]

    def node(i: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if i == 0 else 'JOINT'} {RIG_NODES[i]}")
        lines.append(f"{pad}{{")
        off = (0.0, 0.0, 0.0) if i == 0 else offsets[i]
        lines.append(f"{pad}\tOFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        lines.append(f"{pad}\t{_ROOT_CHANNELS if i == 0 else _JOINT_CHANNELS}")
        for c in children[i]:
            node(c, depth + 1)
        if not children[i]:
            e = _END_SITES.get(RIG_NODES[i], (0.0, 0.02, 0.0))
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}",
                          f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    node(0, 0)
    return "\n".join(lines) + "\n"


def _dfs_order() -> list[int]:
    """Nodes in the order their channels appear in a motion line (depth first, as written)."""
    order: list[int] = []

    def visit(i: int) -> None:
        order.append(i)
        for c, p in enumerate(RIG_PARENTS):
            if p == i:
                visit(c)

    visit(0)
    return order


def bvh_text(rows: np.ndarray, offsets: np.ndarray, fps: float) -> str:
    """BVH text for rig rows (F, R, 7) (root position + local quaternions) on ``offsets`` (R, 3)."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 3 or rows.shape[1:] != (len(RIG_NODES), 7):
        raise ValueError(f"expected rig rows shaped (frames, {len(RIG_NODES)}, 7), got {rows.shape}")
    if not (fps > 0 and np.isfinite(fps)):
        raise ValueError(f"the frame rate must be positive, got {fps}")
    order = _dfs_order()
    angles = euler_zxy_deg(matrix_from_quat(rows[:, order, 3:]))  # (F, R, 3)
    motion = np.concatenate([rows[:, 0, :3], angles.reshape(len(rows), -1)], axis=1)
    buf = io.StringIO()
    np.savetxt(buf, motion, fmt="%.6f", delimiter=" ")
    return (_hierarchy(offsets) + f"MOTION\nFrames: {len(rows)}\nFrame Time: {1.0 / fps:.8f}\n" + buf.getvalue())


class BvhRecorder(Output):
    """Collects the rig of every published frame; :meth:`close` (or :meth:`write`) writes the BVH take(s)."""

    needs_rig = True

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self._slot = -1  # BVH frame index of the current message
        self._last_frame: int | None = None
        self._takes: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._offsets: dict[int, np.ndarray] = {}

    def send(self, result: FrameResult) -> None:
        """Record one frame; its ``rig`` (a ``realtime.rig.RigFrame``) is required when anyone is in view."""
        frame, rig = int(result.frame), result.rig
        # time advances by the source frames elapsed (dropped frames included); a loop restart counts one
        step = frame - self._last_frame if self._last_frame is not None and frame > self._last_frame else 1
        self._slot += step
        self._last_frame = frame
        if rig is None:
            if len(result.joints):
                raise ValueError("a BVH recording needs the rig solver (realtime.rig.RigSolver) in the pipeline")
            return
        for pid, rows in zip(rig.ids, rig.rows):
            self._takes.setdefault(pid, []).append((self._slot, np.array(rows, dtype=np.float64)))
            self._offsets[pid] = rows[:, :3]

    def paths(self) -> dict[int, Path]:
        """Where each recorded person goes: the most-seen person to :attr:`path`, others beside it."""
        ranked = sorted(self._takes, key=lambda pid: (-len(self._takes[pid]), pid))
        out = {}
        for k, pid in enumerate(ranked):
            out[pid] = self.path if k == 0 else self.path.with_name(f"{self.path.stem}.person{pid}{self.path.suffix}")
        return out

    def write(self) -> Path:
        """Write every take atomically; with nobody recorded, no file is written. Returns the main path."""
        from engines.fileio import atomic_path

        for pid, path in self.paths().items():
            take = self._takes[pid]
            first, last = take[0][0], take[-1][0]
            rows = np.empty((last - first + 1, len(RIG_NODES), 7))
            filled = np.zeros(len(rows), dtype=bool)
            for slot, r in take:
                rows[slot - first] = r
                filled[slot - first] = True
            held = np.maximum.accumulate(np.where(filled, np.arange(len(rows)), 0))  # hold the last pose
            text = bvh_text(rows[held], self._offsets[pid], self.fps)
            with atomic_path(path) as tmp:
                tmp.write_text(text)
        return self.path

    def close(self) -> None:
        self.write()
