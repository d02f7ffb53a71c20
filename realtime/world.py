"""The world frame: gravity, floor and heading for a camera that is not level.

A webcam on a shelf looks down, a phone on a tripod may be rolled; the camera frame inherits
both, so an avatar driven by it leans with the camera and floats or sinks. This module finds
where "up" and the floor are in the camera's frame and turns camera coordinates into a world
frame that stands on the floor.

World axes (metres, right-handed, the same handedness and up axis as the rig frame of
``realtime.rig``):

* **y up**, against gravity; the **floor at y = 0**;
* the **origin on the floor directly below the camera's optical centre**, so the camera sits at
  ``(0, H, 0)`` with ``H`` its height above the floor;
* the **heading** from the camera: ``-z`` is the camera's forward direction projected onto the
  floor, ``x`` its right. A person facing the camera faces ``+z``.

So for a level camera ``p_world = (x, H - y, -z)`` of ``p_cam = (x, y, z)``: the rig frame raised
by ``H``. In general ``p_world = M [p_cam; 1]`` with ``M`` = :attr:`WorldTransform.matrix`
(4x4), published as ``world_from_camera``.

Tilt angles: ``pitch`` is the optical axis' angle above the horizon (negative: looking down),
``roll`` the image's right edge raised (positive) or lowered, both in degrees. The up direction
in the camera frame is then ``(sin(roll) cos(pitch), -cos(roll) cos(pitch), sin(pitch))``.

Three ways to a transform (:attr:`WorldTransform.source`):

* ``"calibration"``: a calibrated camera (``--calibration FILE [--camera-name NAME]``), exact:
  :func:`from_calibration`;
* ``"given"``: ``--camera-pitch``, ``--camera-roll``, ``--camera-height`` (:func:`from_tilt`);
* ``"estimated"``: :class:`WorldEstimator`, causally from the people in view (below). Given
  values and estimates mix: ``--camera-height 1.2`` alone fixes the height and leaves the tilt to
  the estimator.

Estimating from the person alone
--------------------------------
* **Up.** Per frame and person, an up sample with a weight: the learned up-direction model's
  prediction from the 2D window (``engines.gravity``, trained on virtual cameras whose tilt is
  known) when one is given, else the body's own axis: ankles to thorax while hips and knees
  are straight, pelvis to thorax (with less weight) while the person is at least on their feet. Samples are averaged over time: for the first seconds
  as a running mean (the estimate settles within about 2 s), then with a 30 s memory, so the
  estimate keeps refining without jitter. A sample must lie within :data:`PRIOR_CONE_DEG` of
  a level camera's up (cameras stand upright), and once the estimate has settled within
  :data:`GATE_DEG` of it: a person lying on the floor, bending over or doing a handstand gives
  no sample instead of flipping the world.
* **Floor.** Ankles that rest (slow and confidently seen) are kept, in the camera frame; the
  floor lies ``ANKLE_HEIGHT_M`` below their median height along the up direction. The camera's
  height is that distance. Once the resting feet have covered some floor (a person who walks),
  the plane through them refines the up direction too (along the directions they covered): a
  uniform error of scale (the monocular depth ambiguity) moves that plane but does not turn it.
* **Uncertainty.** ``confidence`` grows with the evidence and falls with disagreement between
  samples. Without visible feet the height falls back on the body (leg lengths of an upright
  person), is marked ``floor_seen: false`` with a low confidence, and a floor found earlier is
  kept rather than replaced.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.gravity import ANKLE_HEIGHT_M

__all__ = [
    "ANKLE_HEIGHT_M",
    "GATE_DEG",
    "PRIOR_CONE_DEG",
    "TiltFlags",
    "WorldEstimator",
    "WorldTransform",
    "camera_from_calibration",
    "from_calibration",
    "from_tilt",
    "rotation_from_up",
    "tilt_from_up",
    "up_from_tilt",
]

PRIOR_CONE_DEG = 60.0
"""An up sample further than this from a level camera's up ``(0, -1, 0)`` is not a camera
anyone sets up (pitch -45..+15 and roll +-20 degrees are the ranges the estimator is built for)."""
GATE_DEG = 20.0
"""Once the up estimate has settled, samples further than this from it are ignored."""

_LEVEL_UP = np.array([0.0, -1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])
SOURCES = ("estimated", "calibration", "given")


# --- geometry --------------------------------------------------------------------------------------


def up_from_tilt(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """The up direction (3,) in the camera frame of a camera pitched and rolled as given."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    return np.array([math.sin(r) * math.cos(p), -math.cos(r) * math.cos(p), math.sin(p)])


def tilt_from_up(up: np.ndarray) -> tuple[float, float]:
    """``(pitch_deg, roll_deg)`` of a camera that sees ``up`` (3,) as the up direction."""
    u = np.asarray(up, np.float64) / np.linalg.norm(up)
    return math.degrees(math.asin(float(np.clip(u[2], -1.0, 1.0)))), math.degrees(math.atan2(u[0], -u[1]))


def rotation_from_up(up: np.ndarray) -> np.ndarray:
    """World-from-camera rotation (3, 3): rows are the world's x, y, z axes in camera coordinates.

    y is ``up``; -z the camera's forward axis projected onto the floor (for a camera looking
    almost straight up or down, where that projection vanishes, the image's up direction is
    projected instead); x completes a right-handed frame."""
    y = np.asarray(up, np.float64)
    y = y / np.linalg.norm(y)
    forward = _Z - np.dot(_Z, y) * y
    if np.linalg.norm(forward) < 1e-6:
        image_up = _LEVEL_UP * np.sign(-y[2] or 1.0)
        forward = image_up - np.dot(image_up, y) * y
    z = -forward / np.linalg.norm(forward)
    x = np.cross(y, z)
    return np.stack([x, y, z])


@dataclass(frozen=True)
class WorldTransform:
    """Where the camera is relative to gravity and the floor.

    ``up`` (3,) unit, camera frame; ``height_m`` the camera's optical centre above the floor;
    ``source``/``confidence`` (0-1) for the whole, and per part (``up_source``,
    ``height_source``, ...); ``floor_seen``: the height rests on feet seen on the floor (False:
    on the body's proportions, or nothing yet).
    """

    up: np.ndarray
    height_m: float
    up_source: str
    height_source: str
    up_confidence: float = 1.0
    height_confidence: float = 1.0
    floor_seen: bool = True
    matrix: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        up = np.asarray(self.up, np.float64)
        if up.shape != (3,) or not np.isfinite(up).all() or np.linalg.norm(up) < 1e-9:
            raise ValueError(f"the up direction must be a finite non-zero 3-vector, got {self.up!r}")
        if not (math.isfinite(self.height_m)):
            raise ValueError(f"the camera height must be finite, got {self.height_m!r}")
        for name in ("up_source", "height_source"):
            if getattr(self, name) not in SOURCES:
                raise ValueError(f"{name} must be one of {', '.join(SOURCES)}, got {getattr(self, name)!r}")
        up = up / np.linalg.norm(up)
        m = np.eye(4)
        m[:3, :3] = rotation_from_up(up)
        m[1, 3] = float(self.height_m)
        up.flags.writeable = m.flags.writeable = False
        object.__setattr__(self, "up", up)
        object.__setattr__(self, "matrix", m)

    @property
    def source(self) -> str:
        """``calibration`` or ``given`` when both parts are; else ``estimated``."""
        return self.up_source if self.up_source == self.height_source else "estimated"

    @property
    def confidence(self) -> float:
        return min(self.up_confidence, self.height_confidence)

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def tilt_deg(self) -> tuple[float, float]:
        """``(pitch, roll)`` in degrees."""
        return tilt_from_up(self.up)

    def to_world(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) -> world (float64)."""
        p = np.asarray(points_cam, np.float64)
        return p @ self.rotation.T + self.matrix[:3, 3]

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera frame (float64)."""
        p = np.asarray(points_world, np.float64)
        return (p - self.matrix[:3, 3]) @ self.rotation

    def matrix_list(self) -> list[list[float]]:
        """``world_from_camera`` as the protocol carries it: 4 rows of 4 numbers, 6 decimals."""
        return np.round(self.matrix, 6).tolist()

    def describe(self) -> dict[str, object]:
        """The protocol header's ``world`` object (plain JSON types)."""
        pitch, roll = self.tilt_deg
        return {"source": self.source, "confidence": round(self.confidence, 3),
                "up_source": self.up_source, "up_confidence": round(self.up_confidence, 3),
                "height_source": self.height_source, "height_confidence": round(self.height_confidence, 3),
                "pitch_deg": round(pitch, 2), "roll_deg": round(roll, 2),
                "camera_height_m": round(float(self.height_m), 4), "floor_seen": bool(self.floor_seen)}


def from_tilt(pitch_deg: float, roll_deg: float, height_m: float, source: str = "given") -> WorldTransform:
    """The transform of a camera whose tilt and height are known."""
    return WorldTransform(up_from_tilt(pitch_deg, roll_deg), float(height_m), source, source)


# --- calibration -------------------------------------------------------------------------------------

_AXES = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1), "-x": (-1, 0, 0), "-y": (0, -1, 0), "-z": (0, 0, -1)}


def _check_rotation(R: np.ndarray, where: str) -> None:
    if R.shape != (3, 3) or not np.isfinite(R).all():
        raise ValueError(f"{where}: the rotation is not a finite 3x3 matrix")
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or abs(np.linalg.det(R) - 1.0) > 1e-3:
        raise ValueError(f"{where}: R is not a rotation (it must be orthonormal with determinant +1)")


def lab_up_axis(camera, up: str | None = None) -> np.ndarray:
    """The calibration world's up axis (3,): ``up`` (``x``, ``-y``, ...) when given, else the
    world axis closest to the camera's image-up direction (cameras stand upright: a z-up lab such
    as Qualisys gives +z)."""
    if up is not None:
        if up not in _AXES:
            raise ValueError(f"--up must be one of {', '.join(_AXES)}, got {up!r}")
        return np.array(_AXES[up], np.float64)
    image_up_world = np.asarray(camera.R, np.float64).T @ _LEVEL_UP
    k = int(np.argmax(np.abs(image_up_world)))
    axis = np.zeros(3)
    axis[k] = np.sign(image_up_world[k])
    return axis


def from_calibration(camera, up: str | None = None, floor: float = 0.0) -> WorldTransform:
    """The exact transform of a calibrated ``engines.camera.Camera``: up is the calibration
    world's up axis (:func:`lab_up_axis`) seen from the camera, and the height is the camera
    centre's coordinate along it above ``floor`` (the floor's coordinate on that axis; 0 in a
    Qualisys lab and in posestream's motion capture world)."""
    R = np.asarray(camera.R, np.float64)
    _check_rotation(R, f"camera {camera.name!r}")
    axis = lab_up_axis(camera, up)
    height = float(np.dot(np.asarray(camera.center, np.float64), axis)) - floor
    if height <= 0:
        raise ValueError(f"camera {camera.name!r} stands {height:.2f} m above the floor of its calibration "
                         "(not above it): give the up axis with --up")
    return WorldTransform(R @ axis, height, "calibration", "calibration")


def camera_from_calibration(path: str | Path, name: str | None = None):
    """The camera ``name`` (or the only one) from a calibration file, its rotation checked."""
    from engines.calibration import load_calibration

    cameras = load_calibration(path)
    names = [c.name for c in cameras]
    if name is None:
        if len(cameras) != 1:
            raise ValueError(f"{path} holds {len(cameras)} cameras ({', '.join(names)}): choose one with --camera-name")
        chosen = cameras[0]
    else:
        found = [c for c in cameras if c.name == name]
        if not found:
            raise ValueError(f"{path} has no camera named {name!r}; it has {', '.join(names)}")
        chosen = found[0]
    _check_rotation(np.asarray(chosen.R, np.float64), f"{path}, camera {chosen.name!r}")
    return chosen


@dataclass(frozen=True)
class TiltFlags:
    """``--camera-pitch``, ``--camera-roll``, ``--camera-height``, checked: any subset may be
    given; a given pitch without roll means roll 0 (and the other way round)."""

    pitch_deg: float | None = None
    roll_deg: float | None = None
    height_m: float | None = None

    def __post_init__(self) -> None:
        for flag, value, lo, hi in (("--camera-pitch", self.pitch_deg, -90.0, 90.0),
                                    ("--camera-roll", self.roll_deg, -90.0, 90.0),
                                    ("--camera-height", self.height_m, 0.0, 20.0)):
            if value is None:
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{flag} must be a finite number, got {value!r}")
            if flag == "--camera-height" and not (lo < value <= hi):
                raise ValueError(f"{flag} must be more than 0 and at most {hi:g} metres, got {value:g}")
            if flag != "--camera-height" and not (lo <= value <= hi):
                raise ValueError(f"{flag} must be between {lo:g} and {hi:g} degrees, got {value:g}")

    @property
    def up(self) -> np.ndarray | None:
        if self.pitch_deg is None and self.roll_deg is None:
            return None
        return up_from_tilt(self.pitch_deg or 0.0, self.roll_deg or 0.0)


# --- the causal estimator ----------------------------------------------------------------------------

_ANKLES = (3, 6)  # right, left (canonical indices)
_THORAX, _PELVIS = 8, 0
_HIPS, _KNEES = (1, 4), (2, 5)
_SETTLE_S = 2.0
_MEMORY_S = 30.0
_REST_SPEED = 0.25  # m/s: an ankle slower than this rests
_FOOT_CONF = 0.5
_FOOT_POINTS = 600  # resting-ankle samples kept (about 20 s at 30 fps)
_PLANE_SCALE_M = 0.3  # feet spread over this much floor (std) correct the tilt along it halfway


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(math.sqrt(float(v @ v)), 1e-12)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two 3-vectors (cheaper than the angle: this runs per frame)."""
    return float(a @ b) / max(math.sqrt(float(a @ a) * float(b @ b)), 1e-24)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(min(max(_cos(a, b), -1.0), 1.0)))


_COS_25, _COS_30, _COS_45 = (math.cos(math.radians(d)) for d in (25.0, 30.0, 45.0))
_COS_PRIOR, _COS_GATE = math.cos(math.radians(PRIOR_CONE_DEG)), math.cos(math.radians(GATE_DEG))


def _upright_axis(joints: np.ndarray) -> np.ndarray | None:
    """The body axis (ankles -> thorax, unit) of a person standing straight: each leg straight
    (thigh and shin within 25 degrees) and in line with the torso (30 degrees); else None."""
    torso = joints[_THORAX] - joints[_PELVIS]
    for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
        thigh, shin = joints[hip] - joints[knee], joints[knee] - joints[ankle]
        if _cos(thigh, shin) < _COS_25 or _cos(thigh, torso) < _COS_30:
            return None
    return _unit(joints[_THORAX] - 0.5 * (joints[3] + joints[6]))


def _torso_axis(joints: np.ndarray) -> np.ndarray | None:
    """The torso's axis (pelvis -> thorax, unit) of a person on their feet, knees bent or not: at
    least one thigh within 45 degrees of the torso's line (not sitting, not lying); else None."""
    torso = joints[_THORAX] - joints[_PELVIS]
    if max(_cos(joints[h] - joints[k], torso) for h, k in ((1, 2), (4, 5))) < _COS_45:
        return None
    return _unit(torso)


_REFRESH_FRAMES = 5  # the published transform is recomputed every few frames...


def _changed(old: WorldTransform, new: WorldTransform) -> bool:
    """...and replaced only when it moved (0.1 degrees, 2 mm) or its confidence or floor evidence
    changed noticeably: a transform that trembles from frame to frame would make feet skate."""
    return (_cos(old.up, new.up) < _COS_TENTH or abs(old.height_m - new.height_m) > 0.002
            or abs(old.up_confidence - new.up_confidence) > 0.05 or abs(old.height_confidence - new.height_confidence) > 0.05
            or old.floor_seen != new.floor_seen)


_COS_TENTH = math.cos(math.radians(0.1))


class _Mean:
    """A weighted mean of unit vectors: a running mean while young, then a ``memory_s`` memory."""

    def __init__(self) -> None:
        self.sum = np.zeros(3)
        self.weight = 0.0
        self.age_s = 0.0
        self.spread = 0.0  # weighted mean of 1 - cos(sample, mean): disagreement

    def add(self, v: np.ndarray, w: float, dt: float) -> None:
        self.age_s += dt
        tau = min(max(self.age_s, 0.5), _MEMORY_S)
        keep = math.exp(-dt / tau) if dt > 0 else 1.0
        self.sum *= keep
        self.weight *= keep
        self.spread *= keep
        self.sum += w * v
        self.weight += w
        if self.weight > 0:
            self.spread += w * (1.0 - float(np.dot(v, _unit(self.sum))))

    @property
    def value(self) -> np.ndarray | None:
        return None if self.weight <= 0 else _unit(self.sum)

    @property
    def confidence(self) -> float:
        """0-1: rises with the evidence (a second of confident samples gives about 0.6) and falls
        with the samples' disagreement (10 degrees of scatter costs about a third)."""
        if self.weight <= 0:
            return 0.0
        evidence = 1.0 - math.exp(-self.weight / 30.0)
        scatter = self.spread / self.weight  # ~ angle^2 / 2
        return evidence * math.exp(-scatter / (1.0 - math.cos(math.radians(10.0))) * 0.4)


class WorldEstimator:
    """Causal estimate of the camera's up direction and height from the people in view.

    Call once per frame with the persons' camera-frame joints (P, 17, 3) (the steady, fixed-length
    skeletons the rig publishes are best), their joint confidences (P, 17) and optionally the
    learned up model's predictions (P, 3) with weights (P,). Returns the current
    :class:`WorldTransform`, or None while no person has been seen. ``fixed_up`` /
    ``fixed_height_m`` pin a part that the user gave (it is then ``given``, never estimated).
    """

    def __init__(self, fixed_up: np.ndarray | None = None, fixed_height_m: float | None = None,
                 ankle_height_m: float = ANKLE_HEIGHT_M, source: str = "given") -> None:
        if source not in ("given", "calibration"):
            raise ValueError(f"a fixed part's source is given or calibration, got {source!r}")
        self.fixed_up = None if fixed_up is None else _unit(np.asarray(fixed_up, np.float64))
        self.fixed_height_m = fixed_height_m
        self.fixed_source = source
        self.ankle_height_m = float(ankle_height_m)
        self._up = _Mean()
        self._plane_up: np.ndarray | None = None
        self._feet: deque[np.ndarray] = deque(maxlen=_FOOT_POINTS)
        self._body_heights: deque[float] = deque(maxlen=300)
        self._last_ankles: dict[int, tuple[int, np.ndarray]] = {}
        self._last_t: int | None = None
        self._last_feet_t: int | None = None
        self._since_plane = 0
        self._since_refresh = 0
        self.current: WorldTransform | None = None
        if self.fixed_up is not None and fixed_height_m is not None:
            self.current = WorldTransform(self.fixed_up, float(fixed_height_m), source, source)

    # --- per frame ---------------------------------------------------------------------------------
    def update(self, ids, joints_cam: np.ndarray, joint_conf: np.ndarray, t_ns: int,
               up_samples: np.ndarray | None = None, up_weights: np.ndarray | None = None) -> WorldTransform | None:
        if self.fixed_up is not None and self.fixed_height_m is not None:
            return self.current
        t_ns = int(t_ns)
        dt = 0.0 if self._last_t is None else max(t_ns - self._last_t, 0) / 1e9
        self._last_t = t_ns
        J = np.asarray(joints_cam, np.float64)
        C = np.asarray(joint_conf, np.float64)
        if len(J) and self.fixed_up is None:
            self._add_up_samples(J, up_samples, up_weights, dt)
        up = self._up_now()
        if up is None:
            if not len(J) and self.current is None:
                return None  # nobody seen yet: nothing to go on
            up = _LEVEL_UP  # a person, but no usable up sample yet: a level camera, with no confidence
        if len(J):
            self._add_feet(ids, J, C, t_ns, up)
            if self.fixed_up is None:
                self._since_plane += 1
                if self._since_plane >= 15:
                    self._since_plane = 0
                    self._fit_plane()
        self._since_refresh += 1
        if self.current is None or self._since_refresh >= _REFRESH_FRAMES:
            self._since_refresh = 0
            fresh = self._transform(up, t_ns)
            if self.current is None or _changed(self.current, fresh):
                self.current = fresh
        return self.current

    def _add_up_samples(self, J, up_samples, up_weights, dt: float) -> None:
        settled = self._up.value is not None and self._up.age_s >= _SETTLE_S
        first = True
        for k in range(len(J)):
            if up_samples is not None and up_weights is not None and up_weights[k] > 0:
                v, w = _unit(np.asarray(up_samples[k], np.float64)), float(up_weights[k])
            else:  # without the learned model: the body's own axis, trusted less when the legs bend
                axis = _upright_axis(J[k])
                v, w = (axis, 0.5) if axis is not None else (_torso_axis(J[k]), 0.2)
                if v is None:
                    continue
            if _cos(v, _LEVEL_UP) < _COS_PRIOR:
                continue
            if settled and _cos(v, self._up.value) < _COS_GATE:
                continue
            self._up.add(v, w, dt if first else 0.0)
            first = False
        if first and dt > 0:  # no sample this frame: time still passes for the memory
            self._up.age_s += dt

    def _up_now(self) -> np.ndarray | None:
        if self.fixed_up is not None:
            return self.fixed_up
        learned = self._up.value
        if learned is None or self._plane_up is None:
            return learned
        return self._plane_up

    def _add_feet(self, ids, J, C, t_ns: int, up: np.ndarray) -> None:
        for pid, joints, conf in zip(ids, J, C):
            pid = int(pid)
            ankles = joints[list(_ANKLES)]
            prev = self._last_ankles.get(pid)
            self._last_ankles[pid] = (t_ns, ankles)
            seen = conf[list(_ANKLES)] >= _FOOT_CONF
            low = int(np.argmin(ankles @ up))  # the standing foot is the lower one
            if prev is not None and t_ns > prev[0]:
                resting = np.linalg.norm(ankles[low] - prev[1][low]) / ((t_ns - prev[0]) / 1e9) < _REST_SPEED
            else:
                resting = not self._feet  # a person's first frame: the lower foot, until better comes
            if seen[low] and resting:
                self._feet.append(ankles[low].copy())
                self._last_feet_t = t_ns
            axis = _upright_axis(joints)
            if axis is not None:  # fallback: an upright person's legs tell roughly where the floor is
                leg = 0.5 * sum(np.linalg.norm(joints[h] - joints[k]) + np.linalg.norm(joints[k] - joints[a])
                                for h, k, a in ((1, 2, 3), (4, 5, 6)))
                mid_hip = 0.5 * (joints[1] + joints[4])  # straight legs: the hips stand one leg above the ankles
                self._body_heights.append(self.ankle_height_m + leg - float(mid_hip @ up))
        if len(self._last_ankles) > 64:
            for pid in [p for p in self._last_ankles if p not in set(int(i) for i in ids)]:
                del self._last_ankles[pid]

    def _fit_plane(self) -> None:
        """Turn the learned up towards the normal of the floor the resting feet have covered.

        Along each direction the feet have spread over, their heights must not change: the up
        direction loses its component along that direction, with a weight that grows with the
        spread (``w = s^2 / (s^2 + _PLANE_SCALE_M^2)``, s the feet's standard deviation along it).
        A walk in a straight line corrects the tilt along the walk; walking about corrects both."""
        prior = self._up.value
        if len(self._feet) < 30 or prior is None:
            return
        A = np.asarray(self._feet)
        centred = A - A.mean(axis=0)
        evals, evecs = np.linalg.eigh(centred.T @ centred / len(A))
        u = prior.copy()
        for k in (1, 2):  # the two directions of widest spread; the narrowest is the floor's normal
            e = evecs[:, k]
            u -= evals[k] / (evals[k] + _PLANE_SCALE_M**2) * float(np.dot(u, e)) * e
        u = _unit(u)
        if _angle_deg(u, prior) > GATE_DEG:
            return
        self._plane_up = u

    def _transform(self, up: np.ndarray, t_ns: int) -> WorldTransform:
        up_source = self.fixed_source if self.fixed_up is not None else "estimated"
        up_conf = 1.0 if self.fixed_up is not None else (self._up.confidence if self._up.value is not None else 0.0)
        if self.fixed_height_m is not None:
            return WorldTransform(up, float(self.fixed_height_m), up_source, self.fixed_source, up_conf, 1.0, True)
        floor_seen = len(self._feet) > 0
        if floor_seen:
            heights = np.asarray(self._feet) @ up
            height = self.ankle_height_m - float(np.median(heights))
            evidence = 1.0 - math.exp(-len(self._feet) / 30.0)
            stale = (t_ns - (self._last_feet_t or t_ns)) / 1e9
            conf = evidence * (1.0 if stale < 2.0 else 0.5)  # feet out of view: keep the floor, doubt it
        elif self._body_heights:
            height, conf = float(np.median(self._body_heights)), 0.2
        elif self.current is not None:
            height, conf = self.current.height_m, 0.1
        else:
            height, conf = 1.0, 0.0  # nothing to go on yet: a camera on a desk
        return WorldTransform(up, height, up_source, "estimated", up_conf, conf, floor_seen)
