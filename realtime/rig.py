"""Bone rotations for a humanoid rig, solved from the canonical 17 joints, and forward kinematics.

Game engines and VTuber apps animate an avatar by rotating bones; posestream measures joint
positions. This module turns one into the other, per frame, and back (forward kinematics), so
the rotations can be checked against the positions they came from.

Conventions (the same in the ZeroMQ v2 message, ``docs/game-engines.md`` and the BVH takes)
-----------------------------------------------------------------------------------------
* **Rig frame**: right-handed, y up, metres: the camera frame turned 180 degrees about its x
  axis, ``rig = (x, -y, -z)`` of camera ``(x right, y down, z forward)``. So x is the image's
  right, y up, z points out of the screen towards the viewer (OpenGL / glTF / Blender-camera
  axes). A person facing the camera faces +z.
* **Rest pose**: T-pose facing +z: legs straight down (-y), spine, neck and head straight up
  (+y), arms straight out sideways (left arm along +x, right arm along -x, palms down). The
  person's left is +x. In the rest pose every bone's rotation is the identity, its axes the rig
  frame's axes (as in a normalised VRM humanoid).
* **Rotations**: unit quaternions in the order **(x, y, z, w)** everywhere in posestream
  (Unity, glTF and VMC order), ``w >= 0``. A bone's *local* rotation is relative to its parent
  bone (``R_global = R_global(parent) @ R_local``); the Hips' is relative to the rig frame.
  The conversions are ``engines.rotations``' (``quat_from_matrix`` and ``matrix_from_quat`` are
  re-exported here).
* **Bones** (``engines.skeleton.HUMANOID_BONES``, VRM names) plus one site, HeadTop (the
  crown, fixed on the Head) (:data:`RIG_NODES`). Each node has a local offset: where it starts in its
  parent's frame; the Hips' offset is the root position (the pelvis) in the rig frame.

Forward kinematics: ``p = p(parent) + R_global(parent) @ offset``,
``R_global = R_global(parent) @ R_local``. Canonical joints are node origins (pelvis = Hips,
spine = Chest, thorax = Neck, shoulder/elbow/wrist = UpperArm/LowerArm/Hand, hip/knee/ankle =
UpperLeg/LowerLeg/Foot, nose = Head, head top = HeadTop). The Head pivots at the nose, the
Human3.6M "Neck/Nose" joint: the skull base is not observed, and a pivot derived from the nose
and crown would move with the unobservable roll of the head about its nose-crown axis.

How the rotations are chosen
----------------------------
Every bone's direction is the direction between its two joints, exactly, so forward
kinematics reproduces every joint except for changes in bone length. The rotation *about* a
bone's axis (twist) is not observable from positions; it is taken from neighbours so it is
stable: Hips from the hip line (x) and the pelvis->spine direction; Spine from the mean of hip
and shoulder lines; Chest and Neck from the shoulder line; Shoulders from the chest's forward
axis; an upper arm or leg from the plane it bends in (elbow/knee), blended towards the
parent's twist-free swing when the limb is straight; forearm and shin share their upper bone's
bend plane (a hinge). The head's twist keeps its left-right axis perpendicular to the chest's
up axis (head turns read as turns, not rolls). The Neck's rest direction leans forward
(:data:`NECK_REST_DEG`), as thorax-to-nose does in a neutral posture.

Bone lengths: per person, the median over the first :attr:`RigConfig.calibration_s` seconds,
then fixed (or, if :attr:`RigConfig.refine_m_per_s` is set, refined by a median tracker moving
at most that fast), so limbs never stretch from frame to frame. The hip half-width is shared by both sides (the rest
pose stays symmetric); every other length is per side.

Shapes: joints ``(N, 17, 3)``; rows ``(N, R, 7)`` = offset xyz + quaternion xyzw per node of
:data:`RIG_NODES`; any leading axes are flattened to N by the batch functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engines.rotations import matrix_from_quat, quat_from_matrix
from engines.skeleton import CANONICAL, HEAD_SITES_M, HUMANOID_BONES, HUMANOID_PARENTS

__all__ = [
    "BACKENDS",
    "CAMERA_TO_RIG",
    "LENGTH_NAMES",
    "NODE_JOINT",
    "QUATERNION_ORDER",
    "REST_POSE",
    "RIG_AXES",
    "RIG_NODES",
    "RIG_PARENTS",
    "RigConfig",
    "RigFrame",
    "RigSolver",
    "canonical_from_rows",
    "forward_kinematics",
    "global_rotations",
    "matrix_from_quat",
    "measure_lengths",
    "offsets_from_lengths",
    "quat_from_matrix",
    "rows_to_frame",
    "solve",
    "warmup",
]

RIG_NODES: tuple[str, ...] = HUMANOID_BONES + ("HeadTop",)
"""The rig's nodes: the 19 humanoid bones and the crown, a site fixed on the head."""
RIG_PARENTS: tuple[int, ...] = HUMANOID_PARENTS + (4,)
QUATERNION_ORDER = "x, y, z, w"
RIG_AXES = "right-handed, y up, metres: x = image right, y = up, z = towards the camera (camera (x, -y, -z))"
REST_POSE = "T-pose facing +z, left arm along +x, legs along -y, palms down; every rotation identity"
CAMERA_TO_RIG = np.array([1.0, -1.0, -1.0])
"""Per-axis factors from the camera frame to the rig frame (the map is its own inverse)."""

_N = {name: i for i, name in enumerate(RIG_NODES)}
NODE_JOINT: tuple[str, ...] = (
    "pelvis", "", "spine", "thorax", "neck_nose", "", "left_shoulder", "left_elbow", "left_wrist", "",
    "right_shoulder", "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee",
    "right_ankle", "head",
)  # fmt: skip
"""The canonical joint at each node's origin ("" where none: Spine starts at the pelvis like the
Hips, the Shoulders at the thorax like the Neck)."""
_CANON_NODE = np.array([NODE_JOINT.index(n) for n in CANONICAL.joint_names])  # canonical joint -> node

LENGTH_NAMES: tuple[str, ...] = (
    "hip_half_width", "spine", "chest", "neck", "head", "left_shoulder", "right_shoulder", "left_upper_arm",
    "right_upper_arm", "left_lower_arm", "right_lower_arm", "left_upper_leg", "right_upper_leg",
    "left_lower_leg", "right_lower_leg",
)  # fmt: skip
"""Per-person lengths (metres) that fix the rig's offsets; ``neck`` is thorax to nose, ``head``
nose to crown."""

_EPS = 1e-9
_X, _Y, _Z = np.eye(3)
NECK_REST_DEG = 46.0
"""Forward tilt of the thorax->nose direction from the chest's up axis in a neutral posture: the
median over 29 CMU clips (every 6th of the shared set at 10 fps), measured with the chest frame
of this module. The Neck bone's rest direction leans this much forward, so an upright head is
the identity rotation."""
_NECK_REST = np.array([0.0, math.cos(math.radians(NECK_REST_DEG)), math.sin(math.radians(NECK_REST_DEG))])
_A_REST = np.asarray(HEAD_SITES_M["head"], dtype=np.float64) - np.asarray(HEAD_SITES_M["neck_nose"], dtype=np.float64)
_A_REST = _A_REST / np.linalg.norm(_A_REST)
"""Rest direction nose -> crown: the head sites' geometry (``engines.skeleton.HEAD_SITES_M``),
34 degrees back from straight up."""


def _offset_table() -> np.ndarray:
    """(R, 3, L): node offset = table @ lengths."""
    L = {n: i for i, n in enumerate(LENGTH_NAMES)}
    t = np.zeros((len(RIG_NODES), 3, len(LENGTH_NAMES)))

    def put(node: str, length: str, vec) -> None:
        t[_N[node], :, L[length]] += vec

    put("Chest", "spine", _Y)
    put("Neck", "chest", _Y)
    put("Head", "neck", _NECK_REST)
    for side, s in (("Left", 1.0), ("Right", -1.0)):
        low = side.lower()
        put(f"{side}Shoulder", "chest", _Y)
        put(f"{side}UpperArm", f"{low}_shoulder", s * _X)
        put(f"{side}LowerArm", f"{low}_upper_arm", s * _X)
        put(f"{side}Hand", f"{low}_lower_arm", s * _X)
        put(f"{side}UpperLeg", "hip_half_width", s * _X)
        put(f"{side}LowerLeg", f"{low}_upper_leg", -_Y)
        put(f"{side}Foot", f"{low}_lower_leg", -_Y)
    put("HeadTop", "head", _A_REST)
    return t


_OFFSETS = _offset_table()


# --- small batched linear algebra ------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _frames(d: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frames, columns: d, t made perpendicular to d, d x t."""
    e1 = _unit(d)
    e2 = _unit(t - np.sum(t * e1, axis=-1, keepdims=True) * e1)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _rest(d, t) -> np.ndarray:
    """The transposed rest frame of a bone whose rest direction is ``d`` and twist reference ``t``."""
    return _frames(np.asarray(d, float), np.asarray(t, float)).T


# rest frames (transposed) per solving batch, in the order the batches list their bones
_REST_A = np.stack([_rest(_X, _Y), _rest(_Y, _X), _rest(_Y, _X), _rest(_A_REST, _X)])  # Hips Spine Chest Head
_REST_B = np.stack([_rest(_NECK_REST, _X), _rest(_X, _Z), _rest(-_X, _Z), _rest(-_Y, _Z), _rest(-_Y, _Z)])  # Neck LSh RSh LUL RUL
_REST_C = np.stack([_rest(_X, _Z), _rest(-_X, _Z), _rest(-_Y, _Z), _rest(-_Y, _Z)])  # LUA RUA LLL RLL
_REST_D = np.stack([_rest(_X, _Z), _rest(-_X, _Z)])  # LLA RLA
_REST_BY_BONE = np.stack([np.eye(3)] * len(HUMANOID_BONES))  # the kernel's table; hands/feet unused
for _rest_t, _bones in ((_REST_A, (0, 1, 2, 4)), (_REST_B, (3, 5, 9, 13, 16)), (_REST_C, (6, 10, 14, 17)),
                        (_REST_D, (7, 11))):
    _REST_BY_BONE[list(_bones)] = _rest_t
_PARENTS = np.array(HUMANOID_PARENTS, dtype=np.int64)
_STRAIGHT_BLEND = 0.3  # weight of the swing reference against the bend (|bend| = sin of the bend angle)
_HEAD_BLEND = 0.2  # weight of the shoulder line in the head's twist reference


def _swing_reference(parent: np.ndarray, d: np.ndarray, d_rest: np.ndarray, t_rest: np.ndarray) -> np.ndarray:
    """Where ``t_rest`` goes under the parent's rotation and the shortest-arc swing of the bone
    from ``d_rest`` to ``d`` (in the parent's frame): the twist a straight limb gets (unit)."""
    v = _unit(np.einsum("...ji,...j->...i", parent, d))  # bone direction in the parent's frame
    k = np.cross(d_rest, v)
    c = np.sum(d_rest * v, axis=-1, keepdims=True)
    kt = np.cross(k, t_rest)
    swung = t_rest + kt + np.cross(k, kt) / np.maximum(1.0 + c, 1e-3)
    return _unit(np.einsum("...ij,...j->...i", parent, swung))


def _limb_reference(parent, upper, lower, d_rest, t_rest, sign):
    """Twist reference of an upper limb: its bend direction (sign: +1 arms bend forward in the
    T-pose, -1 knees bend backward), blended with the swing reference when nearly straight."""
    u = _unit(upper)
    f = _unit(lower)
    bend = f - np.sum(f * u, axis=-1, keepdims=True) * u
    return sign * bend + _STRAIGHT_BLEND * _swing_reference(parent, u, d_rest, t_rest)


def global_rotations(rig_joints: np.ndarray) -> np.ndarray:
    """Global bone rotations (N, 19, 3, 3) from joints (N, 17, 3) in the rig frame (NumPy
    reference; batched over N)."""
    P = rig_joints
    N = P.shape[0]
    R = np.empty((N, len(HUMANOID_BONES), 3, 3))
    hipx = _unit(P[:, 4] - P[:, 1])
    shx = _unit(P[:, 11] - P[:, 14])
    up = P[:, 7] - P[:, 0]
    chest = P[:, 8] - P[:, 7]
    a = _unit(P[:, 10] - P[:, 9])
    head_t = np.cross(a, _unit(chest)) + _HEAD_BLEND * shx
    d = np.stack([hipx, up, chest, a], axis=1)
    t = np.stack([up, hipx + shx, shx, head_t], axis=1)
    RA = _frames(d, t) @ _REST_A
    R[:, 0], R[:, 1], R[:, 2], R[:, 4] = RA[:, 0], RA[:, 1], RA[:, 2], RA[:, 3]
    fwd = RA[:, 2, :, 2]  # chest's forward axis
    hips = np.stack([RA[:, 0], RA[:, 0]], axis=1)
    legs_u = np.stack([P[:, 5] - P[:, 4], P[:, 2] - P[:, 1]], axis=1)
    legs_f = np.stack([P[:, 6] - P[:, 5], P[:, 3] - P[:, 2]], axis=1)
    leg_t = _limb_reference(hips, legs_u, legs_f, -_Y, _Z, -1.0)
    d = np.stack([P[:, 9] - P[:, 8], P[:, 11] - P[:, 8], P[:, 14] - P[:, 8], legs_u[:, 0], legs_u[:, 1]], axis=1)
    t = np.stack([shx, fwd, fwd, leg_t[:, 0], leg_t[:, 1]], axis=1)
    RB = _frames(d, t) @ _REST_B
    R[:, 3], R[:, 5], R[:, 9], R[:, 13], R[:, 16] = RB[:, 0], RB[:, 1], RB[:, 2], RB[:, 3], RB[:, 4]
    arms_u = np.stack([P[:, 12] - P[:, 11], P[:, 15] - P[:, 14]], axis=1)
    arms_f = np.stack([P[:, 13] - P[:, 12], P[:, 16] - P[:, 15]], axis=1)
    arm_t = _limb_reference(RB[:, 1:3], arms_u, arms_f, np.stack([_X, -_X]), _Z, 1.0)
    d = np.concatenate([arms_u, legs_f], axis=1)
    t = np.concatenate([arm_t, RB[:, 3:5, :, 2]], axis=1)  # a shin keeps its thigh's bend plane (z)
    RC = _frames(d, t) @ _REST_C
    R[:, 6], R[:, 10], R[:, 14], R[:, 17] = RC[:, 0], RC[:, 1], RC[:, 2], RC[:, 3]
    RD = _frames(arms_f, RC[:, 0:2, :, 2]) @ _REST_D  # a forearm keeps its upper arm's bend plane (z)
    R[:, 7], R[:, 11] = RD[:, 0], RD[:, 1]
    R[:, 8], R[:, 12], R[:, 15], R[:, 18] = R[:, 7], R[:, 11], R[:, 14], R[:, 17]  # hands, feet
    return R


def measure_lengths(rig_joints: np.ndarray) -> np.ndarray:
    """This frame's lengths (N, 15) in the order of :data:`LENGTH_NAMES`."""
    P = rig_joints
    pairs = np.array([(8, 7), (7, 0), (11, 8), (14, 8), (12, 11), (15, 14), (13, 12), (16, 15), (5, 4), (2, 1),
                      (6, 5), (3, 2)])
    seg = np.linalg.norm(P[:, pairs[:, 0]] - P[:, pairs[:, 1]], axis=-1)  # chest, spine, shoulders, arms, legs
    out = np.empty((P.shape[0], len(LENGTH_NAMES)))
    out[:, 0] = 0.5 * np.linalg.norm(P[:, 4] - P[:, 1], axis=-1)
    out[:, 1], out[:, 2] = seg[:, 1], seg[:, 0]
    out[:, 3] = np.linalg.norm(P[:, 9] - P[:, 8], axis=-1)
    out[:, 4] = np.linalg.norm(P[:, 10] - P[:, 9], axis=-1)
    out[:, 5:] = seg[:, 2:]
    return out


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """Node offsets (N, R, 3) in the parent's frame from lengths (N, 15); the Hips' is zero."""
    return np.einsum("rck,nk->nrc", _OFFSETS, np.asarray(lengths, dtype=np.float64))


def local_rotations(global_R: np.ndarray) -> np.ndarray:
    """Local rotations (N, 19, 3, 3) of the bones from their global rotations."""
    parents = np.array(HUMANOID_PARENTS)
    local = np.empty_like(global_R)
    local[:, 0] = global_R[:, 0]
    local[:, 1:] = np.swapaxes(global_R[:, parents[1:]], -1, -2) @ global_R[:, 1:]
    return local


def rows_from(root: np.ndarray, local_R: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rig rows (N, R, 7): offset xyz (the Hips': ``root``) and local quaternion xyzw; the crown
    site's rotation is the identity."""
    N = root.shape[0]
    rows = np.empty((N, len(RIG_NODES), 7))
    rows[:, :, :3] = offsets_from_lengths(lengths)
    rows[:, 0, :3] = root
    rows[:, : len(HUMANOID_BONES), 3:] = quat_from_matrix(local_R)
    rows[:, len(HUMANOID_BONES):, 3:] = (0.0, 0.0, 0.0, 1.0)
    return rows


def _solve_numba(P: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows (N, R, 7) from rig-frame joints (N, 17, 3) and lengths (N, 15), compiled."""
    from realtime.rig_kernel import solve_rows_numba

    rows = np.empty((P.shape[0], len(RIG_NODES), 7))
    solve_rows_numba(P, np.ascontiguousarray(lengths, dtype=np.float64), _REST_BY_BONE, _OFFSETS, _PARENTS, rows)
    return rows


def _measure_numba(P: np.ndarray) -> np.ndarray:
    from realtime.rig_kernel import measure_lengths_numba

    out = np.empty((P.shape[0], len(LENGTH_NAMES)))
    measure_lengths_numba(P, out)
    return out


BACKENDS = ("numba", "numpy")


def solve(joints_camera: np.ndarray, lengths: np.ndarray | None = None, backend: str = "numpy"
          ) -> tuple[np.ndarray, np.ndarray]:
    """Batch solve: joints (..., 17, 3) camera frame -> (rows (..., R, 7), measured lengths (..., 15)).

    ``lengths`` (15,) or (..., 15) fixes the offsets (e.g. a person's calibrated lengths); by
    default each frame's own measured lengths are used (exact forward kinematics). ``backend``
    picks the NumPy reference or the compiled kernel (same results).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown rig backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    J = CANONICAL.check(joints_camera, 3)
    lead = J.shape[:-2]
    P = J.reshape(-1, CANONICAL.num_joints, 3).astype(np.float64) * CAMERA_TO_RIG
    if not np.isfinite(P).all():
        raise ValueError("joints hold a non-finite value (NaN or inf); the rig needs every joint")
    measured = measure_lengths(P) if backend == "numpy" else _measure_numba(P)
    use = measured if lengths is None else np.broadcast_to(np.asarray(lengths, np.float64).reshape(-1, len(LENGTH_NAMES)),
                                                          measured.shape)
    if backend == "numpy":
        rows = rows_from(P[:, 0], local_rotations(global_rotations(P)), use)
    else:
        rows = _solve_numba(np.ascontiguousarray(P), use)
    return rows.reshape(lead + rows.shape[1:]), measured.reshape(lead + (len(LENGTH_NAMES),))


def forward_kinematics(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node positions (..., R, 3) in the rig frame and global rotations (..., R, 3, 3) from rows
    (..., R, 7) (offset xyz + local quaternion xyzw)."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim < 2 or rows.shape[-2:] != (len(RIG_NODES), 7):
        raise ValueError(f"expected rig rows shaped (..., {len(RIG_NODES)}, 7), got {rows.shape}")
    local = matrix_from_quat(rows[..., 3:])
    pos = np.empty(rows.shape[:-1] + (3,))
    glob = np.empty(local.shape)
    for n, p in enumerate(RIG_PARENTS):
        if p < 0:
            pos[..., n, :], glob[..., n, :, :] = rows[..., n, :3], local[..., n, :, :]
        else:
            pos[..., n, :] = pos[..., p, :] + np.einsum("...ij,...j->...i", glob[..., p, :, :], rows[..., n, :3])
            glob[..., n, :, :] = glob[..., p, :, :] @ local[..., n, :, :]
    return pos, glob


def canonical_from_rows(rows: np.ndarray, backend: str = "numpy", frame: str = "camera") -> np.ndarray:
    """The canonical joints (..., 17, 3) that rig rows describe (forward kinematics): in the
    camera frame for rows in the rig frame (``frame="camera"``), or in the rows' own frame
    (``frame="rows"``, e.g. world-frame rows). ``backend="numba"`` runs the compiled kernel."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown rig backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "numba":
        from realtime.rig_kernel import forward_kinematics_numba

        r = np.ascontiguousarray(rows, dtype=np.float64)
        flat = r.reshape(-1, len(RIG_NODES), 7)
        pos = np.empty(flat.shape[:2] + (3,))
        forward_kinematics_numba(flat, _RIG_PARENTS, pos)
        pos = pos.reshape(r.shape[:-1] + (3,))
    else:
        pos, _ = forward_kinematics(rows)
    joints = pos[..., _CANON_NODE, :]
    return joints * CAMERA_TO_RIG if frame == "camera" else joints


_RIG_PARENTS = np.array(RIG_PARENTS, dtype=np.int64)


def rows_to_frame(rows: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                  rotation_quat: np.ndarray | None = None) -> np.ndarray:
    """Rig rows (P, R, 7) re-expressed in another right-handed frame: ``p' = rotation @ p_rig +
    translation``. Only the root changes (its offset and rotation); every local rotation and bone
    offset stays, so forward kinematics of the result is the old skeleton moved rigidly.
    ``rotation_quat``: ``rotation`` as a quaternion (x, y, z, w), when the caller has it."""
    from engines.rotations import quat_from_matrix as qfm, quat_multiply

    out = np.array(rows, dtype=np.float64, copy=True)
    A = np.asarray(rotation, np.float64)
    out[..., 0, :3] = out[..., 0, :3] @ A.T + np.asarray(translation, np.float64)
    q = qfm(A) if rotation_quat is None else rotation_quat
    out[..., 0, 3:] = quat_multiply(q, out[..., 0, 3:])
    return out


# --- live solving with per-person bone lengths ------------------------------------------------------


@dataclass(frozen=True)
class RigConfig:
    """Bone-length estimation: median over the first ``calibration_s`` seconds of a person, then
    fixed (the default) or refined by a median tracker moving each length at most
    ``refine_m_per_s``; state of a person unseen for ``forget_s`` is dropped (a new id starts a
    new calibration anyway)."""

    calibration_s: float = 2.0
    refine_m_per_s: float = 0.0
    forget_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("calibration_s", "refine_m_per_s", "forget_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"RigConfig.{name} must be a finite number >= 0, got {value}")


@dataclass
class _Person:
    first_ns: int
    last_ns: int
    samples: list[np.ndarray] = field(default_factory=list)
    lengths: np.ndarray | None = None
    calibrated: bool = False


@dataclass(frozen=True)
class RigFrame:
    """One frame's rig for every person in it: ``ids`` (P,), ``rows`` (P, R, 7) float64 (offset
    xyz + local quaternion xyzw, rig frame), ``lengths`` (P, 15) the lengths in use; ``joints``
    (P, 17, 3) float64, the forward kinematics of the rows in the camera frame (the steady
    skeleton the pipeline publishes), when the solver computed them."""

    ids: tuple[int, ...]
    rows: np.ndarray
    lengths: np.ndarray
    joints: np.ndarray | None = None


class RigSolver:
    """Solves rig rows per frame for tracked persons, keeping each person's bone lengths."""

    def __init__(self, config: RigConfig | None = None, backend: str = "numba") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown rig backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.config = config or RigConfig()
        self.backend = backend
        self._people: dict[int, _Person] = {}
        self._last_forget_ns = 0

    def lengths(self, person_id: int) -> np.ndarray | None:
        """The lengths (15,) currently used for ``person_id``, or None if unknown."""
        p = self._people.get(int(person_id))
        return None if p is None or p.lengths is None else p.lengths.copy()

    def __call__(self, ids, joints_camera: np.ndarray, t_ns: int) -> RigFrame:
        """Rig rows for persons ``ids`` (P,) with joints (P, 17, 3) camera frame at ``t_ns``."""
        ids = tuple(int(i) for i in ids)
        J = CANONICAL.check(joints_camera, 3)
        if J.ndim != 3 or J.shape[0] != len(ids):
            raise ValueError(f"expected joints shaped ({len(ids)}, 17, 3) for {len(ids)} ids, got {J.shape}")
        if not ids:
            return RigFrame((), np.empty((0, len(RIG_NODES), 7)), np.empty((0, len(LENGTH_NAMES))),
                            np.empty((0, CANONICAL.num_joints, 3)))
        P = np.multiply(J, CAMERA_TO_RIG, dtype=np.float64)
        if not math.isfinite(P.sum()):
            raise ValueError("joints hold a non-finite value (NaN or inf); the rig needs every joint")
        numba = self.backend == "numba"
        measured = _measure_numba(P) if numba else measure_lengths(P)
        t_ns = int(t_ns)
        use = np.empty_like(measured)
        for k, (pid, m) in enumerate(zip(ids, measured)):
            use[k] = self._update(pid, m, t_ns)
        if t_ns - self._last_forget_ns > 1e9:
            self._forget(t_ns)
        rows = _solve_numba(P, use) if numba else rows_from(P[:, 0], local_rotations(global_rotations(P)), use)
        return RigFrame(ids, rows, use, canonical_from_rows(rows, self.backend))

    def _update(self, pid: int, measured: np.ndarray, t_ns: int) -> np.ndarray:
        cfg = self.config
        p = self._people.get(pid)
        if p is None:
            p = self._people[pid] = _Person(first_ns=t_ns, last_ns=t_ns)
        dt = max(t_ns - p.last_ns, 0) / 1e9
        p.last_ns = t_ns
        if not p.calibrated:
            p.samples.append(measured)
            p.lengths = np.median(np.asarray(p.samples), axis=0)
            if (t_ns - p.first_ns) / 1e9 >= cfg.calibration_s:
                p.calibrated, p.samples = True, []
        else:
            step = cfg.refine_m_per_s * min(dt, 0.5)  # a long gap is not a licence to jump
            delta = measured - p.lengths
            np.minimum(delta, step, out=delta)
            np.maximum(delta, -step, out=delta)
            p.lengths += delta
        return p.lengths

    def _forget(self, now_ns: int) -> None:
        self._last_forget_ns = now_ns
        limit = self.config.forget_s * 1e9
        for pid in [pid for pid, p in self._people.items() if now_ns - p.last_ns > limit]:
            del self._people[pid]


def warmup() -> None:
    """Compile (or load from Numba's cache) the rig kernel before the first real frame."""
    from engines.skeleton import H36M17  # noqa: F401 - the canonical skeleton, for the T-pose below

    t_pose = np.zeros((1, CANONICAL.num_joints, 3))
    # a T-pose in the camera frame (y down): hips, knees and ankles below, arms out sideways
    for j, xyz in {1: (-0.1, 0, 0), 2: (-0.1, 0.45, 0), 3: (-0.1, 0.9, 0), 4: (0.1, 0, 0), 5: (0.1, 0.45, 0),
                   6: (0.1, 0.9, 0), 7: (0, -0.25, 0), 8: (0, -0.5, 0), 9: (0, -0.62, -0.12), 10: (0, -0.8, 0),
                   11: (0.2, -0.5, 0), 12: (0.5, -0.5, 0), 13: (0.75, -0.5, 0), 14: (-0.2, -0.5, 0),
                   15: (-0.5, -0.5, 0), 16: (-0.75, -0.5, 0)}.items():
        t_pose[0, j] = xyz
    rows, _ = solve(t_pose, backend="numba")
    canonical_from_rows(rows, backend="numba")
