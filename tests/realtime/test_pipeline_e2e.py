"""`realtime run` end to end on real footage: real MediaPipe, the shipped lifter, real ZeroMQ sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from realtime.client import Subscriber
from realtime.protocol import PROTOCOL_VERSION

pytestmark = pytest.mark.slow  # every test runs `realtime run` in a subprocess


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


class _Collector(threading.Thread):
    """Receives (and so validates, through realtime.client) every message until stopped."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.sub = Subscriber(endpoint)
        self.messages = []
        self.errors = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                msg = self.sub.recv(timeout_ms=100)
            except Exception as exc:  # noqa: BLE001 - a protocol violation fails the test below
                self.errors.append(exc)
                continue
            if msg is not None:
                self.messages.append(msg)
        self.sub.close()


@pytest.fixture()
def cam04(shared_dir):
    return str(shared_dir / "media" / "pose2sim-demo" / "cam04.mp4")


def test_video_to_zeromq_every_frame_has_a_valid_3d_pose(cam04, tmp_path):
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    collector = _Collector(endpoint)
    collector.start()
    stalled = zmq.Context.instance().socket(zmq.SUB)  # a subscriber that never reads
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(endpoint)
    record = tmp_path / "take.npz"
    # --frame camera: the stream a v1 client reads (protocol v1, camera frame), checked as such below
    proc = _run("--video", cam04, "--fast", "--no-view", "--bind", endpoint, "--record", str(record), "--frame", "camera")
    _, err = proc.communicate(timeout=240)
    time.sleep(0.3)
    collector.stop.set()
    collector.join(5)
    stalled.close(0)
    assert proc.returncode == 0, err
    assert not collector.errors
    msgs = collector.messages
    assert len(msgs) >= 95  # --fast: every frame is processed; the first may precede the subscription
    with_pose = [m for m in msgs if m.joints.shape[0] >= 1]
    assert len(with_pose) >= 0.95 * len(msgs)
    assert [m.seq for m in msgs] == sorted(m.seq for m in msgs)
    for m in with_pose:
        h = m.header
        assert h["v"] == PROTOCOL_VERSION and h["shape"] == [len(h["persons"]), 17, 3]
        assert h["frame_of_reference"] == "camera" and len(h["world_from_camera"]) == 4  # the way to the world
        assert h["t_capture_ns"] <= h["t_detect_start_ns"] <= h["t_detect_end_ns"] <= h["t_lift_end_ns"] <= h["t_publish_ns"]
        assert np.isfinite(m.joints).all() and (m.joints[:, 0, 2] > 0.5).all()  # pelvis in front of the camera
    # an adult's proportions: thighs and shins 0.25-0.55 m, head above the ankles (camera y down)
    j = np.stack([m.joints[0] for m in with_pose])
    for a, b in ((1, 2), (2, 3), (4, 5), (5, 6)):
        assert 0.25 < np.median(np.linalg.norm(j[:, a] - j[:, b], axis=-1)) < 0.55
    assert np.median(j[:, [3, 6], 1].mean(axis=1) - j[:, 10, 1]) > 0.8
    # the recording holds every published skeleton
    z = np.load(record)
    assert len(z["frame"]) == 100 and (z["persons"] >= 1).mean() >= 0.95
    assert z["joints"].shape == (int(z["persons"].sum()), 17, 3)


def test_ctrl_c_stops_cleanly_within_a_second_and_keeps_the_recording(cam04, tmp_path):
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    collector = _Collector(endpoint)
    collector.start()
    record = tmp_path / "take.npz"
    proc = _run("--video", cam04, "--loop", "--no-view", "--quiet", "--bind", endpoint, "--record", str(record))
    deadline = time.monotonic() + 120
    while len(collector.messages) < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert len(collector.messages) >= 10, proc.stderr.read() if proc.poll() is not None else "no messages"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    collector.stop.set()
    collector.join(5)
    assert proc.returncode == 0 and elapsed < 1.0, (proc.returncode, elapsed)
    z = np.load(record)
    assert len(z["frame"]) >= len(collector.messages) >= 10  # nothing published was lost from the take


def test_no_person_frames_say_so(tmp_path):
    import cv2

    folder = tmp_path / "empty"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((480, 640, 3), 90, np.uint8))
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    collector = _Collector(endpoint)
    collector.start()
    proc = _run("--images", str(folder), "--fast", "--no-view", "--quiet", "--bind", endpoint)
    _, err = proc.communicate(timeout=120)
    time.sleep(0.3)
    collector.stop.set()
    collector.join(5)
    assert proc.returncode == 0, err
    assert collector.messages and all(m.joints.shape == (0, 17, 3) and m.header["persons"] == []
                                      for m in collector.messages)


@pytest.mark.parametrize("args, expect", [
    (["--video", "/nonexistent/clip.mp4"], "does not exist"),
    (["--camera", "9"], "could not open camera 9"),
    (["--video", "CAM04", "--detector", "openpose"], "unknown detector 'openpose'"),
    (["--video", "CAM04", "--backend", "coreml"], "unknown backend 'coreml'"),
    (["--video", "CAM04", "--height", "180"], "height must be given in metres"),
    (["--video", "CAM04", "--max-persons", "2"], "--max-persons takes a whole number from 1 and applies to"),
])
def test_bad_input_is_one_sentence(args, expect, cam04):
    args = [cam04 if a == "CAM04" else a for a in args]
    proc = _run(*args, "--no-view", "--bind", f"tcp://127.0.0.1:{_free_port()}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert expect in err and "Traceback" not in err and err.strip().count("\n") <= 1


def test_unreachable_stream_is_one_line_without_ffmpegs_log():
    url = f"http://127.0.0.1:{_free_port()}/camera.avi"  # nothing listens there: connection refused
    proc = _run("--url", url, "--no-view", "--bind", f"tcp://127.0.0.1:{_free_port()}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.strip() == f"error: could not open the stream {url} (check the URL and that it is reachable)"


def test_port_in_use_is_one_sentence(cam04):
    port = _free_port()
    holder = zmq.Context.instance().socket(zmq.PUB)
    holder.bind(f"tcp://127.0.0.1:{port}")
    try:
        proc = _run("--video", cam04, "--no-view", "--bind", f"tcp://127.0.0.1:{port}")
        _, err = proc.communicate(timeout=120)
    finally:
        holder.close(0)
    assert proc.returncode != 0 and "already in use" in err and "Traceback" not in err
