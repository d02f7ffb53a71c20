"""engines.rotations against an independent implementation, scipy.spatial.transform.Rotation
(whose quaternions are also (x, y, z, w)), on random rotations that include the hard cases:
near the identity, near a half turn (w close to 0, where quat_from_matrix switches branch and
the sign of q flips) and both signs of the same rotation (q and -q)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from engines import rotations as rot

pytestmark = pytest.mark.filterwarnings("ignore:Gimbal lock:UserWarning")
_examples = settings(max_examples=150, deadline=None)  # deadline: the machine is shared; numba compiles once

_unit_float = st.floats(-1.0, 1.0, allow_nan=False)
_TAIT_BRYAN = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_PROPER = ("XYX", "XZX", "YXY", "YZY", "ZXZ", "ZYZ")
_ORDERS = _TAIT_BRYAN + _PROPER + ("Z", "X", "XY", "YZ")


@st.composite
def quaternions(draw) -> np.ndarray:
    """Unit quaternions of either sign: anywhere, within 1e-6 rad of the identity, or within
    1e-6 rad of a half turn."""
    v = np.array(draw(st.lists(_unit_float, min_size=4, max_size=4)))
    kind = draw(st.sampled_from(("any", "near identity", "near half turn")))
    if kind == "near identity":
        v = np.append(v[:3] * draw(st.floats(0.0, 1e-6)), 1.0)
    elif kind == "near half turn":
        assume(np.linalg.norm(v[:3]) > 1e-3)
        v[3] *= draw(st.floats(0.0, 1e-6))
    assume(np.linalg.norm(v) > 1e-3)
    return draw(st.sampled_from((1.0, -1.0))) * v / np.linalg.norm(v)


_vectors = st.lists(st.floats(-10.0, 10.0, allow_nan=False), min_size=3, max_size=3).map(np.array)


def _same_rotation(q: np.ndarray, p: np.ndarray, atol: float = 1e-9) -> bool:
    """q and p are the same rotation: equal up to the sign (q ~ -q)."""
    return min(np.abs(q - p).max(), np.abs(q + p).max()) < atol


def _wrapped(a: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * a))


@_examples
@given(quaternions(), st.floats(0.1, 10.0))
def test_matrix_from_quat_is_scipys_and_normalises(q, scale):
    want = Rotation.from_quat(q).as_matrix()
    np.testing.assert_allclose(rot.matrix_from_quat(q), want, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_from_quat(scale * q), want, atol=1e-12)


@_examples
@given(quaternions())
def test_quat_from_matrix_is_scipys_up_to_sign_with_w_not_negative(q):
    R = Rotation.from_quat(q).as_matrix()
    got = rot.quat_from_matrix(R)
    assert got[3] >= 0.0
    assert abs(np.linalg.norm(got) - 1.0) < 1e-12
    assert _same_rotation(got, Rotation.from_matrix(R).as_quat())
    assert _same_rotation(got, q)
    np.testing.assert_allclose(rot.matrix_from_quat(got), R, atol=1e-12)


def test_quat_from_matrix_is_vectorised_and_checks_its_shape():
    rs = Rotation.random(24, random_state=3)
    got = rot.quat_from_matrix(rs.as_matrix().reshape(2, 3, 4, 3, 3))
    assert got.shape == (2, 3, 4, 4) and got.dtype == np.float64
    want = rs.as_quat(canonical=False) * np.sign(rs.as_quat()[:, 3:])
    np.testing.assert_allclose(got.reshape(24, 4), want, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\), got \(3, 4\)"):
        rot.quat_from_matrix(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"quaternions shaped \(\.\.\., 4\)"):
        rot.matrix_from_quat(np.zeros((2, 3)))


@_examples
@given(quaternions(), quaternions())
def test_hamilton_product_is_composition(a, b):
    want = Rotation.from_quat(a) * Rotation.from_quat(b)
    got = rot.quat_multiply(a, b)
    np.testing.assert_allclose(got, want.as_quat(), atol=1e-12)  # the same sign, too
    np.testing.assert_allclose(rot.matrix_from_quat(got), rot.matrix_from_quat(a) @ rot.matrix_from_quat(b),
                               atol=1e-12)


@_examples
@given(quaternions(), st.floats(0.1, 10.0))
def test_conjugate_and_inverse(q, scale):
    np.testing.assert_allclose(rot.quat_conjugate(q), Rotation.from_quat(q).inv().as_quat(), atol=1e-12)
    np.testing.assert_allclose(rot.quat_multiply(scale * q, rot.quat_inverse(scale * q)), [0, 0, 0, 1], atol=1e-12)


@_examples
@given(quaternions(), _vectors)
def test_apply_rotates_vectors_like_scipy(q, v):
    np.testing.assert_allclose(rot.quat_apply(q, v), Rotation.from_quat(q).apply(v), atol=1e-11)
    np.testing.assert_allclose(rot.quat_apply(q, v), rot.matrix_from_quat(q) @ v, atol=1e-11)


@_examples
@given(_vectors, st.floats(-6.0, 6.0))
def test_axis_angle_is_scipys_rotation_vector(axis, angle):
    assume(np.linalg.norm(axis) > 1e-3)
    want = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_quat()
    np.testing.assert_allclose(rot.quat_from_axis_angle(axis, angle), want, atol=1e-12)


def test_axis_angle_broadcasts():
    q = rot.quat_from_axis_angle([0.0, 1.0, 0.0], np.linspace(0, np.pi, 5))
    assert q.shape == (5, 4)
    np.testing.assert_allclose(q[-1], [0, 1, 0, 0], atol=1e-15)


@_examples
@given(quaternions(), quaternions(), st.floats(0.0, 1.0))
def test_slerp_is_scipys(q0, q1, t):
    assume(abs(np.dot(q0, q1)) > 1e-3)  # two rotations half a turn apart have two shortest arcs
    want = Slerp([0.0, 1.0], Rotation.from_quat([q0, q1]))([t]).as_matrix()[0]
    got = rot.quat_slerp(q0, q1, t)
    assert abs(np.linalg.norm(got) - 1.0) < 1e-12
    np.testing.assert_allclose(rot.matrix_from_quat(got), want, atol=1e-9)


@_examples
@given(quaternions(), _vectors.map(lambda v: v * 1e-8), st.floats(0.0, 1.0))
def test_slerp_between_nearly_equal_rotations(q0, dv, t):
    q1 = rot.quat_normalize(q0 + np.append(dv, 0.0))
    got = rot.quat_slerp(q0, -q1, t)  # the shortest arc also when the signs differ
    assert _same_rotation(got, rot.quat_normalize((1 - t) * q0 + t * q1), atol=1e-12)


def test_slerp_ends_and_broadcast():
    q0, q1 = Rotation.random(2, random_state=5).as_quat()
    got = rot.quat_slerp(q0, q1, np.array([0.0, 0.5, 1.0]))
    assert got.shape == (3, 4)
    assert _same_rotation(got[0], q0, 1e-12) and _same_rotation(got[2], q1, 1e-12)


@_examples
@given(st.sampled_from(_ORDERS), st.booleans(), st.lists(st.floats(-400.0, 400.0), min_size=3, max_size=3))
def test_matrix_from_euler_is_scipys(order, intrinsic, angles_deg):
    order = order if intrinsic else order.lower()
    angles = np.array(angles_deg[: len(order)])
    want = Rotation.from_euler(order, angles, degrees=True).as_matrix()
    np.testing.assert_allclose(rot.matrix_from_euler(angles, order, degrees=True), want, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_from_euler(np.radians(angles), order), want, atol=1e-12)


def test_bvh_channels_compose_in_the_written_order():
    z, x, y = 30.0, -50.0, 75.0
    Rz, Rx, Ry = (Rotation.from_euler(a, v, degrees=True).as_matrix() for a, v in (("z", z), ("x", x), ("y", y)))
    np.testing.assert_allclose(rot.matrix_from_euler([z, x, y], "ZXY", degrees=True), Rz @ Rx @ Ry, atol=1e-15)
    np.testing.assert_allclose(rot.matrix_from_euler([z, x, y], "zxy", degrees=True), Ry @ Rx @ Rz, atol=1e-15)
    # any number of channels, repeats included
    np.testing.assert_allclose(rot.matrix_from_euler([z, x, z, y], "ZXZY", degrees=True), Rz @ Rx @ Rz @ Ry,
                               atol=1e-15)


@_examples
@given(quaternions(), st.sampled_from(_TAIT_BRYAN), st.booleans())
def test_euler_from_matrix_is_scipys_and_round_trips(q, order, intrinsic):
    order = order if intrinsic else order.lower()
    R = Rotation.from_quat(q)
    got = rot.euler_from_matrix(R.as_matrix(), order)
    middle = got[1]
    gimbal = np.cos(middle) < 1.5e-6  # treated as gimbal lock: the last angle is set to 0
    np.testing.assert_allclose(rot.matrix_from_euler(got, order), R.as_matrix(), atol=3e-6 if gimbal else 1e-9)
    if abs(abs(middle) - np.pi / 2) > 1e-3:  # away from gimbal lock the angles are unique
        np.testing.assert_allclose(_wrapped(got - R.as_euler(order)), 0.0, atol=1e-9)


@pytest.mark.parametrize("order", _TAIT_BRYAN + tuple(o.lower() for o in _TAIT_BRYAN))
@pytest.mark.parametrize("middle", [90.0, -90.0])
def test_euler_from_matrix_at_gimbal_lock(order, middle):
    angles = np.array([[35.0, middle, -20.0], [-170.0, middle, 60.0]])
    if order.islower():
        angles = angles[:, ::-1].copy()
    R = rot.matrix_from_euler(angles, order, degrees=True)
    got = rot.euler_from_matrix(R, order, degrees=True)
    np.testing.assert_allclose(rot.matrix_from_euler(got, order, degrees=True), R, atol=1e-12)
    assert np.all(got[:, 2 if order.isupper() else 0] == 0.0)  # the last rotation is folded into the first


def test_euler_orders_are_checked():
    for bad in ("", "XQ", "Xy", "xyzw", 3):
        with pytest.raises(ValueError, match="Euler order"):
            rot.matrix_from_euler(np.zeros(2), bad)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\) for order 'ZXY', got \(2,\)"):
        rot.matrix_from_euler(np.zeros(2), "ZXY")
    with pytest.raises(ValueError, match="three different axes"):
        rot.euler_from_matrix(np.eye(3), "ZXZ")


@_examples
@given(quaternions())
def test_matrix_angle_is_scipys_magnitude(q):
    R = Rotation.from_quat(q)
    assert abs(rot.matrix_angle(R.as_matrix()) - R.magnitude()) < 1e-7


@_examples
@given(quaternions(), st.lists(st.floats(-1e-7, 1e-7), min_size=9, max_size=9))
def test_numba_kernel_equals_the_numpy_reference(q, noise):
    from engines.rotations_kernel import quat_from_matrix_numba

    # rotation matrices as a solver builds them: orthonormal up to rounding, or a little off
    for R in (Rotation.from_quat(q).as_matrix(), Rotation.from_quat(q).as_matrix() + np.reshape(noise, (3, 3))):
        R = np.ascontiguousarray(R)
        assert np.array_equal(np.array(quat_from_matrix_numba(R)), rot.quat_from_matrix(R))
