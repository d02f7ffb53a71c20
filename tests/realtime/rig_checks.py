"""Shared checks for the rig tests: forward kinematics against joints, bone-length changes aside."""

from __future__ import annotations

import numpy as np

from engines.skeleton import CANONICAL
from realtime.rig import NODE_JOINT, RIG_NODES, canonical_from_rows

TOLERANCE_M = 0.005
_NODE_OF_JOINT = [RIG_NODES[NODE_JOINT.index(n)] for n in CANONICAL.joint_names]


def length_change_bound(rows: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per frame and joint (N, 17): the sum over the bones from the root to the joint of
    |bone length in the joints - bone length the rig used| (what a constant-length rig may
    legitimately miss by)."""
    node = {n: i for i, n in enumerate(RIG_NODES)}
    bound = np.zeros(joints.shape[:-1])
    for j, p in enumerate(CANONICAL.parents):
        if p < 0:
            continue
        used = np.linalg.norm(rows[..., node[_NODE_OF_JOINT[j]], :3], axis=-1)
        have = np.linalg.norm(joints[..., j, :] - joints[..., p, :], axis=-1)
        bound[..., j] = bound[..., p] + np.abs(have - used)
    return bound


def assert_fk_reproduces(rows: np.ndarray, joints: np.ndarray, what: str) -> float:
    """FK of ``rows`` (N, R, 7) matches ``joints`` (N, 17, 3) camera frame within 5 mm plus the
    bone-length changes; returns the largest error beyond the length bound (metres)."""
    fk = canonical_from_rows(rows)
    err = np.linalg.norm(fk - joints, axis=-1)
    excess = err - length_change_bound(rows, joints)
    worst = float(excess.max())
    assert worst <= TOLERANCE_M, f"{what}: FK misses a joint by {worst * 1e3:.2f} mm beyond bone-length changes"
    return worst
