"""The pipeline's publish stage with stand-in stages: every frame reaches every output, in order,
with the first output's publish stamp; run starts the outputs and the caller closes them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engines.skeleton import CANONICAL
from realtime.detect2d import Detection
from realtime.outputs import FrameResult, Output, PublishStamp
from realtime.pipeline import Pipeline, PipelineConfig
from realtime.sources import Frame

J = CANONICAL.num_joints


class _Source:
    def __init__(self, frames: int) -> None:
        self.left = frames
        self.index = 0

    def read(self) -> Frame | None:
        if self.left == 0:
            return None
        self.left -= 1
        self.index += 1
        return Frame(self.index - 1, np.zeros((4, 4, 3), np.uint8), time.monotonic_ns())


class _Detector:
    """One person (id 3) in odd frames, nobody in even ones."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detection:
        self.calls += 1
        t = time.monotonic_ns()
        if self.calls % 2:
            return Detection(np.full((0, J, 3), 0.5, np.float32), np.zeros((0, J, 2), np.float32),
                             np.zeros(0, np.int64), np.zeros(0, np.float32), t, t)
        return Detection(np.full((1, J, 3), 0.5, np.float32), np.zeros((1, J, 2), np.float32),
                         np.array([3]), np.array([0.9], np.float32), t, t)


def _lifter(keypoints: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.ones((len(ids), J, 3), np.float32)


class _Stamping(Output):
    def __init__(self) -> None:
        self.seq = 40
        self.started = self.closed = False

    def start(self) -> None:
        assert self.seq == 40, "started after a frame"
        self.started = True

    def send(self, result: FrameResult) -> PublishStamp:
        self.seq += 1
        return PublishStamp(self.seq, time.monotonic_ns())

    def close(self) -> None:
        self.closed = True


class _Seen(Output):
    needs_rig = True

    def __init__(self, fail_at: int | None = None) -> None:
        self.results: list[FrameResult] = []
        self.fail_at = fail_at

    def send(self, result: FrameResult) -> None:
        if result.frame == self.fail_at:
            raise RuntimeError("disk full")
        self.results.append(result)


class _Body:
    def __call__(self, ids, joints, keypoints, t_ns):
        from realtime.body import BodyFrame
        from realtime.rig import RigFrame

        rig = RigFrame(tuple(int(i) for i in ids), np.zeros((len(ids), 20, 7)), np.zeros((len(ids), 15)))
        return BodyFrame("camera", joints, rig, None, np.zeros((len(ids), 2)))


def _pipeline(outputs, frames: int = 6, body=None) -> Pipeline:
    config = PipelineConfig(status=False, live=False, keep_stamps=True)
    return Pipeline(config, _Source(frames), _Detector(), _lifter, outputs, body=body)


def test_every_frame_reaches_every_output_with_the_first_stamp():
    stamping, seen = _Stamping(), _Seen()
    stats = _pipeline([stamping, seen], body=_Body()).run()
    assert [r.frame for r in seen.results] == list(range(6)) and stats.published == 6
    assert [r.published.seq for r in seen.results] == list(range(41, 47)) == [s["seq"] for s in stats.stamps]
    assert [len(r.ids) for r in seen.results] == [0, 1] * 3 and stats.with_person == 3
    assert all(r.rig is not None and r.rig.ids == tuple(r.ids) for r in seen.results)
    (entry,) = seen.results[1].persons()
    assert entry["id"] == 3 and entry["confidence"] == pytest.approx(0.9)
    np.testing.assert_array_equal(entry["joint_confidence"], np.full(J, 0.5, np.float32))  # keypoints' 3rd channel
    for r, s in zip(seen.results, stats.stamps):
        assert s["t_publish_ns"] == r.published.t_publish_ns >= r.timestamps["t_lift_end_ns"]
    assert stamping.started and not stamping.closed  # run starts the outputs, the caller closes them


def test_without_a_stamping_output_the_stage_times_the_frames():
    seen = _Seen()
    stats = _pipeline([seen]).run()
    assert all(r.published is None and r.rig is None for r in seen.results)
    assert [s["seq"] for s in stats.stamps] == list(range(6)) and len(stats.latency_ms) == 6
    assert all(s["t_publish_ns"] >= s["t_lift_end_ns"] for s in stats.stamps)


def test_a_failing_output_stops_the_run_and_is_raised():
    with pytest.raises(RuntimeError, match="disk full"):
        _pipeline([_Seen(fail_at=2)], frames=50).run()
