"""One Euro smoothing: Numba kernel == NumPy reference, and the filter does what it is for."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from realtime.smooth import (
    OneEuroConfig,
    OneEuroFilter,
    SkeletonSmoother,
    _one_euro_step_numba,
    new_state,
    one_euro_step_numpy,
    state_views,
    warmup,
)

J = 17
FRAME_NS = 33_333_333  # 30 fps
BACKENDS = ("numba", "numpy")


def _pose(seed: int = 0) -> np.ndarray:
    """A fixed, body-sized cloud of 17 joints (metres)."""
    return np.random.default_rng(seed).normal(scale=0.3, size=(J, 3))


def _messy_sequence(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random walk of J joints with irregular dt, repeated and out-of-order timestamps, missing
    joints (including some missing from the very start), whole missing frames and infinities."""
    rng = np.random.default_rng(seed)
    # speeds from still to fast limbs: per-step increments of 0.1 mm to 10 cm
    steps = rng.normal(size=(n, J, 3)) * 10.0 ** rng.uniform(-4, -1, size=(n, 1, 1))
    xs = np.cumsum(steps, axis=0)
    dt = rng.uniform(0.002, 0.1, size=n)
    dt[rng.random(n) < 0.05] = 0.0  # repeated timestamps
    dt[rng.random(n) < 0.02] = -0.01  # out of order
    ts = np.cumsum(dt)
    xs[rng.random((n, J)) < 0.1] = np.nan  # missing joints
    xs[: n // 10, :3] = np.nan  # three joints unseen for the first tenth
    xs[rng.random(n) < 0.01] = np.nan  # nobody detected
    bad = rng.random((n, J, 3)) < 0.002
    xs[bad] = np.inf
    xs[np.roll(bad, 1, axis=2) & ~bad] = np.nan  # lone NaN coordinates too
    return xs, ts


@pytest.mark.parametrize(
    "cfg",
    [OneEuroConfig(), OneEuroConfig(beta=0.0), OneEuroConfig(min_cutoff=1.7, beta=0.5, d_cutoff=3.0)],
    ids=["mediapipe", "beta0", "other"],
)
def test_numba_kernel_matches_numpy_reference(cfg: OneEuroConfig) -> None:
    xs, ts = _messy_sequence(4000, seed=7)
    s_np, s_nb = new_state(J), new_state(J)
    c = cfg.as_tuple()
    hist_np = np.empty((len(ts), 3, J, 3))  # x_prev, y_prev (the output), dx_prev after each step
    hist_nb = np.empty_like(hist_np)
    times_np, times_nb = np.empty((len(ts), J)), np.empty((len(ts), J))
    flags_np, flags_nb = np.empty((len(ts), J), bool), np.empty((len(ts), J), bool)
    v_np, v_nb = state_views(s_np), state_views(s_nb)
    out_np, out_nb = np.empty((J, 3), np.float32), np.empty((J, 3), np.float32)
    for i, (x, t) in enumerate(zip(xs, ts)):
        one_euro_step_numpy(x, float(t), s_np, *c, out_np)
        _one_euro_step_numba(x, float(t), s_nb, *c, out_nb)
        # the caller's float32 output is the state's filtered skeleton, on every path
        np.testing.assert_array_equal(out_np, v_np[1].astype(np.float32))
        np.testing.assert_array_equal(out_nb, v_nb[1].astype(np.float32))
        hist_np[i], hist_nb[i] = v_np[:3], v_nb[:3]
        times_np[i], times_nb[i] = v_np[3], v_nb[3]
        flags_np[i], flags_nb[i] = v_np[4], v_nb[4]
        assert v_np[5][0] == v_nb[5][0]
    np.testing.assert_allclose(hist_nb, hist_np, rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(times_nb, times_np)  # per-joint timestamps and flags: exact
    np.testing.assert_array_equal(flags_nb, flags_np)
    out = hist_np[:, 1]
    assert np.isnan(out[: len(ts) // 10, :3]).all()  # never-seen joints stay NaN...
    assert np.isfinite(out[-1]).all() and np.isfinite(hist_np[-1]).all()  # ...and nothing leaks
    held = sum(np.array_equal(out[i], out[i - 1], equal_nan=True) for i in range(1, len(ts)))
    assert 50 < held < 1000  # rejected frames were exercised, but most frames moved the output


def test_filters_agree_through_public_api() -> None:
    xs, ts = _messy_sequence(1500, seed=3)
    a, b = OneEuroFilter(backend="numba"), OneEuroFilter(backend="numpy")
    for x, t in zip(xs, ts):
        t_ns = int(t * 1e9) + 10**12
        np.testing.assert_allclose(a(x, t_ns), b(x, t_ns), rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_first_sample_passes_through(backend: str) -> None:
    x = _pose().astype(np.float32)
    x[5] = np.nan
    y = OneEuroFilter(backend=backend)(x, 123_456_789)
    assert y.dtype == np.float32 and y.shape == (J, 3)
    np.testing.assert_array_equal(y, x)  # NaN row stays NaN: joint 5 never seen


@pytest.mark.parametrize("backend", BACKENDS)
def test_reduces_jitter_of_a_still_pose(backend: str) -> None:
    rng = np.random.default_rng(11)
    pose = _pose()
    f = OneEuroFilter(backend=backend)
    xs = pose + rng.normal(scale=0.001, size=(600, J, 3))  # 1 mm jitter, 20 s at 30 fps
    ys = np.stack([f(x, i * FRAME_NS) for i, x in enumerate(xs)])[60:]
    ratio = ys.std(axis=0).mean() / xs[60:].std(axis=0).mean()
    assert ratio < 0.3, ratio
    np.testing.assert_allclose(ys.mean(axis=0), pose, atol=5e-4)  # smoothed, not biased


@pytest.mark.parametrize("backend", BACKENDS)
def test_follows_fast_motion_and_beta_is_what_makes_it(backend: str) -> None:
    pose = _pose()
    direction = np.array([1.0, 0.5, -0.2]) / np.linalg.norm([1.0, 0.5, -0.2])
    errors = {}
    for beta in (40.0, 0.0):
        f = OneEuroFilter(config=OneEuroConfig(beta=beta), backend=backend)
        for i in range(60):  # 2 s at 1 m/s, a brisk arm swing
            x = pose + (i / 30.0) * direction
            y = f(x, i * FRAME_NS)
        errors[beta] = np.linalg.norm(y - x, axis=1).max()
    assert errors[40.0] < 0.015  # under 15 ms of lag at 1 m/s
    assert errors[0.0] > 0.5  # a plain 0.1 Hz low-pass is left far behind
    assert errors[0.0] > 50 * errors[40.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt_ns", [0, -FRAME_NS], ids=["repeated", "out_of_order"])
def test_bad_timestamp_changes_nothing(backend: str, dt_ns: int) -> None:
    rng = np.random.default_rng(2)
    xs = _pose() + rng.normal(scale=0.01, size=(20, J, 3))
    f, g = OneEuroFilter(backend=backend), OneEuroFilter(backend=backend)
    for i in range(10):
        prev = f(xs[i], i * FRAME_NS)
        g(xs[i], i * FRAME_NS)
    y = f(xs[10] + 1.0, 9 * FRAME_NS + dt_ns)  # a bogus frame at a bad time
    np.testing.assert_array_equal(y, prev)
    assert np.isfinite(y).all()
    for i in range(10, 20):  # and it left no trace in the state
        np.testing.assert_array_equal(f(xs[i], i * FRAME_NS), g(xs[i], i * FRAME_NS))


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_joint_holds_and_resumes_cleanly(backend: str) -> None:
    rng = np.random.default_rng(4)
    xs = _pose() + np.cumsum(rng.normal(scale=0.01, size=(40, J, 3)), axis=0)
    gap = range(12, 25)
    xs_missing = xs.copy()
    xs_missing[list(gap), 6] = np.nan
    f = OneEuroFilter(backend=backend)
    single = OneEuroFilter(joints=1, backend=backend)  # joint 6 alone, fed only when seen
    held = np.full(3, np.nan, dtype=np.float32)
    for i, x in enumerate(xs_missing):
        y = f(x, i * FRAME_NS)
        if i in gap:
            np.testing.assert_array_equal(y[6], held)
            continue
        held = y[6].copy()
        np.testing.assert_array_equal(y[6], single(x[6:7], i * FRAME_NS)[0])
    assert np.isfinite(y).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_starts_over(backend: str) -> None:
    rng = np.random.default_rng(5)
    f = OneEuroFilter(backend=backend)
    for i in range(10):
        f(_pose() + rng.normal(scale=0.01, size=(J, 3)), 10**12 + i * FRAME_NS)
    other = _pose(seed=9)
    assert not np.allclose(f(other, 10**12 + 10 * FRAME_NS), other, atol=1e-3)
    f.reset()
    # passes through again, even at a timestamp earlier than anything seen before the reset
    np.testing.assert_array_equal(f(other, 5), other.astype(np.float32))


def test_output_is_a_new_array_and_input_is_untouched() -> None:
    f = OneEuroFilter()
    x = _pose()
    x_copy = x.copy()
    y1 = f(x, 0)
    y1[:] = 99.0
    y2 = f(x + 0.01, FRAME_NS)
    np.testing.assert_array_equal(x, x_copy)
    assert np.abs(y2).max() < 5.0
    assert f(x + 0.01, FRAME_NS) is not y2


def test_any_input_layout_gives_the_same_result_without_recompiling() -> None:
    """float32 and float64 are read alike; other dtypes and layouts are converted, so the realtime
    loop never stalls on a new Numba specialisation after warmup()."""
    warmup()
    compiled = len(_one_euro_step_numba.signatures)
    xs = (_pose() + np.random.default_rng(6).normal(scale=0.02, size=(30, J, 3))).astype(np.float32)
    readonly = xs.copy()
    readonly.flags.writeable = False
    variants = {
        "float32": lambda x: x,
        "fortran": lambda x: np.asfortranarray(x.astype(np.float64)),
        "strided": lambda x: np.repeat(x.astype(np.float64), 2, axis=1)[:, ::2],
        "big-endian": lambda x: x.astype(">f8"),
        "list": lambda x: x.tolist(),
    }
    ref = OneEuroFilter()
    filters = {name: OneEuroFilter() for name in (*variants, "readonly")}
    for i, x in enumerate(xs):
        want = ref(x.astype(np.float64), i * FRAME_NS)
        for name, make in variants.items():
            np.testing.assert_array_equal(filters[name](make(x), i * FRAME_NS), want, err_msg=name)
        np.testing.assert_array_equal(filters["readonly"](readonly[i], i * FRAME_NS), want)
    assert len(_one_euro_step_numba.signatures) == compiled


@pytest.mark.parametrize("backend", BACKENDS)
def test_smoother_filters_each_person_and_forgets_absent_ones(backend: str) -> None:
    rng = np.random.default_rng(8)
    a, b = _pose(1), _pose(2)
    sm = SkeletonSmoother(backend=backend)
    solo = OneEuroFilter(backend=backend)
    for i in range(10):
        xa = a + rng.normal(scale=0.01, size=(J, 3))
        out = sm({1: xa, 2: b + rng.normal(scale=0.01, size=(J, 3))}, i * FRAME_NS)
        np.testing.assert_array_equal(out[1], solo(xa, i * FRAME_NS))  # persons do not mix
    assert sm.person_ids == (1, 2)
    out = sm({1: a}, 10 * FRAME_NS)
    assert set(out) == {1} and sm.person_ids == (1,)
    newcomer = _pose(3)
    out = sm({1: a, 2: newcomer}, 11 * FRAME_NS)
    np.testing.assert_array_equal(out[2], newcomer.astype(np.float32))  # id 2 starts fresh
    assert not np.array_equal(out[1], a.astype(np.float32))  # id 1 is still being filtered
    assert sm({}, 12 * FRAME_NS) == {} and sm.person_ids == ()


@pytest.mark.parametrize("shape", [(J, 2), (J - 1, 3), (1, J, 3), (J * 3,)])
def test_shape_errors_name_the_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=repr(shape).replace("(", r"\(").replace(")", r"\)")):
        OneEuroFilter()(np.zeros(shape), 0)
    with pytest.raises(ValueError, match="shape"):
        SkeletonSmoother()({0: np.zeros(shape)}, 0)


@pytest.mark.parametrize(
    "kwargs",
    [{"min_cutoff": 0.0}, {"min_cutoff": -1.0}, {"d_cutoff": 0.0}, {"beta": -0.1}, {"beta": float("nan")},
     {"min_cutoff": float("inf")}],
)
def test_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        OneEuroConfig(**kwargs)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        OneEuroFilter(backend="cuda")
    with pytest.raises(ValueError, match="joints"):
        OneEuroFilter(joints=0)
    with pytest.raises(ValueError, match="backend"):
        SkeletonSmoother(backend="torch")


def test_defaults_are_mediapipe_world_landmark_settings(shared_dir: Path) -> None:
    """The defaults are the ones in MediaPipe's graph for the world-landmark filter."""
    graph = (shared_dir / "notes" / "blazepose-graphs" / "PoseLandmarkFiltering.pbtxt").read_text()
    block = graph[graph.index('output_stream: "FILTERED_LANDMARKS:filtered_world_landmarks"'):]
    block = block[block.index("one_euro_filter") :]
    block = block[: block.index("}")]
    values = dict(re.findall(r"(\w+):\s*([0-9.]+)", block))
    cfg = OneEuroConfig()
    assert (cfg.min_cutoff, cfg.beta, cfg.d_cutoff) == (
        float(values["min_cutoff"]), float(values["beta"]), float(values["derivate_cutoff"]))
    assert "disable_value_scaling: true" in block  # so beta applies to raw metres per second


def test_warmup_compiles_the_kernel() -> None:
    warmup()
    assert len(_one_euro_step_numba.signatures) >= 2  # float64 and float32 input
