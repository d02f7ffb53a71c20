"""The streaming pipeline: the only module that knows about threads and queues.

Four threads joined by bounded queues::

    capture --q1--> detect (2D) --q2--> lift (3D) --q3--> smooth + body + outputs (+ status)

Queue policy: a live source (a camera, a stream, or a file replayed at its native rate) keeps
only the newest item in each queue: when a stage falls behind, the oldest waiting frame is
dropped (and counted), so latency never accumulates. ``--fast`` file runs block instead, so
every frame is processed. A live capture thread that hands a frame to an idle detector waits,
off the CPU, until the detector has taken it (``_HandoffQueue``) before decoding the next one.
Each packet carries monotonic timestamps taken at capture, detection start and end, lift end and
publish; they go out in every message. The publish stage smooths, runs the body stage
(``realtime.body``: steady bones, the world frame, ground contact), builds one
``realtime.outputs.FrameResult`` per frame and hands it to every output (ZeroMQ, VMC,
recordings) through one interface.

Stopping: ``stop`` (an Event, set by Ctrl-C) ends every loop within about 0.1 s plus the stage's
current work; the end of a file (without ``--loop``) or ``max_frames`` flows through the queues
as an end marker so every frame already captured is still published and recorded. An exception
in any stage stops the others and :meth:`Pipeline.run` re-raises it. :meth:`Pipeline.run` starts
the outputs; the caller owns them and closes them after the run (closing a recorder writes its
file), whether or not it failed.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.outputs import FrameResult, Output, PublishStamp, send_all

__all__ = ["Pipeline", "PipelineConfig", "PipelineStats"]

_END = object()
_TICK_S = 0.1
_HANDOFF_S = 0.002  # the longest a live producer steps aside for an idle consumer (see _HandoffQueue)


class _HandoffQueue(queue.Queue):
    """A bounded queue that knows whether a consumer is waiting on it, so a producer can step aside.

    Why: with as many busy threads as cores, a producer that hands an item to an idle consumer
    and goes straight on with its own work (the capture thread decoding the next frame) keeps
    the core, and the woken consumer waits for the scheduler's next tick before it runs.
    :meth:`handoff` makes the producer wait, off the CPU, until the consumer has taken the item
    (at most ``timeout``), and only when a consumer was already waiting, so a busy consumer never
    holds the producer up. ``python -m benchmarks pipeline`` measures the wait from capture to
    detection start with the detector idle.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.consumers_waiting = 0
        self.taken = threading.Condition(self.mutex)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            return super().get(False)
        with self.mutex:
            self.consumers_waiting += 1
        try:
            return super().get(True, timeout)
        finally:
            with self.mutex:
                self.consumers_waiting -= 1

    def _get(self) -> Any:  # Queue.get calls it with the mutex held
        item = super()._get()
        self.taken.notify_all()
        return item

    def handoff(self, timeout: float) -> None:
        """After a put: if a consumer was waiting, give it up to ``timeout`` s to take the item."""
        with self.mutex:
            if self.consumers_waiting and self._qsize():
                self.taken.wait_for(lambda: not self._qsize(), timeout)


@dataclass(frozen=True)
class PipelineConfig:
    max_frames: int | None = None
    status: bool = True
    live: bool = True  # drop stale frames (cameras, paced files); False: process every frame (--fast)
    keep_stamps: bool = False  # keep every published frame's stamps in stats.stamps (benchmarks; grows with the run)


@dataclass
class _Packet:
    frame: int
    image: np.ndarray | None
    t: dict[str, int | None]
    keypoints: np.ndarray | None = None
    ids: np.ndarray | None = None
    scores: np.ndarray | None = None
    joints: np.ndarray | None = None
    lift_start_ns: int = 0


@dataclass
class PipelineStats:
    captured: int = 0
    published: int = 0
    with_person: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"detect": 0, "lift": 0, "publish": 0})
    latency_ms: list[float] = field(default_factory=list)  # capture -> publish
    detect_ms: list[float] = field(default_factory=list)  # detector compute
    lift_ms: list[float] = field(default_factory=list)  # lifter compute (queue waits excluded)
    smooth_publish_ms: list[float] = field(default_factory=list)
    wait_detect_ms: list[float] = field(default_factory=list)  # capture -> detection start (queue + busy detector)
    capture_ms: list[float] = field(default_factory=list)  # per captured frame: grab + decode, before its capture stamp
    stamps: list[dict[str, int]] = field(default_factory=list)  # per published frame, every stamp (ns): keep_stamps
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float]) -> dict[str, float] | None:
            if not values:
                return None
            a = np.asarray(values)
            return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
                    "p99": float(np.percentile(a, 99))}

        return {"captured": self.captured, "published": self.published, "with_person": self.with_person,
                "dropped": dict(self.dropped), "fps": self.published / self.wall_s if self.wall_s else 0.0,
                "latency_ms": pct(self.latency_ms), "detect_ms": pct(self.detect_ms), "lift_ms": pct(self.lift_ms),
                "smooth_publish_ms": pct(self.smooth_publish_ms), "wall_s": self.wall_s}


class Pipeline:
    """Wires a frame source, a 2D detector, a lifter, a smoother, a body stage and outputs into threads.

    Every component is a plain object: ``source.read() -> Frame | None``, ``detector.detect(image)
    -> Detection``, ``lifter(keypoints, ids) -> (P, 17, 3)``, ``smoother(dict id -> (17, 3), t_ns)
    -> dict`` (or None), ``body(ids, joints, keypoints, t_ns) -> realtime.body.BodyFrame`` (or
    None: the lifter's camera-frame joints as they are, no rig), and ``outputs``, each a
    ``realtime.outputs.Output`` taking every frame's result in order
    (``realtime.outputs.build_outputs`` makes them from the command line's flags).
    """

    def __init__(self, config: PipelineConfig, source, detector, lifter, outputs: Sequence[Output], smoother=None,
                 body=None) -> None:
        self.config = config
        self.source, self.detector, self.lifter = source, detector, lifter
        self.outputs, self.smoother, self.body = list(outputs), smoother, body
        depth = 1 if config.live else 8
        # only capture -> detect hands over: behind it, the lifter's ONNX Runtime threads keep the
        # cores busy, so a producer stepping aside there would only wait
        self.q1 = _HandoffQueue(depth)
        self.q2: queue.Queue = queue.Queue(depth)
        self.q3: queue.Queue = queue.Queue(depth)
        self.stats = PipelineStats()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._recent: deque[tuple[float, float, float, float, int]] = deque(maxlen=256)

    # --- queue policy ---------------------------------------------------------------------------
    def _put(self, q: queue.Queue, item: Any, stage: str) -> None:
        if item is _END or not self.config.live:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=_TICK_S)
                    return
                except queue.Full:
                    continue
            return
        while True:  # live: newest wins
            try:
                q.put_nowait(item)
                if isinstance(q, _HandoffQueue):
                    q.handoff(_HANDOFF_S)
                return
            except queue.Full:
                try:
                    old = q.get_nowait()
                except queue.Empty:
                    continue
                if old is _END:  # never drop the end marker
                    q.put_nowait(old)
                    return
                self.stats.dropped[stage] += 1

    def _get(self, q: queue.Queue) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=_TICK_S)
            except queue.Empty:
                continue
        return _END

    # --- stages -----------------------------------------------------------------------------------
    def _capture(self) -> None:
        n = 0
        while not self._stop.is_set():
            if self.config.max_frames is not None and n >= self.config.max_frames:
                break
            frame = self.source.read()
            if frame is None:
                break
            n += 1
            self.stats.captured = n
            self.stats.capture_ms.append(frame.read_ns / 1e6)
            t = {"t_capture_ns": frame.t_capture_ns, "t_detect_start_ns": None, "t_detect_end_ns": None,
                 "t_lift_end_ns": None}
            self._put(self.q1, _Packet(frame.index, frame.image, t), "detect")  # waits for an idle detector
        self._put(self.q1, _END, "detect")

    def _detect(self) -> None:
        while (p := self._get(self.q1)) is not _END:
            det = self.detector.detect(p.image)
            p.image = None
            p.t["t_detect_start_ns"], p.t["t_detect_end_ns"] = det.t_start_ns, det.t_end_ns
            p.keypoints, p.ids, p.scores = det.keypoints, det.ids, det.scores
            self._put(self.q2, p, "lift")
        self._put(self.q2, _END, "lift")

    def _lift(self) -> None:
        while (p := self._get(self.q2)) is not _END:
            p.lift_start_ns = time.monotonic_ns()
            p.joints = self.lifter(p.keypoints, p.ids)
            p.t["t_lift_end_ns"] = time.monotonic_ns()
            self._put(self.q3, p, "publish")
        self._put(self.q3, _END, "publish")

    def _publish(self) -> None:
        last_status = time.monotonic()
        while (p := self._get(self.q3)) is not _END:
            t0 = time.monotonic_ns()
            joints = self._smooth(p)
            t_smoothed = time.monotonic_ns()
            extra = {}
            if self.body is not None:
                body = self.body(p.ids, joints, p.keypoints, p.t["t_capture_ns"])
                joints = body.joints
                extra = {"rig": body.rig, "frame_of_reference": body.frame_of_reference, "world": body.world,
                         "contacts": body.contacts}
            result = FrameResult(frame=p.frame, timestamps=p.t, ids=p.ids, confidences=p.scores,
                                 joint_confidences=p.keypoints[:, :, 2], joints=joints, **extra)
            stamp = send_all(self.outputs, result).published
            # without an output that stamps (no ZeroMQ output), the stage's own stamp times the frame
            self._account(p, stamp or PublishStamp(self.stats.published, time.monotonic_ns()), t0, t_smoothed)
            if self.config.status and time.monotonic() - last_status >= 1.0:
                last_status = time.monotonic()
                self._status_line()
        if self.config.status:
            self._status_line(final=True)

    def _smooth(self, p: _Packet) -> np.ndarray:
        """The lifted joints through the smoother (if any), as contiguous float32 (P, 17, 3)."""
        joints = p.joints
        if self.smoother is not None:
            smoothed = self.smoother({int(i): j for i, j in zip(p.ids, joints)}, p.t["t_capture_ns"])
            joints = np.stack([smoothed[int(i)] for i in p.ids]).astype(np.float32) if len(p.ids) else joints
        return np.ascontiguousarray(joints, np.float32)

    def _account(self, p: _Packet, stamp: PublishStamp, t0: int, t_smoothed: int) -> None:
        s = self.stats
        if self.config.keep_stamps:
            s.stamps.append({**p.t, "t_lift_start_ns": p.lift_start_ns, "t_publish_stage_ns": t0,
                             "t_smooth_end_ns": t_smoothed, "t_publish_ns": stamp.t_publish_ns,
                             "seq": stamp.seq, "frame": p.frame})
        s.published += 1
        s.with_person += int(len(p.ids) > 0)
        t, tp = p.t, stamp.t_publish_ns
        s.latency_ms.append((tp - t["t_capture_ns"]) / 1e6)
        s.detect_ms.append((t["t_detect_end_ns"] - t["t_detect_start_ns"]) / 1e6)
        s.wait_detect_ms.append((t["t_detect_start_ns"] - t["t_capture_ns"]) / 1e6)
        s.lift_ms.append((t["t_lift_end_ns"] - p.lift_start_ns) / 1e6)
        s.smooth_publish_ms.append((time.monotonic_ns() - t0) / 1e6)
        self._recent.append((time.monotonic(), s.latency_ms[-1], s.detect_ms[-1], s.lift_ms[-1], len(p.ids)))

    def _status_line(self, final: bool = False) -> None:
        now = time.monotonic()
        recent = [r for r in self._recent if now - r[0] <= 1.0]
        if not recent:
            return
        lat, det, lift = (np.median([r[i] for r in recent]) for i in (1, 2, 3))
        dropped = sum(self.stats.dropped.values())
        line = (f"{len(recent):3d} fps | capture->publish {lat:6.1f} ms | detect {det:5.1f} ms | lift {lift:5.2f} ms"
                f" | persons {recent[-1][4]} | dropped {dropped}")
        end = "\n" if final or not sys.stderr.isatty() else "\r"
        print(line, end=end, file=sys.stderr, flush=True)

    # --- running ----------------------------------------------------------------------------------
    def _guard(self, fn) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to run(), which re-raises it
            if self.error is None:
                self.error = exc
            self._stop.set()

    def run(self, stop: threading.Event | None = None) -> PipelineStats:
        """Run until the source ends, ``max_frames``, ``stop`` is set, or a stage fails (re-raised
        here once every thread has stopped). Starts the outputs; they stay open for the caller to close."""
        threads = [threading.Thread(target=self._guard, args=(fn,), name=f"posestream-{fn.__name__[1:]}", daemon=True)
                   for fn in (self._capture, self._detect, self._lift, self._publish)]
        for output in self.outputs:
            output.start()
        t0 = time.monotonic()
        for th in threads:
            th.start()
        try:
            while any(th.is_alive() for th in threads):
                if stop is not None and stop.is_set():
                    self._stop.set()
                threads[-1].join(_TICK_S)
                if not threads[-1].is_alive():
                    self._stop.set()
        finally:
            self._stop.set()
            for th in threads:
                th.join(1.0)
            self.stats.wall_s = time.monotonic() - t0
        if self.error is not None:
            raise self.error
        return self.stats
