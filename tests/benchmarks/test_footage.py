"""The real-footage reference and sync check, on poses with a known answer: a synthetic body moved
through the real Pose2Sim calibration and projected exactly into its four cameras."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.footage import ViewDetections, reference, sync_check
from engines.skeleton import CANONICAL


@pytest.fixture(scope="module")
def cameras(shared_dir):
    from engines.calibration import load_calibration

    return load_calibration(shared_dir / "media" / "pose2sim-demo" / "Calib.qca.txt")


def _body(frames: int = 60) -> np.ndarray:
    """(F, 17, 3) world points: a body-sized cloud walking about 1 m/s (60 fps) through the capture volume."""
    rng = np.random.default_rng(0)
    shape = rng.normal(scale=[0.2, 0.2, 0.5], size=(17, 3)) + [0.0, 0.0, 1.0]  # Qualisys world: z up
    t = np.arange(frames)[:, None] / 60.0
    path = np.concatenate([np.sin(3 * t) * 0.6, np.cos(2 * t) * 0.4, np.zeros_like(t)], axis=1)
    return shape[None] + path[:, None]


def _views(X: np.ndarray, cameras) -> dict[str, ViewDetections]:
    out = {}
    for cam in cameras:
        px = cam.project(X)
        kp = np.concatenate([np.zeros_like(px), np.ones(px.shape[:-1] + (1,))], axis=-1).astype(np.float32)
        out[cam.name] = ViewDetections(kp, px, np.full(X.shape, np.nan), np.full(X.shape, np.nan),
                                       np.ones(len(X), bool))
    return out


def test_reference_recovers_the_body_even_when_one_view_swaps_left_and_right(cameras) -> None:
    X = _body()
    views = _views(X, cameras)
    swapped = views["cam02"].pixels.copy()
    swapped[20:40] = swapped[20:40][:, list(CANONICAL.flip_permutation)]  # MediaPipe facing the wrong way
    views["cam02"].pixels = swapped
    ref, stats = reference(views, cameras)
    err = np.linalg.norm(ref - X, axis=-1)
    sided = [j for pair in CANONICAL.left_right_pairs for j in pair]
    assert np.nanmax(err) < 1e-3  # metres: the three agreeing views win
    assert stats["joints_kept_fraction"] == 1.0
    assert stats["joints_from_all_views_fraction"] < 1.0  # the swapped frames dropped cam02
    assert np.isfinite(ref[20:40, sided]).all()


def test_sync_check_finds_a_view_that_lags(cameras) -> None:
    X = _body(90)
    views = _views(X, cameras)
    assert sync_check(views, cameras)["synchronised"]
    lag = 3
    late = views["cam03"]
    late.pixels = np.concatenate([np.repeat(late.pixels[:1], lag, axis=0), late.pixels[:-lag]])  # 3 frames late
    result = sync_check(views, cameras)
    assert not result["synchronised"]
    assert result["pairs"]["cam01-cam03"]["best_shift"] == lag
    assert result["pairs"]["cam03-cam04"]["best_shift"] == -lag
    assert result["pairs"]["cam01-cam02"]["best_shift"] == 0
