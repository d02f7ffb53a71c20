"""Numba twins of ``engines.rotations`` functions that compiled per-frame kernels call.

Each one does the same operations in the same order as its NumPy reference, so the results are
equal to the bit; ``tests/engines/test_rotations.py`` holds them equal. They take and return
scalars and tuples (no arrays allocated), so a caller's loop stays allocation free.

Numba's on-disk cache keys a compiled function on its own source file only: after editing this
module, delete the ``__pycache__`` folders of the modules whose kernels call it (the rig's,
``realtime/rig_kernel.py``), or they keep running the old version.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["quat_from_matrix_numba"]

_EPS = 1e-9  # engines.rotations' floor under the square root


@njit(cache=True, inline="always")
def quat_from_matrix_numba(R):
    """Quaternion ``(x, y, z, w)``, ``w >= 0``, of one rotation matrix R (3, 3) (a C-order view);
    ``engines.rotations.quat_from_matrix`` (Shepperd's method, the same branches)."""
    m00, m11, m22 = R[0, 0], R[1, 1], R[2, 2]
    c0, c1, c2, c3 = 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22
    k, best = 0, c0
    if c1 > best:
        k, best = 1, c1
    if c2 > best:
        k, best = 2, c2
    if c3 > best:
        k, best = 3, c3
    s = np.sqrt(max(best, _EPS)) * 2.0
    a0, a1, a2 = R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]
    b0, b1, b2 = R[0, 1] + R[1, 0], R[0, 2] + R[2, 0], R[1, 2] + R[2, 1]
    if k == 0:
        x, y, z, w = s / 4, b0 / s, b1 / s, a0 / s
    elif k == 1:
        x, y, z, w = b0 / s, s / 4, b2 / s, a1 / s
    elif k == 2:
        x, y, z, w = b1 / s, b2 / s, s / 4, a2 / s
    else:
        x, y, z, w = a0 / s, a1 / s, a2 / s, s / 4
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    return x / norm, y / norm, z / norm, w / norm
