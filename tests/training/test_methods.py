"""Learning without 3D labels: each method's short run on real CMU mocap lowers its loss and
beats the untrained model on held-out subjects; test-time adaptation improves its own clip;
bad multi-view input is one sentence and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.models import MLPConfig, build_model
from tests.conftest import MEDIA
from training import metrics
from training.config import DataConfig, MethodConfig, RunConfig, TrainConfig
from training.data import make_sampler, open_motion, split_by_groups
from training.synth import CLEAN, NO_AUGMENTATION

MODEL = MLPConfig(hidden=128, blocks=2, dropout=0.0)
POSE2SIM = MEDIA / "pose2sim-demo"


def _cfg(tmp_path, archive, method, steps=60, epochs=2, **method_kw) -> RunConfig:
    return RunConfig(
        data=DataConfig(motion=Path(archive), validation_groups=("09",)),
        model=MODEL,
        train=TrainConfig(epochs=epochs, steps_per_epoch=steps, batch_size=32, lr=2e-3, val_windows=64,
                          out=tmp_path / method, method=method),
        method=MethodConfig(**method_kw),
    )


@pytest.fixture(scope="module")
def val_batch(cmu_archive_path):
    """Fixed clean 2D/3D windows of the held-out subject 09."""
    archive = open_motion(cmu_archive_path, progress=False)
    split = split_by_groups(archive, ("09",))
    rng = np.random.default_rng(3)
    return make_sampler(archive, 1, split.val_frames).make(rng, rng.choice(split.val_frames, 512), CLEAN, NO_AUGMENTATION)


def _scores(model, batch) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(batch.inputs)).numpy().astype(np.float64)
    truth = batch.targets[:, -1].astype(np.float64)
    rel_p, rel_t = pred - pred[:, :1], truth - truth[:, :1]
    return {"mpjpe": metrics.mpjpe(rel_p, rel_t), "p_mpjpe": metrics.p_mpjpe(rel_p, rel_t),
            "ordinal": metrics.ordinal_depth_accuracy(pred, truth)}


def _untrained(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(MODEL)


def _run(cfg):
    import json

    from engines.checkpoint import load_checkpoint
    from training.train import train

    train(cfg, progress=False)
    hist = json.loads((cfg.train.out / "history.json").read_text())
    model, meta = load_checkpoint(cfg.train.out / "last.safetensors")
    assert meta["training"]["method"]["name"].startswith(cfg.train.method)
    best, _ = load_checkpoint(cfg.train.out / "best.safetensors")  # label-free: no 3D error picks an epoch
    assert all(torch.equal(a, b) for a, b in zip(best.state_dict().values(), model.state_dict().values()))
    return hist, model


@pytest.mark.slow
def test_adversarial_learns_depth_from_2d_alone(tmp_path, cmu_archive_path, val_batch):
    hist, model = _run(_cfg(tmp_path, cmu_archive_path, "adversarial", steps=75))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    before, after = _scores(_untrained(), val_batch), _scores(model, val_batch)
    assert after["p_mpjpe"] < 0.8 * before["p_mpjpe"], (before, after)


@pytest.mark.slow
def test_supervised_gan_keeps_its_best_validation_epoch(tmp_path, cmu_archive_path):
    """With ``disc3d`` the adversarial method learns from 3D labels, so best.safetensors is the
    epoch with the lowest validation error, as for supervised training."""
    import json

    from engines.checkpoint import load_checkpoint
    from training.train import train

    # five steps an epoch: the validation error of this seeded run is lowest at epoch 1, not at the end
    cfg = _cfg(tmp_path, cmu_archive_path, "adversarial", steps=5, epochs=3, disc3d=True)
    train(cfg, progress=False)
    hist = json.loads((cfg.train.out / "history.json").read_text())
    assert [h["method"] for h in hist] == ["adversarial-3d"] * 3
    _, meta = load_checkpoint(cfg.train.out / "best.safetensors")
    lowest = min(hist, key=lambda h: h["val_detector_mpjpe_mm"])
    assert lowest["epoch"] < hist[-1]["epoch"], "the run's last epoch is its best: the check below would prove nothing"
    assert meta["metrics"]["history"]["epoch"] == lowest["epoch"]


@pytest.mark.slow
def test_multiview_learns_without_3d_labels(tmp_path, cmu_archive_path, val_batch):
    hist, model = _run(_cfg(tmp_path, cmu_archive_path, "multiview", steps=60, views=3))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    before, after = _scores(_untrained(), val_batch), _scores(model, val_batch)
    # short runs learn the pose's shape first (P-MPJPE), its metric size more slowly
    assert after["p_mpjpe"] < 0.9 * before["p_mpjpe"] and after["mpjpe"] < before["mpjpe"], (before, after)


@pytest.mark.slow
def test_ordinal_learns_depth_order(tmp_path, cmu_archive_path, val_batch):
    hist, model = _run(_cfg(tmp_path, cmu_archive_path, "ordinal", steps=60))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    before, after = _scores(_untrained(), val_batch), _scores(model, val_batch)
    assert after["ordinal"] > before["ordinal"] + 0.05, (before, after)


@pytest.mark.slow
def test_a_method_run_resumes_where_it_stopped(tmp_path, cmu_archive_path):
    import json
    from dataclasses import replace

    from training.train import train

    cfg = _cfg(tmp_path, cmu_archive_path, "adversarial", steps=3, epochs=1)
    train(cfg, progress=False)
    first = json.loads((cfg.train.out / "history.json").read_text())
    train(replace(cfg, train=replace(cfg.train, epochs=2)), resume=True, progress=False)
    hist = json.loads((cfg.train.out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2] and hist[0] == first[0]  # continued, not restarted


@pytest.mark.slow
def test_multiview_geometry_is_exact_for_the_truth(cmu_archive_path):
    """Predicting the true pose gives zero reprojection and zero disagreement; a wrong scale does not."""
    from training.methods.multiview import MultiViewMethod, multiview_terms

    archive = open_motion(cmu_archive_path, progress=False)
    split = split_by_groups(archive, ("09",))
    cfg = _cfg(Path("/nonexistent"), cmu_archive_path, "multiview", views=4)
    m = MultiViewMethod(cfg, make_sampler(archive, 1, split.train_frames), CLEAN, torch.device("cpu"))
    x, y, rig = m._synthetic(np.random.default_rng(0))
    pred = y.clone()
    pred[..., 2] += (rig.depth_scale - 1)[..., None, None] * y[..., :1, 2]  # the lifter's depth convention
    from training.methods.geometry import triangulate_rig

    targets = triangulate_rig(x, rig)
    exact = multiview_terms(pred, x, rig, targets)
    assert exact["reprojection"] < 1e-4 and exact["consistency"] < 1e-4 and exact["triangulation"] < 1e-3
    wrong = multiview_terms(pred * 1.1, x, rig, targets)
    assert wrong["reprojection"] > 0.05 and wrong["consistency"] > 0.05 and wrong["triangulation"] > 0.05


def test_rig_triangulation_matches_the_calibrated_numpy_one_and_drops_an_outlying_view():
    """The batched torch triangulation that gives multi-view training its label-free 3D targets
    agrees with engines.triangulation on the real Pose2Sim calibration (lens distortion
    included), and leaves out one view that puts a joint far off."""
    from engines.calibration import load_calibration
    from engines.triangulation import triangulate
    from training.methods.geometry import Rig, triangulate_rig

    cams = load_calibration(next(POSE2SIM.glob("*.qca.txt")))
    rng = np.random.default_rng(5)
    centre = np.mean([c.center for c in cams], axis=0) * np.array([0.2, 0.0, 0.2])  # inside the rig
    X = centre + rng.normal([0.0, 0.0, 0.0], [0.3, 0.4, 0.3], (6, 17, 3))
    px = np.stack([c.project(X) for c in cams])  # (V, 6, 17, 2)
    size = np.array([[c.width, c.height] for c in cams], np.float64)
    longer = size.max(axis=1)
    screen = (2 * px - size[:, None, None]) / longer[:, None, None, None]
    kp = np.concatenate([screen, np.ones(px.shape[:-1] + (1,))], axis=-1)[None]  # (1, V, 6, 17, 3)
    rig = Rig.from_cameras(cams).expand(1)
    ours = triangulate_rig(torch.from_numpy(kp), rig)[0].numpy()
    np.testing.assert_allclose(ours, triangulate(px, cams), atol=2e-3)
    np.testing.assert_allclose(ours, X, atol=2e-3)
    kp[0, 1, :, 9, :2] += 0.2  # view 1 puts the nose ~190 px off (a swap or a detector outlier)
    swapped = triangulate_rig(torch.from_numpy(kp), rig)[0].numpy()
    np.testing.assert_allclose(swapped, X, atol=2e-3)
    kp[0, :, 0, 4, 2] = 0.0  # nobody sees joint 4 in frame 0: no target
    kp[0, 0, 1, 4, 2] = 1.0
    kp[0, 1:, 1, 4, 2] = 0.0  # only one view sees it in frame 1: no target either
    assert torch.isnan(triangulate_rig(torch.from_numpy(kp), rig)[0, :2, 4]).all()


@pytest.mark.slow
def test_facing_sine_separates_real_from_depth_flipped_poses(val_batch):
    from training.methods.geometry import facing_sine

    pose = torch.from_numpy(val_batch.targets[:, -1])
    flipped = pose.clone()
    flipped[..., 2] = 2 * pose[..., :1, 2] - pose[..., 2]
    assert (facing_sine(pose) > 0).float().mean() > 0.95
    assert (facing_sine(flipped) < 0).float().mean() > 0.95


@pytest.mark.slow
def test_ordinal_metric_per_pose_matches_the_overall_accuracy(val_batch):
    truth = val_batch.targets[:, -1].astype(np.float64)
    noisy = truth + np.random.default_rng(0).normal(scale=0.05, size=truth.shape)
    per = metrics.ordinal_depth_agreement(noisy, truth)
    assert per.shape == (len(truth),)
    assert np.isclose(per.mean(), metrics.ordinal_depth_accuracy(noisy, truth))
    assert metrics.ordinal_depth_agreement(truth, truth).min() == 1.0


@pytest.fixture(scope="module")
def synthetic_clip_file(tmp_path_factory, cmu_archive_path):
    out = tmp_path_factory.mktemp("clip") / "clip.npz"
    res = subprocess.run([sys.executable, "-m", "training.cli", "make-clip", "--data", str(cmu_archive_path),
                          "--clip", "09/09_01", "--views", "3", "--frames", "120", "--out", str(out), "--quiet"],
                         check=False, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.slow
def test_adapt_improves_its_own_clip(tmp_path, cmu_archive_path, synthetic_clip_file):
    """A briefly trained multi-view model, adapted on a held-out subject's clip, gets better on it."""
    import json

    _run(_cfg(tmp_path, cmu_archive_path, "multiview", steps=40, epochs=1, views=3))
    ckpt = tmp_path / "multiview" / "last.safetensors"
    report = tmp_path / "adapt.json"
    res = subprocess.run([sys.executable, "-m", "training.cli", "adapt", "--checkpoint", str(ckpt), "--clip",
                          str(synthetic_clip_file), "--out", str(tmp_path / "adapted.safetensors"), "--steps", "60",
                          "--lr", "1e-3", "--json", str(report), "--quiet"], check=False, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    doc = json.loads(report.read_text())
    assert doc["after"]["mpjpe_mm"] < 0.9 * doc["before"]["mpjpe_mm"], doc
    assert doc["after"]["reprojection_px"] < doc["before"]["reprojection_px"]
    assert (tmp_path / "adapted.safetensors").is_file()


def _adapt_cli(tmp_path, clip, *extra):
    out = tmp_path / "adapted.safetensors"
    res = subprocess.run([sys.executable, "-m", "training.cli", "adapt", "--checkpoint", "default", "--clip", str(clip),
                          "--out", str(out), "--steps", "1", *extra], check=False, capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert not out.exists()
    return res.stderr.strip()


def _write_video(path: Path, frames: int, person: bool) -> None:
    import cv2

    cap = cv2.VideoCapture(str(POSE2SIM / "cam04.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (272, 480))
    for _ in range(frames):
        _, img = cap.read()
        img = cv2.resize(img, (272, 480)) if person else np.zeros((480, 272, 3), np.uint8)
        writer.write(img)
    writer.release()
    cap.release()


def _two_camera_calibration(path: Path) -> None:
    from engines.calibration import load_calibration, save_calibration

    save_calibration(path, load_calibration(POSE2SIM / "Calib.qca.txt")[2:4])


@pytest.mark.slow
def test_views_that_are_not_synchronised_are_refused(tmp_path):
    _write_video(tmp_path / "a.mp4", 6, person=True)
    _write_video(tmp_path / "b.mp4", 4, person=True)
    _two_camera_calibration(tmp_path / "calibration.toml")
    msg = _adapt_cli(tmp_path, tmp_path)
    assert "not synchronised" in msg and "a.mp4 has 6" in msg and "b.mp4 has 4" in msg


@pytest.mark.slow
def test_a_calibration_missing_a_camera_is_refused(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for name in ("cam01.mp4", "cam02.mp4", "cam03.mp4"):
        (clip / name).symlink_to(POSE2SIM / name)
    _two_camera_calibration(clip / "calibration.toml")
    assert "2 cameras for 3 views" in _adapt_cli(tmp_path, clip)


@pytest.mark.slow
def test_a_clip_with_nobody_in_it_is_refused(tmp_path):
    _write_video(tmp_path / "a.mp4", 3, person=False)
    _write_video(tmp_path / "b.mp4", 3, person=False)
    _two_camera_calibration(tmp_path / "calibration.toml")
    assert "no person detected" in _adapt_cli(tmp_path, tmp_path, "--calibration", str(tmp_path / "calibration.toml"))


@pytest.mark.slow
def test_bad_clip_files_are_one_sentence(tmp_path, synthetic_clip_file):
    assert "no such clip" in _adapt_cli(tmp_path, tmp_path / "missing")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\0" * 16)
    assert "calibration" in _adapt_cli(tmp_path, bad)
    assert "not a readable multi-view clip" in _adapt_cli(tmp_path, bad, "--calibration",
                                                          str(synthetic_clip_file.with_name("clip.calibration.toml")))
    with np.load(synthetic_clip_file) as doc:
        kp = doc["keypoints"].copy()
        size, fps = doc["image_size"], doc["fps"]
    kp[1, :, :, 2] = 0.0  # the second camera never sees anyone
    blind = tmp_path / "blind.npz"
    np.savez(blind, keypoints=kp, image_size=size, fps=fps)
    calib = str(synthetic_clip_file.with_name("clip.calibration.toml"))
    assert "no person detected in view virtual1" in _adapt_cli(tmp_path, blind, "--calibration", calib)


@pytest.mark.slow
def test_unknown_method_is_refused(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('[data]\nmotion = "x.npz"\n[train]\nmethod = "telepathy"\n')
    res = subprocess.run([sys.executable, "-m", "training.cli", "train", "--config", str(cfg)], check=False, capture_output=True, text=True)
    assert res.returncode == 2 and "method must be one of" in res.stderr and "Traceback" not in res.stderr


def test_the_methods_page_opens_with_the_report_header():
    """docs/methods.md is written by `training methods-report`: its prose is the report's HEADER,
    so an edit made to the page alone would be lost at the next run."""
    import re

    from training.methods.report import HEADER

    page = (Path(__file__).resolve().parents[2] / "docs" / "methods.md").read_text(encoding="utf-8")
    budget = re.compile(r"--minutes \S+ --adapt-steps \S+ --runs \S+ ")
    assert budget.sub("", page).startswith(budget.sub("", HEADER))
