"""The canonical joint set and the mappings into it."""

from __future__ import annotations

import numpy as np
import pytest

from engines.skeleton import (
    CANONICAL,
    H36M_TO_CANONICAL,
    MEDIAPIPE33_NAMES,
    MEDIAPIPE_TO_CANONICAL,
    UnknownSkeletonError,
    detect_bvh_skeleton,
)
from tests.conftest import MEDIA


def test_joint_set_is_the_h36m_convention():
    assert CANONICAL.num_joints == 17
    assert CANONICAL.joint_names[0] == "pelvis"
    assert CANONICAL.joint_names[10] == "head" and CANONICAL.joint_names[13] == "left_wrist"
    assert len(CANONICAL.edges) == 16  # a tree
    assert all(d.startswith(n + ":") for n, d in zip(CANONICAL.joint_names, CANONICAL.definitions))


def test_left_right_pairs_are_named_consistently_and_flip_is_an_involution():
    for a, b in CANONICAL.left_right_pairs:
        na, nb = CANONICAL.joint_names[a], CANONICAL.joint_names[b]
        assert {na.split("_", 1)[0], nb.split("_", 1)[0]} == {"left", "right"}
        assert na.split("_", 1)[1] == nb.split("_", 1)[1]
    perm = np.array(CANONICAL.flip_permutation)
    assert np.array_equal(perm[perm], np.arange(17))
    pose = np.random.default_rng(0).normal(size=(4, 17, 3))
    assert np.allclose(CANONICAL.flip(CANONICAL.flip(pose)), pose)
    flipped = CANONICAL.flip(pose)
    assert np.allclose(flipped[:, 4, 0], -pose[:, 1, 0])  # left hip <- mirrored right hip


def test_flip_keeps_a_mirror_symmetric_pose():
    pose = np.zeros((17, 3))
    for a, b in CANONICAL.left_right_pairs:
        pose[a] = [0.2, a * 0.1, 0.05]
        pose[b] = [-0.2, a * 0.1, 0.05]
    assert np.allclose(CANONICAL.flip(pose), pose)


def test_shape_errors_name_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 16, 3\)"):
        CANONICAL.flip(np.zeros((2, 16, 3)))
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        MEDIAPIPE_TO_CANONICAL(np.zeros((5, 3)))


def test_h36m_map_is_identity():
    pose = np.random.default_rng(1).normal(size=(3, 17, 2))
    assert np.array_equal(H36M_TO_CANONICAL(pose), pose)


def _mediapipe_tpose() -> np.ndarray:
    """A hand-made upright MediaPipe landmark set in metres (y up, z forward)."""
    p = np.zeros((33, 3))
    idx = {n: i for i, n in enumerate(MEDIAPIPE33_NAMES)}
    for side, s in (("left", 1.0), ("right", -1.0)):
        p[idx[f"{side}_hip"]] = [0.1 * s, 0.0, 0.0]
        p[idx[f"{side}_knee"]] = [0.1 * s, -0.45, 0.0]
        p[idx[f"{side}_ankle"]] = [0.1 * s, -0.9, 0.0]
        p[idx[f"{side}_shoulder"]] = [0.18 * s, 0.5, 0.0]
        p[idx[f"{side}_elbow"]] = [0.45 * s, 0.5, 0.0]
        p[idx[f"{side}_wrist"]] = [0.7 * s, 0.5, 0.0]
        p[idx[f"{side}_ear"]] = [0.07 * s, 0.7, 0.0]
        p[idx[f"{side}_eye"]] = [0.03 * s, 0.72, 0.08]
        p[idx[f"mouth_{side}"]] = [0.02 * s, 0.655, 0.09]
    p[idx["nose"]] = [0.0, 0.69, 0.11]
    return p


def test_mediapipe_map_follows_the_definitions():
    mp = _mediapipe_tpose()
    c = MEDIAPIPE_TO_CANONICAL(mp)
    j = {n: c[i] for i, n in enumerate(CANONICAL.joint_names)}
    assert np.allclose(j["pelvis"], 0.0)
    # surface hips (0.20 m apart) pulled to joint centres
    assert np.linalg.norm(j["left_hip"] - j["right_hip"]) == pytest.approx(0.18)
    assert np.allclose(j["thorax"], [0.0, 0.5, 0.0])
    assert np.allclose(j["spine"], [0.0, 0.25, 0.0])
    assert np.allclose(j["neck_nose"], mp[0])
    # crown above the ears (0.70), about 0.12 m, not in front of the face
    assert 0.78 < j["head"][1] < 0.86 and abs(j["head"][2]) < 0.03
    # the same linear map serves 2D pixels: mapping commutes with an affine image transform
    pix = mp[:, :2] * 300 + [320, 240]
    assert np.allclose(MEDIAPIPE_TO_CANONICAL(pix), c[:, :2] * 300 + [320, 240])


def test_mediapipe_confidence_is_the_weakest_contributing_landmark():
    conf = np.ones(33)
    conf[MEDIAPIPE33_NAMES.index("left_ear")] = 0.1
    conf[MEDIAPIPE33_NAMES.index("right_knee")] = 0.0
    out = MEDIAPIPE_TO_CANONICAL.confidence(conf)
    assert out[CANONICAL.index("head")] == pytest.approx(0.1)
    assert out[CANONICAL.index("right_knee")] == 0.0
    assert out[CANONICAL.index("left_knee")] == 1.0
    assert out.shape == (17,)


def test_unknown_bvh_skeleton_is_named():
    with pytest.raises(UnknownSkeletonError, match="walk.bvh.*unknown skeleton"):
        detect_bvh_skeleton(["root", "spine", "arm"], source="walk.bvh")
    assert detect_bvh_skeleton(["hip", "abdomen", "chest", "neck", "head", "lShldr", "rShldr",
                                "lForeArm", "rForeArm", "lHand", "rHand", "lThigh", "rThigh",
                                "lShin", "rShin", "lFoot", "rFoot"]).name == "cmu43"  # fmt: skip


def test_mediapipe_on_real_video_gives_plausible_canonical_bodies(shared_dir):
    """MediaPipe world landmarks of the real Pose2Sim subject, mapped: hips at joint-centre width,
    crown above the nose, thorax between the shoulders."""
    cv2 = pytest.importorskip("cv2")
    mp = pytest.importorskip("mediapipe")
    cap = cv2.VideoCapture(str(MEDIA / "pose2sim-demo" / "cam04.mp4"))
    poses = []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        for _ in range(20):
            ok, frame = cap.read()
            assert ok
            res = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if res.pose_world_landmarks is not None:
                world = np.array([[q.x, q.y, q.z] for q in res.pose_world_landmarks.landmark])
                poses.append(MEDIAPIPE_TO_CANONICAL(world))
    cap.release()
    assert len(poses) >= 18
    c = np.stack(poses)
    hip_width = np.linalg.norm(c[:, 4] - c[:, 1], axis=-1)
    assert 0.15 < np.median(hip_width) < 0.20
    # MediaPipe world frame is y down: the crown is above (smaller y than) the nose
    assert np.all(c[:, 10, 1] < c[:, 9, 1])
    mid = 0.5 * (c[:, 11] + c[:, 14])
    assert np.allclose(c[:, 8], mid)
