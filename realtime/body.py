"""The body stage: steady skeletons, placed in the world, standing on the floor.

Per frame, after smoothing, for every person (camera-frame joints in, one :class:`BodyFrame` out):

1. **Steady bones** (``realtime.rig.RigSolver``): bone lengths calibrated per person over the
   first seconds, then fixed; the published joints are the forward kinematics of the solved rig,
   so limbs never stretch and positions agree with the rig's rotations.
2. **World frame** (``realtime.world``): the camera's up direction and height, given,
   calibrated or estimated causally from the people in view (with the learned up-direction
   model of ``engines.gravity`` when one is given, fed from the 2D windows kept here).
3. **Ground contact** (``realtime.contact``): per foot contact probabilities and a translation of
   the whole skeleton that keeps contact feet in place on the floor and every foot above it.

The result is in the frame the stream asked for: ``world`` (y up, floor at y = 0) or ``camera``
(today's camera frame; the same steady, grounded skeletons mapped back through the transform).
Rig rows are in the rig frame for ``camera`` and in the world frame for ``world``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.skeleton import CANONICAL
from realtime.contact import ContactSolver
from realtime.lift import PersonBuffer
from realtime.rig import CAMERA_TO_RIG, RigFrame, RigSolver, rows_to_frame
from realtime.world import WorldEstimator, WorldTransform

__all__ = ["FRAMES", "BodyFrame", "BodyStage", "build_body_stage"]

FRAMES = ("world", "camera")
_C = np.diag(CAMERA_TO_RIG)  # rig frame <-> camera frame


@dataclass(frozen=True)
class BodyFrame:
    """One frame's bodies: ``joints`` (P, 17, 3) float32 in ``frame_of_reference``; ``rig`` the
    rows in that frame (rig frame for ``camera``); ``world`` the transform in use (None while
    nobody has been seen); ``contacts`` (P, 2) ``[left, right]`` 0-1."""

    frame_of_reference: str
    joints: np.ndarray
    rig: RigFrame
    world: WorldTransform | None
    contacts: np.ndarray


def _moved(a: WorldTransform, b: WorldTransform) -> bool:
    """Whether the floor moved enough under locked feet to start the locks afresh (5 cm, 3 degrees)."""
    return abs(a.height_m - b.height_m) > 0.05 or float(np.dot(a.up, b.up)) < np.cos(np.radians(3.0))


class BodyStage:
    """Steady bones, world frame and ground contact for the publish stage (see module doc).

    ``up_model``: an object with ``frames`` and ``predict(windows (N, T, 17, 3)) -> (up (N, 3),
    confidence (N,))`` (``engines.gravity.UpModel``); it runs every ``up_every``-th frame per
    person. ``contacts``: a ``ContactSolver``, or None to publish the body where the lifter put it.
    """

    def __init__(self, frame: str = "world", rig: RigSolver | None = None, world: WorldEstimator | None = None,
                 contacts: ContactSolver | None = None, up_model=None, up_every: int = 3) -> None:
        if frame not in FRAMES:
            raise ValueError(f"--frame must be world or camera, got {frame!r}")
        self.frame = frame
        self.rig = rig or RigSolver()
        self.world = world or WorldEstimator()
        self.contacts = contacts
        self.up_model = up_model
        self.up_every = max(int(up_every), 1)
        self._buffers: dict[int, PersonBuffer] = {}
        self._count = 0
        self._locked_in: WorldTransform | None = None  # the transform the contact locks were made in
        self._quat: tuple[WorldTransform, np.ndarray] | None = None

    def _quat_of(self, world: WorldTransform) -> np.ndarray:
        """The quaternion turning the rig frame into the world, once per transform."""
        if self._quat is None or self._quat[0] is not world:
            from engines.rotations import quat_from_matrix

            self._quat = (world, quat_from_matrix(world.rotation @ _C))
        return self._quat[1]

    def _up_samples(self, ids: list[int], keypoints: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.up_model is None:
            return None, None
        for gone in set(self._buffers) - set(ids):
            del self._buffers[gone]
        for pid, kp in zip(ids, keypoints):
            buf = self._buffers.get(pid)
            if buf is None:
                buf = self._buffers[pid] = PersonBuffer(int(self.up_model.frames))
            buf.push(kp)
        self._count += 1
        if (self._count - 1) % self.up_every:
            return None, None
        windows = np.stack([self._buffers[pid].window() for pid in ids])
        up, confidence = self.up_model.predict(windows)
        return up, confidence * self.up_every  # one prediction stands for up_every frames

    def __call__(self, ids, joints_cam: np.ndarray, keypoints: np.ndarray, t_ns: int) -> BodyFrame:
        """Persons ``ids`` (P,), their smoothed camera-frame joints (P, 17, 3) and 2D keypoints
        (P, 17, 3) (screen u, v, confidence) at capture time ``t_ns``."""
        ids = [int(i) for i in ids]
        rig = self.rig(ids, joints_cam, t_ns)
        fk = rig.joints  # (P, 17, 3) camera frame, float64
        conf = np.asarray(keypoints, np.float64)[:, :, 2] if len(ids) else np.zeros((0, CANONICAL.num_joints))
        up, weight = self._up_samples(ids, keypoints) if ids else (None, None)
        world = self.world.update(ids, fk, conf, t_ns, up, weight)
        if self.contacts is not None and world is not None:
            if self._locked_in is not None and _moved(self._locked_in, world):
                self.contacts.reset()  # the floor the feet were locked to has moved
                self._locked_in = world
            elif self._locked_in is None:
                self._locked_in = world
        contacts = np.zeros((len(ids), 2))
        if not ids:
            joints, rows = fk, rig.rows
        else:  # the estimator has a transform from the first person on
            Jw = world.to_world(fk)
            shift = np.zeros((len(ids), 3))
            if self.contacts is not None:
                shift, contacts = self.contacts(ids, Jw, t_ns)
                Jw = Jw + shift[:, None, :]
            if self.frame == "world":
                joints = Jw
                rows = rows_to_frame(rig.rows, world.rotation @ _C, world.matrix[:3, 3], self._quat_of(world))
                rows[:, 0, :3] += shift
            else:
                joints = world.to_camera(Jw)
                rows = rig.rows.copy()
                rows[:, 0, :3] += (shift @ world.rotation) * CAMERA_TO_RIG  # world shift -> camera -> rig frame
        out_rig = RigFrame(rig.ids, rows, rig.lengths, rig.joints)
        return BodyFrame(self.frame, np.ascontiguousarray(joints, np.float32), out_rig, world, contacts)


def build_body_stage(frame: str = "world", given=None, contacts: bool = True) -> BodyStage:
    """The body stage ``realtime run`` uses: ``given`` is a calibrated ``WorldTransform``
    (``--calibration``), a ``realtime.world.TiltFlags`` (``--camera-pitch``/``-roll``/``-height``,
    any of them) or None (estimate everything, with the shipped learned up model when the tilt is
    not given). Compiles the rig kernels before the first frame."""
    from realtime.rig import warmup
    from realtime.world import TiltFlags

    warmup()
    if isinstance(given, WorldTransform):
        world = WorldEstimator(fixed_up=given.up, fixed_height_m=given.height_m, source="calibration")
    elif isinstance(given, TiltFlags):
        world = WorldEstimator(fixed_up=given.up, fixed_height_m=given.height_m)
    elif given is None:
        world = WorldEstimator()
    else:
        raise TypeError(f"given must be a WorldTransform, TiltFlags or None, got {type(given).__name__}")
    up_model = None
    if world.fixed_up is None:
        from engines.gravity import UpModel

        up_model = UpModel.load()
    return BodyStage(frame, RigSolver(), world, ContactSolver() if contacts else None, up_model=up_model)
