"""Stream outputs without threads: the per-frame result, each output, the stamp hand-over, the factory."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from engines.skeleton import CANONICAL
from realtime import rig
from realtime.bvh_export import BvhRecorder
from realtime.client import Subscriber
from realtime.outputs import (
    FrameResult,
    NpzRecorder,
    Output,
    OutputOptions,
    PublishStamp,
    VmcOutput,
    ZmqOutput,
    build_outputs,
    send_all,
)
from realtime.protocol import PROTOCOL_VERSION, PROTOCOL_VERSION_RIG
from realtime.publish import Publisher
from realtime.vmc import VmcError, VmcSender
from tests.realtime.test_publish import free_tcp_port, sync

J = CANONICAL.num_joints
ANY_PORT = "tcp://127.0.0.1:*"


@pytest.fixture(scope="module")
def poses(shared_dir) -> np.ndarray:
    """A real CMU clip as camera-frame joints (10 frames), float32."""
    from training.motion import load_clip

    joints, _, _ = load_clip(shared_dir / "data" / "cmu-mocap" / "02" / "02_06.bvh.gz", fps=30.0)
    return (joints[:10].astype(np.float64) * rig.CAMERA_TO_RIG).astype(np.float32)


def _result(poses: np.ndarray, frame: int, ids=(4,), with_rig: bool = False, solver=None) -> FrameResult:
    joints = np.array([poses[frame] + 0.3 * k for k in range(len(ids))], np.float32).reshape(len(ids), J, 3)
    t_capture = 10**12 + frame * 33_333_333
    frame_rig = (solver or rig.RigSolver())(ids, joints, t_capture) if with_rig else None
    conf = np.linspace(0.1, 0.9, J, dtype=np.float32) + np.float32(1e-4)  # not on the published 3-decimal grid
    return FrameResult(frame=frame, timestamps={"t_capture_ns": t_capture, "t_detect_start_ns": None},
                       ids=np.array(ids, np.int64), confidences=np.full(len(ids), 0.8, np.float32),
                       joint_confidences=np.tile(conf, (len(ids), 1)), joints=joints, rig=frame_rig)


class _Stamping(Output):
    def __init__(self) -> None:
        self.seq = 100

    def send(self, result: FrameResult) -> PublishStamp:
        self.seq += 1
        return PublishStamp(self.seq, 5_000 + self.seq)


class _Seen(Output):
    def __init__(self) -> None:
        self.results: list[FrameResult] = []

    def send(self, result: FrameResult) -> None:
        self.results.append(result)


# --- the result and the hand-over ---------------------------------------------------------------


def test_the_module_example_runs():
    import doctest

    import realtime.outputs

    assert doctest.testmod(realtime.outputs).failed == 0


def test_frame_result_checks_shapes(poses):
    good = _result(poses, 0, ids=(1, 2))
    assert good.persons()[1]["id"] == 2 and good.t_publish_ns is None
    with pytest.raises(ValueError, match=r"joints must be float32 shaped \(2, 17, 3\)"):
        FrameResult(0, {}, good.ids, good.confidences, good.joint_confidences, good.joints[:1])
    with pytest.raises(ValueError, match="joints must be float32"):
        FrameResult(0, {}, good.ids, good.confidences, good.joint_confidences, good.joints.astype(np.float64))
    with pytest.raises(ValueError, match="joint confidences"):
        FrameResult(0, {}, good.ids, good.confidences, good.joint_confidences[:, :5], good.joints)
    with pytest.raises(ValueError, match="the rig holds 1 persons, the frame 2"):
        FrameResult(0, {}, good.ids, good.confidences, good.joint_confidences, good.joints,
                    rig=_result(poses, 0, with_rig=True).rig)


def test_the_first_stamp_reaches_every_later_output_only(poses):
    before, first, second, after = _Seen(), _Stamping(), _Stamping(), _Seen()
    result = send_all([before, first, second, after], _result(poses, 0))
    assert before.results[0].published is None
    assert after.results[0].published == PublishStamp(101, 5_101) == result.published  # the second stamp is ignored
    assert after.results[0].joints is before.results[0].joints  # the arrays are shared, not copied


# --- each output ----------------------------------------------------------------------------------


def test_zmq_output_publishes_the_result_and_returns_the_header_stamp(poses):
    solver = rig.RigSolver()
    with Publisher(ANY_PORT) as pub, Subscriber(pub.endpoint) as sub:
        sync(pub, lambda ms: sub.recv(timeout_ms=ms))
        for rotations in (False, True):
            out = ZmqOutput(pub, rotations=rotations)
            assert out.needs_rig is rotations
            result = _result(poses, 3, ids=(4, 9), with_rig=True, solver=solver)
            stamp = out.send(result)
            msg = sub.recv(timeout_ms=2000)
            assert msg is not None
            h = msg.header
            assert (stamp.seq, stamp.t_publish_ns) == (h["seq"], h["t_publish_ns"])
            assert h["v"] == (PROTOCOL_VERSION_RIG if rotations else PROTOCOL_VERSION)
            assert h["frame"] == 3 and h["t_capture_ns"] == result.timestamps["t_capture_ns"]
            assert [p["id"] for p in h["persons"]] == [4, 9]
            np.testing.assert_array_equal(msg.joints, result.joints)
            if rotations:
                np.testing.assert_array_equal(msg.rig, result.rig.rows.astype(np.float32))
            else:
                assert msg.rig is None
    assert pub.closed


def test_npz_recorder_writes_what_it_was_sent(poses, tmp_path):
    rec = NpzRecorder(tmp_path / "take.npz")
    rec.start()
    results = [_result(poses, 0, ids=(4,)), _result(poses, 1, ids=()), _result(poses, 2, ids=(4, 7))]
    for k, result in enumerate(results):
        send_all([_Stamping(), rec] if k != 1 else [rec], result)  # frame 1: nobody stamped it
    rec.close()
    z = np.load(tmp_path / "take.npz")
    assert z["frame"].tolist() == [0, 1, 2] and z["persons"].tolist() == [1, 0, 2]
    assert z["t_capture_ns"].tolist() == [r.timestamps["t_capture_ns"] for r in results]
    assert z["t_publish_ns"].tolist() == [5_101, 0, 5_101]
    assert z["row_message"].tolist() == [0, 2, 2] and z["person_id"].tolist() == [4, 4, 7]
    np.testing.assert_array_equal(z["joints"], np.concatenate([r.joints for r in results]))
    # confidences as a subscriber receives them: rounded to the protocol's 3 decimals
    want = np.round(results[0].joint_confidences.astype(np.float64), 3).astype(np.float32)
    np.testing.assert_array_equal(z["joint_confidence"][0], want[0])
    assert list(z["joint_names"]) == list(CANONICAL.joint_names)


def test_npz_recorder_writes_a_started_stream_only(tmp_path):
    never = NpzRecorder(tmp_path / "never.npz")
    never.close()  # a later part of the stream failed to open: no take
    empty = NpzRecorder(tmp_path / "empty.npz")
    empty.start()
    empty.close()  # stopped before the first frame: an empty take
    assert not (tmp_path / "never.npz").exists()
    z = np.load(tmp_path / "empty.npz")
    assert z["frame"].shape == (0,) and z["joints"].shape == (0, J, 3)


def test_vmc_output_sends_the_bundle_timed_by_the_publish_stamp(poses):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        out = VmcOutput(VmcSender("127.0.0.1", rx.getsockname()[1]))
        try:
            assert out.needs_rig and out.notice == f"sending VMC to 127.0.0.1:{rx.getsockname()[1]}"
            result = send_all([_Stamping()], _result(poses, 0, ids=(5, 2), with_rig=True))
            out.send(result)
            assert rx.recv(65536) == out.sender.bundle(result.rig, result.t_publish_ns)
        finally:
            out.close()


def test_bvh_recorder_takes_results(poses, tmp_path):
    rec = BvhRecorder(tmp_path / "take.bvh", fps=30.0)
    solver = rig.RigSolver()
    for frame in (0, 1, 3):  # frame 2 was dropped: the take repeats frame 1's pose
        rec.send(_result(poses, frame, with_rig=True, solver=solver))
    rec.close()
    motion = (tmp_path / "take.bvh").read_text().split("MOTION\n", 1)[1].splitlines()
    assert motion[0] == "Frames: 4" and motion[3] == motion[4]
    with pytest.raises(ValueError, match="needs the rig solver"):
        rec.send(_result(poses, 4))


# --- options and the factory ----------------------------------------------------------------------


def test_options_are_checked_from_the_flags(tmp_path):
    options = OutputOptions.from_flags(bind=ANY_PORT, vmc=":39540", record=str(tmp_path / "a" / "take.npz"),
                                       rotations=True)
    assert options == OutputOptions(ANY_PORT, ("127.0.0.1", 39540), tmp_path / "a" / "take.npz", True)
    assert (tmp_path / "a").is_dir() and not list((tmp_path / "a").iterdir())  # the check leaves nothing behind
    assert OutputOptions.from_flags(bind=ANY_PORT, vmc=None, record="", rotations=False).record is None
    with pytest.raises(VmcError, match="--vmc expects HOST:PORT"):
        OutputOptions.from_flags(bind=ANY_PORT, vmc="host:port", record=None, rotations=False)
    with pytest.raises(IsADirectoryError, match="it is a directory"):
        OutputOptions.from_flags(bind=ANY_PORT, vmc=None, record=str(tmp_path), rotations=False)


@pytest.mark.parametrize("record, kinds, rig_needed", [
    (None, [ZmqOutput], [False]),
    ("take.npz", [ZmqOutput, NpzRecorder], [False, False]),
    ("take.BVH", [ZmqOutput, BvhRecorder], [False, True]),
])
def test_factory_builds_one_output_per_flag(record, kinds, rig_needed, tmp_path):
    options = OutputOptions(ANY_PORT, record=tmp_path / record if record else None)
    outputs = build_outputs(options, {"kind": "test"}, fps=None)
    try:
        assert [type(o) for o in outputs] == kinds and [o.needs_rig for o in outputs] == rig_needed
        assert outputs[0].publisher.source == {"kind": "test"}
        if record and record.endswith("BVH"):
            assert outputs[1].fps == 30.0 and outputs[1].path == tmp_path / record
    finally:
        for o in outputs:
            o.close()
    assert not (tmp_path / "take.BVH").exists()  # an empty BVH take writes no file


def test_factory_puts_zeromq_first_and_asks_for_the_rig(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        options = OutputOptions(ANY_PORT, vmc=("127.0.0.1", port), record=tmp_path / "take.bvh", rotations=True)
        outputs = build_outputs(options, {}, fps=60.0)
        for o in outputs:
            o.close()
    assert [type(o) for o in outputs] == [ZmqOutput, VmcOutput, BvhRecorder]
    assert all(o.needs_rig for o in outputs) and outputs[2].fps == 60.0
    assert [o.notice for o in outputs] == [None, f"sending VMC to 127.0.0.1:{port}", None]


def test_factory_closes_what_it_opened_when_a_later_output_fails():
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    with pytest.raises(VmcError, match="cannot resolve host"):
        build_outputs(OutputOptions(endpoint, vmc=("no-such-host.invalid", 39539)), {}, fps=30.0)
    with Publisher(endpoint):  # the first publisher let go of the port
        pass
