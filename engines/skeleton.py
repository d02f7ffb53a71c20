"""The one joint set every model, message and viewer in posestream uses.

Canonical skeleton: the 17 joints of the Human3.6M convention, in the order VideoPose3D uses, so
that models trained here and archives from that ecosystem line up index for index. Each joint is
defined below in words; every mapping from another skeleton (MediaPipe Pose, BVH motion capture)
produces *these* definitions, not whatever its source happens to call a hip or a head.

Shapes follow the project order ``(..., joints, channels)``: any leading batch/time axes, the
joint axis second to last, coordinates last. Units are metres for 3D, pixels for 2D.

Where definitions differ between sources (and how the mappings handle it):

* **Hips.** Canonical hips are the hip *joint centres* (femoral heads). BVH hip joints are joint
  centres already (in the CMU files they sit inside the pelvis, 0.18 m apart). MediaPipe's hip
  landmarks are placed on the body surface near the greater trochanters, so they are wider
  apart; the MediaPipe mapping pulls each hip towards the pelvis midpoint by
  ``MEDIAPIPE_HIP_WIDTH_SCALE`` (a linear map, so it is exact for 2D and 3D alike). The pelvis
  itself (the midpoint) is unaffected.
* **Thorax and spine.** Thorax is the midpoint of the two shoulder joint centres in every
  source. Spine is a point on the spine halfway up the torso: BVH sources take it from their own
  spine joints (so a bent back stays bent), MediaPipe, which has no spine landmark, takes the
  midpoint of pelvis and thorax.
* **Nose and head top.** Human3.6M's joint 9 ("Neck/Nose") is the nose and joint 10 ("Head") is
  the top of the head. MediaPipe has a nose landmark but no head top; it is extrapolated from
  the ears along the face's up direction (eyes minus mouth). BVH skeletons end at the skull
  base, so both points are virtual sites fixed in the head joint's frame (offsets in
  ``HEAD_SITES_M``), carried by the head's rotation; where that rotation is anatomically
  impossible (``MAX_HEAD_TURN_DEG``, a data defect seen in real CMU clips) by the neck's.
* **Human3.6M** archives map one to one (their hips are marker-based and somewhat wider than
  joint centres; we keep their values as they are).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BVH_RECIPES",
    "CANONICAL",
    "H36M17",
    "H36M_TO_CANONICAL",
    "HEAD_SITES_M",
    "HUMANOID_BONES",
    "HUMANOID_PARENTS",
    "MEDIAPIPE33_NAMES",
    "MEDIAPIPE_HIP_WIDTH_SCALE",
    "MEDIAPIPE_TO_CANONICAL",
    "BvhRecipe",
    "JointMap",
    "Skeleton",
    "UnknownSkeletonError",
    "bvh_to_canonical",
    "detect_bvh_skeleton",
]


@dataclass(frozen=True)
class Skeleton:
    """A named joint set: names, parents, left/right pairs and drawing edges, written once."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]  # -1 for the root
    definitions: tuple[str, ...]  # one sentence per joint: where exactly the point is
    left_right_pairs: tuple[tuple[int, int], ...]
    root: int = 0

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n or len(self.definitions) != n:
            raise ValueError("joint_names, parents and definitions must have the same length")
        for j, p in enumerate(self.parents):
            if p >= j:
                raise ValueError("parents must come before their children (topological order)")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of a joint by name; ``KeyError`` with the known names otherwise."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"unknown joint {name!r}; known: {', '.join(self.joint_names)}") from None

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Bones to draw, as (parent, child) index pairs."""
        return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """Index permutation that swaps every left joint with its right partner."""
        perm = list(range(self.num_joints))
        for a, b in self.left_right_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    @property
    def left_joints(self) -> tuple[int, ...]:
        return tuple(a if self.joint_names[a].startswith("left") else b for a, b in self.left_right_pairs)

    @property
    def right_joints(self) -> tuple[int, ...]:
        return tuple(b if self.joint_names[a].startswith("left") else a for a, b in self.left_right_pairs)

    def check(self, points: np.ndarray, channels: int | None = None) -> np.ndarray:
        """Return ``points`` as an array, raising ``ValueError`` unless shaped (..., J, C)."""
        arr = np.asarray(points)
        if arr.ndim < 2 or arr.shape[-2] != self.num_joints or (channels and arr.shape[-1] != channels):
            want = f"(..., {self.num_joints}, {channels or 'C'})"
            raise ValueError(f"expected {self.name} joints shaped {want}, got {arr.shape}")
        return arr

    def flip(self, points: np.ndarray, axis: int = 0) -> np.ndarray:
        """Mirror poses: negate coordinate ``axis`` and swap left/right joints.

        For 2D pixels mirror around the image centre yourself before or after (``w - x``); this
        negates, which is what root-relative or normalised coordinates need.
        """
        arr = np.array(self.check(points), copy=True)
        arr = arr[..., list(self.flip_permutation), :]
        arr[..., axis] = -arr[..., axis]
        return arr

    def bone_lengths(self, points: np.ndarray) -> np.ndarray:
        """Length of every bone (..., J-1), in the order of :attr:`edges`."""
        arr = self.check(points)
        p = np.array([e[0] for e in self.edges])
        c = np.array([e[1] for e in self.edges])
        return np.linalg.norm(arr[..., c, :] - arr[..., p, :], axis=-1)


H36M17 = Skeleton(
    name="h36m17",
    joint_names=(
        "pelvis",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "spine",
        "thorax",
        "neck_nose",
        "head",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    definitions=(
        "pelvis: midpoint of the two hip joint centres; the root of the skeleton",
        "right_hip: centre of the right hip joint (femoral head), inside the pelvis",
        "right_knee: centre of the right knee joint",
        "right_ankle: centre of the right ankle joint",
        "left_hip: centre of the left hip joint (femoral head), inside the pelvis",
        "left_knee: centre of the left knee joint",
        "left_ankle: centre of the left ankle joint",
        "spine: a point on the spine about halfway between pelvis and thorax",
        "thorax: midpoint of the two shoulder joint centres (base of the neck)",
        "neck_nose: tip of the nose (Human3.6M's 'Neck/Nose' joint)",
        "head: top of the head (crown), above the ears",
        "left_shoulder: centre of the left shoulder joint",
        "left_elbow: centre of the left elbow joint",
        "left_wrist: centre of the left wrist",
        "right_shoulder: centre of the right shoulder joint",
        "right_elbow: centre of the right elbow joint",
        "right_wrist: centre of the right wrist",
    ),
    left_right_pairs=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
)

CANONICAL = H36M17
"""The skeleton every posestream model, message and viewer uses."""


@dataclass(frozen=True)
class JointMap:
    """A linear map from a source joint set into the canonical one.

    Each canonical joint is a weighted sum of source joints (weights sum to one), so the same map
    serves 3D points and 2D pixels. A canonical joint's confidence is the *lowest* confidence of
    the source joints it is built from: a head top extrapolated from an unseen ear is unseen.
    """

    source: str
    source_names: tuple[str, ...]
    weights: np.ndarray = field(repr=False)  # (J_canonical, J_source)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != (CANONICAL.num_joints, len(self.source_names)):
            raise ValueError(f"weights must be ({CANONICAL.num_joints}, {len(self.source_names)}), got {w.shape}")
        if not np.allclose(w.sum(axis=1), 1.0):
            raise ValueError("each canonical joint's weights must sum to 1 (affine combination)")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)

    @property
    def support(self) -> np.ndarray:
        """(J_canonical, J_source) bool: which source joints each canonical joint uses."""
        return self.weights != 0.0

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Map points (..., J_source, C) to (..., 17, C), keeping the dtype (float)."""
        arr = np.asarray(points)
        if arr.ndim < 2 or arr.shape[-2] != len(self.source_names):
            raise ValueError(
                f"expected {self.source} joints shaped (..., {len(self.source_names)}, C), got {arr.shape}"
            )
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
        return np.einsum("kj,...jc->...kc", self.weights.astype(dtype), arr.astype(dtype, copy=False))

    def confidence(self, conf: np.ndarray) -> np.ndarray:
        """Map per-joint confidences (..., J_source) to (..., 17): the minimum over the support."""
        c = np.asarray(conf, dtype=np.float64)
        if c.ndim < 1 or c.shape[-1] != len(self.source_names):
            raise ValueError(f"expected {self.source} confidences shaped (..., {len(self.source_names)}), got {c.shape}")
        masked = np.where(self.support, c[..., None, :], np.inf)
        return masked.min(axis=-1)


def _linear_map(source: str, names: tuple[str, ...], recipe: dict[str, dict[str, float]]) -> JointMap:
    w = np.zeros((CANONICAL.num_joints, len(names)))
    for joint, parts in recipe.items():
        for src, weight in parts.items():
            w[CANONICAL.index(joint), names.index(src)] += weight
    return JointMap(source=source, source_names=names, weights=w)


# --- MediaPipe Pose (33 landmarks, BlazePose topology) ------------------------------------------

MEDIAPIPE33_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

MEDIAPIPE_HIP_WIDTH_SCALE = 0.9
"""Factor by which MediaPipe's surface hip landmarks are pulled towards their midpoint to land on
the hip joint centres. Measured: MediaPipe 0.10.21's world landmarks over all 400 frames of the
four Pose2Sim views put the hips 0.196 m apart (median); hip joint centres in the CMU mocap
skeleton are 0.176 m apart, and adult femoral heads typically 0.16-0.19 m: 0.176/0.196 = 0.9.
Measured with ``python -m benchmarks.skeleton_widths``; tests/engines/test_skeleton.py checks the
mapped width on real video."""

_MP_FACE_UP = 1.8  # ear-midpoint to crown, in units of the eye-to-mouth height of the face


def _mediapipe_recipe(k: float) -> dict[str, dict[str, float]]:
    a, b = (1 + k) / 2, (1 - k) / 2  # hip = pelvis + k (hip - pelvis)
    hips = {"left_hip": 0.5, "right_hip": 0.5}
    shoulders = {"left_shoulder": 0.5, "right_shoulder": 0.5}
    spine = {**{n: 0.25 for n in hips}, **{n: 0.25 for n in shoulders}}
    # crown = ear_mid + c * (eye_mid - mouth_mid): up along the face, from the ears
    c = _MP_FACE_UP
    head = {"left_ear": 0.5, "right_ear": 0.5, "left_eye": c / 2, "right_eye": c / 2,
            "mouth_left": -c / 2, "mouth_right": -c / 2}  # fmt: skip
    return {
        "pelvis": hips,
        "right_hip": {"right_hip": a, "left_hip": b},
        "right_knee": {"right_knee": 1.0},
        "right_ankle": {"right_ankle": 1.0},
        "left_hip": {"left_hip": a, "right_hip": b},
        "left_knee": {"left_knee": 1.0},
        "left_ankle": {"left_ankle": 1.0},
        "spine": spine,
        "thorax": shoulders,
        "neck_nose": {"nose": 1.0},
        "head": head,
        "left_shoulder": {"left_shoulder": 1.0},
        "left_elbow": {"left_elbow": 1.0},
        "left_wrist": {"left_wrist": 1.0},
        "right_shoulder": {"right_shoulder": 1.0},
        "right_elbow": {"right_elbow": 1.0},
        "right_wrist": {"right_wrist": 1.0},
    }


MEDIAPIPE_TO_CANONICAL = _linear_map(
    "mediapipe33", MEDIAPIPE33_NAMES, _mediapipe_recipe(MEDIAPIPE_HIP_WIDTH_SCALE)
)
"""MediaPipe Pose landmarks (33, pixels or metres) -> canonical 17."""

# --- Human3.6M, VideoPose3D order ----------------------------------------------------------------

H36M_TO_CANONICAL = JointMap("h36m17", CANONICAL.joint_names, np.eye(CANONICAL.num_joints))
"""Human3.6M's 17 joints in VideoPose3D order are the canonical order: identity."""

# --- BVH motion capture -------------------------------------------------------------------------

HEAD_SITES_M: dict[str, tuple[float, float, float]] = {
    "neck_nose": (0.0, 0.04, 0.11),
    "head": (0.0, 0.19, 0.01),
}
"""Virtual sites fixed to a BVH head joint (skull base), in metres in the body frame
(x = subject's left, y = up, z = forward, as in the skeleton's rest pose): the nose tip about
11 cm in front of the skull base and the crown about 19 cm above it (adult head proportions)."""


class UnknownSkeletonError(ValueError):
    """A motion file's joint names match none of the BVH skeletons we know how to map."""


@dataclass(frozen=True)
class BvhRecipe:
    """How to build canonical joints from a named BVH hierarchy.

    ``joints`` gives each canonical joint as weights over BVH joint names; joints listed in
    ``sites`` are instead the head joint plus an offset from ``HEAD_SITES_M``.
    """

    name: str
    joints: dict[str, dict[str, float]]
    head_joint: str
    neck_joint: str
    left_hip: str
    right_hip: str
    sites: tuple[str, ...] = ("neck_nose", "head")

    @property
    def required(self) -> set[str]:
        names = {n for parts in self.joints.values() for n in parts}
        return names | {self.head_joint, self.neck_joint, self.left_hip, self.right_hip}


def _pelvis(l: str, r: str) -> dict[str, float]:
    return {l: 0.5, r: 0.5}


BVH_RECIPES: tuple[BvhRecipe, ...] = (
    BvhRecipe(
        # The 43-joint "Daz-friendly, hip-corrected" CMU conversion in ../shared/data/cmu-mocap.
        name="cmu43",
        joints={
            "pelvis": _pelvis("lThigh", "rThigh"),
            "right_hip": {"rThigh": 1.0},
            "right_knee": {"rShin": 1.0},
            "right_ankle": {"rFoot": 1.0},
            "left_hip": {"lThigh": 1.0},
            "left_knee": {"lShin": 1.0},
            "left_ankle": {"lFoot": 1.0},
            "spine": {"abdomen": 0.5, "chest": 0.5},
            "thorax": {"lShldr": 0.5, "rShldr": 0.5},
            "left_shoulder": {"lShldr": 1.0},
            "left_elbow": {"lForeArm": 1.0},
            "left_wrist": {"lHand": 1.0},
            "right_shoulder": {"rShldr": 1.0},
            "right_elbow": {"rForeArm": 1.0},
            "right_wrist": {"rHand": 1.0},
        },
        head_joint="head",
        neck_joint="neck",
        left_hip="lThigh",
        right_hip="rThigh",
    ),
    BvhRecipe(
        # The standard 31-joint CMU BVH (Hips, LHipJoint, LeftUpLeg, ...). LHipJoint/RHipJoint
        # start at the root; the hip joint centres are where LeftUpLeg/RightUpLeg begin.
        name="cmu31",
        joints={
            "pelvis": _pelvis("LeftUpLeg", "RightUpLeg"),
            "right_hip": {"RightUpLeg": 1.0},
            "right_knee": {"RightLeg": 1.0},
            "right_ankle": {"RightFoot": 1.0},
            "left_hip": {"LeftUpLeg": 1.0},
            "left_knee": {"LeftLeg": 1.0},
            "left_ankle": {"LeftFoot": 1.0},
            "spine": {"Spine": 0.5, "Spine1": 0.5},
            "thorax": {"LeftArm": 0.5, "RightArm": 0.5},
            "left_shoulder": {"LeftArm": 1.0},
            "left_elbow": {"LeftForeArm": 1.0},
            "left_wrist": {"LeftHand": 1.0},
            "right_shoulder": {"RightArm": 1.0},
            "right_elbow": {"RightForeArm": 1.0},
            "right_wrist": {"RightHand": 1.0},
        },
        head_joint="Head",
        neck_joint="Neck1",
        left_hip="LeftUpLeg",
        right_hip="RightUpLeg",
    ),
    BvhRecipe(
        # Takes written by `realtime run --record take.bvh` (realtime.bvh_export): the humanoid
        # rig's bones as joints, the Head at the nose and a HeadTop joint at the crown.
        name="posestream",
        joints={
            "pelvis": {"Hips": 1.0},
            "right_hip": {"RightUpperLeg": 1.0},
            "right_knee": {"RightLowerLeg": 1.0},
            "right_ankle": {"RightFoot": 1.0},
            "left_hip": {"LeftUpperLeg": 1.0},
            "left_knee": {"LeftLowerLeg": 1.0},
            "left_ankle": {"LeftFoot": 1.0},
            "spine": {"Chest": 1.0},
            "thorax": {"Neck": 1.0},
            "left_shoulder": {"LeftUpperArm": 1.0},
            "left_elbow": {"LeftLowerArm": 1.0},
            "left_wrist": {"LeftHand": 1.0},
            "right_shoulder": {"RightUpperArm": 1.0},
            "right_elbow": {"RightLowerArm": 1.0},
            "right_wrist": {"RightHand": 1.0},
            "neck_nose": {"Head": 1.0},
            "head": {"HeadTop": 1.0},
        },
        head_joint="Head",
        neck_joint="Neck",
        left_hip="LeftUpperLeg",
        right_hip="RightUpperLeg",
        sites=(),
    ),
)


# --- Humanoid rig (bone rotations for game engines, VMC and BVH takes) ----------------------------

HUMANOID_BONES: tuple[str, ...] = (
    "Hips", "Spine", "Chest", "Neck", "Head",
    "LeftShoulder", "LeftUpperArm", "LeftLowerArm", "LeftHand",
    "RightShoulder", "RightUpperArm", "RightLowerArm", "RightHand",
    "LeftUpperLeg", "LeftLowerLeg", "LeftFoot",
    "RightUpperLeg", "RightLowerLeg", "RightFoot",
)  # fmt: skip
"""Bones of the humanoid rig that ``realtime.rig`` solves from the canonical joints, named as VRM's
humanoid bones (and Unity's ``HumanBodyBones``), parents before children. Each bone starts at a
canonical joint: Hips and Spine at the pelvis, Chest at the spine point, Neck and both Shoulders
(clavicles) at the thorax, Head at the nose (the crown is a site on it, "HeadTop"),
UpperArm/LowerArm/Hand at shoulder/elbow/wrist, UpperLeg/LowerLeg/Foot at hip/knee/ankle. Hands and feet carry no observed rotation (their local rotation is identity)."""

HUMANOID_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 2, 5, 6, 7, 2, 9, 10, 11, 0, 13, 14, 0, 16, 17)
"""Parent bone index of each of :data:`HUMANOID_BONES` (-1 for Hips, the root)."""


def detect_bvh_skeleton(names: tuple[str, ...] | list[str], source: str = "motion file") -> BvhRecipe:
    """Pick the recipe whose joints the file has; ``UnknownSkeletonError`` naming ``source``."""
    have = set(names)
    for recipe in BVH_RECIPES:
        if recipe.required <= have:
            return recipe
    known = ", ".join(r.name for r in BVH_RECIPES)
    raise UnknownSkeletonError(
        f"{source}: unknown skeleton (joints {', '.join(list(names)[:6])}, ...); "
        f"posestream maps these BVH skeletons: {known}"
    )


def _body_frame(rest: np.ndarray, idx: dict[str, int], recipe: BvhRecipe) -> np.ndarray:
    """(3, 3) columns = subject's left, up, forward in the rest pose's world axes."""
    left = rest[idx[recipe.left_hip]] - rest[idx[recipe.right_hip]]
    pelvis = 0.5 * (rest[idx[recipe.left_hip]] + rest[idx[recipe.right_hip]])
    up = rest[idx[recipe.head_joint]] - pelvis
    up = up / np.linalg.norm(up)
    left = left - up * (left @ up)
    left = left / np.linalg.norm(left)
    forward = np.cross(left, up)
    return np.stack([left, up, forward], axis=1)


def bvh_to_canonical(
    names: tuple[str, ...] | list[str],
    rest_positions: np.ndarray,
    positions: np.ndarray,
    rotations: np.ndarray,
    source: str = "motion file",
) -> np.ndarray:
    """Canonical joints (F, 17, 3) from BVH forward kinematics.

    ``rest_positions`` (J, 3) is the skeleton with all channels zero (defines the body frame for
    the head sites), ``positions`` (F, J, 3) and ``rotations`` (F, J, 3, 3) are global joint
    positions in metres and global rotations from forward kinematics.
    """
    names = tuple(names)
    recipe = detect_bvh_skeleton(names, source)
    pos = np.asarray(positions, dtype=np.float64)
    rot = np.asarray(rotations, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (len(names), 3):
        raise ValueError(f"{source}: positions must be (frames, {len(names)}, 3), got {pos.shape}")
    if rot.shape != pos.shape[:2] + (3, 3):
        raise ValueError(f"{source}: rotations must be (frames, {len(names)}, 3, 3), got {rot.shape}")
    idx = {n: i for i, n in enumerate(names)}
    out = np.empty((pos.shape[0], CANONICAL.num_joints, 3))
    for joint, parts in recipe.joints.items():
        k = CANONICAL.index(joint)
        out[:, k] = sum(w * pos[:, idx[n]] for n, w in parts.items())
    frame = _body_frame(np.asarray(rest_positions, dtype=np.float64), idx, recipe)
    h = idx[recipe.head_joint]
    head_rot = _plausible_head_rotation(rot[:, h], rot[:, idx[recipe.neck_joint]])
    for site in recipe.sites:
        local = frame @ np.asarray(HEAD_SITES_M[site])  # offset in the head joint's rest frame
        out[:, CANONICAL.index(site)] = pos[:, h] + head_rot @ local
    return out


MAX_HEAD_TURN_DEG = 100.0
"""A head turns at most about 80-90 degrees against the neck; beyond this a head rotation is a
capture or conversion defect (the CMU clip salsa/06 holds its head joint at ~178 degrees, upside
down, throughout) and the head sites follow the neck's rotation for that frame instead."""


def _plausible_head_rotation(head: np.ndarray, neck: np.ndarray) -> np.ndarray:
    """Global head rotations (F, 3, 3), replaced by the neck's where the turn is impossible."""
    local = np.swapaxes(neck, -1, -2) @ head
    cos = np.clip((np.trace(local, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    bad = cos < np.cos(np.radians(MAX_HEAD_TURN_DEG))
    return np.where(bad[:, None, None], neck, head)
