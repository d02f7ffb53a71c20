"""The Open3D viewer, end to end: a real ZeroMQ stream in, a rendered PNG out, pixels checked.

A background thread publishes messages (v1 in the camera frame, v3 in the world frame) with
``realtime.publish.Publisher`` at ~30 Hz on a free loopback port; the viewer renders offscreen
(EGL) and writes a screenshot. The checks look for the skeleton's own colours in the picture,
where a standing person would be. The world-frame tests also read what the viewer's scene drew
(floor grid, camera frustum) from a headless scene fed one header at a time.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import open3d as o3d
import zmq

from engines.skeleton import CANONICAL
from realtime.protocol import make_header
from realtime.publish import Publisher
from realtime.viewer import CAMERA_TOLERANCE, FRUSTUM_DEPTH_M, PALETTES, ViewerConfig, _Scene, run_viewer
from realtime.world import from_tilt

W, H = 640, 480

# A standing person facing the camera, arms slightly out. Body frame in metres: x = subject's
# left, y = up from the floor, z = towards the camera.
_STANDING = {
    "pelvis": (0.0, 0.95, 0.0), "right_hip": (-0.09, 0.95, 0.0), "right_knee": (-0.11, 0.52, 0.03),
    "right_ankle": (-0.12, 0.08, 0.0), "left_hip": (0.09, 0.95, 0.0), "left_knee": (0.11, 0.52, 0.03),
    "left_ankle": (0.12, 0.08, 0.0), "spine": (0.0, 1.20, 0.0), "thorax": (0.0, 1.45, 0.0),
    "neck_nose": (0.0, 1.60, 0.10), "head": (0.0, 1.76, 0.0), "left_shoulder": (0.19, 1.45, 0.0),
    "left_elbow": (0.33, 1.20, 0.0), "left_wrist": (0.45, 0.98, 0.05),
    "right_shoulder": (-0.19, 1.45, 0.0), "right_elbow": (-0.33, 1.20, 0.0),
    "right_wrist": (-0.45, 0.98, 0.05),
}  # fmt: skip


def standing_pose(x: float = 0.0, depth: float = 3.0, camera_height: float = 1.1) -> np.ndarray:
    """(17, 3) camera frame (x right, y down, z forward): facing the camera ``depth`` m away."""
    body = np.array([_STANDING[name] for name in CANONICAL.joint_names])
    cam = np.column_stack([body[:, 0] + x, camera_height - body[:, 1], depth - body[:, 2]])
    return cam.astype(np.float32)


def body_pose(x: float = 0.0, depth: float = 3.5) -> np.ndarray:
    """(17, 3) world frame (y up, floor at 0): standing ``depth`` m in front of the camera, facing it."""
    body = np.array([_STANDING[name] for name in CANONICAL.joint_names])
    return body + np.array([x, 0.0, -depth])


@contextmanager
def publishing(joints: np.ndarray, hz: float = 30.0, source: dict | None = None, **send) -> Iterator[str]:
    """Publish ``joints`` (P, 17, 3) with the real Publisher from a thread; yield its endpoint.

    ``source`` goes into every header; ``send``: ``Publisher.send``'s frame and world keywords."""
    pub = Publisher("tcp://127.0.0.1:*", source=source)  # a free loopback port
    persons = [{"id": i, "confidence": 0.9, "joint_confidence": [0.9] * CANONICAL.num_joints}
               for i in range(len(joints))]  # fmt: skip
    stop = threading.Event()

    def loop() -> None:
        frame = 0
        while not stop.wait(1.0 / hz):
            now = time.monotonic_ns()
            pub.send(joints, frame=frame, timestamps={"t_capture_ns": now - 20_000_000}, persons=persons, **send)
            frame += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield pub.endpoint
    finally:
        stop.set()
        thread.join(2.0)
        pub.close()


def render(tmp_path, joints: np.ndarray, name: str = "shot.png", **publish) -> np.ndarray:
    """Run the headless viewer on a stream of ``joints``; return the PNG as (H, W, 3) uint8."""
    out = tmp_path / name
    with publishing(joints, **publish) as endpoint:
        cfg = ViewerConfig(endpoint, W, H, headless=True, screenshot=str(out), frames=5, timeout_s=5.0)
        assert run_viewer(cfg) == 0
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # written atomically
    image = np.asarray(o3d.io.read_image(str(out)))
    assert image.shape == (H, W, 3)
    return image


def colour_mask(image: np.ndarray, rgb: tuple[float, float, float], tol: int = 30) -> np.ndarray:
    return (np.abs(image.astype(int) - np.round(np.array(rgb) * 255).astype(int)) <= tol).all(axis=-1)


def test_screenshot_shows_an_upright_unmirrored_skeleton(tmp_path):
    image = render(tmp_path, standing_pose()[None])
    centre, left, right = (colour_mask(image, c) for c in PALETTES[0])
    # The person is in the middle of the picture: every skeleton pixel in the central region.
    body = centre | left | right
    rows, cols = np.nonzero(body)
    assert body.sum() > 1500, f"only {body.sum()} skeleton pixels"
    assert H * 0.1 < rows.min() and rows.max() < H * 0.9 and W * 0.25 < cols.min() and cols.max() < W * 0.75
    assert np.ptp(rows) > 1.5 * np.ptp(cols)  # a standing person: taller than wide
    for mask in (centre, left, right):
        assert mask.sum() > 150
    # Facing the camera, the subject's left (orange) is on the right of the picture...
    assert np.nonzero(left)[1].mean() > W / 2 > np.nonzero(right)[1].mean()
    # ...and the torso and head (centre colour) are above the legs' average: y is up.
    assert np.nonzero(centre)[0].mean() < rows.mean()
    # The floor grid is drawn below the feet.
    floor = colour_mask(image, (0.32, 0.32, 0.36), tol=12)
    assert floor[rows.max():].sum() > 500


def test_empty_stream_draws_no_skeleton(tmp_path):
    image = render(tmp_path, np.zeros((0, CANONICAL.num_joints, 3), np.float32))
    for family in PALETTES:
        for rgb in family:
            assert colour_mask(image, rgb).sum() == 0


def test_two_people_get_their_own_colour_families(tmp_path):
    two = np.stack([standing_pose(x=-0.6), standing_pose(x=0.6)])
    image = render(tmp_path, two)
    first = [colour_mask(image, c) for c in PALETTES[0]]
    second = [colour_mask(image, c) for c in PALETTES[1]]
    assert all(m.sum() > 100 for m in first + second)
    # Person 0 stands on the picture's left (x = -0.6 m), person 1 on its right.
    assert np.nonzero(first[1] | first[2])[1].mean() < W / 2 < np.nonzero(second[1] | second[2])[1].mean()


def test_no_publisher_fails_with_one_sentence_within_the_timeout(tmp_path, capsys):
    sock = zmq.Context.instance().socket(zmq.PUB)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close()  # a free port with nobody publishing
    endpoint = f"tcp://127.0.0.1:{port}"
    out = tmp_path / "never.png"
    t0 = time.monotonic()
    rc = run_viewer(ViewerConfig(endpoint, W, H, headless=True, screenshot=str(out), frames=5, timeout_s=1.5))
    elapsed = time.monotonic() - t0
    assert rc == 1
    assert 1.5 <= elapsed < 4.0
    err = capsys.readouterr().err.strip()
    assert err == (f"error: no pose messages arrived from {endpoint} within 1.5 s; "
                   "is `realtime run` publishing there?")  # fmt: skip
    assert not out.exists()


def test_window_mode_exits_cleanly_on_ctrl_c():
    timer = threading.Timer(1.0, _thread.interrupt_main)
    t0 = time.monotonic()
    timer.start()
    try:
        rc = run_viewer(ViewerConfig("tcp://127.0.0.1:9", W, H, headless=False))
    finally:
        timer.cancel()
    assert rc == 0
    assert time.monotonic() - t0 < 2.0  # interrupted at 1 s, closed within 1 s


# --- the world frame: floor at y = 0 and the capturing camera's frustum ---------------------------

TILTED = from_tilt(-25.0, 10.0, 2.0)  # looking down 25 degrees, right edge raised 10, 2 m up
SOURCE = {"kind": "camera", "width": 1280, "height": 720}
PERSONS = [{"id": 0, "confidence": 0.9, "joint_confidence": [0.9] * CANONICAL.num_joints}]


def world_header(camera=TILTED, source=SOURCE) -> dict:
    """A v3 header from ``camera`` (a ``WorldTransform``)."""
    return make_header(seq=0, frame=0, persons=PERSONS, source=source, frame_of_reference="world",
                       world_from_camera=camera.matrix_list(), world=camera.describe())  # fmt: skip


def camera_header(camera=TILTED, source=SOURCE) -> dict:
    """A v1 header (camera frame) carrying ``camera``'s world_from_camera (None: an older publisher's)."""
    return make_header(seq=0, frame=0, persons=PERSONS, source=source,
                       world_from_camera=None if camera is None else camera.matrix_list(),
                       world=None if camera is None else camera.describe())  # fmt: skip


@contextmanager
def scene() -> Iterator[_Scene]:
    s = _Scene(o3d, ViewerConfig(width=W, height=H, headless=True))
    try:
        yield s
    finally:
        s.close()


def drawn(s: _Scene) -> dict[str, np.ndarray]:
    return {name: np.asarray(getattr(s, name).points) for name in ("bones", "floor", "frustum")}


def test_world_stream_draws_the_floor_at_zero_and_the_tilted_camera_at_its_height():
    person = body_pose()[None]
    with scene() as s:
        s.show(person.astype(np.float32), [0], world_header())
        got = drawn(s)
    np.testing.assert_allclose(got["bones"], person.reshape(-1, 3), atol=1e-6)  # drawn as sent
    assert len(got["floor"]) > 0 and np.abs(got["floor"][:, 1]).max() < 1e-9  # the floor is y = 0
    frustum = got["frustum"]
    centre = frustum[np.linalg.norm(frustum - [0.0, 2.0, 0.0], axis=1) < 1e-6]
    assert len(centre) == 1, "the frustum starts at the camera's centre, 2 m above the floor's origin"
    # Its far rectangle (the four points furthest from the centre) is centred on the optical axis,
    # 25 degrees down along -z, 0.25-0.4 m deep.
    reach = np.linalg.norm(frustum - centre, axis=1)
    corners = frustum[np.argsort(reach)[-4:]]
    axis = corners.mean(axis=0) - centre[0]
    np.testing.assert_allclose(axis / np.linalg.norm(axis), [0.0, -np.sin(np.radians(25)), -np.cos(np.radians(25))],
                               atol=1e-3)  # fmt: skip
    assert 0.25 <= np.linalg.norm(axis) <= 0.4
    # Rolled with the right edge up: the frustum's right side is higher than its left...
    right, left = corners[corners[:, 0] > 0], corners[corners[:, 0] < 0]
    assert len(right) == len(left) == 2 and right[:, 1].mean() - left[:, 1].mean() > 0.02
    # ...and it is a 16:9 picture 60 degrees wide (the lifter's field of view).
    cam_corners = TILTED.to_camera(corners)
    width, height, depth = np.ptp(cam_corners[:, 0]), np.ptp(cam_corners[:, 1]), cam_corners[:, 2].mean()
    assert abs(width / depth - 2 * np.tan(np.radians(30))) < 1e-3
    assert abs(width / height - 16 / 9) < 1e-3
    # The up marker: a point stands clear above the rectangle's top edge (image up is -y in the
    # camera), in the middle, so a rolled or upside-down camera is visible.
    cam = TILTED.to_camera(frustum)
    tip = cam[np.argmin(cam[:, 1])]
    assert tip[1] < cam_corners[:, 1].min() - 0.02 and abs(tip[0]) < 0.01


def test_camera_frame_stream_with_world_from_camera_is_drawn_as_its_world_counterpart():
    world = body_pose()
    cam = TILTED.to_camera(world).astype(np.float32)[None]
    with scene() as a, scene() as b:
        a.show(TILTED.to_world(cam).astype(np.float32), [0], world_header())
        b.show(cam, [0], camera_header())
        for name, points in drawn(a).items():
            np.testing.assert_allclose(drawn(b)[name], points, atol=1e-4, err_msg=name)


def test_camera_frame_stream_without_world_from_camera_keeps_the_turned_camera_frame():
    cam = standing_pose()[None]  # a level camera 1.1 m up, as older publishers send it
    for header in (camera_header(None), {k: v for k, v in camera_header(None).items()
                                         if k not in ("world_from_camera", "world")}):  # fmt: skip
        with scene() as s:
            s.show(cam, [0], header)
            got = drawn(s)
        np.testing.assert_allclose(got["bones"], (cam * [1.0, -1.0, -1.0]).reshape(-1, 3), atol=1e-6)
        lowest = -cam[..., 1].max()
        np.testing.assert_allclose(got["floor"][:, 1], lowest - 0.07, atol=1e-6)  # under the lowest joint
        assert len(got["frustum"]) == 0


def test_a_stream_that_gains_its_world_frame_moves_to_the_floor_and_shows_the_camera():
    world = body_pose()
    cam = TILTED.to_camera(world).astype(np.float32)[None]
    with scene() as s:
        s.show(cam, [0], camera_header(None))  # the estimate is not ready yet
        assert len(drawn(s)["frustum"]) == 0
        s.show(cam, [0], camera_header())
        got = drawn(s)
    np.testing.assert_allclose(got["bones"], world.reshape(-1, 3), atol=1e-4)
    assert np.abs(got["floor"][:, 1]).max() < 1e-9
    assert len(got["frustum"]) > 0


def test_frustum_follows_the_camera_estimate_only_when_it_moves_noticeably():
    cam = TILTED.to_camera(body_pose()).astype(np.float32)[None]
    with scene() as s:
        s.show(cam, [0], camera_header())
        first = drawn(s)["frustum"].copy()
        nudged = from_tilt(-25.1, 10.0, 2.001)  # well inside the tolerance
        assert np.abs(nudged.matrix - TILTED.matrix).max() < CAMERA_TOLERANCE
        s.show(cam, [0], camera_header(nudged))
        np.testing.assert_array_equal(drawn(s)["frustum"], first)
        s.show(cam, [0], camera_header(from_tilt(-30.0, 10.0, 2.1)))  # a refined estimate
        moved = drawn(s)["frustum"]
    assert np.abs(moved - first).max() > 0.05
    assert abs(moved[:, 1].max() - first[:, 1].max() - 0.1) < 0.05  # the camera rose 10 cm


def test_screenshot_of_a_rolled_camera_shows_the_person_upright_on_the_floor_and_the_camera(tmp_path):
    world = body_pose()[None].astype(np.float32)
    image = render(tmp_path, world, source=SOURCE, frame_of_reference="world",
                   world_from_camera=TILTED.matrix_list(), world=TILTED.describe())  # fmt: skip
    centre, left, right = (colour_mask(image, c) for c in PALETTES[0])
    body = centre | left | right
    rows, cols = np.nonzero(body)
    assert body.sum() > 800
    # Upright although the camera is rolled 10 degrees: the head is above the feet's midpoint.
    head = rows < np.percentile(rows, 10)
    feet = rows > np.percentile(rows, 90)
    assert abs(cols[head].mean() - cols[feet].mean()) < 0.02 * W
    assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()  # unmirrored
    floor = colour_mask(image, (0.32, 0.32, 0.36), tol=12)
    assert floor[rows.max():].sum() > 500  # the floor grid below the feet
    frustum = colour_mask(image, (0.85, 0.30, 0.30), tol=20)
    assert frustum.sum() > 300  # the capturing camera is in view
    for family in PALETTES:  # and its colour is no person's
        for rgb in family:
            assert not (colour_mask(image, rgb) & frustum).any()


def test_screenshots_of_a_v1_stream_with_world_from_camera_and_its_v3_counterpart_agree(tmp_path):
    world = body_pose()
    cam = TILTED.to_camera(world).astype(np.float32)[None]
    v3 = render(tmp_path, TILTED.to_world(cam).astype(np.float32), "v3.png", source=SOURCE,
                frame_of_reference="world", world_from_camera=TILTED.matrix_list(), world=TILTED.describe())
    v1 = render(tmp_path, cam, "v1.png", source=SOURCE, world_from_camera=TILTED.matrix_list(),
                world=TILTED.describe())  # fmt: skip
    differ = (np.abs(v3.astype(int) - v1.astype(int)) > 30).any(axis=-1)
    assert differ.mean() < 0.001
