"""Synthetic 2D from real mocap: cameras, augmentation, the detector noise model, targets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engines.camera import VirtualCameraRanges
from engines.models import ASSUMED_FOCAL
from engines.skeleton import CANONICAL
from training.motion import load_archive
from training.synth import (
    CLEAN,
    DETECTOR,
    NO_AUGMENTATION,
    Augmentation,
    NoiseModel,
    WindowSampler,
    project_windows,
    sample_cameras_for,
    scale_bones,
)

pytestmark = pytest.mark.slow  # every test samples from the full prepared CMU mocap


@pytest.fixture(scope="module")
def sampler(cmu_archive_path):
    a = load_archive(cmu_archive_path)
    return WindowSampler(a.joints3d, a.clip, 27)


def test_clean_inputs_are_exact_projections_in_screen_units(sampler):
    rng = np.random.default_rng(0)
    b = sampler.make(rng, sampler.sample_ends(rng, 32), CLEAN, NO_AUGMENTATION)
    assert b.inputs.shape == (32, 27, 17, 3) and b.targets.shape == (32, 27, 17, 3)
    visible = b.inputs[..., 2] > 0
    assert visible.mean() > 0.97 and set(np.unique(b.inputs[..., 2])) <= {0.0, 1.0}
    # re-project the camera-frame truth with each camera's intrinsics: same screen coordinates
    cams = b.cameras
    t = b.true_targets.astype(np.float64)
    px = cams.f[:, None, None] * t[..., :2] / t[..., 2:] + cams.c[:, None, None]
    s = cams.size.max(axis=1)[:, None, None, None]
    screen = (2 * px - cams.size[:, None, None]) / s
    assert np.allclose(screen[visible], b.inputs[..., :2][visible], atol=1e-4)
    assert np.abs(b.inputs[..., :2][visible]).max() <= 1.0


def test_root_depth_target_follows_the_assumed_field_of_view(sampler):
    rng = np.random.default_rng(1)
    b = sampler.make(rng, sampler.sample_ends(rng, 64), CLEAN, NO_AUGMENTATION)
    rel_t = b.targets - b.targets[..., :1, :]
    rel_true = b.true_targets - b.true_targets[..., :1, :]
    assert np.allclose(rel_t, rel_true, atol=1e-5)  # the pose is untouched
    # with the assumed focal, the target root projects where the real root is seen
    root = b.targets[:, -1, 0]
    u = ASSUMED_FOCAL * root[:, 0] / root[:, 2]
    cams = b.cameras
    cx = (2 * cams.c[:, 0] - cams.size[:, 0]) / cams.size.max(axis=1)
    seen = ASSUMED_FOCAL * 0 + (cams.f[:, 0] * b.true_targets[:, -1, 0, 0] / b.true_targets[:, -1, 0, 2] * 2 / cams.size.max(axis=1)) + cx
    assert np.allclose(u + cx, seen, atol=1e-4)


def test_windows_repeat_the_first_frame_at_a_clip_start(sampler):
    start = int(np.flatnonzero(np.diff(sampler.clip))[0]) + 1  # first frame of the second clip
    w = sampler.gather(np.array([start + 3]))
    assert np.array_equal(w[0, :24], np.repeat(sampler.joints[start][None], 24, axis=0))
    assert np.array_equal(w[0, -1], sampler.joints[start + 3])


def test_flip_and_bone_scaling(sampler):
    rng = np.random.default_rng(2)
    w3 = sampler.gather(sampler.sample_ends(rng, 16))
    pose = w3[:, -1] - w3[:, -1, :1]
    factor = np.ones((16, 17))
    factor[:, CANONICAL.index("left_knee")] = 1.2  # thigh bone (child = knee)
    scaled = scale_bones(pose[:, None], factor)[:, 0]
    bone = lambda p, a, b: np.linalg.norm(p[:, CANONICAL.index(a)] - p[:, CANONICAL.index(b)], axis=-1)  # noqa: E731
    assert np.allclose(bone(scaled, "left_hip", "left_knee"), 1.2 * bone(pose, "left_hip", "left_knee"))
    assert np.allclose(bone(scaled, "left_knee", "left_ankle"), bone(pose, "left_knee", "left_ankle"))
    # augmented batches keep left and right limbs equally long
    b = project_windows(rng, w3, CLEAN, Augmentation(flip=1.0, body_scale=(1.0, 1.0), bone_scale=0.2))
    t = b.true_targets[:, -1]
    assert np.allclose(bone(t, "left_knee", "left_ankle"), bone(t, "right_knee", "right_ankle"), rtol=1e-4)


def test_body_scale_scales_the_skeleton(sampler):
    rng = np.random.default_rng(3)
    w3 = sampler.gather(sampler.sample_ends(rng, 8))
    a = project_windows(np.random.default_rng(4), w3, CLEAN, NO_AUGMENTATION)
    b = project_windows(np.random.default_rng(4), w3, CLEAN, NO_AUGMENTATION, body_scale=1.1)
    la = CANONICAL.bone_lengths(a.true_targets)
    lb = CANONICAL.bone_lengths(b.true_targets)
    assert np.allclose(lb, 1.1 * la, rtol=1e-4)


def test_jitter_is_relative_to_body_size_near_or_far(sampler):
    rng = np.random.default_rng(5)
    w3 = sampler.gather(sampler.sample_ends(rng, 200))
    noise = NoiseModel(jitter=0.02, jitter_smooth=0.0)
    ratios = []
    for dist in ((2.0, 2.5), (5.5, 6.0)):
        ranges = VirtualCameraRanges(distance_m=dist, min_framed_height_m=None)
        cams = sample_cameras_for(np.random.default_rng(6), w3, ranges)
        clean = project_windows(np.random.default_rng(7), w3, CLEAN, NO_AUGMENTATION, cameras=cams)
        noisy = project_windows(np.random.default_rng(7), w3, noise, NO_AUGMENTATION, cameras=cams)
        both = (clean.inputs[..., 2] > 0) & (noisy.inputs[..., 2] > 0)
        d = (noisy.inputs[..., :2] - clean.inputs[..., :2])[both]
        uv = clean.inputs[..., :2]
        h = (uv.max(axis=-2) - uv.min(axis=-2)).max(axis=-1)[..., None].repeat(17, -1)[both]  # screen units
        ratios.append(np.std(d / h[:, None]))
    assert ratios[0] == pytest.approx(0.02, rel=0.15) and ratios[1] == pytest.approx(0.02, rel=0.15)


def test_detector_noise_drops_swaps_and_lowers_confidence(sampler):
    rng = np.random.default_rng(8)
    b = sampler.make(rng, sampler.sample_ends(rng, 256), replace(DETECTOR, swap=0.0), NO_AUGMENTATION)
    conf = b.inputs[..., 2]
    assert 0.02 < (conf == 0).mean() < 0.10  # drops plus off-screen joints
    assert np.all(b.inputs[..., :2][conf == 0] == 0)  # missing joints carry no coordinates
    assert 0.5 <= conf[conf > 0.6].min() and (conf[(conf > 0) & (conf < 0.6)].size > 0)
    assert np.isfinite(b.inputs).all()


def test_offscreen_joints_lose_their_confidence(sampler):
    rng = np.random.default_rng(9)
    w3 = sampler.gather(sampler.sample_ends(rng, 64))
    close = VirtualCameraRanges(distance_m=(0.8, 1.0), min_framed_height_m=None, image_sizes=((640, 480),))
    b = project_windows(rng, w3, replace(CLEAN, offscreen_drop=0.5), NO_AUGMENTATION, ranges=close)
    t = b.true_targets.astype(np.float64)
    px = b.cameras.f[:, None, None] * t[..., :2] / t[..., 2:] + b.cameras.c[:, None, None]
    out = (px[..., 0] < 0) | (px[..., 0] >= 640) | (px[..., 1] < 0) | (px[..., 1] >= 480) | (t[..., 2] <= 0)
    assert out.mean() > 0.2  # legs out of frame at 1 m
    assert np.all(b.inputs[..., 2][out] <= 0.3) and np.all(b.inputs[..., 2][~out] == 1.0)
    assert 0.3 < (b.inputs[..., 2][out] == 0).mean() < 0.8


def test_truncation_hides_the_lower_legs_like_a_desk_webcam(sampler):
    rng = np.random.default_rng(10)
    b = sampler.make(rng, sampler.sample_ends(rng, 64), replace(CLEAN, truncate=1.0), NO_AUGMENTATION)
    last = b.inputs[:, -1, :, 2]
    ankles = [CANONICAL.index("left_ankle"), CANONICAL.index("right_ankle")]
    assert np.all(last[:, ankles] == 0)
    upper = [CANONICAL.index(n) for n in ("pelvis", "thorax", "head", "left_wrist")]
    assert np.mean(last[:, upper] > 0) > 0.95
