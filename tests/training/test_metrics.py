"""Tests for training.metrics: invariances, hand-computed values, vectorisation, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from training import metrics as M

J = 17


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _poses(shape: tuple[int, ...], seed: int = 0, scale: float = 0.3) -> np.ndarray:
    """Random non-planar root-relative-ish poses in metres."""
    return _rng(seed).normal(scale=scale, size=shape + (J, 3))


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _similarity(pose: np.ndarray, seed: int) -> np.ndarray:
    rng = _rng(seed)
    rot = _rotation(rng)
    s = rng.uniform(0.5, 2.0)
    t = rng.normal(size=3)
    return s * pose @ rot + t


# --------------------------------------------------------------------------- #
# identity -> perfect score
# --------------------------------------------------------------------------- #


def test_identical_poses_give_perfect_scores():
    x = _poses((2, 6))
    assert M.mpjpe(x, x) == 0.0
    assert M.p_mpjpe(x, x) == pytest.approx(0.0, abs=1e-12)
    assert M.n_mpjpe(x, x) == pytest.approx(0.0, abs=1e-12)
    assert M.mpjve(x, x) == 0.0
    assert M.accel_error(x, x) == 0.0
    assert M.pck3d(x, x) == 1.0
    assert M.auc_pck3d(x, x) == 1.0
    assert M.auc_pck3d(x, x, method="trapezoid") == 1.0
    assert M.ordinal_depth_accuracy(x, x) == 1.0
    x2 = x[..., :2] * 500
    assert M.mean_joint_distance_2d(x2, x2) == 0.0
    assert M.pck2d(x2, x2, threshold=0.0) == 1.0
    s = M.summarize(x, x)
    assert set(s) == {
        "mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "accel_mm", "pck3d_150", "auc_pck3d"
    }
    for k in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "accel_mm"):
        assert s[k] == pytest.approx(0.0, abs=1e-9)
    assert s["pck3d_150"] == 1.0 and s["auc_pck3d"] == 1.0


# --------------------------------------------------------------------------- #
# MPJPE and friends: hand-made values
# --------------------------------------------------------------------------- #


def test_mpjpe_known_value_and_units():
    target = np.zeros((2, 3))
    pred = target + np.array([3.0, 4.0, 0.0])
    assert M.mpjpe(pred, target) == pytest.approx(5.0)
    # one joint off by 5, one exact -> mean 2.5
    pred[1] = 0.0
    assert M.mpjpe(pred, target) == pytest.approx(2.5)
    np.testing.assert_allclose(M.per_joint_error(pred, target), [5.0, 0.0])
    # 2D analogue in pixels
    assert M.mean_joint_distance_2d([[3.0, 4.0]], [[0.0, 0.0]]) == pytest.approx(5.0)


def test_mpjpe_axis_and_per_joint_tables():
    p, t = _poses((3, 5), 1), _poses((3, 5), 2)
    e = M.per_joint_error(p, t)
    assert e.shape == (3, 5, J)
    per_joint = M.mpjpe(p, t, axis=(0, 1))
    assert per_joint.shape == (J,)
    np.testing.assert_allclose(per_joint, e.mean(axis=(0, 1)))
    per_frame = M.mpjpe(p, t, axis=-1)
    assert per_frame.shape == (3, 5)
    assert np.mean(per_joint) == pytest.approx(M.mpjpe(p, t))


def test_mask_weights_and_nan_policy():
    t = _poses((4,), 3)
    p = t.copy()
    p[:, 0] += [0.0, 0.0, 0.1]  # joint 0 off by 10 cm
    p[:, 1] += 100.0  # joint 1 hugely wrong
    mask = np.ones(J, bool)
    mask[1] = False
    assert M.mpjpe(p, t, mask=mask) == pytest.approx(0.1 / (J - 1))
    # fractional weights -> weighted mean
    w = np.zeros(J)
    w[0], w[2] = 3.0, 1.0
    assert M.mpjpe(p, t, mask=w) == pytest.approx(0.1 * 3 / 4)
    # all weights zero -> NaN, not a crash
    assert np.isnan(M.mpjpe(p, t, mask=np.zeros(J)))

    # NaN target joint: propagates without a mask, excluded with the finite mask
    t_nan = t.copy()
    t_nan[2, 5] = np.nan
    assert np.isnan(M.mpjpe(p, t_nan))
    assert np.isnan(M.p_mpjpe(p, t_nan))
    assert np.isnan(M.pck3d(p, t_nan))
    assert np.isnan(M.auc_pck3d(p, t_nan))
    fm = M.finite_joint_mask(t_nan)
    assert fm.shape == (4, J) and fm.sum() == 4 * J - 1
    expected = M.per_joint_error(p, t)[fm].mean()
    assert M.mpjpe(p, t_nan, mask=fm) == pytest.approx(expected)
    for fn in (M.p_mpjpe, M.n_mpjpe, M.pck3d, M.auc_pck3d, M.ordinal_depth_accuracy):
        assert np.isfinite(fn(p, t_nan, mask=fm)), fn.__name__
    # the NaN joint must not influence the Procrustes fit of its pose
    np.testing.assert_allclose(
        M.p_mpjpe(p[2:3], t_nan[2:3], mask=fm[2:3]),
        M.p_mpjpe(p[2:3], t[2:3], mask=fm[2:3]),
        atol=1e-12,
    )


def test_mask_validation():
    p = _poses((2,))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        M.mpjpe(p, p, mask=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        M.mpjpe(p, p, mask=-np.ones(J))


# --------------------------------------------------------------------------- #
# Procrustes / scale alignment
# --------------------------------------------------------------------------- #


def test_p_mpjpe_invariant_to_similarity_transforms():
    t = _poses((8,), 4)
    p = t + _rng(5).normal(scale=0.03, size=t.shape)
    base = M.p_mpjpe(p, t)
    assert base > 1e-3
    # per-pose different random similarity transforms
    p_moved = np.stack([_similarity(p[i], seed=100 + i) for i in range(len(p))])
    assert M.p_mpjpe(p_moved, t) == pytest.approx(base, abs=1e-9)
    np.testing.assert_allclose(M.p_mpjpe(p_moved, t, axis=-1), M.p_mpjpe(p, t, axis=-1), atol=1e-9)
    # sanity: plain MPJPE does change, a lot
    assert M.mpjpe(p_moved, t) > M.mpjpe(p, t) + 0.05
    # a transformed copy of the target is aligned perfectly
    assert M.p_mpjpe(_similarity(t[0], 7), t[0]) == pytest.approx(0.0, abs=1e-9)
    assert M.p_mpjpe(p, t) <= M.mpjpe(p, t)


def test_procrustes_transform_is_proper_and_recovers_known_transform():
    rng = _rng(6)
    t = _poses((), 6)
    rot, s, tr = _rotation(rng), 1.7, np.array([0.1, -2.0, 3.0])
    p = (t - tr) @ rot.T / s  # so that s * p @ rot + tr == t
    aligned, r, s_hat, t_hat = M.procrustes_align(p, t, return_transform=True)
    np.testing.assert_allclose(aligned, t, atol=1e-10)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    assert s_hat == pytest.approx(s)
    np.testing.assert_allclose(t_hat, tr, atol=1e-10)
    # batched transforms are proper rotations
    _, rs, _, _ = M.procrustes_align(_poses((5,), 1), _poses((5,), 2), return_transform=True)
    np.testing.assert_allclose(np.linalg.det(rs), 1.0, atol=1e-10)
    np.testing.assert_allclose(rs @ np.swapaxes(rs, -1, -2), np.broadcast_to(np.eye(3), rs.shape),
                               atol=1e-10)


@pytest.mark.parametrize("mirror", [False, True])
def test_procrustes_is_least_squares_optimal(mirror):
    rng = _rng(7)
    t = _poses((), 8)
    p = t @ _rotation(rng) * 0.8 + rng.normal(scale=0.05, size=t.shape)
    if mirror:  # optimum needs the det-sign correction, including in the scale
        p = p * np.array([1.0, -1.0, 1.0])
    aligned, r, s, tr = M.procrustes_align(p, t, return_transform=True)
    # given R, the optimal scale is <Y, X R> / <X, X> for centred X, Y
    x, y = p - p.mean(0), t - t.mean(0)
    assert s == pytest.approx(np.sum(y * (x @ r)) / np.sum(x * x), rel=1e-10)
    np.testing.assert_allclose(tr, t.mean(0) - s * p.mean(0) @ r, atol=1e-12)
    best = np.sum((aligned - t) ** 2)
    for k in range(50):
        # perturb rotation (small random rotation), scale and translation
        w = rng.normal(scale=0.05, size=3)
        kx = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
        q, rr = np.linalg.qr(np.eye(3) + kx)
        dr = q * np.sign(np.diag(rr))
        cand = (s * (1 + rng.normal(scale=0.05))) * p @ (r @ dr) + tr + rng.normal(scale=0.01, size=3)
        assert np.sum((cand - t) ** 2) >= best - 1e-12


def test_reflection_is_not_aligned():
    t = _poses((4,), 9)
    mirrored = t * np.array([-1.0, 1.0, 1.0])
    # an improper transform would map it exactly; a proper rotation cannot
    assert M.p_mpjpe(mirrored, t) > 0.05
    for i in range(4):
        assert M.p_mpjpe(mirrored[i], t[i]) > 0.02


def test_n_mpjpe_scale_invariance_and_value():
    t = _poses((6,), 10)
    p = t + _rng(11).normal(scale=0.02, size=t.shape)
    base = M.n_mpjpe(p, t)
    scales = np.array([0.3, 0.5, 1.0, 2.0, 3.0, 10.0])[:, None, None]
    assert M.n_mpjpe(p * scales, t) == pytest.approx(base, abs=1e-9)
    assert M.mpjpe(p * scales, t) > M.mpjpe(p, t) + 0.05
    # exact scaled copy -> 0; but a rotation is NOT removed by n_mpjpe
    assert M.n_mpjpe(2.5 * t, t) == pytest.approx(0.0, abs=1e-12)
    rot = _rotation(_rng(12))
    assert M.n_mpjpe(t @ rot, t) > 0.05
    # hand case: pred = 2 * target exactly on one joint, orthogonal on the other
    tt = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pp = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    # s = <p,t>/<p,p> = 2 / 8 = 0.25 -> s*p = [[.5,0,0],[0,0,.5]]
    expected = (0.5 + np.sqrt(1.0 + 0.25)) / 2
    assert M.n_mpjpe(pp, tt) == pytest.approx(expected)


# --------------------------------------------------------------------------- #
# temporal metrics
# --------------------------------------------------------------------------- #


def _walk(t_len: int, seed: int) -> np.ndarray:
    rng = _rng(seed)
    return np.cumsum(rng.normal(scale=0.01, size=(t_len, J, 3)), axis=0) + _poses((), seed)


def test_constant_offset_has_no_velocity_or_accel_error():
    t = _walk(20, 13)
    p = t + np.array([0.03, 0.04, 0.0])
    assert M.mpjpe(p, t) == pytest.approx(0.05)
    assert M.mpjve(p, t) == pytest.approx(0.0, abs=1e-15)
    assert M.accel_error(p, t) == pytest.approx(0.0, abs=1e-15)


def test_linear_drift_gives_known_velocity_error_and_zero_accel():
    n_t = 11
    t = _walk(n_t, 14)
    v = np.array([0.003, 0.004, 0.0])  # 5 mm per frame
    p = t + np.arange(n_t)[:, None, None] * v
    assert M.mpjve(p, t) == pytest.approx(0.005)
    assert M.mpjve(p, t, fps=50) == pytest.approx(0.25)  # m/s
    assert M.accel_error(p, t) == pytest.approx(0.0, abs=1e-12)
    assert M.mpjpe(p, t) == pytest.approx(0.005 * (n_t - 1) / 2)
    assert M.mpjve(p, t, axis=-1).shape == (n_t - 1,)


def test_jitter_gives_known_accel_error():
    n_t = 8
    t = _walk(n_t, 15)
    sign = (-1.0) ** np.arange(n_t)
    p = t + sign[:, None, None] * np.array([0.0, 0.0, 0.01])
    # velocity error 2 cm / frame, acceleration error 4 cm / frame^2
    assert M.mpjve(p, t) == pytest.approx(0.02)
    assert M.accel_error(p, t) == pytest.approx(0.04)
    assert M.accel_error(p, t, fps=10) == pytest.approx(4.0)


def test_temporal_time_axis_batch_and_mask():
    p = np.stack([_walk(9, 16), _walk(9, 17)])  # (B, T, J, 3)
    t = np.stack([_walk(9, 18), _walk(9, 19)])
    for fn in (M.mpjve, M.accel_error):
        batched = fn(p, t)
        assert batched == pytest.approx(np.mean([fn(p[b], t[b]) for b in range(2)]))
        # time on axis 0 of a (T, B, J, 3) layout
        assert fn(p.swapaxes(0, 1), t.swapaxes(0, 1), time_axis=0) == pytest.approx(batched)
        with pytest.raises(ValueError, match="time_axis"):
            fn(p, t, time_axis=-2)
    # masking a frame removes every difference that uses it
    pm = p[0].copy()
    tm = t[0].copy()
    tm[4] = np.nan
    mask = np.ones((9, J))
    mask[4] = 0
    err = np.linalg.norm(np.diff(pm - t[0], axis=0), axis=-1)
    keep = np.ones(8, bool)
    keep[[3, 4]] = False
    assert M.mpjve(pm, tm, mask=mask) == pytest.approx(err[keep].mean())
    assert np.isnan(M.mpjve(pm, tm))
    with pytest.raises(ValueError, match="frames"):
        M.accel_error(p[:, :2], t[:, :2])


# --------------------------------------------------------------------------- #
# PCK / AUC
# --------------------------------------------------------------------------- #


def test_pck3d_exact_threshold_and_fraction():
    t = np.zeros((4, 3))
    p = t.copy()
    p[0, 0] = 0.125  # exactly representable distances
    p[1, 1] = 0.25
    p[2, 2] = -0.0625
    assert M.pck3d(p, t, threshold=0.125) == 0.75  # boundary counts as correct
    assert M.pck3d(p, t, threshold=np.nextafter(0.125, 0)) == 0.5
    assert M.pck3d(p, t) == 0.75  # default 150 mm
    assert M.pck3d(p, t, threshold=0.25) == 1.0
    assert M.pck3d(p, t, threshold=0.0) == 0.25
    np.testing.assert_array_equal(M.pck3d(p[None], t[None], 0.125, axis=0), [1, 0, 1, 1])


def test_auc_hand_computed():
    t = np.zeros((2, 3))
    p = np.array([[2.5, 0.0, 0.0], [2.5, 0.0, 0.0]])
    thr = [0.0, 1.0, 2.0, 3.0, 4.0]  # PCK curve 0,0,0,1,1
    assert M.auc_pck3d(p, t, thresholds=thr) == pytest.approx(2 / 5)
    assert M.auc_pck3d(p, t, thresholds=thr, method="trapezoid") == pytest.approx(1.5 / 4)
    # half perfect, half hopeless -> 0.5 both ways
    p2 = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    assert M.auc_pck3d(p2, t, thresholds=thr) == pytest.approx(0.5)
    assert M.auc_pck3d(p2, t, thresholds=thr, method="trapezoid") == pytest.approx(0.5)
    # everything beyond 150 mm -> 0 with default thresholds
    assert M.auc_pck3d(t + 0.2, t) == 0.0
    # weighted mask ignores the hopeless joint
    assert M.auc_pck3d(p2, t, thresholds=thr, mask=[1, 0]) == 1.0
    with pytest.raises(ValueError):
        M.auc_pck3d(p, t, thresholds=[0.1, 0.05])


def test_auc_matches_mean_of_pck_curve():
    p, t = _poses((3, 4), 20), _poses((3, 4), 20) + _rng(21).normal(scale=0.08, size=(3, 4, J, 3))
    thr = np.linspace(0, 0.15, 31)
    curve = np.array([M.pck3d(p, t, threshold=x) for x in thr])
    assert M.auc_pck3d(p, t) == pytest.approx(curve.mean())
    assert M.auc_pck3d(p, t, method="trapezoid") == pytest.approx(
        np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(thr)) / 0.15
    )
    assert 0.0 < M.auc_pck3d(p, t) < 1.0


def test_pck2d_absolute_and_normalised():
    t = np.array([[0.0, 0.0], [30.0, 40.0], [0.0, 40.0], [30.0, 0.0]])  # bbox diag 50 px
    p = t.copy()
    p[0] += [3.0, 4.0]  # 5 px off
    p[1] += [6.0, 8.0]  # 10 px off
    assert M.body_size_2d(t) == pytest.approx(50.0)
    assert M.body_size_2d(t, kind="pair", joints=(0, 1)) == pytest.approx(50.0)
    assert M.body_size_2d(t, joints=[0, 2]) == pytest.approx(40.0)
    assert M.pck2d(p, t, threshold=5.0) == 0.75
    assert M.pck2d(p, t, threshold=4.9) == 0.5
    assert M.pck2d(p, t, threshold=0.1, normalizer=M.body_size_2d(t)) == 0.75  # 5 px
    assert M.pck2d(p, t, threshold=0.2, normalizer=M.body_size_2d(t)) == 1.0  # 10 px
    # per-pose normaliser in a batch: second pose twice as large
    pb = np.stack([p, 2 * p])
    tb = np.stack([t, 2 * t])
    np.testing.assert_allclose(M.body_size_2d(tb), [50.0, 100.0])
    assert M.pck2d(pb, tb, 0.1, normalizer=M.body_size_2d(tb)) == 0.75
    assert M.pck2d(pb, tb, 5.0) == pytest.approx((0.75 + 0.5) / 2)  # 2nd pose errors 10, 20, 0, 0
    assert M.mean_joint_distance_2d(p, t) == pytest.approx(15.0 / 4)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        M.pck2d(pb, tb, 0.1, normalizer=np.ones(3))


# --------------------------------------------------------------------------- #
# ordinal depth
# --------------------------------------------------------------------------- #


def _depth_pose(z: list[float]) -> np.ndarray:
    pose = np.zeros((len(z), 3))
    pose[:, 0] = np.arange(len(z))
    pose[:, 2] = z
    return pose


def test_ordinal_depth_hand_made():
    t = _depth_pose([1.0, 2.0, 3.0])  # pairs (0,1),(0,2),(1,2): all "closer"
    np.testing.assert_array_equal(M.ordinal_depth_relations(t), [-1, -1, -1])
    # joint 1 pushed behind joint 2: pair (1,2) wrong -> 2/3
    assert M.ordinal_depth_accuracy(_depth_pose([1.0, 3.5, 3.0]), t) == pytest.approx(2 / 3)
    # joint 2 in front of both: (0,2) and (1,2) wrong -> 1/3
    assert M.ordinal_depth_accuracy(_depth_pose([1.0, 2.0, 0.5]), t) == pytest.approx(1 / 3)
    # absolute depth / scale errors don't matter as long as the order holds
    assert M.ordinal_depth_accuracy(_depth_pose([5.0, 5.2, 9.0]), t) == 1.0
    # tolerance band: |2.96 - 3.0| < 0.05 -> "equal", target says "closer" -> 2/3
    pred_band = _depth_pose([1.0, 2.96, 3.0])
    np.testing.assert_array_equal(M.ordinal_depth_relations(pred_band), [-1, -1, 0])
    assert M.ordinal_depth_accuracy(pred_band, t) == pytest.approx(2 / 3)
    # strict order (tolerance 0) makes it correct again
    assert M.ordinal_depth_accuracy(pred_band, t, tolerance=0.0) == 1.0
    # when the target pair is also within the band, "equal" agrees -> 1
    t_band = _depth_pose([1.0, 2.98, 3.0])
    assert M.ordinal_depth_accuracy(pred_band, t_band) == 1.0
    # depth on another axis
    assert M.ordinal_depth_accuracy(pred_band, t, depth_axis=0) == 1.0
    # over several poses: fraction over all pairs of all poses
    both = M.ordinal_depth_accuracy(
        np.stack([_depth_pose([1.0, 3.5, 3.0]), _depth_pose([1.0, 2.0, 0.5])]), np.stack([t, t])
    )
    assert both == pytest.approx(3 / 6)
    # mask joint 2 out: only pair (0,1) remains, and it is right
    assert M.ordinal_depth_accuracy(_depth_pose([1.0, 2.0, 0.5]), t, mask=[1, 1, 0]) == 1.0


def test_ordinal_accuracy_matches_relations_on_random_poses():
    t = _poses((5,), 30)
    p = t + _rng(31).normal(scale=0.1, size=t.shape)
    for tol in (0.0, 0.05, 0.2):
        agree = M.ordinal_depth_relations(p, tol) == M.ordinal_depth_relations(t, tol)
        assert M.ordinal_depth_accuracy(p, t, tolerance=tol) == pytest.approx(agree.mean())
    assert M.ordinal_depth_relations(t).shape == (5, J * (J - 1) // 2)
    t_nan = t.copy()
    t_nan[0, 0, 2] = np.nan
    assert np.isnan(M.ordinal_depth_accuracy(p, t_nan))


# --------------------------------------------------------------------------- #
# vectorisation and shape checks
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", ["mpjpe", "p_mpjpe", "n_mpjpe", "pck3d", "ordinal_depth_accuracy"])
def test_batched_equals_mean_of_per_pose(name):
    fn = getattr(M, name)
    t = _poses((3, 4), 22)
    p = t + _rng(23).normal(scale=0.08, size=t.shape)
    batched = fn(p, t)
    singles = [fn(p[b, f], t[b, f]) for b in range(3) for f in range(4)]
    assert batched == pytest.approx(np.mean(singles), abs=1e-12)


def test_summarize_values_and_batch():
    t = np.stack([_walk(10, 24), _walk(10, 25)])
    p = t + _rng(26).normal(scale=0.02, size=t.shape)
    s = M.summarize(p, t)
    assert s["mpjpe_mm"] == pytest.approx(1000 * M.mpjpe(p, t))
    assert s["p_mpjpe_mm"] == pytest.approx(1000 * M.p_mpjpe(p, t))
    assert s["n_mpjpe_mm"] == pytest.approx(1000 * M.n_mpjpe(p, t))
    assert s["mpjve_mm"] == pytest.approx(1000 * M.mpjve(p, t))
    assert s["accel_mm"] == pytest.approx(1000 * M.accel_error(p, t))
    assert s["pck3d_150"] == M.pck3d(p, t)
    assert s["auc_pck3d"] == M.auc_pck3d(p, t)
    assert all(isinstance(v, float) for v in s.values())
    assert s["p_mpjpe_mm"] <= s["mpjpe_mm"]
    short = M.summarize(p[0, :2], t[0, :2])
    assert np.isfinite(short["mpjve_mm"]) and np.isnan(short["accel_mm"])
    with pytest.raises(ValueError, match=r"\(17, 3\)"):
        M.summarize(p[0, 0], t[0, 0])


@pytest.mark.parametrize(
    "fn", [M.mpjpe, M.p_mpjpe, M.n_mpjpe, M.pck3d, M.auc_pck3d, M.mpjve, M.accel_error,
           M.ordinal_depth_accuracy, M.procrustes_align]
)
def test_3d_metrics_reject_wrong_channel_count(fn):
    bad = np.zeros((4, 5, J, 2))
    with pytest.raises(ValueError, match=r"\(4, 5, 17, 2\)"):
        fn(bad, bad)
    good = np.zeros((4, 5, J, 3))
    with pytest.raises(ValueError, match=r"\(4, 5, 16, 3\)"):
        fn(good, np.zeros((4, 5, 16, 3)))


@pytest.mark.parametrize("fn", [M.pck2d, M.mean_joint_distance_2d])
def test_2d_metrics_reject_3d_input(fn):
    bad = np.zeros((4, J, 3))
    kwargs = {"threshold": 5.0} if fn is M.pck2d else {}
    with pytest.raises(ValueError, match=r"\(4, 17, 3\)"):
        fn(bad, bad, **kwargs)
    with pytest.raises(ValueError, match=r"\(4, 17, 3\)"):
        M.body_size_2d(bad)
