"""Frame sources: a camera index, a video file, a folder of images, or an RTSP/HTTP URL.

``open_source(SourceSpec(...))`` returns a :class:`FrameSource` whose ``read()`` gives the next
:class:`Frame` (BGR image, index, ``time.monotonic_ns()`` at capture) or ``None`` at the end.
Files and image folders are *replayed at their native frame rate* by default, so they behave like
a camera (``fast=True``: as fast as they decode); ``loop=True`` starts them over at the end.
Cameras and streams are live: a read that fails is retried (reopening the device) for
``retry_s`` seconds before :class:`SourceError` says the camera is gone.

Decoding: a live stream or a file replayed at its native rate is decoded by one FFmpeg thread
when it is no heavier than 1080p at 60 fps. FFmpeg's default frame threading (one thread per
core) buys throughput that such a source does not need, holds frames back in its pipeline (a real
delay on a live stream) and takes cores from the detector: on the 2-core development machine, one
thread keeps the pipeline overhead's median about a millisecond lower (``python -m benchmarks
pipeline``; one 1768x994 frame decodes in about 6 ms). Heavier sources (4K) and ``fast=True``
files keep FFmpeg's default, where one thread might not keep up or throughput is the point.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "Frame", "FrameSource", "SourceError", "SourceSpec", "open_source", "video_frames"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
ONE_THREAD_MAX_PIXEL_RATE = 1920 * 1088 * 60  # 1080p60 as coded (1088 lines): what one FFmpeg thread is asked to decode


class SourceError(OSError):
    """A camera, video, folder or stream that cannot be opened or stops delivering frames."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # camera | video | images | url
    location: str  # camera index as text, path, or URL
    loop: bool = False
    fast: bool = False
    fps: float | None = None  # override (image folders default to 30)
    retry_s: float = 3.0

    @property
    def live(self) -> bool:
        """Live sources drop stale frames; paced files behave the same way; --fast files keep every frame."""
        return not self.fast

    def describe(self) -> str:
        return f"camera {self.location}" if self.kind == "camera" else f"{self.kind} {self.location}"


@dataclass
class Frame:
    index: int
    image: np.ndarray  # (H, W, 3) uint8 BGR
    t_capture_ns: int
    read_ns: int = 0  # time spent grabbing and decoding the image (pacing excluded), before t_capture_ns


def _quiet_ffmpeg() -> None:
    """Silence FFmpeg's own log lines (a dropped stream prints a dozen per reconnection attempt),
    which would bury the one sentence we print, unless ``POSESTREAM_DEBUG`` is set. OpenCV reads
    the variable when FFmpeg first opens something, so every opener here calls this first."""
    if not os.environ.get("POSESTREAM_DEBUG"):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def _reported_fps(cap) -> float:
    """The frame rate OpenCV reports for an opened capture, or 30 where it reports none or
    nonsense (streams sometimes give 0 or their 90 kHz time base)."""
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 1.0 <= fps <= 1000.0 else 30.0


class FrameSource:
    """Reads frames from an opened source; see the module docstring for pacing and retries."""

    def __init__(self, spec: SourceSpec) -> None:
        import cv2

        _quiet_ffmpeg()
        self.spec = spec
        self._cv2 = cv2
        self._cap = None
        self._images: list[Path] = []
        self._pos = 0
        self.index = 0
        self._t0: int | None = None
        if spec.kind == "images":
            folder = Path(spec.location)
            if not folder.is_dir():
                raise SourceError(f"image folder {folder} does not exist")
            self._images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise SourceError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            first = cv2.imread(str(self._images[0]))
            if first is None:
                raise SourceError(f"{self._images[0]}: not a readable image")
            self.height, self.width = first.shape[:2]
            self.fps = spec.fps or 30.0
            return
        self._cap = self._open()
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = spec.fps or _reported_fps(self._cap)

    def _open_decoder(self, location: str):
        """A ``cv2.VideoCapture`` for a file or stream, on one decoding thread unless ``fast`` or
        the source is heavier than :data:`ONE_THREAD_MAX_PIXEL_RATE` (module docstring)."""
        cv2 = self._cv2
        if self.spec.fast:
            return cv2.VideoCapture(location)
        cap = cv2.VideoCapture(location, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
        if not cap.isOpened():
            return cap  # the caller says what could not be opened
        pixels = cap.get(cv2.CAP_PROP_FRAME_WIDTH) * cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if pixels * (self.spec.fps or _reported_fps(cap)) > ONE_THREAD_MAX_PIXEL_RATE:
            cap.release()
            cap = cv2.VideoCapture(location)
        return cap

    def _open(self):
        cv2, spec = self._cv2, self.spec
        if spec.kind == "video":
            path = Path(spec.location)
            if not path.is_file():
                raise SourceError(f"video file {path} does not exist")
            cap = self._open_decoder(str(path))
            if not cap.isOpened():
                raise SourceError(f"{path}: OpenCV could not open it as a video (corrupt or unsupported format)")
            return cap
        if spec.kind == "url":
            cap = self._open_decoder(spec.location)
            if not cap.isOpened():
                raise SourceError(f"could not open the stream {spec.location} (check the URL and that it is reachable)")
            return cap
        if spec.kind == "camera":
            index = int(spec.location)
            cv2.setLogLevel(0)  # OpenCV's own probing warnings would bury our one-line message
            cap = cv2.VideoCapture(index)
            if not cap.isOpened():
                device = f"/dev/video{index}" if sys.platform.startswith("linux") else f"index {index}"
                raise SourceError(f"could not open camera {index} (tried {device} through OpenCV); is a webcam "
                                  "connected and not in use by another program? Try --video FILE or `realtime demo`.")
            return cap
        raise SourceError(f"unknown source kind {spec.kind!r}")

    @property
    def kind(self) -> str:
        return self.spec.kind

    def info(self) -> dict:
        return {"kind": self.spec.kind, "location": self.spec.location, "width": self.width,
                "height": self.height, "fps": round(self.fps, 3)}

    def _pace(self) -> None:
        """Files (not --fast): wait until this frame's time at the native rate."""
        if self.spec.fast or self.spec.kind in ("camera", "url"):
            return
        now = time.monotonic_ns()
        if self._t0 is None:
            self._t0 = now
            return
        due = self._t0 + int(self.index * 1e9 / self.fps)
        if due > now:
            time.sleep((due - now) / 1e9)

    def _read_image(self) -> np.ndarray | None:
        if self.spec.kind == "images":
            if self._pos >= len(self._images):
                return None
            path = self._images[self._pos]
            self._pos += 1
            img = self._cv2.imread(str(path))
            if img is None:
                raise SourceError(f"{path}: not a readable image")
            return img
        ok, img = self._cap.read()
        return img if ok else None

    def _restart(self) -> bool:
        """Start a file or folder over (``loop``); False for live sources."""
        if self.spec.kind == "images":
            self._pos = 0
            return True
        if self.spec.kind == "video":
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            return True
        return False

    def read(self) -> Frame | None:
        """The next frame, or None at the end of a file (without ``loop``)."""
        t_read = time.monotonic_ns()
        img = self._read_image()
        if img is None and self.spec.kind in ("video", "images"):
            if self.index == 0:
                raise SourceError(f"{self.spec.location}: opened but delivered no frames (corrupt or empty video)")
            if not self.spec.loop or not self._restart():
                return None
            img = self._read_image()
            if img is None:
                return None
        if img is None:  # a live source failed: retry, reopening the device
            deadline = time.monotonic() + self.spec.retry_s
            while img is None and time.monotonic() < deadline:
                time.sleep(0.2)
                try:
                    self._cap.release()
                    self._cap = self._open()
                    img = self._read_image()
                except SourceError:
                    img = None
            if img is None:
                raise SourceError(f"{self.spec.describe()} stopped delivering frames and did not come back "
                                  f"within {self.spec.retry_s:g} s (disconnected?)")
        read_ns = time.monotonic_ns() - t_read
        self._pace()
        frame = Frame(self.index, img, time.monotonic_ns(), read_ns)
        self.index += 1
        return frame

    def release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_source(spec: SourceSpec) -> FrameSource:
    return FrameSource(spec)


def video_frames(path: str | Path, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """The BGR frames of a video file from frame ``start``, at most ``count`` (all if None), in
    order and unpaced: for offline work (benchmarks, detection caches, tests). A file OpenCV
    cannot open raises :class:`SourceError` at the first ``next``."""
    import cv2

    _quiet_ffmpeg()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SourceError(f"{path}: OpenCV could not open it as a video")
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        n = 0
        while count is None or n < count:
            ok, img = cap.read()
            if not ok:
                return
            n += 1
            yield img
    finally:
        cap.release()
