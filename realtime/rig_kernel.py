"""The compiled rig solver that the pipeline runs: Numba versions of ``realtime.rig``'s NumPy
reference (``global_rotations``, ``measure_lengths``, ``rows_from``), step for step.

NumPy pays a few microseconds of overhead per array operation, and solving one person's rig
takes about a hundred of them; compiled, the whole solve is a few microseconds.
``tests/realtime/test_rig.py`` holds this kernel equal to the reference on real mocap. The
constants (rest frames, offset table) are passed in by ``realtime.rig``, so they are defined once.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engines.rotations_kernel import quat_from_matrix_numba

__all__ = ["forward_kinematics_numba", "measure_lengths_numba", "solve_rows_numba"]

_STRAIGHT_BLEND = 0.3
_HEAD_BLEND = 0.2
_EPS = 1e-9


@njit(cache=True, inline="always")
def _v(p, i):
    return (p[i, 0], p[i, 1], p[i, 2])


@njit(cache=True, inline="always")
def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


@njit(cache=True, inline="always")
def _add(a, b, k):
    """a + k b"""
    return (a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2])


@njit(cache=True, inline="always")
def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@njit(cache=True, inline="always")
def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


@njit(cache=True, inline="always")
def _unit(a):
    n = max(np.sqrt(_dot(a, a)), _EPS)
    return (a[0] / n, a[1] / n, a[2] / n)


@njit(cache=True, inline="always")
def _col(R, b, j):
    return (R[b, 0, j], R[b, 1, j], R[b, 2, j])


@njit(cache=True, inline="always")
def _mul(R, b, v):
    """R[b] @ v"""
    return (R[b, 0, 0] * v[0] + R[b, 0, 1] * v[1] + R[b, 0, 2] * v[2],
            R[b, 1, 0] * v[0] + R[b, 1, 1] * v[1] + R[b, 1, 2] * v[2],
            R[b, 2, 0] * v[0] + R[b, 2, 1] * v[1] + R[b, 2, 2] * v[2])


@njit(cache=True, inline="always")
def _mul_t(R, b, v):
    """R[b]^T @ v"""
    return (R[b, 0, 0] * v[0] + R[b, 1, 0] * v[1] + R[b, 2, 0] * v[2],
            R[b, 0, 1] * v[0] + R[b, 1, 1] * v[1] + R[b, 2, 1] * v[2],
            R[b, 0, 2] * v[0] + R[b, 1, 2] * v[1] + R[b, 2, 2] * v[2])


@njit(cache=True)
def _frame_times(d, t, rest, R, b):
    """R[b] = [d, t perpendicular to d, d x t] (columns) @ rest[b]."""
    e1 = _unit(d)
    e2 = _unit(_add(t, e1, -_dot(t, e1)))
    e3 = _cross(e1, e2)
    for i in range(3):
        for j in range(3):
            R[b, i, j] = e1[i] * rest[b, 0, j] + e2[i] * rest[b, 1, j] + e3[i] * rest[b, 2, j]


@njit(cache=True)
def _limb_reference(R, parent, u, f, d_rest, t_rest, sign):
    """Bend direction of a limb blended with the parent's swing reference (see ``realtime.rig``)."""
    uh = _unit(u)
    fh = _unit(f)
    bend = _add(fh, uh, -_dot(fh, uh))
    v = _unit(_mul_t(R, parent, uh))  # bone direction in the parent's frame
    k = _cross(d_rest, v)
    c = _dot(d_rest, v)
    kt = _cross(k, t_rest)
    swung = _add(_add(t_rest, kt, 1.0), _cross(k, kt), 1.0 / max(1.0 + c, 1e-3))
    ref = _unit(_mul(R, parent, swung))
    return (sign * bend[0] + _STRAIGHT_BLEND * ref[0], sign * bend[1] + _STRAIGHT_BLEND * ref[1],
            sign * bend[2] + _STRAIGHT_BLEND * ref[2])


@njit(cache=True)
def _quat_into(M, m, rows, n, b):
    """rows[n, b, 3:7] = quaternion (x, y, z, w) of M[m] (``engines.rotations.quat_from_matrix``)."""
    rows[n, b, 3], rows[n, b, 4], rows[n, b, 5], rows[n, b, 6] = quat_from_matrix_numba(M[m])


@njit(cache=True)
def measure_lengths_numba(P, out):
    """Lengths (N, 15) of joints P (N, 17, 3), rig frame; ``realtime.rig.measure_lengths``."""
    pairs = ((8, 7), (7, 0), (11, 8), (14, 8), (12, 11), (15, 14), (13, 12), (16, 15), (5, 4), (2, 1), (6, 5), (3, 2))
    for n in range(P.shape[0]):
        p = P[n]
        d = _sub(_v(p, 4), _v(p, 1))
        out[n, 0] = 0.5 * np.sqrt(_dot(d, d))
        for i in range(len(pairs)):
            d = _sub(_v(p, pairs[i][0]), _v(p, pairs[i][1]))
            out[n, 2 if i == 0 else (1 if i == 1 else i + 3)] = np.sqrt(_dot(d, d))
        d = _sub(_v(p, 9), _v(p, 8))
        out[n, 3] = np.sqrt(_dot(d, d))
        d = _sub(_v(p, 10), _v(p, 9))
        out[n, 4] = np.sqrt(_dot(d, d))


@njit(cache=True)
def solve_rows_numba(P, lengths, rest, offsets, parents, rows):
    """Rig rows (N, R, 7) from joints P (N, 17, 3) rig frame and lengths (N, 15).

    ``rest`` (19, 3, 3): each bone's transposed rest frame; ``offsets`` (R, 3, 15): the offset
    table; ``parents`` (19,) the bone parents. Mirrors ``realtime.rig.global_rotations`` followed
    by ``rows_from``.
    """
    X, Z, NX, NY = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)
    nb = rest.shape[0]
    R = np.empty((nb, 3, 3))
    tmp = np.empty((1, 3, 3))
    for n in range(P.shape[0]):
        p = P[n]
        hipx = _unit(_sub(_v(p, 4), _v(p, 1)))
        shx = _unit(_sub(_v(p, 11), _v(p, 14)))
        up = _sub(_v(p, 7), _v(p, 0))
        chest = _sub(_v(p, 8), _v(p, 7))
        a = _unit(_sub(_v(p, 10), _v(p, 9)))
        _frame_times(hipx, up, rest, R, 0)
        _frame_times(up, _add(hipx, shx, 1.0), rest, R, 1)
        _frame_times(chest, shx, rest, R, 2)
        _frame_times(a, _add(_cross(a, _unit(chest)), shx, _HEAD_BLEND), rest, R, 4)
        fwd = _col(R, 2, 2)
        _frame_times(_sub(_v(p, 9), _v(p, 8)), shx, rest, R, 3)
        _frame_times(_sub(_v(p, 11), _v(p, 8)), fwd, rest, R, 5)
        _frame_times(_sub(_v(p, 14), _v(p, 8)), fwd, rest, R, 9)
        for bone, hip, knee, ankle in ((13, 4, 5, 6), (16, 1, 2, 3)):
            u = _sub(_v(p, knee), _v(p, hip))
            f = _sub(_v(p, ankle), _v(p, knee))
            _frame_times(u, _limb_reference(R, 0, u, f, NY, Z, -1.0), rest, R, bone)
            _frame_times(f, _col(R, bone, 2), rest, R, bone + 1)
            R[bone + 2] = R[bone + 1]
        for bone, parent, sh, el, wr, d_rest in ((6, 5, 11, 12, 13, X), (10, 9, 14, 15, 16, NX)):
            u = _sub(_v(p, el), _v(p, sh))
            f = _sub(_v(p, wr), _v(p, el))
            _frame_times(u, _limb_reference(R, parent, u, f, d_rest, Z, 1.0), rest, R, bone)
            _frame_times(f, _col(R, bone, 2), rest, R, bone + 1)
            R[bone + 2] = R[bone + 1]
        # rows: offsets, root, local quaternions
        for r in range(offsets.shape[0]):
            for c in range(3):
                acc = 0.0
                for k in range(offsets.shape[2]):
                    acc += offsets[r, c, k] * lengths[n, k]
                rows[n, r, c] = acc
            rows[n, r, 3], rows[n, r, 4], rows[n, r, 5], rows[n, r, 6] = 0.0, 0.0, 0.0, 1.0
        rows[n, 0, 0], rows[n, 0, 1], rows[n, 0, 2] = p[0, 0], p[0, 1], p[0, 2]
        _quat_into(R, 0, rows, n, 0)
        for b in range(1, nb):
            q = parents[b]
            for i in range(3):
                for j in range(3):
                    tmp[0, i, j] = R[q, 0, i] * R[b, 0, j] + R[q, 1, i] * R[b, 1, j] + R[q, 2, i] * R[b, 2, j]
            _quat_into(tmp, 0, rows, n, b)


@njit(cache=True)
def forward_kinematics_numba(rows, parents, pos):
    """Node positions ``pos`` (N, R, 3) from rig rows (N, R, 7) (offset xyz + local quaternion
    xyzw; parents (R,) with -1 for the root, every parent before its children): the compiled
    ``realtime.rig.forward_kinematics``."""
    nr = rows.shape[1]
    G = np.empty((nr, 3, 3))
    L = np.empty((3, 3))
    for n in range(rows.shape[0]):
        for r in range(nr):
            x, y, z, w = rows[n, r, 3], rows[n, r, 4], rows[n, r, 5], rows[n, r, 6]
            s = x * x + y * y + z * z + w * w
            s = 2.0 / s if s > 0 else 0.0
            L[0, 0], L[0, 1], L[0, 2] = 1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)
            L[1, 0], L[1, 1], L[1, 2] = s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)
            L[2, 0], L[2, 1], L[2, 2] = s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)
            q = parents[r]
            if q < 0:
                for i in range(3):
                    pos[n, r, i] = rows[n, r, i]
                    for j in range(3):
                        G[r, i, j] = L[i, j]
                continue
            for i in range(3):
                acc = pos[n, q, i]
                for k in range(3):
                    acc += G[q, i, k] * rows[n, r, k]
                pos[n, r, i] = acc
                for j in range(3):
                    G[r, i, j] = G[q, i, 0] * L[0, j] + G[q, i, 1] * L[1, j] + G[q, i, 2] * L[2, j]
