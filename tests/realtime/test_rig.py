"""The rig on real motion capture: rotations reproduce the joints, lengths stay put, kernels agree.

CMU clips are read with training's BVH reader here, in the tests only (realtime never imports
training); their world frame is y up with the person facing +z, so camera = world * (1, -1, -1).
"""

from __future__ import annotations

import numpy as np
import pytest

from engines.skeleton import CANONICAL, HUMANOID_BONES
from realtime import rig
from tests.realtime.rig_checks import assert_fk_reproduces

CLIPS = ("01/01_01.bvh.gz", "02/02_06.bvh.gz", "05/05_18.bvh.gz", "13/13_01.bvh.gz")


@pytest.fixture(scope="module")
def cmu_clips(shared_dir):
    from training.motion import load_clip

    out = {}
    for name in CLIPS:
        path = shared_dir / "data" / "cmu-mocap" / name
        if not path.exists():
            pytest.skip(f"{path} missing")
        joints, _, _ = load_clip(path, fps=30.0)
        out[name] = joints.astype(np.float64) * rig.CAMERA_TO_RIG  # world (y up) -> camera (y down)
    return out


def test_forward_kinematics_reproduces_real_mocap(cmu_clips):
    for name, cam in cmu_clips.items():
        rows, _ = rig.solve(cam)  # every frame's own lengths: only rotations can be wrong
        err = np.linalg.norm(rig.canonical_from_rows(rows) - cam, axis=-1)
        assert err.max() < 1e-6, (name, err.max())
        median = np.median(rig.solve(cam)[1], axis=0)
        rows, _ = rig.solve(cam, median)  # one constant skeleton for the clip
        assert_fk_reproduces(rows, cam, name)


def test_numba_kernel_equals_numpy_reference(cmu_clips):
    for name, cam in cmu_clips.items():
        ref, lengths = rig.solve(cam, backend="numpy")
        fast, fast_lengths = rig.solve(cam, backend="numba")
        np.testing.assert_allclose(fast, ref, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(fast_lengths, lengths, atol=1e-12, err_msg=name)


def test_rotations_are_unit_xyzw_quaternions_and_t_pose_is_identity(cmu_clips):
    rows, _ = rig.solve(next(iter(cmu_clips.values())))
    q = rows[..., 3:]
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-9)
    assert (q[..., 3] >= 0).all()
    # the documented rest pose, built in the rig frame and sent through the camera frame
    t_pose = {"pelvis": (0, 0.95, 0), "right_hip": (-0.09, 0.95, 0), "right_knee": (-0.09, 0.5, 0),
              "right_ankle": (-0.09, 0.08, 0), "left_hip": (0.09, 0.95, 0), "left_knee": (0.09, 0.5, 0),
              "left_ankle": (0.09, 0.08, 0), "spine": (0, 1.2, 0), "thorax": (0, 1.45, 0),
              "left_shoulder": (0.18, 1.45, 0), "left_elbow": (0.47, 1.45, 0), "left_wrist": (0.72, 1.45, 0),
              "right_shoulder": (-0.18, 1.45, 0), "right_elbow": (-0.47, 1.45, 0), "right_wrist": (-0.72, 1.45, 0)}
    neck = np.array([0, np.cos(np.radians(rig.NECK_REST_DEG)), np.sin(np.radians(rig.NECK_REST_DEG))]) * 0.17
    nose = np.array(t_pose["thorax"]) + neck
    crown = nose + 0.18 * np.array([0, 0.15, -0.10]) / np.linalg.norm([0, 0.15, -0.10])
    pts = {**t_pose, "neck_nose": nose, "head": crown}
    joints = np.array([pts[n] for n in CANONICAL.joint_names], dtype=float) * rig.CAMERA_TO_RIG
    rows, _ = rig.solve(joints[None])
    np.testing.assert_allclose(rows[0, :, 3:], np.tile([0, 0, 0, 1.0], (len(rig.RIG_NODES), 1)), atol=1e-9)
    np.testing.assert_allclose(rows[0, 0, :3], (0, 0.95, 0), atol=1e-12)  # root: the pelvis in the rig frame


def test_live_solver_keeps_bone_lengths_constant(cmu_clips):
    cam = cmu_clips["05/05_18.bvh.gz"].astype(np.float32)
    cfg = rig.RigConfig(calibration_s=1.0, refine_m_per_s=0.002)
    solver = rig.RigSolver(cfg)
    frame_ns = 33_333_333
    used = []
    for i, pose in enumerate(cam):
        f = solver([7], pose[None], i * frame_ns)
        used.append(f.lengths[0])
        if i > 31:  # calibrated: FK from this frame's rows alone reproduces the pose, lengths aside
            assert_fk_reproduces(f.rows, pose[None].astype(np.float64), f"frame {i}")
    used = np.asarray(used)
    steps = np.abs(np.diff(used[31:], axis=0))  # after the 1 s calibration: slow refinement only
    assert steps.max() <= cfg.refine_m_per_s * frame_ns / 1e9 + 1e-12
    # FK bone lengths of the rig equal the lengths in use: limbs never stretch frame to frame
    pos, _ = rig.forward_kinematics(solver([7], cam[-1:], len(cam) * frame_ns).rows)
    node = {n: i for i, n in enumerate(rig.RIG_NODES)}
    thigh = np.linalg.norm(pos[0, node["LeftLowerLeg"]] - pos[0, node["LeftUpperLeg"]])
    assert thigh == pytest.approx(solver.lengths(7)[rig.LENGTH_NAMES.index("left_upper_leg")], abs=1e-9)


def test_bad_input_is_rejected():
    solver = rig.RigSolver()
    with pytest.raises(ValueError, match=r"got \(1, 16, 3\)"):
        solver([1], np.zeros((1, 16, 3)), 0)
    bad = np.zeros((1, 17, 3))
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        solver([1], bad, 0)
    with pytest.raises(ValueError, match="unknown rig backend"):
        rig.RigSolver(backend="cuda")
    assert len(HUMANOID_BONES) == 19 and rig.RIG_NODES[-1] == "HeadTop"
