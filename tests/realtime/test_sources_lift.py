"""Frame sources on real footage and the per-person lifting buffers."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from realtime.lift import Lifter, PersonBuffer
from realtime.sources import SourceError, SourceSpec, open_source, video_frames


@pytest.fixture()
def cam04(shared_dir):
    return shared_dir / "media" / "pose2sim-demo" / "cam04.mp4"


def test_video_fast_reads_every_frame_with_timestamps(cam04):
    src = open_source(SourceSpec("video", str(cam04), fast=True))
    assert (src.width, src.height, src.fps) == (1088, 1920, 60.0)
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.release()
    assert len(frames) == 100 and [f.index for f in frames] == list(range(100))
    assert frames[0].image.shape == (1920, 1088, 3)
    assert all(b.t_capture_ns > a.t_capture_ns for a, b in itertools.pairwise(frames))


@pytest.mark.slow
def test_video_is_replayed_at_its_native_rate_and_loops(cam04):
    src = open_source(SourceSpec("video", str(cam04), loop=True))
    t0 = time.monotonic()
    frames = [src.read() for _ in range(130)]  # past the end of the 100-frame clip
    elapsed = time.monotonic() - t0
    src.release()
    assert all(f is not None for f in frames) and frames[-1].index == 129
    assert elapsed >= 129 / 60 * 0.95  # paced like a 60 fps camera, not decoded as fast as possible


def test_paced_video_decodes_on_one_thread_with_the_same_pixels(cam04):
    import cv2

    paced, fast = (open_source(SourceSpec("video", str(cam04), fast=f)) for f in (False, True))
    default_threads = cv2.VideoCapture(str(cam04)).get(cv2.CAP_PROP_N_THREADS)
    try:
        assert paced._cap.get(cv2.CAP_PROP_N_THREADS) == 1  # leaves the cores to the detector
        assert fast._cap.get(cv2.CAP_PROP_N_THREADS) == default_threads  # throughput: FFmpeg's default
        for _ in range(3):
            assert np.array_equal(paced.read().image, fast.read().image)
    finally:
        paced.release()
        fast.release()


def test_a_4k_video_keeps_ffmpegs_decoding_threads(tmp_path):
    import cv2

    path = tmp_path / "uhd.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (3840, 2160))
    for i in range(3):
        writer.write(np.full((2160, 3840, 3), 40 * i, np.uint8))
    writer.release()
    src = open_source(SourceSpec("video", str(path)))
    try:  # 3840x2160 at 30 fps is twice what one thread is asked to decode: FFmpeg's default stays
        assert (src.width, src.height) == (3840, 2160)
        assert src._cap.get(cv2.CAP_PROP_N_THREADS) == cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_N_THREADS)
        assert src.read().image.shape == (2160, 3840, 3)
    finally:
        src.release()


def test_video_frames_for_offline_work(cam04, tmp_path):
    every = list(video_frames(cam04))
    assert len(every) == 100 and every[0].shape == (1920, 1088, 3)
    part = list(video_frames(cam04, start=40, count=5))
    assert len(part) == 5 and all(np.array_equal(a, b) for a, b in zip(part, every[40:45]))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SourceError, match="could not open"):
        next(video_frames(bad))


def test_image_folder(cam04, tmp_path):
    import cv2

    src = open_source(SourceSpec("video", str(cam04), fast=True))
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i:03d}.png"), src.read().image)
    src.release()
    (tmp_path / "notes.txt").write_text("not an image")
    folder = open_source(SourceSpec("images", str(tmp_path), fast=True))
    assert folder.fps == 30.0 and (folder.width, folder.height) == (1088, 1920)
    assert sum(1 for _ in iter(folder.read, None)) == 3


def test_bad_sources_are_one_sentence(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(SourceSpec("video", str(tmp_path / "missing.mp4")))
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 1000)
    with pytest.raises(SourceError, match="corrupt"):
        src = open_source(SourceSpec("video", str(bad)))
        src.read()
    with pytest.raises(SourceError, match=r"could not open camera 9 \(tried /dev/video9"):
        open_source(SourceSpec("camera", "9"))
    with pytest.raises(SourceError, match="no images"):
        open_source(SourceSpec("images", str(tmp_path)))


@pytest.fixture()
def http_clip(cam04, tmp_path):
    """20 frames of cam04 as an MJPEG AVI served over HTTP from this process (a local stand-in for
    an HTTP camera stream); yields (url, path of the served file)."""
    import functools
    import http.server
    import threading

    import cv2

    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (272, 480))
    for frame in video_frames(cam04, 0, 20):
        writer.write(cv2.resize(frame, (272, 480)))
    writer.release()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", clip
    finally:
        server.shutdown()
        server.server_close()


def test_http_stream_is_read_live_on_one_decoder_thread(http_clip):
    import cv2

    base, clip = http_clip
    src = open_source(SourceSpec("url", f"{base}/clip.avi"))
    try:
        assert src.spec.live and (src.width, src.height, src.fps) == (272, 480, 30.0)
        assert src._cap.get(cv2.CAP_PROP_N_THREADS) == 1  # no frames held back in decoder threads
        got = [src.read() for _ in range(20)]
    finally:
        src.release()
    assert [f.index for f in got] == list(range(20))
    assert all(np.array_equal(f.image, want) for f, want in zip(got, video_frames(clip)))
    with pytest.raises(SourceError, match=r"could not open the stream .*/missing\.avi"):
        open_source(SourceSpec("url", f"{base}/missing.avi"))


def test_person_buffer_starts_with_the_first_frame_repeated():
    buf = PersonBuffer(4, joints=2)
    first = np.full((2, 3), 1.0, np.float32)
    buf.push(first)
    assert (buf.window() == 1.0).all()
    for v in (2.0, 3.0, 4.0, 5.0, 6.0):
        buf.push(np.full((2, 3), v, np.float32))
    assert buf.window()[:, 0, 0].tolist() == [3.0, 4.0, 5.0, 6.0]  # oldest first, latest last


class _Echo:
    """Stands in for an engine: returns each window's latest 2D frame so the buffering is visible."""

    receptive_field = 5

    def __init__(self):
        self.calls = []

    def infer(self, x):
        self.calls.append(x.copy())
        return x[:, -1].copy()


def test_lifter_batches_persons_and_resets_lost_ones():
    engine = _Echo()
    lift = Lifter(engine)
    kp = np.random.default_rng(0).random((2, 17, 3)).astype(np.float32)
    out = lift(kp, np.array([7, 9]))
    assert out.shape == (2, 17, 3) and len(engine.calls) == 1 and engine.calls[0].shape == (2, 5, 17, 3)
    np.testing.assert_array_equal(engine.calls[0][0], np.repeat(kp[:1], 5, axis=0))
    lift(kp[:1], np.array([7]))  # person 9 lost: forgotten
    assert set(lift.buffers) == {7} and lift.buffers[7].count == 2
    assert lift(np.zeros((0, 17, 3), np.float32), np.zeros(0, np.int64)).shape == (0, 17, 3)
    assert lift.buffers == {}


def test_lifter_with_the_shipped_model_gives_camera_frame_joints():
    import engines

    lift = Lifter(engines.load("default", backend="torch", device="cpu"))
    kp = np.zeros((1, 17, 3), np.float32)
    rng = np.random.default_rng(1)
    kp[0, :, :2] = rng.uniform(-0.2, 0.2, (17, 2))
    kp[0, :, 2] = 0.9
    out = lift(kp, np.array([1]))
    assert out.shape == (1, 17, 3) and np.isfinite(out).all() and out[0, 0, 2] > 0.5  # in front of the camera


def test_a_stated_height_scales_the_skeleton_about_the_camera():
    """`realtime run --height 1.9`: a taller person than the model's typical adult gets longer
    bones and stands farther away, projecting to the same 2D."""
    import engines
    from engines.models import bone_sum, height_scale

    engine = engines.load("default", backend="torch", device="cpu")
    kp = np.zeros((1, 17, 3), np.float32)
    kp[0, :, :2] = np.random.default_rng(1).uniform(-0.2, 0.2, (17, 2))
    kp[0, :, 2] = 0.9
    typical = Lifter(engine)(kp, np.array([1]))
    tall = Lifter(engine, height_scale(1.9, engine.body_size_m))(kp, np.array([1]))
    assert bone_sum(typical)[0] == pytest.approx(engine.body_size_m, rel=1e-4)
    assert bone_sum(tall)[0] == pytest.approx(1.9 / 0.42, rel=1e-3)
    np.testing.assert_allclose(tall[..., :2] / tall[..., 2:], typical[..., :2] / typical[..., 2:], atol=1e-5)


class _DyingCamera:
    """Stands in for cv2.VideoCapture of a webcam (no camera exists on this machine): delivers
    ``frames`` frames, then fails every read, as an unplugged USB camera does."""

    def __init__(self, frames: int) -> None:
        self.left = frames

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {3: 640.0, 4: 480.0, 5: 30.0}.get(prop, 0.0)

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((480, 640, 3), np.uint8)

    def release(self) -> None:
        pass


def test_camera_that_disconnects_is_retried_then_reported(monkeypatch):
    import cv2

    opened = []

    def fake_capture(index, *args):
        opened.append(index)
        return _DyingCamera(3 if len(opened) == 1 else 0)  # reopening finds a dead device

    monkeypatch.setattr(cv2, "VideoCapture", fake_capture)
    src = open_source(SourceSpec("camera", "0", retry_s=0.5))
    assert [src.read().index for _ in range(3)] == [0, 1, 2]
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"camera 0 stopped delivering frames .* within 0.5 s"):
        src.read()
    assert 0.4 < time.monotonic() - t0 < 3.0 and len(opened) >= 2  # it did retry, reopening the device
