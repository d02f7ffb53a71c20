"""``training.up`` and ``training train-up``: the gravity model's data, training and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.cli_support import EXIT_USER_ERROR
from engines.gravity import UpModel, angle_deg
from engines.skeleton import CANONICAL
from training.cli import main as training_main
from training.synth import WindowSampler
from training.up import body_axis_up, ring_windows, running_mean, tilted_batch

CLIPS = ("01/01_01.bvh.gz", "02/02_06.bvh.gz", "06/06_12.bvh.gz", "09/09_01.bvh.gz")  # one training subject


def _standing_motion(frames: int = 90) -> np.ndarray:
    from tests.engines.test_gravity import standing_window

    return standing_window(frames)


def test_tilted_batches_carry_the_cameras_up_and_mirror_consistently():
    sampler = WindowSampler(_standing_motion(), np.zeros(90, np.int64), 27)
    rng = np.random.default_rng(0)
    inputs, up = tilted_batch(rng, sampler, 200, hidden_fraction=0.0)
    assert inputs.shape == (200, 27, 17, 3) and up.shape == (200, 3)
    np.testing.assert_allclose(np.linalg.norm(up, axis=-1), 1.0, atol=1e-9)
    pitch = np.degrees(np.arcsin(up[:, 2]))
    assert -45.0 <= pitch.min() and pitch.max() <= 15.0
    # A standing person's 2D body axis (ankles to thorax) leans the way the camera's up does
    # in the image (roll): mirrored windows included, the two agree in sign.
    vis = (inputs[:, -1, [3, 6, 8], 2] > 0).all(-1)
    axis = inputs[:, -1, 8, :2] - 0.5 * (inputs[:, -1, 3, :2] + inputs[:, -1, 6, :2])
    lean = np.arctan2(axis[:, 0], -axis[:, 1])
    roll = np.arctan2(up[:, 0], -up[:, 1])
    big = vis & (np.abs(np.degrees(roll)) > 8)
    assert big.sum() > 20
    assert (np.sign(lean[big]) == np.sign(roll[big])).mean() > 0.9


def test_ring_windows_repeat_the_first_frame_like_the_realtime_buffer():
    frames = np.arange(5, dtype=np.float32)[None, :, None, None] * np.ones((1, 5, 17, 3), np.float32)
    win = ring_windows(frames, 3)
    assert win.shape == (1, 5, 3, 17, 3)
    assert win[0, 0, :, 0, 0].tolist() == [0, 0, 0]
    assert win[0, 4, :, 0, 0].tolist() == [2, 3, 4]


def test_running_mean_weights_votes_by_confidence():
    up = np.array([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]])
    est = running_mean(up, np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(est[0, -1], [0.0, -1.0, 0.0])
    est = running_mean(up, np.array([[1.0, 1.0]]))
    assert angle_deg(est[0, -1], up[0, 0]) == pytest.approx(45.0)


def test_body_axis_of_a_standing_person_is_up():
    pose = _standing_motion(1)[0]  # world y-up; camera frame y-down flips y
    cam = pose * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 1.0, 4.0])
    assert angle_deg(body_axis_up(cam), [0.0, -1.0, 0.0]) < 1.0


@pytest.mark.parametrize("argv, words", [
    (["--data", "nowhere", "--out", "up.pt"], "the up model is written as a .safetensors file"),
    (["--data", "nowhere", "--out", "up.safetensors"], "no such motion archive"),
])
def test_train_up_checks_its_flags_before_any_work(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert training_main(["train-up", *argv]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert words in err
    assert err.count("\n") == 1


def test_train_up_refuses_a_zero_budget(capsys, tmp_path):
    (tmp_path / "motion.npz").write_bytes(b"")
    assert training_main(["train-up", "--data", str(tmp_path / "motion.npz"), "--out", str(tmp_path / "up.safetensors"),
                          "--minutes", "0"]) == EXIT_USER_ERROR
    assert "--minutes must be > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_train_up_smoke_run_writes_a_loadable_model(shared_dir, tmp_path, capsys):
    from training.motion import prepare
    from training.up import evaluate_up

    motion = tmp_path / "four.npz"
    prepare([shared_dir / "data" / "cmu-mocap" / c for c in CLIPS], motion, workers=1, progress=False)
    out = tmp_path / "up.safetensors"
    assert training_main(["train-up", "--data", str(motion), "--out", str(out), "--minutes", "0.05", "--quiet"]) == 0
    assert "validation median error" in capsys.readouterr().out
    model = UpModel.load(out)
    assert model.frames == 27 and model.metadata["training"]["validation_groups"] == ["02", "06", "09"]
    res = evaluate_up(motion, model, windows=64, segments=4)
    assert res["single"]["model"]["n"] == 64
    assert np.isfinite(res["single"]["lifter_axis"]["median_deg"])
    assert res["running_any"]["segments"] == 4
    assert Path(out).stat().st_size < 1_000_000


def test_the_shipped_model_is_small_and_says_how_it_was_trained():
    from engines.gravity import DEFAULT_UP_MODEL

    assert DEFAULT_UP_MODEL.stat().st_size < 1_000_000
    meta = UpModel.load().metadata["training"]
    assert meta["validation_groups"] == ["02", "06", "09"]
    assert meta["loss"] == "von Mises-Fisher NLL"
    assert CANONICAL.num_joints == 17
