"""The Open3D viewer, end to end: a real ZeroMQ stream in, a rendered PNG out, pixels checked.

A background thread publishes protocol-v1 messages with ``realtime.publish.Publisher`` at ~30 Hz
on a free loopback port; the viewer renders offscreen (EGL) and writes a screenshot. The
checks look for the skeleton's own colours in the picture, where a standing person would be.
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
from realtime.publish import Publisher
from realtime.viewer import PALETTES, ViewerConfig, run_viewer

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


@contextmanager
def publishing(joints: np.ndarray, hz: float = 30.0) -> Iterator[str]:
    """Publish ``joints`` (P, 17, 3) with the real Publisher from a thread; yield its endpoint."""
    pub = Publisher("tcp://127.0.0.1:*")  # a free loopback port
    persons = [{"id": i, "confidence": 0.9, "joint_confidence": [0.9] * CANONICAL.num_joints}
               for i in range(len(joints))]  # fmt: skip
    stop = threading.Event()

    def loop() -> None:
        frame = 0
        while not stop.wait(1.0 / hz):
            now = time.monotonic_ns()
            pub.send(joints, frame=frame, timestamps={"t_capture_ns": now - 20_000_000}, persons=persons)
            frame += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield pub.endpoint
    finally:
        stop.set()
        thread.join(2.0)
        pub.close()


def render(tmp_path, joints: np.ndarray, name: str = "shot.png") -> np.ndarray:
    """Run the headless viewer on a stream of ``joints``; return the PNG as (H, W, 3) uint8."""
    out = tmp_path / name
    with publishing(joints) as endpoint:
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
