"""Tests for engines.camera (projection, distortion, frames, screen coordinates, virtual cameras)
and engines.triangulation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines.camera import (
    Camera,
    CameraBatch,
    VirtualCameraRanges,
    denormalize_screen,
    distort_normalized,
    normalize_screen,
    project_points,
    sample_camera_batch,
    sample_virtual_cameras,
    undistort_normalized,
)
from engines.triangulation import reprojection_error, triangulate

# A phone-like lens with clearly visible barrel distortion (k1 = -0.12) and some tangential terms.
DIST = np.array([-0.12, 0.05, 1.2e-3, -8e-4, -0.01])


def _camera(dist=DIST, **kw) -> Camera:
    rot = cv2.Rodrigues(np.array([0.2, -0.5, 0.1]))[0]
    args = dict(name="test", width=1280, height=720, fx=1000.0, fy=995.0, cx=641.3, cy=358.7, R=rot,
                t=np.array([0.3, -0.2, 4.0]), dist=dist)
    args.update(kw)
    return Camera(**args)


def _points_in_view(rng: np.random.Generator, cam: Camera, n: int) -> np.ndarray:
    """Random camera-frame points whose undistorted projection lies inside the image."""
    z = rng.uniform(0.5, 8.0, n)
    u = rng.uniform(0, cam.width, n)
    v = rng.uniform(0, cam.height, n)
    x, y = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
    return np.stack([x * z, y * z, z], axis=-1)


# ---------------------------------------------------------------------------------------------
# Projection and distortion
# ---------------------------------------------------------------------------------------------
def test_project_matches_opencv_projectpoints():
    rng = np.random.default_rng(0)
    cam = _camera()
    X = rng.normal([0, 0, 0], 1.0, (500, 3))
    ours = cam.project(X)
    rvec = cv2.Rodrigues(cam.R)[0]
    ref = cv2.projectPoints(X, rvec, cam.t, cam.K, cam.dist)[0].reshape(-1, 2)
    in_front = cam.world_to_camera(X)[:, 2] > 0
    assert in_front.sum() > 400
    np.testing.assert_allclose(ours[in_front], ref[in_front], atol=1e-8)


def test_project_unproject_round_trip_with_distortion():
    rng = np.random.default_rng(1)
    cam = _camera()
    Xc = _points_in_view(rng, cam, 5000).reshape(50, 100, 3)  # leading axes are kept
    uv = cam.project(Xc, frame="camera")
    assert uv.shape == (50, 100, 2)
    back = cam.unproject(uv, Xc[..., 2])
    assert np.abs(back - Xc).max() < 1e-9
    # and the other way: pixels -> 3D -> pixels
    uv2 = rng.uniform([0, 0], [cam.width, cam.height], (5000, 2))
    depth = rng.uniform(0.5, 8.0, 5000)
    assert np.abs(cam.project(cam.unproject(uv2, depth), frame="camera") - uv2).max() < 1e-6


def test_undistort_inverts_distort_and_distortion_is_not_a_no_op():
    rng = np.random.default_rng(2)
    xy = rng.uniform(-0.7, 0.7, (10000, 2))
    xy_d = distort_normalized(xy, DIST)
    assert np.abs(xy_d - xy).max() > 0.03  # the lens really moves points (~40 px at f = 1000)
    np.testing.assert_allclose(undistort_normalized(xy_d, DIST), xy, atol=1e-12)
    # per-point coefficients broadcast (one set per camera)
    dists = np.stack([DIST, DIST * 0.5])[:, None, :]
    pts = np.broadcast_to(xy[:10], (2, 10, 2))
    np.testing.assert_allclose(undistort_normalized(distort_normalized(pts, dists), dists), pts, atol=1e-12)


def test_undistort_points_agrees_with_opencv():
    rng = np.random.default_rng(3)
    cam = _camera()
    uv = rng.uniform([0, 0], [cam.width, cam.height], (300, 2))
    ref = cv2.undistortPointsIter(uv[:, None], cam.K, cam.dist, None, None,
                                  (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)).reshape(-1, 2)
    np.testing.assert_allclose(cam.undistort_points(uv), ref, atol=1e-9)


def test_points_behind_camera_are_nan():
    cam = _camera(dist=np.zeros(5))
    pts = np.array([[0.1, 0.2, 2.0], [0.1, 0.2, -2.0], [0.0, 0.0, 0.0]])
    uv = cam.project(pts, frame="camera")
    assert np.isfinite(uv[0]).all()
    assert np.isnan(uv[1:]).all()
    assert np.isnan(project_points(pts, 500, 500, 320, 240, DIST)[1:]).all()
    assert np.isnan(cam.unproject(np.array([[10.0, 10.0]]), -1.0)).all()


def test_project_points_broadcasts_intrinsics_per_camera():
    rng = np.random.default_rng(4)
    pts = rng.uniform([-1, -1, 2], [1, 1, 5], (3, 17, 3))
    f = np.array([500.0, 800.0, 1200.0])[:, None]
    uv = project_points(pts, f, f, 320.0, 240.0)
    for i in range(3):
        np.testing.assert_allclose(uv[i], f[i] * pts[i, :, :2] / pts[i, :, 2:] + [320, 240])


def test_bad_shapes_raise_value_error_naming_the_shape():
    cam = _camera()
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        cam.project(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        cam.undistort_points(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        normalize_screen(np.zeros(3), 640, 480)


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------
def test_world_camera_round_trip_and_center():
    rng = np.random.default_rng(5)
    cam = _camera()
    X = rng.normal(0, 3, (7, 11, 3))
    np.testing.assert_allclose(cam.camera_to_world(cam.world_to_camera(X)), X, atol=1e-12)
    np.testing.assert_allclose(cam.world_to_camera(cam.center), 0.0, atol=1e-12)
    # the centre is where the camera is: a camera placed at C by look_at reports C
    c = Camera.look_at("a", 640, 480, 60, position=[1.0, 1.5, 4.0], target=[0, 1, 0])
    np.testing.assert_allclose(c.center, [1.0, 1.5, 4.0], atol=1e-12)
    # ... and the target lands on the principal point, in front of the camera
    np.testing.assert_allclose(c.project(np.array([0.0, 1.0, 0.0])), [320, 240], atol=1e-9)
    assert c.world_to_camera(np.array([0.0, 1.0, 0.0]))[2] > 0
    # y-up world: a point above the target appears above it in the image (smaller v)
    assert c.project(np.array([0.0, 2.0, 0.0]))[1] < 240


def test_camera_is_immutable_and_validated():
    cam = _camera()
    with pytest.raises(ValueError):
        cam.R[0, 0] = 2.0  # read-only array
    with pytest.raises(Exception):
        cam.fx = 3.0  # frozen dataclass
    with pytest.raises(ValueError, match="rotation"):
        _camera(R=np.diag([1.0, 1.0, -1.0]))  # a reflection, not a rotation
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        _camera(R=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="fx"):
        _camera(fx=-1.0)
    assert _camera(dist=[0.1, 0.0, 0.0, 0.0]).dist.shape == (5,)  # 4 coefficients: k3 = 0
    assert _camera() == _camera() and _camera() != _camera(cx=600.0)


# ---------------------------------------------------------------------------------------------
# Screen normalisation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (720, 1280), (1080, 1920), (500, 500)])
def test_normalize_screen_round_trip_aspect_and_range(size):
    w, h = size
    rng = np.random.default_rng(6)
    px = rng.uniform([0, 0], [w, h], (1000, 2))
    s = normalize_screen(px, w, h)
    np.testing.assert_allclose(denormalize_screen(s, w, h), px, atol=1e-9)
    # centred, the longer side spans exactly [-1, 1], the shorter one min/max of that
    corners = normalize_screen(np.array([[0, 0], [w, h], [w / 2, h / 2]], float), w, h)
    np.testing.assert_allclose(corners[2], [0, 0])
    np.testing.assert_allclose(corners[1], [w / max(w, h), h / max(w, h)])
    np.testing.assert_allclose(corners[0], -corners[1])
    # aspect ratio kept: distances scale by one factor in every direction
    d_px = np.linalg.norm(px[1:] - px[:-1], axis=-1)
    d_s = np.linalg.norm(s[1:] - s[:-1], axis=-1)
    np.testing.assert_allclose(d_s / d_px, 2.0 / max(w, h))
    cam = Camera("c", w, h, 500.0, 500.0, w / 2, h / 2)
    np.testing.assert_allclose(cam.normalize_screen(px), s)


def test_normalize_screen_per_sample_sizes():
    px = np.array([[[1080.0, 1920.0]], [[640.0, 480.0]]])  # bottom-right corner of each image
    w = np.array([1080.0, 640.0])[:, None]
    h = np.array([1920.0, 480.0])[:, None]
    np.testing.assert_allclose(normalize_screen(px, w, h), [[[0.5625, 1.0]], [[1.0, 0.75]]])


# ---------------------------------------------------------------------------------------------
# Virtual cameras
# ---------------------------------------------------------------------------------------------
def _person(center_xz, height=1.7, n=18):
    ys = np.linspace(0.0, height, n)
    spine = np.stack([np.full(n, center_xz[0]), ys, np.full(n, center_xz[1])], axis=-1)
    shoulders = np.array([[center_xz[0] - 0.2, 1.45, center_xz[1]], [center_xz[0] + 0.2, 1.45, center_xz[1]]])
    return np.concatenate([spine, shoulders])


def test_sampler_is_reproducible():
    center = np.array([0.3, 0.9, -0.5])
    a = sample_virtual_cameras(np.random.default_rng(7), 20, center)
    b = sample_virtual_cameras(np.random.default_rng(7), 20, center)
    c = sample_virtual_cameras(np.random.default_rng(8), 20, center)
    assert a == b
    assert a != c
    batch = sample_camera_batch(np.random.default_rng(7), 20, center)
    assert batch.to_cameras() == a


def test_sampled_cameras_see_a_standing_person():
    rng = np.random.default_rng(9)
    n = 1000
    centers = np.column_stack([rng.uniform(-2, 2, n), np.full(n, 0.9), rng.uniform(-2, 2, n)])
    batch = sample_camera_batch(rng, n, centers)
    people = np.stack([_person(c[[0, 2]]) for c in centers])  # (n, 20, 3), 1.7 m tall
    uv = batch.project(people)
    w, h = batch.size[:, None, 0], batch.size[:, None, 1]
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= w) & (uv[..., 1] >= 0) & (uv[..., 1] <= h)
    mostly_inside = inside.mean(axis=1) >= 0.9
    assert mostly_inside.mean() >= 0.95
    # the framing rule (step back until 1.9 m fit) keeps head *and* feet in nearly every frame
    assert inside.all(axis=1).mean() >= 0.99
    # upright: the head is above the feet in every image (y-up world, v grows downwards)
    assert np.all(uv[:, 17, 1] < uv[:, 0, 1])
    # and the person is not a speck: at least 15% of the image height
    assert np.all((uv[:, 0, 1] - uv[:, 17, 1]) / batch.size[:, 1] > 0.15)


def test_sampler_respects_ranges():
    ranges = VirtualCameraRanges(distortion_probability=0.5)
    center = np.array([1.0, 0.95, 2.0])
    batch = sample_camera_batch(np.random.default_rng(10), 2000, center, ranges, ground_y=0.25)
    pos = batch.center
    horizontal = np.linalg.norm((pos - center)[:, [0, 2]], axis=1)
    assert horizontal.min() >= 2.0 and horizontal.max() <= 6.0
    assert pos[:, 1].min() >= 0.75 and pos[:, 1].max() <= 2.25  # ground_y + [0.5, 2.0]
    azimuth = np.degrees(np.arctan2((pos - center)[:, 0], (pos - center)[:, 2])) % 360
    assert np.histogram(azimuth, bins=8, range=(0, 360))[0].min() > 150  # all around the subject
    fov = np.degrees(2 * np.arctan(batch.size.max(axis=1) / 2 / batch.f[:, 0]))
    assert fov.min() >= 50 - 1e-9 and fov.max() <= 80 + 1e-9
    assert {tuple(s) for s in batch.size} == set(ranges.image_sizes)
    offset = np.abs(batch.c - batch.size / 2) / batch.size
    assert offset.max() <= 0.02
    # roll: the camera's x axis (first row of R) leaves the horizontal plane by at most 5 degrees
    roll = np.degrees(np.arcsin(np.abs(batch.R[:, 0, 1])))
    assert roll.max() <= 5.0 + 1e-9 and roll.max() > 4.0
    distorted = np.any(batch.dist != 0, axis=1)
    assert 0.4 < distorted.mean() < 0.6
    assert batch.dist[distorted, 0].min() >= -0.08 and batch.dist[distorted, 0].max() <= 0.04
    # every sampled camera is a valid Camera that projects like the batch does
    cam = batch.camera(3)
    X = np.array([[1.0, 1.5, 2.0], [1.2, 0.1, 2.1]])
    np.testing.assert_allclose(cam.project(X), batch.project(np.broadcast_to(X, (2000, 2, 3)))[3])


def test_sampler_input_checks():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        sample_camera_batch(np.random.default_rng(0), 5, np.zeros(2))
    with pytest.raises(ValueError, match="distance_m"):
        VirtualCameraRanges(distance_m=(6.0, 2.0))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        CameraBatch(R=np.zeros((3, 3, 3)), t=np.zeros((3, 3)), f=np.zeros((3, 2)), c=np.zeros((3, 2)),
                    size=np.zeros((3, 2)), dist=np.zeros((3, 2)))


# ---------------------------------------------------------------------------------------------
# Triangulation
# ---------------------------------------------------------------------------------------------
def _rig(n_views: int, seed: int = 11, distortion: bool = True) -> list[Camera]:
    ranges = VirtualCameraRanges(distance_m=(3.0, 3.0), distortion_probability=1.0 if distortion else 0.0)
    return sample_virtual_cameras(np.random.default_rng(seed), n_views, np.array([0.0, 0.9, 0.0]), ranges)


def _joints(rng, shape=(30, 17)):
    return rng.normal([0.0, 0.9, 0.0], [0.3, 0.5, 0.3], shape + (3,))


@pytest.mark.parametrize("n_views", [2, 3, 4, 6])
def test_triangulate_recovers_points_exactly(n_views):
    rng = np.random.default_rng(12)
    cams = _rig(n_views)
    X = _joints(rng)
    p2d = np.stack([c.project(X) for c in cams])
    Y = triangulate(p2d, cams)
    assert Y.shape == X.shape
    assert np.linalg.norm(Y - X, axis=-1).max() < 1e-3
    assert reprojection_error(Y, p2d, cams).max() < 1e-4


def test_triangulation_error_grows_with_pixel_noise_and_stays_bounded():
    rng = np.random.default_rng(13)
    cams = _rig(4, distortion=False)
    X = _joints(rng, (200, 17))
    p2d = np.stack([c.project(X) for c in cams])
    errors = []
    for sigma in (0.5, 1.0, 2.0, 4.0):
        Y = triangulate(p2d + rng.normal(0, sigma, p2d.shape), cams)
        errors.append(np.linalg.norm(Y - X, axis=-1).mean())
    errors = np.array(errors)
    assert np.all(np.diff(errors) > 0)
    # roughly linear in the noise: doubling the noise roughly doubles the error
    assert np.all((errors[1:] / errors[:-1] > 1.5) & (errors[1:] / errors[:-1] < 2.7))
    # 1 px noise at ~3 m with f ~ 1000-2000 px: a few millimetres
    assert 0.5e-3 < errors[1] < 8e-3


def test_missing_view_is_ignored_and_single_view_gives_nan():
    rng = np.random.default_rng(14)
    cams = _rig(4)
    X = _joints(rng, (10, 17))
    p2d = np.stack([c.project(X) for c in cams])
    conf = np.ones(p2d.shape[:-1])
    # joint 3 missing in view 0 (NaN); joint 5 has garbage in view 1 but confidence 0
    p2d[0, :, 3] = np.nan
    p2d[1, :, 5] += 300.0
    conf[1, :, 5] = 0.0
    # joint 7 visible in one view only
    p2d[1:, :, 7] = np.nan
    Y = triangulate(p2d, cams, conf)
    ok = np.ones(17, bool)
    ok[7] = False
    assert np.linalg.norm(Y[:, ok] - X[:, ok], axis=-1).max() < 1e-3
    assert np.isnan(Y[:, 7]).all()
    # one camera only: nothing can be triangulated
    assert np.isnan(triangulate(p2d[:1], cams[:1])).all()
    # NaN confidence counts as missing as well
    conf2 = np.ones(p2d.shape[:-1])
    conf2[2:, :, 2] = np.nan
    conf2[1, :, 2] = 0.0
    assert np.isnan(triangulate(np.nan_to_num(p2d), cams, conf2)[:, 2]).all()


def test_confidence_down_weights_a_corrupted_view():
    rng = np.random.default_rng(15)
    cams = _rig(4, distortion=False)
    X = _joints(rng, (50, 17))
    p2d = np.stack([c.project(X) for c in cams])
    p2d[2] += rng.normal(0, 25.0, p2d[2].shape)  # view 2 is badly off (occlusion, wrong person)
    conf = np.ones(p2d.shape[:-1])
    err_equal = np.linalg.norm(triangulate(p2d, cams, conf) - X, axis=-1).mean()
    conf[2] = 0.05
    err_weighted = np.linalg.norm(triangulate(p2d, cams, conf) - X, axis=-1).mean()
    assert err_equal > 0.02  # the corruption matters (centimetres)
    assert err_weighted < 0.15 * err_equal


def test_triangulate_checks_shapes():
    cams = _rig(3)
    with pytest.raises(ValueError, match="3 cameras"):
        triangulate(np.zeros((2, 17, 2)), cams)
    with pytest.raises(ValueError, match=r"\(3, 17, 3\)"):
        triangulate(np.zeros((3, 17, 3)), cams)
    with pytest.raises(ValueError, match="confidence"):
        triangulate(np.zeros((3, 17, 2)), cams, np.ones((3, 16)))


def test_robust_triangulation_leaves_out_the_one_view_that_disagrees():
    """A left/right swap in one view (its 2D of a joint lands on another joint) spoils plain
    DLT; the robust version drops that view for that joint and recovers the point."""
    from engines.triangulation import triangulate_robust

    rng = np.random.default_rng(21)
    cams = _rig(4)
    X = _joints(rng, (30, 17))
    p2d = np.stack([c.project(X) for c in cams])
    bad = p2d.copy()
    bad[2, :, 5] = p2d[2, :, 2]  # view 2 reports joint 2 where joint 5 is
    plain = triangulate(bad, cams)
    robust, pick, worst = triangulate_robust(bad, cams, max_error_px=5.0)
    assert np.linalg.norm(plain[:, 5] - X[:, 5], axis=-1).min() > 0.02
    assert np.linalg.norm(robust - X, axis=-1).max() < 1e-3
    assert (pick[:, 5] == 3).all() and (pick[:, :5] == 0).all()  # "all but view 2" for that joint only
    assert worst.max() < 1e-3
    # two views disagreeing on the same joint: no set within the limit, so no point at all
    bad[1, :, 5] = p2d[1, :, 2]
    assert np.isnan(triangulate_robust(bad, cams, max_error_px=5.0)[0][:, 5]).all()
