"""Rotations, written once for every layer: quaternions, rotation matrices, Euler channels.

Conventions (the ZeroMQ v2 protocol's, Unity's, glTF's and VMC's):

* A quaternion is ``(x, y, z, w)``, scalar last. Products are Hamilton products, so
  ``matrix_from_quat(quat_multiply(a, b)) == matrix_from_quat(a) @ matrix_from_quat(b)``: ``b``
  is applied first. ``q`` and ``-q`` are the same rotation; :func:`quat_from_matrix` returns the
  one with ``w >= 0``.
* A rotation matrix ``R`` acts on column vectors, ``v' = R @ v``, in a right-handed frame.
* Euler orders are strings of axes as in ``scipy.spatial.transform.Rotation.from_euler``:
  upper case (``"ZXY"``) is intrinsic, the rotations composed in the written order
  (``R = Rz @ Rx @ Ry``), which is what BVH ``CHANNELS`` lines mean; lower case (``"zxy"``) is
  extrinsic, about the fixed axes in the written order (``R = Ry @ Rx @ Rz``).
* Angles are radians unless ``degrees=True``.

Every function is vectorised over leading axes (quaternions ``(..., 4)``, matrices
``(..., 3, 3)``, vectors ``(..., 3)``), accepts any real dtype and computes and returns float64.
The rig's per-frame kernel uses the compiled twin of :func:`quat_from_matrix` in
``engines.rotations_kernel``.

>>> q = quat_from_axis_angle([0.0, 0.0, 1.0], np.pi / 2)  # a quarter turn about z
>>> np.round(quat_apply(q, [1.0, 0.0, 0.0]), 12) + 0.0
array([0., 1., 0.])
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "euler_from_matrix",
    "matrix_angle",
    "matrix_from_euler",
    "matrix_from_quat",
    "quat_apply",
    "quat_conjugate",
    "quat_from_axis_angle",
    "quat_from_matrix",
    "quat_inverse",
    "quat_multiply",
    "quat_normalize",
    "quat_slerp",
]

_EPS = 1e-9
_AXES = "XYZ"
_GIMBAL = 1.0 - 1e-12  # |sin(middle angle)| beyond which the first and last axes coincide


def _trailing(a, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``a`` as float64, checked to end in ``shape``."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < len(shape) or a.shape[-len(shape):] != shape:
        raise ValueError(f"expected {what} shaped (..., {', '.join(map(str, shape))}), got {a.shape}")
    return a


# --- quaternions ------------------------------------------------------------------------------------


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) scaled to unit length."""
    q = _trailing(q, (4,), "quaternions")
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugates (-x, -y, -z, w) of quaternions (..., 4): the inverse rotation of a unit quaternion."""
    q = _trailing(q, (4,), "quaternions")
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def quat_inverse(q: np.ndarray) -> np.ndarray:
    """Inverses of quaternions (..., 4) of any non-zero length (the conjugate over the squared norm)."""
    q = _trailing(q, (4,), "quaternions")
    return quat_conjugate(q) / np.sum(q * q, axis=-1, keepdims=True)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products ``a * b`` of quaternions (..., 4) (broadcast): the rotation ``b``, then ``a``."""
    a = _trailing(a, (4,), "quaternions")
    b = _trailing(b, (4,), "quaternions")
    ax, ay, az, aw = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bz, bw = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], -1)  # fmt: skip


def quat_apply(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectors (..., 3) rotated by quaternions (..., 4) (broadcast; normalised first)."""
    q = quat_normalize(q)
    v = _trailing(v, (3,), "vectors")
    u, w = q[..., :3], q[..., 3:]
    uv = np.cross(u, v)
    return v + 2.0 * (w * uv + np.cross(u, uv))


def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) turning by ``angle`` (...) radians about non-zero ``axis`` (..., 3)
    (normalised here; the two broadcast)."""
    axis = _trailing(axis, (3,), "axes")
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    n = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), _EPS)
    xyz = np.sin(half) * n
    return np.concatenate([xyz, np.broadcast_to(np.cos(half), xyz.shape[:-1] + (1,))], axis=-1)


def quat_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation along the shortest arc from unit ``q0`` (t = 0) to unit
    ``q1`` (t = 1), (..., 4) with ``t`` broadcast against the leading axes; unit results.

    Nearly equal rotations (sin of the angle between them below 1e-6) are interpolated linearly
    and renormalised, where the slerp weights would divide by almost zero.
    """
    q0 = _trailing(q0, (4,), "quaternions")
    q1 = _trailing(q1, (4,), "quaternions")
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    t = np.asarray(t, dtype=np.float64)[..., None]
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


# --- quaternions and matrices -----------------------------------------------------------------------


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) (x, y, z, w) with ``w >= 0``.

    Shepperd's method: of the four squared components (times 4) read off the diagonal, the
    largest is taken by square root and the other three from the off-diagonal sums and
    differences divided by it, so no division is by a small number.
    """
    R = _trailing(R, (3, 3), "rotation matrices")
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    cand = np.stack([1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1)
    k = np.argmax(cand, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(cand, k[..., None], -1)[..., 0], _EPS)) * 2.0  # 4 * |component|
    a = (R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1])  # 4 w x, 4 w y, 4 w z
    b = (R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1])  # 4 x y, 4 x z, 4 y z
    q = np.empty(R.shape[:-2] + (4,))
    rows = (
        (s / 4, b[0] / s, b[1] / s, a[0] / s),
        (b[0] / s, s / 4, b[2] / s, a[1] / s),
        (b[1] / s, b[2] / s, s / 4, a[2] / s),
        (a[0] / s, a[1] / s, a[2] / s, s / 4),
    )
    for i, comps in enumerate(rows):
        sel = k == i
        for c in range(4):
            q[..., c] = np.where(sel, comps[c], q[..., c]) if i else comps[c]
    q *= np.where(q[..., 3:] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) (x, y, z, w) -> rotation matrices (..., 3, 3) (normalising first)."""
    q = quat_normalize(q)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)  # fmt: skip


def matrix_angle(R: np.ndarray) -> np.ndarray:
    """Rotation angles (...) in radians, 0 to pi, of rotation matrices (..., 3, 3)."""
    R = _trailing(R, (3, 3), "rotation matrices")
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(c, -1.0, 1.0))


# --- Euler angles -----------------------------------------------------------------------------------


def _parse_order(order: str) -> tuple[list[int], bool]:
    """Axis indices of an Euler order and whether it is intrinsic (upper case)."""
    if not isinstance(order, str) or not order or order.upper().strip(_AXES) or not (order.isupper() or order.islower()):
        raise ValueError(f"an Euler order is a string of axes x, y, z, all upper case (intrinsic) or all lower "
                         f"case (extrinsic), e.g. 'ZXY'; got {order!r}")
    return [_AXES.index(c) for c in order.upper()], order.isupper()


def _axis_matrix(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) by ``angle`` (...) radians about the x, y or z axis (0, 1, 2)."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    i, k = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., k, k] = c
    R[..., i, k] = -s
    R[..., k, i] = s
    return R


def matrix_from_euler(angles: np.ndarray, order: str, degrees: bool = False) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from Euler angles (..., len(order)) about the axes of
    ``order`` (any number of axes, repeats allowed: a BVH joint's rotation channels in the order
    written give ``matrix_from_euler(values, "ZXY", degrees=True)``)."""
    axes, intrinsic = _parse_order(order)
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] != len(axes):
        raise ValueError(f"expected angles shaped (..., {len(axes)}) for order {order!r}, got {a.shape}")
    if degrees:
        a = np.deg2rad(a)
    if not intrinsic:  # extrinsic x-then-y-then-z is intrinsic Z-then-Y-then-X
        axes, a = axes[::-1], a[..., ::-1]
    R = None
    for i, axis in enumerate(axes):
        Ra = _axis_matrix(axis, a[..., i])
        R = Ra if R is None else R @ Ra
    return R


def euler_from_matrix(R: np.ndarray, order: str, degrees: bool = False) -> np.ndarray:
    """Euler angles (..., 3) about the three different axes of ``order`` (e.g. ``"ZXY"``) that
    :func:`matrix_from_euler` turns back into the rotation matrices ``R`` (..., 3, 3).

    The middle angle lies in [-pi/2, pi/2], the others in (-pi, pi]. Where the middle angle is
    within 1.4e-6 rad of +-pi/2 (its sine within 1e-12 of +-1: gimbal lock, the first and last
    axes coincide) the last angle is 0 and the first carries the whole turn about them; there
    the angles reproduce ``R`` to about 1e-6, elsewhere to rounding.
    """
    axes, intrinsic = _parse_order(order)
    if len(axes) != 3 or len(set(axes)) != 3:
        raise ValueError(f"euler_from_matrix needs three different axes (e.g. 'ZXY'), got {order!r}")
    R = _trailing(R, (3, 3), "rotation matrices")
    if not intrinsic:
        axes = axes[::-1]
    i, j, k = axes
    # R = R_i(a) @ R_j(b) @ R_k(c) has R[i, k] = p sin b, R[j, k] = -p sin a cos b, R[k, k] = cos a cos b,
    # R[i, j] = -p cos b sin c, R[i, i] = cos b cos c, with p = 1 for the cyclic orders (XYZ, YZX,
    # ZXY) and -1 for the others; at cos b = 0, R[k, j] = p sin a and R[j, j] = cos a (with c = 0).
    p = 1.0 if (j - i) % 3 == 1 else -1.0
    middle = np.arcsin(np.clip(p * R[..., i, k], -1.0, 1.0))
    gimbal = np.abs(R[..., i, k]) > _GIMBAL
    first = np.where(gimbal, np.arctan2(p * R[..., k, j], R[..., j, j]), np.arctan2(-p * R[..., j, k], R[..., k, k]))
    last = np.where(gimbal, 0.0, np.arctan2(-p * R[..., i, j], R[..., i, i]))
    out = np.stack([first, middle, last], axis=-1)
    if not intrinsic:
        out = out[..., ::-1]
    return np.degrees(out) if degrees else out
