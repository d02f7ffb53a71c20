"""Pinhole cameras with OpenCV (Brown-Conrady) lens distortion, and a sampler of virtual cameras.

Coordinate frames
-----------------
* **World frame**: whatever frame the calibration or the caller uses, in metres. Our motion
  capture world is y-up (floor at ``y = 0``); a Qualisys calibration keeps Qualisys' z-up world.
* **Camera frame** (OpenCV convention): origin at the optical centre, x right, y down, z forward
  along the optical axis, metres. A world point maps to it by ``X_cam = R @ X_world + t``, so the
  optical centre in world coordinates is ``C = -R^T t``.
* **Normalised image coordinates**: ``(x, y) = (X/Z, Y/Z)`` of a camera-frame point, before lens
  distortion ("undistorted") or after it ("distorted").
* **Pixels**: ``u = fx * x_d + cx``, ``v = fy * y_d + cy`` with ``(x_d, y_d)`` distorted
  normalised coordinates; u grows to the right, v downwards, OpenCV's convention.
* **Screen coordinates** (``normalize_screen``): pixels rescaled so the longer image side spans
  ``[-1, 1]``, centred on the image and keeping the aspect ratio, so that landscape webcams and
  portrait phones land in one coordinate system.

Distortion follows OpenCV's coefficient order ``(k1, k2, p1, p2, k3)``::

    r2 = x^2 + y^2
    radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
    y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

It has no closed-form inverse; ``undistort_normalized`` solves it with Newton's method.

Shapes follow the project order: any leading batch/time axes, then ``(joints, channels)``; every
function here only cares about the last (channel) axis and broadcasts over the rest. Points
behind the camera (``Z <= 0``) cannot be imaged; projecting them gives NaN pixels rather than
the mirrored garbage a plain division would produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from engines.rotations import matrix_from_euler

__all__ = [
    "Camera",
    "CameraBatch",
    "VirtualCameraRanges",
    "denormalize_screen",
    "distort_normalized",
    "look_at_rotation",
    "normalize_screen",
    "project_points",
    "TiltedCameraRanges",
    "sample_camera_batch",
    "sample_tilted_cameras",
    "sample_virtual_cameras",
    "tilted_rotation",
    "undistort_normalized",
]

_ROTATION_TOL = 1e-6


# ----------------------------------------------------------------------------------------------
# Shape helpers
# ----------------------------------------------------------------------------------------------
def _points(a: object, channels: int, what: str) -> np.ndarray:
    """``a`` as a float array of shape (..., channels), or ValueError naming the shape."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != channels:
        raise ValueError(f"{what} must have shape (..., {channels}), got {arr.shape}.")
    return arr


def _dist_coeffs(dist: object | None) -> np.ndarray | None:
    """Distortion as an array (..., 5) in OpenCV order, or None when there is none.

    Accepts 4 coefficients ``(k1, k2, p1, p2)`` (k3 = 0) or 5 ``(k1, k2, p1, p2, k3)``; leading
    axes broadcast against the points' leading axes (one set of coefficients per camera).
    """
    if dist is None:
        return None
    d = np.asarray(dist, dtype=np.float64)
    if d.ndim == 0 or d.shape[-1] not in (4, 5):
        raise ValueError(
            f"distortion must have shape (..., 5) as (k1, k2, p1, p2, k3) or (..., 4), got {d.shape}."
        )
    if d.shape[-1] == 4:
        d = np.concatenate([d, np.zeros(d.shape[:-1] + (1,))], axis=-1)
    if not np.any(d):
        return None
    return d


# ----------------------------------------------------------------------------------------------
# Lens distortion
# ----------------------------------------------------------------------------------------------
def _distort_xy(x: np.ndarray, y: np.ndarray, d: np.ndarray, jacobian: bool = False):
    k1, k2, p1, p2, k3 = (d[..., i] for i in range(5))
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    if not jacobian:
        return xd, yd
    # d(radial)/dx = g x and d(radial)/dy = g y with g = 2 k1 + 4 k2 r2 + 6 k3 r2^2.
    g = 2.0 * k1 + r2 * (4.0 * k2 + 6.0 * k3 * r2)
    j11 = radial + g * x * x + 2.0 * p1 * y + 6.0 * p2 * x
    j12 = g * x * y + 2.0 * p1 * x + 2.0 * p2 * y
    j21 = g * x * y + 2.0 * p1 * x + 2.0 * p2 * y
    j22 = radial + g * y * y + 6.0 * p1 * y + 2.0 * p2 * x
    return xd, yd, j11, j12, j21, j22


def distort_normalized(xy: np.ndarray, dist: object | None) -> np.ndarray:
    """Apply lens distortion to undistorted normalised coordinates (..., 2) -> (..., 2).

    ``dist`` is ``(k1, k2, p1, p2[, k3])`` or an array (..., 5) broadcasting over ``xy``'s leading
    axes; None or all zeros means a perfect pinhole. Formula in the module docstring.
    """
    xy = _points(xy, 2, "xy")
    d = _dist_coeffs(dist)
    if d is None:
        return xy.copy()
    xd, yd = _distort_xy(xy[..., 0], xy[..., 1], d)
    return np.stack([xd, yd], axis=-1)


def undistort_normalized(
    xy_distorted: np.ndarray, dist: object | None, iterations: int = 30, tol: float = 1e-12
) -> np.ndarray:
    """Invert ``distort_normalized``: distorted normalised coordinates (..., 2) -> undistorted.

    Solves ``distort(x) = x_d`` with Newton's method, ``x <- x - J(x)^-1 (distort(x) - x_d)``,
    starting from ``x = x_d``, with the analytic 2x2 Jacobian ``J``. For the mild distortion of
    real lenses this converges to machine precision in a handful of iterations (quadratically,
    unlike OpenCV's fixed-point scheme). Where the model is not invertible (far outside the
    calibrated field of view, where strong barrel distortion folds back) Newton does not settle;
    those points, and any whose residual stays above ``tol``, come back as NaN.
    """
    xy_d = _points(xy_distorted, 2, "xy_distorted")
    d = _dist_coeffs(dist)
    if d is None:
        return xy_d.copy()
    shape = np.broadcast_shapes(xy_d.shape[:-1], d.shape[:-1])
    x_t = np.broadcast_to(xy_d[..., 0], shape)
    y_t = np.broadcast_to(xy_d[..., 1], shape)
    x, y = x_t.copy(), y_t.copy()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for _ in range(iterations):
            xd, yd, j11, j12, j21, j22 = _distort_xy(x, y, d, jacobian=True)
            rx, ry = xd - x_t, yd - y_t
            if not np.any(np.abs(rx) + np.abs(ry) > 1e-3 * tol):  # NaN compares False: done too.
                break
            det = j11 * j22 - j12 * j21
            x = x - (j22 * rx - j12 * ry) / det
            y = y - (j11 * ry - j21 * rx) / det
        xd, yd = _distort_xy(x, y, d)
        bad = ~(np.abs(xd - x_t) + np.abs(yd - y_t) <= tol)
    x = np.where(bad, np.nan, x)
    y = np.where(bad, np.nan, y)
    return np.stack([x, y], axis=-1)


# ----------------------------------------------------------------------------------------------
# Projection and screen normalisation (free, vectorised functions)
# ----------------------------------------------------------------------------------------------
def project_points(
    points_cam: np.ndarray,
    fx: float | np.ndarray,
    fy: float | np.ndarray,
    cx: float | np.ndarray,
    cy: float | np.ndarray,
    dist: object | None = None,
) -> np.ndarray:
    """Project camera-frame points (..., 3) in metres to pixels (..., 2).

    ``u = fx * x_d + cx``, ``v = fy * y_d + cy`` with ``(x_d, y_d)`` the distorted
    ``(X/Z, Y/Z)``. Intrinsics may be scalars or arrays broadcasting against
    ``points_cam.shape[:-1]`` (e.g. shape (n, 1) for n cameras and (n, joints, 3) points);
    ``dist`` likewise as (..., 5). Points with ``Z <= 0`` (behind the camera, or on its
    centre plane) give NaN.
    """
    p = _points(points_cam, 3, "points_cam")
    z = p[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        inv_z = np.where(z > 0, 1.0 / np.where(z > 0, z, 1.0), np.nan)
    xy = p[..., :2] * inv_z[..., None]
    d = _dist_coeffs(dist)
    if d is not None:
        xd, yd = _distort_xy(xy[..., 0], xy[..., 1], d)
    else:
        xd, yd = xy[..., 0], xy[..., 1]
    return np.stack([fx * xd + cx, fy * yd + cy], axis=-1)


def normalize_screen(
    pixels: np.ndarray, width: float | np.ndarray, height: float | np.ndarray
) -> np.ndarray:
    """Pixels (..., 2) -> screen coordinates where the longer image side spans [-1, 1].

    ``s = max(w, h)``, ``x' = (2 u - w) / s``, ``y' = (2 v - h) / s``. The image centre maps to
    (0, 0), one scale serves both axes (aspect ratio kept, a circle stays a circle), and the
    shorter side spans ``[-min/max, min/max]``; so a 1920x1080 landscape frame covers
    x' in [-1, 1], y' in [-0.5625, 0.5625] and a 1080x1920 portrait frame the transpose. Width and
    height may be arrays broadcasting against ``pixels.shape[:-1]`` (one image size per sample).
    """
    px = _points(pixels, 2, "pixels")
    w = np.asarray(width, dtype=np.float64)
    h = np.asarray(height, dtype=np.float64)
    s = np.maximum(w, h)
    return np.stack([(2.0 * px[..., 0] - w) / s, (2.0 * px[..., 1] - h) / s], axis=-1)


def denormalize_screen(
    screen: np.ndarray, width: float | np.ndarray, height: float | np.ndarray
) -> np.ndarray:
    """Inverse of ``normalize_screen``: ``u = (x' s + w) / 2``, ``v = (y' s + h) / 2``."""
    sc = _points(screen, 2, "screen")
    w = np.asarray(width, dtype=np.float64)
    h = np.asarray(height, dtype=np.float64)
    s = np.maximum(w, h)
    return np.stack([(sc[..., 0] * s + w) / 2.0, (sc[..., 1] * s + h) / 2.0], axis=-1)


def look_at_rotation(
    position: np.ndarray,
    target: np.ndarray,
    up: Sequence[float] = (0.0, 1.0, 0.0),
    roll_rad: float | np.ndarray = 0.0,
) -> np.ndarray:
    """World->camera rotations (..., 3, 3) for cameras at ``position`` looking at ``target``.

    Rows of R are the camera axes in world coordinates: forward ``z = (target - position)/|.|``,
    right ``x = z x up / |.|`` (horizontal, so the horizon is level), down ``y = z x x``. A
    positive ``roll_rad`` then turns the camera about its optical axis (``R <- Rz(roll) R``),
    which makes the scene appear rotated by ``-roll`` in the image. ``position`` and ``target``
    are (..., 3) in the world frame and broadcast against each other.
    """
    pos = _points(position, 3, "position")
    tgt = _points(target, 3, "target")
    up_v = _points(up, 3, "up")
    fwd = tgt - pos
    fwd_n = np.linalg.norm(fwd, axis=-1, keepdims=True)
    right = np.cross(fwd, up_v)
    right_n = np.linalg.norm(right, axis=-1, keepdims=True)
    if np.any(fwd_n <= 0) or np.any(right_n <= 1e-9 * np.maximum(fwd_n, 1.0)):
        raise ValueError(
            "look_at_rotation needs target != position and a view direction not parallel to up."
        )
    fwd = fwd / fwd_n
    right = right / right_n
    down = np.cross(fwd, right)
    r0 = np.stack([right, down, fwd], axis=-2)
    rz = matrix_from_euler(np.asarray(roll_rad, dtype=np.float64)[..., None], "Z")
    return rz @ r0


# ----------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------
def _frozen_array(a: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.array(a, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite, got {arr.tolist()}.")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera: pinhole intrinsics, OpenCV distortion and a world pose.

    Attributes:
        name: identifier (Qualisys serial, file stem, ...).
        width, height: image size in pixels (portrait images simply have height > width).
        fx, fy: focal lengths in pixels; cx, cy: principal point in pixels.
        R: (3, 3) rotation world -> camera; t: (3,) translation in metres, so that
           ``X_cam = R @ X_world + t`` (camera frame: x right, y down, z forward).
        dist: (5,) distortion ``(k1, k2, p1, p2, k3)`` in OpenCV order (4 values are padded with
           k3 = 0).

    Arrays are copied and made read-only so the frozen camera really is immutable. Equality
    (``==``) is exact on every field; use ``isclose`` after a lossy conversion.
    """

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for attr in ("width", "height"):
            v = getattr(self, attr)
            if isinstance(v, bool) or int(v) != v or v <= 0:
                raise ValueError(f"Camera '{self.name}': {attr} must be a positive integer, got {v!r}.")
            set_(self, attr, int(v))
        for attr in ("fx", "fy", "cx", "cy"):
            v = float(getattr(self, attr))
            if not np.isfinite(v) or (attr in ("fx", "fy") and v <= 0):
                raise ValueError(
                    f"Camera '{self.name}': {attr} must be a finite"
                    f"{' positive' if attr in ('fx', 'fy') else ''} number, got {v!r}."
                )
            set_(self, attr, v)
        R = _frozen_array(self.R, (3, 3), f"Camera '{self.name}': R")
        err = np.abs(R @ R.T - np.eye(3)).max()
        if err > _ROTATION_TOL or np.linalg.det(R) < 0:
            raise ValueError(
                f"Camera '{self.name}': R must be a rotation matrix (orthonormal, det +1), "
                f"got |R R^T - I| = {err:.2e} and det {np.linalg.det(R):+.3f}."
            )
        set_(self, "R", R)
        set_(self, "t", _frozen_array(self.t, (3,), f"Camera '{self.name}': t"))
        d = np.array(self.dist, dtype=np.float64).ravel()
        if d.size == 4:
            d = np.append(d, 0.0)
        set_(self, "dist", _frozen_array(d, (5,), f"Camera '{self.name}': dist (k1, k2, p1, p2, k3)"))

    # -- comparisons ------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Camera):
            return NotImplemented
        return (
            self.name == other.name
            and (self.width, self.height, self.fx, self.fy, self.cx, self.cy)
            == (other.width, other.height, other.fx, other.fy, other.cx, other.cy)
            and np.array_equal(self.R, other.R)
            and np.array_equal(self.t, other.t)
            and np.array_equal(self.dist, other.dist)
        )

    def __hash__(self) -> int:  # consistent with __eq__: equal cameras share these fields
        return hash((self.name, self.width, self.height, self.fx, self.fy, self.cx, self.cy))

    def isclose(self, other: Camera, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
        """Same name and size, and all numbers equal within ``rtol``/``atol``."""
        def numbers(c: Camera) -> np.ndarray:
            return np.concatenate([[c.fx, c.fy, c.cx, c.cy], c.R.ravel(), c.t, c.dist])

        a, b = numbers(self), numbers(other)
        return (
            self.name == other.name
            and (self.width, self.height) == (other.width, other.height)
            and bool(np.allclose(a, b, rtol=rtol, atol=atol))
        )

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def look_at(
        cls,
        name: str,
        width: int,
        height: int,
        fov_deg: float,
        position: Sequence[float],
        target: Sequence[float],
        up: Sequence[float] = (0.0, 1.0, 0.0),
        roll_deg: float = 0.0,
        dist: Sequence[float] | None = None,
    ) -> Camera:
        """A camera at ``position`` looking at ``target`` (world frame, metres).

        ``fov_deg`` is the field of view across the *longer* image side, so
        ``f = (max(w, h) / 2) / tan(fov / 2)`` with square pixels and the principal point at
        the image centre. Rotation from ``look_at_rotation``.
        """
        f = 0.5 * max(width, height) / np.tan(np.radians(fov_deg) / 2.0)
        pos = np.asarray(position, dtype=np.float64)
        R = look_at_rotation(pos, np.asarray(target, dtype=np.float64), up, np.radians(roll_deg))
        t = -R @ pos
        return cls(name, width, height, f, f, width / 2.0, height / 2.0, R, t,
                   np.zeros(5) if dist is None else dist)

    # -- derived quantities -----------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsic matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """Image size as ``(width, height)`` in pixels."""
        return (self.width, self.height)

    @property
    def center(self) -> np.ndarray:
        """Optical centre in world coordinates, metres: ``C = -R^T t`` (the point with X_cam = 0)."""
        return -self.R.T @ self.t

    @property
    def extrinsics(self) -> np.ndarray:
        """(3, 4) matrix ``[R | t]`` mapping homogeneous world points to the camera frame."""
        return np.hstack([self.R, self.t[:, None]])

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.dist))

    # -- frame changes ----------------------------------------------------------------------
    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera frame (..., 3): ``X_cam = R X_world + t``."""
        p = _points(points_world, 3, "points_world")
        return p @ self.R.T + self.t

    def camera_to_world(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points (..., 3) -> world (..., 3): ``X_world = R^T (X_cam - t)``."""
        p = _points(points_cam, 3, "points_cam")
        return (p - self.t) @ self.R

    # -- projection -------------------------------------------------------------------------
    def project(
        self,
        points: np.ndarray,
        *,
        frame: Literal["world", "camera"] = "world",
        distort: bool = True,
    ) -> np.ndarray:
        """Points (..., 3) in ``frame`` (metres) -> pixels (..., 2); NaN for points with Z_cam <= 0.

        ``distort=False`` gives the ideal pinhole pixel (what ``undistort_points`` recovers).
        Pixels are not clipped to the image: use ``in_image`` to test visibility.
        """
        if frame not in ("world", "camera"):
            raise ValueError(f"frame must be 'world' or 'camera', got {frame!r}.")
        p = _points(points, 3, "points")
        pc = self.world_to_camera(p) if frame == "world" else p
        return project_points(pc, self.fx, self.fy, self.cx, self.cy, self.dist if distort else None)

    def in_image(self, pixels: np.ndarray) -> np.ndarray:
        """Boolean (...,): pixel lies inside ``[0, width] x [0, height]`` (False for NaN)."""
        px = _points(pixels, 2, "pixels")
        u, v = px[..., 0], px[..., 1]
        return (u >= 0) & (u <= self.width) & (v >= 0) & (v <= self.height)

    def undistort_points(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> undistorted normalised image coordinates (..., 2).

        ``x_d = (u - cx) / fx``, ``y_d = (v - cy) / fy``, then ``undistort_normalized``; the
        result is ``(X/Z, Y/Z)`` of every camera-frame point imaged at that pixel.
        """
        px = _points(pixels, 2, "pixels")
        xy_d = np.stack([(px[..., 0] - self.cx) / self.fx, (px[..., 1] - self.cy) / self.fy], axis=-1)
        return undistort_normalized(xy_d, self.dist if self.has_distortion else None)

    def unproject(self, pixels: np.ndarray, depth: float | np.ndarray) -> np.ndarray:
        """Pixels (..., 2) and depths -> camera-frame points (..., 3), metres.

        ``depth`` is the camera-frame Z (distance along the optical axis, not along the ray),
        a scalar or an array broadcasting against ``pixels.shape[:-1]``; the point is
        ``Z * (x, y, 1)`` with ``(x, y)`` from ``undistort_points``. Non-positive depths give NaN,
        mirroring ``project``. Use ``camera_to_world`` for world coordinates.
        """
        xy = self.undistort_points(pixels)
        z = np.asarray(depth, dtype=np.float64)
        z = np.where(z > 0, z, np.nan)
        z = np.broadcast_to(z, np.broadcast_shapes(z.shape, xy.shape[:-1]))
        xy = np.broadcast_to(xy, z.shape + (2,))
        return np.stack([xy[..., 0] * z, xy[..., 1] * z, z], axis=-1)

    def normalize_screen(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) -> screen coordinates of this image (see module ``normalize_screen``)."""
        return normalize_screen(pixels, self.width, self.height)

    def denormalize_screen(self, screen: np.ndarray) -> np.ndarray:
        """Screen coordinates (..., 2) -> pixels of this image."""
        return denormalize_screen(screen, self.width, self.height)


# ----------------------------------------------------------------------------------------------
# Virtual cameras for synthesising 2D from 3D
# ----------------------------------------------------------------------------------------------
def _check_range(
    name: str, r: tuple[float, float], lo: float | None = None, hi: float | None = None
) -> None:
    if len(r) != 2 or not (r[0] <= r[1]):
        raise ValueError(f"VirtualCameraRanges.{name} must be (low, high) with low <= high, got {r!r}.")
    if (lo is not None and r[0] < lo) or (hi is not None and r[1] > hi):
        raise ValueError(f"VirtualCameraRanges.{name} must lie within [{lo}, {hi}], got {r!r}.")


@dataclass(frozen=True)
class VirtualCameraRanges:
    """Ranges of a random hand-placed webcam or phone filming one person (world frame y-up, m).

    Every quantity is drawn uniformly from its range, independently per camera:

    * ``distance_m`` (2-6 m): horizontal distance (in the x-z ground plane) from the subject
      centre to the camera; a person needs about 2 m to fit a webcam's frame and rarely stands
      further than 6 m from a laptop or a phone on a tripod. If ``min_framed_height_m`` is set,
      the camera steps back further when the drawn distance would not fit that height into the
      image's vertical field of view, the way a user steps back until their feet are in frame:
      ``d >= (H / 2 + j) * fy / (height / 2)``, with ``j`` the look-at jitter below as margin.
    * ``height_m`` (0.5-2.0 m): camera height above the ground ``y = ground_y``: from a laptop on a
      low table to a tripod or a shelf.
    * ``azimuth_deg`` (0-360): direction from the subject to the camera around the vertical axis.
    * ``look_at_jitter_m`` (0.15 m): the camera aims at the subject centre plus a uniform offset
      in ``[-j, j]^3``, so the subject is not always perfectly centred (pitch and yaw vary).
    * ``roll_deg`` (-5..5): rotation about the optical axis (a slightly crooked device).
    * ``fov_deg`` (50-80): field of view across the *longer* image side (webcams ~60-78 deg,
      phone main cameras ~65-75 deg); square pixels, ``f = (max(w, h)/2) / tan(fov/2)``.
    * ``image_sizes``: (width, height) pairs chosen uniformly: 640x480, 1280x720, 1920x1080
      landscape and 720x1280, 1080x1920 portrait (phones held upright).
    * ``principal_jitter``: principal point offset from the image centre, uniform in
      ``[-j, j]`` times the image width/height (real sensors are a few pixels off-centre).
    * ``distortion_probability`` (0 by default): chance that a camera gets mild lens distortion,
      ``k1`` in ``k1_range``, ``k2`` in ``k2_range``, ``p1, p2`` in ``[-p, p]`` with
      ``p = tangential_max``; the defaults keep the distortion monotonic over the whole image.
    """

    distance_m: tuple[float, float] = (2.0, 6.0)
    height_m: tuple[float, float] = (0.5, 2.0)
    azimuth_deg: tuple[float, float] = (0.0, 360.0)
    look_at_jitter_m: float = 0.15
    roll_deg: tuple[float, float] = (-5.0, 5.0)
    fov_deg: tuple[float, float] = (50.0, 80.0)
    image_sizes: tuple[tuple[int, int], ...] = (
        (640, 480), (1280, 720), (1920, 1080), (720, 1280), (1080, 1920)
    )
    principal_jitter: float = 0.02
    min_framed_height_m: float | None = 1.9
    distortion_probability: float = 0.0
    k1_range: tuple[float, float] = (-0.08, 0.04)
    k2_range: tuple[float, float] = (-0.02, 0.02)
    tangential_max: float = 1e-3

    def __post_init__(self) -> None:
        _check_range("distance_m", self.distance_m, lo=0.1)
        _check_range("height_m", self.height_m)
        _check_range("azimuth_deg", self.azimuth_deg)
        _check_range("roll_deg", self.roll_deg, lo=-90.0, hi=90.0)
        _check_range("fov_deg", self.fov_deg, lo=1.0, hi=170.0)
        _check_range("k1_range", self.k1_range)
        _check_range("k2_range", self.k2_range)
        if len(self.image_sizes) == 0 or any(len(s) != 2 or min(s) <= 0 for s in self.image_sizes):
            raise ValueError(
                "VirtualCameraRanges.image_sizes must be non-empty (width, height) pairs, "
                f"got {self.image_sizes!r}."
            )
        if not 0.0 <= self.distortion_probability <= 1.0:
            raise ValueError(
                "VirtualCameraRanges.distortion_probability must be in [0, 1], "
                f"got {self.distortion_probability}."
            )
        for name in ("look_at_jitter_m", "principal_jitter", "tangential_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"VirtualCameraRanges.{name} must be >= 0, got {getattr(self, name)}.")


def _expand(a: np.ndarray, ndim: int) -> np.ndarray:
    """(n, *rest) -> (n, 1, ..., 1, *rest) with ``ndim`` singleton axes inserted after axis 0."""
    return a.reshape(a.shape[:1] + (1,) * ndim + a.shape[1:])


@dataclass(frozen=True)
class CameraBatch:
    """n cameras as stacked arrays, for fast per-batch projection during training.

    R (n, 3, 3) world->camera, t (n, 3) metres, f (n, 2) = (fx, fy) and c (n, 2) = (cx, cy) in
    pixels, size (n, 2) = (width, height) integers, dist (n, 5) in OpenCV order.
    """

    R: np.ndarray
    t: np.ndarray
    f: np.ndarray
    c: np.ndarray
    size: np.ndarray
    dist: np.ndarray

    def __post_init__(self) -> None:
        n = self.R.shape[0] if self.R.ndim == 3 else -1
        expected = {
            "R": (n, 3, 3), "t": (n, 3), "f": (n, 2), "c": (n, 2), "size": (n, 2), "dist": (n, 5)
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"CameraBatch.{name} must have shape {shape}, got {getattr(self, name).shape}."
                )

    def __len__(self) -> int:
        return self.R.shape[0]

    @property
    def center(self) -> np.ndarray:
        """(n, 3) optical centres in world coordinates, ``-R^T t``."""
        return -np.einsum("nji,nj->ni", self.R, self.t)

    def world_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """Points (n, ..., 3), camera i seeing ``points_world[i]`` -> camera frames (n, ..., 3)."""
        p = _points(points_world, 3, "points_world")
        if p.ndim < 2 or p.shape[0] != len(self):
            raise ValueError(f"points_world must have shape ({len(self)}, ..., 3), got {p.shape}.")
        k = p.ndim - 2
        Rk, tk = _expand(self.R, k), _expand(self.t, k)
        # matmul against R^T: an order of magnitude faster than einsum for big batches
        return np.matmul(p[..., None, :], np.swapaxes(Rk, -1, -2))[..., 0, :] + tk

    def project(self, points_world: np.ndarray, distort: bool = True) -> np.ndarray:
        """Points (n, ..., 3) -> pixels (n, ..., 2), camera i for points i; NaN behind a camera."""
        pc = self.world_to_camera(points_world)
        k = pc.ndim - 2
        f, c = _expand(self.f, k), _expand(self.c, k)
        dist = _expand(self.dist, k) if distort and np.any(self.dist) else None
        return project_points(pc, f[..., 0], f[..., 1], c[..., 0], c[..., 1], dist)

    def camera(self, i: int, name: str | None = None) -> Camera:
        """Camera i as a ``Camera`` (named ``virtual{i}`` unless ``name`` is given)."""
        w, h = (int(v) for v in self.size[i])
        return Camera(
            name if name is not None else f"virtual{i}", w, h,
            float(self.f[i, 0]), float(self.f[i, 1]), float(self.c[i, 0]), float(self.c[i, 1]),
            self.R[i], self.t[i], self.dist[i],
        )

    def to_cameras(self) -> list[Camera]:
        return [self.camera(i) for i in range(len(self))]


def sample_camera_batch(
    rng: np.random.Generator,
    n: int,
    subject_center_world: np.ndarray,
    ranges: VirtualCameraRanges | None = None,
    ground_y: float = 0.0,
) -> CameraBatch:
    """Draw n random cameras aimed at a subject (world frame y-up, metres), vectorised.

    ``subject_center_world`` is (3,) (one subject for all cameras) or (n, 3) (camera i films
    subject i, e.g. the root of sample i in a training batch); the subject centre is roughly the
    pelvis of a standing person. The camera stands at ``distance`` from it horizontally, at
    ``ground_y + height`` vertically, in direction ``azimuth``, and looks at the centre plus
    jitter, with a small roll (see ``VirtualCameraRanges``; None means its defaults). Draws happen
    in a fixed order, so a seeded Generator gives the same cameras every time.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}.")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    n = int(n)
    center = np.asarray(subject_center_world, dtype=np.float64)
    if center.shape not in ((3,), (n, 3)):
        raise ValueError(f"subject_center_world must have shape (3,) or ({n}, 3), got {center.shape}.")
    center = np.broadcast_to(center, (n, 3))
    rg = VirtualCameraRanges() if ranges is None else ranges

    sizes = np.asarray(rg.image_sizes, dtype=np.int64)
    size = sizes[rng.integers(0, len(sizes), n)]
    fov = np.radians(rng.uniform(*rg.fov_deg, n))
    focal = 0.5 * size.max(axis=1) / np.tan(fov / 2.0)
    c = size / 2.0 + rng.uniform(-1.0, 1.0, (n, 2)) * rg.principal_jitter * size
    distance = rng.uniform(*rg.distance_m, n)
    azimuth = np.radians(rng.uniform(*rg.azimuth_deg, n))
    height = ground_y + rng.uniform(*rg.height_m, n)
    target = center + rng.uniform(-1.0, 1.0, (n, 3)) * rg.look_at_jitter_m
    roll = np.radians(rng.uniform(*rg.roll_deg, n))
    has_dist = rng.uniform(size=n) < rg.distortion_probability
    k1 = rng.uniform(*rg.k1_range, n)
    k2 = rng.uniform(*rg.k2_range, n)
    p12 = rng.uniform(-rg.tangential_max, rg.tangential_max, (n, 2))

    if rg.min_framed_height_m is not None:
        # Vertical half-extent seen at distance d is d * (h/2) / fy; the jitter can shift the aim
        # by up to j, so ask for (H/2 + j) to fit.
        half_needed = rg.min_framed_height_m / 2.0 + rg.look_at_jitter_m
        distance = np.maximum(distance, half_needed * focal / (size[:, 1] / 2.0))

    position = np.stack(
        [
            center[:, 0] + distance * np.sin(azimuth),
            height,
            center[:, 2] + distance * np.cos(azimuth),
        ],
        axis=-1,
    )
    R = look_at_rotation(position, target, (0.0, 1.0, 0.0), roll)
    t = -np.einsum("nij,nj->ni", R, position)
    dist = np.zeros((n, 5))
    dist[:, 0] = k1
    dist[:, 1] = k2
    dist[:, 2:4] = p12
    dist[~has_dist] = 0.0
    return CameraBatch(R=R, t=t, f=np.stack([focal, focal], -1), c=c, size=size, dist=dist)


def sample_virtual_cameras(
    rng: np.random.Generator,
    n: int,
    subject_center_world: np.ndarray,
    ranges: VirtualCameraRanges | None = None,
    ground_y: float = 0.0,
) -> list[Camera]:
    """``sample_camera_batch`` as a list of ``Camera`` objects named ``virtual0``, ``virtual1``, ..."""
    return sample_camera_batch(rng, n, subject_center_world, ranges, ground_y).to_cameras()


# ----------------------------------------------------------------------------------------------
# Tilted cameras with a known pitch and roll (learning the gravity direction)
# ----------------------------------------------------------------------------------------------
def tilted_rotation(
    yaw_rad: np.ndarray, pitch_rad: np.ndarray, roll_rad: np.ndarray
) -> np.ndarray:
    """World->camera rotations (..., 3, 3) from a heading, a pitch and a roll (world frame y-up).

    The optical axis points along ``(sin yaw cos pitch, sin pitch, cos yaw cos pitch)`` in world
    coordinates: ``yaw`` turns it about the vertical (0 = along +z), **pitch > 0 looks up, pitch < 0
    looks down** at the floor, and ``roll`` turns the camera about its optical axis as in
    ``look_at_rotation``. World up seen from the camera is then ``R @ (0, 1, 0)``, which for
    ``roll = 0`` is ``(0, -cos pitch, sin pitch)`` in camera axes (x right, y down, z forward).
    |pitch| must stay below 90 degrees (a camera looking straight up or down has no heading).
    """
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (yaw_rad, pitch_rad, roll_rad)))
    if np.any(np.abs(pitch) >= np.pi / 2 - 1e-6):
        raise ValueError("tilted_rotation needs |pitch| < 90 degrees.")
    fwd = np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)], axis=-1)
    return look_at_rotation(np.zeros_like(fwd), fwd, (0.0, 1.0, 0.0), roll)


@dataclass(frozen=True)
class TiltedCameraRanges:
    """Ranges of a camera with a drawn pitch and roll filming one person (world y-up, metres).

    Unlike ``VirtualCameraRanges`` (a camera *aimed* at the subject, whose tilt follows from where
    it stands), the camera's orientation is drawn directly, so its gravity direction is known
    and spread over what hand-placed webcams and phones do: ``pitch_deg`` (-45..15; negative looks
    down, see ``tilted_rotation``), ``roll_deg`` (-20..20), ``height_m`` above the floor (0.5-2.5),
    horizontal ``distance_m`` from the subject (1.5-8), ``azimuth_deg`` of the camera around the
    subject, ``yaw_jitter_deg`` (the heading misses the subject by up to this much, so people
    are seen off-centre), ``fov_deg`` across the longer image side, and ``image_sizes`` /
    ``principal_jitter`` as in ``VirtualCameraRanges``. ``min_in_frame`` is the fraction of the
    subject's points that must land inside the image; cameras that miss are drawn again. With
    probability ``aim_probability`` the distance is not drawn but follows from the pitch and the
    height, so that the subject's centre lies within the middle third of the vertical field of
    view (how people set up a tilted camera, and what keeps steep pitches in frame); otherwise it
    is uniform in ``distance_m``. Either way it is clipped to ``distance_m``.
    """

    pitch_deg: tuple[float, float] = (-45.0, 15.0)
    roll_deg: tuple[float, float] = (-20.0, 20.0)
    height_m: tuple[float, float] = (0.5, 2.5)
    distance_m: tuple[float, float] = (1.5, 8.0)
    azimuth_deg: tuple[float, float] = (0.0, 360.0)
    yaw_jitter_deg: float = 15.0
    fov_deg: tuple[float, float] = VirtualCameraRanges.fov_deg
    image_sizes: tuple[tuple[int, int], ...] = VirtualCameraRanges.image_sizes
    principal_jitter: float = VirtualCameraRanges.principal_jitter
    min_in_frame: float = 0.85
    aim_probability: float = 0.5

    def __post_init__(self) -> None:
        _check_range("pitch_deg", self.pitch_deg, lo=-89.0, hi=89.0)
        _check_range("roll_deg", self.roll_deg, lo=-90.0, hi=90.0)
        _check_range("height_m", self.height_m)
        _check_range("distance_m", self.distance_m, lo=0.1)
        _check_range("azimuth_deg", self.azimuth_deg)
        _check_range("fov_deg", self.fov_deg, lo=1.0, hi=170.0)
        if len(self.image_sizes) == 0 or any(len(s) != 2 or min(s) <= 0 for s in self.image_sizes):
            raise ValueError(f"TiltedCameraRanges.image_sizes must be non-empty (width, height) pairs, got {self.image_sizes!r}.")
        if not 0.0 <= self.min_in_frame <= 1.0 or not 0.0 <= self.aim_probability <= 1.0 or self.yaw_jitter_deg < 0 or self.principal_jitter < 0:
            raise ValueError("TiltedCameraRanges needs min_in_frame and aim_probability in [0, 1] and non-negative jitters.")


def _draw_tilted(rng: np.random.Generator, n: int, center: np.ndarray, rg: TiltedCameraRanges, ground_y: float,
                 pitch: np.ndarray, roll: np.ndarray) -> CameraBatch:
    sizes = np.asarray(rg.image_sizes, dtype=np.int64)
    size = sizes[rng.integers(0, len(sizes), n)]
    fov = np.radians(rng.uniform(*rg.fov_deg, n))
    focal = 0.5 * size.max(axis=1) / np.tan(fov / 2.0)
    c = size / 2.0 + rng.uniform(-1.0, 1.0, (n, 2)) * rg.principal_jitter * size
    distance = rng.uniform(*rg.distance_m, n)
    azimuth = np.radians(rng.uniform(*rg.azimuth_deg, n))
    height = ground_y + rng.uniform(*rg.height_m, n)
    aim = rng.uniform(size=n) < rg.aim_probability
    half_vfov = np.arctan(0.5 * size[:, 1] / focal)
    elevation = pitch + rng.uniform(-1.0, 1.0, n) * half_vfov / 3.0  # of the subject seen from the camera
    drop = height - center[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        aimed = drop / np.tan(-elevation)
    aimed = np.where(np.isfinite(aimed) & (aimed > 0), aimed, distance)
    distance = np.clip(np.where(aim, aimed, distance), *rg.distance_m)
    yaw = azimuth + np.pi + np.radians(rng.uniform(-rg.yaw_jitter_deg, rg.yaw_jitter_deg, n))
    position = np.stack([center[:, 0] + distance * np.sin(azimuth), height,
                         center[:, 2] + distance * np.cos(azimuth)], axis=-1)
    R = tilted_rotation(yaw, pitch, roll)
    t = -np.einsum("nij,nj->ni", R, position)
    return CameraBatch(R=R, t=t, f=np.stack([focal, focal], -1), c=c, size=size, dist=np.zeros((n, 5)))


def sample_tilted_cameras(
    rng: np.random.Generator,
    subject_points_world: np.ndarray,
    ranges: TiltedCameraRanges | None = None,
    ground_y: float | np.ndarray = 0.0,
    max_tries: int = 100,
    strict: bool = True,
) -> CameraBatch:
    """One camera with a drawn pitch, roll and height per subject, the subject (mostly) in frame.

    ``subject_points_world`` (n, K, 3) holds points of subject i (e.g. all joints of a window's
    frames), world frame y-up, metres; ``ground_y`` (scalar or (n,)) is each subject's floor height.
    The camera stands at a drawn horizontal distance from the points' mean, heads towards it give
    or take ``yaw_jitter_deg`` and has the drawn pitch and roll (``TiltedCameraRanges``). Cameras
    seeing fewer than ``min_in_frame`` of their subject's points are drawn again (position,
    heading and intrinsics; the pitch and roll stay as first drawn, so they keep their uniform
    distribution), up to ``max_tries`` rounds; then ``ValueError``. World up in camera i is
    ``R[i] @ (0, 1, 0)``, i.e. ``R[i, :, 1]``.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}.")
    pts = np.asarray(subject_points_world, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 3 or len(pts) == 0:
        raise ValueError(f"subject_points_world must have shape (n, K, 3) with n >= 1, got {pts.shape}.")
    n = len(pts)
    rg = TiltedCameraRanges() if ranges is None else ranges
    ground = np.broadcast_to(np.asarray(ground_y, dtype=np.float64), (n,))
    center = pts.mean(axis=1)
    pitch = np.radians(rng.uniform(*rg.pitch_deg, n))
    roll = np.radians(rng.uniform(*rg.roll_deg, n))
    out = None
    todo = np.arange(n)
    for _ in range(max_tries):
        cams = _draw_tilted(rng, len(todo), center[todo], rg, 0.0, pitch[todo], roll[todo])
        cams = CameraBatch(R=cams.R, t=cams.t - cams.R[:, :, 1] * ground[todo, None], f=cams.f, c=cams.c,
                           size=cams.size, dist=cams.dist)
        px = cams.project(pts[todo])
        w, h = cams.size[:, None, 0], cams.size[:, None, 1]
        inside = (px[..., 0] >= 0) & (px[..., 0] <= w) & (px[..., 1] >= 0) & (px[..., 1] <= h)
        ok = inside.mean(axis=1) >= rg.min_in_frame
        if out is None:
            out = {k: np.zeros((n,) + getattr(cams, k).shape[1:], getattr(cams, k).dtype)
                   for k in ("R", "t", "f", "c", "size", "dist")}
        for k in out:
            out[k][todo[ok]] = getattr(cams, k)[ok]
        last = (todo[~ok], cams, ~ok)
        todo = todo[~ok]
        if len(todo) == 0:
            return CameraBatch(**out)
    if not strict:
        for k in out:
            out[k][last[0]] = getattr(last[1], k)[last[2]]
        return CameraBatch(**out)
    raise ValueError(f"{len(todo)} of {n} subjects could not be framed by a tilted camera in {max_tries} tries; "
                     "widen TiltedCameraRanges or lower min_in_frame.")
