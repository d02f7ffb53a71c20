"""``engines.gravity``: the up direction from a person's 2D, its checkpoint and its tilted cameras."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engines.camera import (Camera, TiltedCameraRanges, normalize_screen, sample_tilted_cameras,
                            tilted_rotation)
from engines.checkpoint import CheckpointError
from engines.gravity import (LEVEL_UP, MIN_VISIBLE_JOINTS, UpConfig, UpModel, UpNet, angle_deg,
                             window_features)
from engines.skeleton import CANONICAL

# A person standing, arms hanging, world y-up metres (canonical joint order), built by hand.
STANDING = {
    "pelvis": (0.0, 0.95, 0.0), "right_hip": (-0.09, 0.93, 0.0), "right_knee": (-0.10, 0.52, 0.02),
    "right_ankle": (-0.10, 0.09, 0.0), "left_hip": (0.09, 0.93, 0.0), "left_knee": (0.10, 0.52, 0.02),
    "left_ankle": (0.10, 0.09, 0.0), "spine": (0.0, 1.18, -0.01), "thorax": (0.0, 1.43, 0.0),
    "neck_nose": (0.0, 1.58, 0.09), "head": (0.0, 1.74, 0.0), "left_shoulder": (0.18, 1.43, 0.0),
    "left_elbow": (0.21, 1.15, -0.02), "left_wrist": (0.22, 0.90, 0.03), "right_shoulder": (-0.18, 1.43, 0.0),
    "right_elbow": (-0.21, 1.15, -0.02), "right_wrist": (-0.22, 0.90, 0.03),
}


def standing_window(frames: int, sway: float = 0.02) -> np.ndarray:
    """(frames, 17, 3) a standing person breathing and swaying a little (world y-up, metres)."""
    pose = np.array([STANDING[n] for n in CANONICAL.joint_names])
    t = np.arange(frames)[:, None, None] / 30.0
    out = np.repeat(pose[None], frames, axis=0)
    upper = pose[:, 1] > 1.0
    out[..., 0] += sway * np.sin(2 * np.pi * 0.5 * t[..., 0]) * upper  # the upper body sways sideways
    return out


def film(points: np.ndarray, pitch_deg: float, roll_deg: float, distance: float = 4.0,
         size: tuple[int, int] = (1280, 720), fov_deg: float = 65.0) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (1, T, 17, 3) of ``points`` seen by a camera facing them with this pitch and roll,
    and the true up in its frame; the camera's height puts the pelvis on its optical axis."""
    R = tilted_rotation(np.pi, np.radians(pitch_deg), np.radians(roll_deg))
    height = 0.95 + distance * np.tan(-np.radians(pitch_deg))
    position = np.array([0.0, height, distance])
    w, h = size
    f = 0.5 * max(w, h) / np.tan(np.radians(fov_deg) / 2)
    cam = Camera("test", w, h, f, f, w / 2, h / 2, R, -R @ position)
    px = cam.project(points)
    assert cam.in_image(px).all(), "the test person must be in frame"
    uv = normalize_screen(px, w, h)
    window = np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], axis=-1)[None].astype(np.float32)
    return window, R @ np.array([0.0, 1.0, 0.0])


def test_tilted_rotation_sees_up_as_the_pitch_and_roll_say():
    for pitch in (-40.0, -10.0, 0.0, 12.0):
        R = tilted_rotation(0.7, np.radians(pitch), 0.0)
        p = np.radians(pitch)
        np.testing.assert_allclose(R @ [0, 1, 0], [0.0, -np.cos(p), np.sin(p)], atol=1e-12)
    up = tilted_rotation(0.0, 0.0, np.radians(15.0)) @ [0, 1, 0]
    assert angle_deg(up, LEVEL_UP) == pytest.approx(15.0)
    assert up[2] == pytest.approx(0.0, abs=1e-12)


def test_tilted_cameras_keep_the_drawn_pitch_uniform_and_the_subject_in_frame():
    rng = np.random.default_rng(0)
    person = standing_window(27).reshape(1, -1, 3)
    cams = sample_tilted_cameras(rng, np.repeat(person, 3000, axis=0))
    up = cams.R[:, :, 1]
    pitch = np.degrees(np.arcsin(up[:, 2]))
    assert pitch.min() >= -45.0 and pitch.max() <= 15.0
    counts, _ = np.histogram(pitch, bins=6, range=(-45, 15))
    assert counts.min() > 0.8 * counts.mean()  # uniform: the framing rejection does not favour level cameras
    px = cams.project(np.repeat(person, 3000, axis=0))
    inside = ((px >= 0) & (px <= cams.size[:, None, :])).all(-1).mean(-1)
    assert inside.min() >= TiltedCameraRanges().min_in_frame
    heights = cams.center[:, 1]
    assert 0.5 <= heights.min() and heights.max() <= 2.5


def _random_net(seed: int = 0, config: UpConfig = UpConfig(hidden=32)):
    torch.manual_seed(seed)
    return UpNet.build(config)


def _random_windows(n: int, frames: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.uniform(-0.6, 0.6, (n, frames, CANONICAL.num_joints, 3)).astype(np.float32)
    w[..., 2] = rng.uniform(0, 1, w.shape[:-1]) * (rng.uniform(size=w.shape[:-1]) > 0.1)
    return w


def test_numpy_inference_matches_the_torch_network():
    net = _random_net()
    windows = _random_windows(64, net.config.frames)
    x, _ = window_features(windows, net.config)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out, _ = UpNet.to_numpy(net).raw(windows)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_saved_model_loads_back_and_predicts_the_same(tmp_path):
    net = _random_net()
    path = UpNet.save(net, tmp_path / "up.safetensors", {"training": {"note": "test"}})
    windows = _random_windows(8, net.config.frames)
    a = UpNet.to_numpy(net).predict(windows)
    b = UpModel.load(path).predict(windows)
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)
    assert np.allclose(np.linalg.norm(b[0], axis=-1), 1.0)
    assert ((0 <= b[1]) & (b[1] <= 1)).all()


def _write(path, tensors, meta):
    from safetensors.numpy import save_file

    save_file(tensors, str(path), metadata={"posestream": json.dumps(meta)} if meta is not None else None)


def _tensors(config: UpConfig) -> dict[str, np.ndarray]:
    out = {}
    for i, (o, n) in enumerate(UpNet.shapes(config)):
        out[f"layers.{i}.weight"] = np.zeros((o, n), np.float32)
        out[f"layers.{i}.bias"] = np.zeros(o, np.float32)
    return out


GOOD = {"format": "posestream-up", "frames": 27, "stride": 3, "hidden": 32, "layers": 2, "kappa_ref": 200.0}


@pytest.mark.parametrize("meta, tensors_for, words", [
    (None, GOOD, "not an up model"),
    ({**GOOD, "format": "posestream"}, GOOD, "not an up model"),
    ({k: v for k, v in GOOD.items() if k != "stride"}, GOOD, "lacks 'stride'"),
    ({**GOOD, "layers": 99}, GOOD, "layers must be an integer in [1, 8]"),
    ({**GOOD, "frames": "27"}, GOOD, "frames must be an integer"),
    ({**GOOD, "hidden": 64}, GOOD, "layer 0 should be 64x"),
    ({**GOOD, "stride": 30}, GOOD, "stride (30) must not exceed its frames (27)"),
    ({**GOOD, "kappa_ref": 0.0}, GOOD, "kappa_ref must be a number"),
])
def test_bad_checkpoints_fail_in_one_sentence(tmp_path, meta, tensors_for, words):
    config = UpConfig(**{k: tensors_for[k] for k in ("frames", "stride", "hidden", "layers", "kappa_ref")})
    path = tmp_path / "bad.safetensors"
    _write(path, _tensors(config), meta)
    with pytest.raises(CheckpointError) as err:
        UpModel.load(path)
    message = str(err.value)
    assert words in message and "\n" not in message and str(path) in message


def test_a_file_that_is_not_safetensors_fails_in_one_sentence(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        UpModel.load(path)
    with pytest.raises(CheckpointError, match="no such up model file"):
        UpModel.load(tmp_path / "missing.safetensors")


def test_nan_joints_count_as_missing_like_in_the_lifter():
    model = UpNet.to_numpy(_random_net())
    windows = _random_windows(4, model.frames)
    holed = windows.copy()
    windows[:, -1, 5] = 0.0  # joint 5 missing in the newest frame ...
    holed[:, -1, 5, 0] = np.nan  # ... or its coordinates unknown
    np.testing.assert_allclose(model.predict(holed)[0], model.predict(windows)[0], atol=1e-6)


def test_windows_of_the_wrong_shape_are_refused():
    model = UpNet.to_numpy(_random_net())
    with pytest.raises(ValueError, match=r"\(N, 27, 17, 3\)"):
        model.predict(np.zeros((2, 9, 17, 3), np.float32))


def test_a_window_showing_almost_no_joints_has_no_confidence():
    model = UpModel.load()
    window, _ = film(standing_window(model.frames), -20.0, 5.0)
    few = window.copy()
    few[..., MIN_VISIBLE_JOINTS - 1:, 2] = 0.0  # only 4 joints seen
    up, conf = model.predict(np.concatenate([window, few, np.zeros_like(window)]))
    assert conf[0] > 0.05
    assert conf[1] == 0.0 and conf[2] == 0.0
    np.testing.assert_allclose(up[1:], [LEVEL_UP, LEVEL_UP])


@pytest.mark.parametrize("pitch, roll", [(0.0, 0.0), (-30.0, 0.0), (-15.0, 15.0), (-20.0, -10.0), (-40.0, -18.0)])
def test_the_shipped_model_finds_up_for_a_standing_person(pitch, roll):
    """A hand-built standing person (not from the training data) filmed from 3 m with a known tilt.

    Roll shows in how the body leans in the image and comes out within 5 degrees. Pitch shows only
    in perspective (the head nearer a camera looking down than the feet), weakly for a person in
    the middle of the image, and the model's estimate is pulled towards the middle of its
    training range (-45..15): about 8 degrees off for a level camera, so 10 degrees overall.
    """
    model = UpModel.load()
    window, truth = film(standing_window(model.frames), pitch, roll, distance=3.0)
    up, conf = model.predict(window)
    assert angle_deg(up[0], truth) < 10.0
    got_roll = np.degrees(np.arctan2(up[0, 0], -up[0, 1]))
    assert abs(got_roll - roll) < 5.0
    assert 0 < conf[0] <= 1


def test_the_shipped_model_reads_the_lifters_window():
    """27 frames: the runtime reuses the lifter's ring buffer (``engines.load('default').receptive_field``)."""
    from engines.checkpoint import read_metadata, resolve_checkpoint

    model = UpModel.load()
    lifter = read_metadata(resolve_checkpoint("default"))["config"]
    assert model.frames == lifter["receptive_field"] == 27
