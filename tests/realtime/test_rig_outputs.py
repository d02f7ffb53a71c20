"""Rotations on the wire: protocol v2, VMC over real UDP (parsed by python-osc, not by us), BVH takes."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest

from engines.skeleton import CANONICAL, HUMANOID_BONES
from realtime import rig
from realtime.client import Subscriber
from realtime.protocol import (
    PROTOCOL_VERSION_RIG,
    ProtocolError,
    decode,
    encode,
    make_header,
)
from realtime.publish import Publisher
from realtime.vmc import VmcError, VmcSender, parse_host_port
from tests.realtime.rig_checks import assert_fk_reproduces
from tests.realtime.test_publish import sync

J = CANONICAL.num_joints
R = len(rig.RIG_NODES)


@pytest.fixture(scope="module")
def mocap_camera(shared_dir) -> np.ndarray:
    """A real CMU clip as camera-frame joints (120 frames at 30 fps)."""
    from training.motion import load_clip

    joints, _, _ = load_clip(shared_dir / "data" / "cmu-mocap" / "02" / "02_06.bvh.gz", fps=30.0)
    return (joints[:120].astype(np.float64) * rig.CAMERA_TO_RIG).astype(np.float32)


def _people(p: int) -> list[dict]:
    return [{"id": i, "confidence": 0.9, "joint_confidence": [0.9] * J} for i in range(p)]


# --- protocol v2 --------------------------------------------------------------------------------


def test_v2_round_trip_and_v1_unchanged(mocap_camera):
    joints = mocap_camera[:2]
    rows = rig.solve(joints)[0].astype(np.float32)
    header = make_header(seq=0, frame=5, persons=_people(2), rig=True)
    frames = encode(header, joints, rows)
    assert len(frames) == 4 and len(frames[3]) == 4 * 2 * R * 7
    got, got_joints, got_rig = decode(frames, with_rig=True)
    assert got["v"] == PROTOCOL_VERSION_RIG and got["rig_shape"] == [2, R, 7]
    assert got["rig_nodes"] == list(rig.RIG_NODES) and got["rig"]["quaternion"] == "x, y, z, w"
    np.testing.assert_array_equal(got_rig, rows)
    np.testing.assert_array_equal(got_joints, joints)
    assert json.loads(frames[1]) == got  # the pre-serialised constant part is valid JSON of the same header
    v1 = encode(make_header(seq=0, frame=5, persons=_people(2)), joints)
    assert len(v1) == 3 and json.loads(v1[1])["v"] == 1 and "rig_nodes" not in json.loads(v1[1])
    assert decode(v1, with_rig=True)[2] is None
    empty = encode(make_header(seq=1, frame=6, persons=[], rig=True), np.empty((0, J, 3)), np.empty((0, R, 7)))
    assert len(empty) == 4 and empty[3] == b""


@pytest.mark.parametrize("corrupt,message", [
    (lambda f: f[:3], "needs 4 frames"),
    (lambda f: [*f[:3], f[3][:-4]], "rig frame is"),
    (lambda f: [f[0], f[1].replace(b'"rig_shape":[1,', b'"rig_shape":[2,'), f[2], f[3]], "'rig_shape' must be"),
    (lambda f: [f[0], f[1].replace(b'"LeftHand"', b'"LeftPaw"'), f[2], f[3]], "'rig_nodes' must be"),
    (lambda f: [f[0], f[1].replace(b'"x, y, z, w"', b'"w, x, y, z"'), f[2], f[3]], "quaternion"),
    (lambda f: [f[0], f[1].replace(b'"v":2', b'"v":4'), f[2], f[3]], "understands versions 1, 2 and 3"),
], ids=["missing rig frame", "short rig", "rig shape", "node names", "quaternion order", "v3"])
def test_v2_validation(mocap_camera, corrupt, message):
    frames = encode(make_header(seq=0, frame=0, persons=_people(1), rig=True), mocap_camera[:1],
                    rig.solve(mocap_camera[:1])[0])
    with pytest.raises(ProtocolError, match=message):
        decode(corrupt(frames))


def test_v2_encode_refuses_mismatches(mocap_camera):
    rows = rig.solve(mocap_camera[:1])[0]
    with pytest.raises(ProtocolError, match="needs the rig rows"):
        encode(make_header(seq=0, frame=0, persons=_people(1), rig=True), mocap_camera[:1])
    with pytest.raises(ProtocolError, match="need a header with the rig keys"):
        encode(make_header(seq=0, frame=0, persons=_people(1)), mocap_camera[:1], rows)
    bad = rows.copy()
    bad[0, 3, 4] = np.nan
    with pytest.raises(ProtocolError, match="non-finite"):
        encode(make_header(seq=0, frame=0, persons=_people(1), rig=True), mocap_camera[:1], bad)


def test_v2_over_zeromq_reproduces_the_joints(mocap_camera):
    solver = rig.RigSolver()
    received = []
    # sndhwm: this loop sends faster than libzmq hands a PUB socket its queue credit back, so
    # the publisher's default 4-message mark would drop messages that the test waits for
    with Publisher("tcp://127.0.0.1:*", sndhwm=64) as pub, Subscriber(pub.endpoint) as sub:
        sync(pub, lambda ms: sub.recv(timeout_ms=ms))  # the subscription has reached the publisher
        for i, pose in enumerate(mocap_camera[:30]):
            frame = solver([3], pose[None], i * 33_333_333)
            pub.send(pose[None], frame=i, timestamps={"t_capture_ns": i}, persons=[_people(4)[3]], rig=frame.rows)
            msg = sub.recv(timeout_ms=2000)
            assert msg is not None
            received.append(msg)
    assert all(m.header["v"] == 2 and m.rig.shape == (1, R, 7) for m in received)
    assert received[0].rig_nodes == list(rig.RIG_NODES)
    rows = np.concatenate([m.rig for m in received]).astype(np.float64)
    assert_fk_reproduces(rows, np.concatenate([m.joints for m in received]).astype(np.float64), "v2 stream")


# --- VMC ------------------------------------------------------------------------------------------


class _OscCollector:
    """python-osc's dispatcher and blocking UDP server on a free loopback port; one dict per bundle."""

    def __init__(self) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.bundles: list[dict] = []
        disp = Dispatcher()
        disp.map("/VMC/Ext/OK", self._ok)
        disp.map("/VMC/Ext/T", lambda addr, t: self.bundles[-1].__setitem__("T", t))
        disp.map("/VMC/Ext/Root/Pos", lambda addr, name, *v: self.bundles[-1].__setitem__("root", (name, v)))
        disp.map("/VMC/Ext/Bone/Pos", lambda addr, name, *v: self.bundles[-1]["bones"].__setitem__(name, v))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), disp)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _ok(self, addr, *flags) -> None:
        self.bundles.append({"ok": flags, "bones": {}})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def vmc_rows(bundle: dict) -> np.ndarray:
    """Rig rows (1, R, 7) back in the rig frame from one received bundle (HeadTop from nothing:
    VMC carries bones only, so the crown is left at the head's origin and not compared)."""
    rows = np.zeros((1, R, 7))
    rows[0, :, 6] = 1.0
    for b, name in enumerate(HUMANOID_BONES):
        rows[0, b] = np.asarray(bundle["bones"][name], dtype=np.float64) * [-1, 1, 1, 1, -1, -1, 1]
    return rows


def _check_vmc_fk(bundle: dict, joints: np.ndarray, what: str, frame: str = "camera") -> None:
    """The bundle's bones reproduce ``joints`` (17, 3): camera-frame joints, or with
    ``frame="world"`` joints in the frame of the rig rows (a world-frame stream)."""
    rows = vmc_rows(bundle)
    head = CANONICAL.index("head")
    keep = [j for j in range(J) if j != head]
    fk = rig.canonical_from_rows(rows, frame="camera" if frame == "camera" else "rows")[0]
    from tests.realtime.rig_checks import TOLERANCE_M, length_change_bound

    bound = length_change_bound(rows, joints[None].astype(np.float64))[0]
    excess = (np.linalg.norm(fk - joints, axis=-1) - bound)[keep]
    assert excess.max() <= TOLERANCE_M, f"{what}: VMC FK misses a joint by {excess.max() * 1e3:.2f} mm"


def test_vmc_bundles_parsed_by_python_osc_reproduce_the_joints(mocap_camera):
    osc = _OscCollector()
    solver = rig.RigSolver()
    sent = []
    try:
        with VmcSender("127.0.0.1", osc.port) as vmc:
            vmc.send(None)  # nobody in view: OK with tracking 0, no bones
            for i, pose in enumerate(mocap_camera[:60]):
                frame = solver([9, 2], np.stack([pose, pose + 0.5]), i * 33_333_333)  # person 2 drives the avatar
                vmc.send(frame)
                sent.append(pose + 0.5)
                time.sleep(0.002)
        deadline = time.monotonic() + 5
        while len(osc.bundles) < 61 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        osc.close()
    assert len(osc.bundles) == 61
    assert osc.bundles[0]["ok"] == (1, 3, 0, 0) and not osc.bundles[0]["bones"]
    for bundle, joints in zip(osc.bundles[1:], sent):
        assert bundle["ok"] == (1, 3, 0, 1)
        assert set(bundle["bones"]) == set(HUMANOID_BONES)
        assert bundle["root"] == ("root", (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        _check_vmc_fk(bundle, joints, "VMC")
    times = [b["T"] for b in osc.bundles]
    assert times == sorted(times)


@pytest.mark.parametrize("text,expect", [
    ("127.0.0.1:39539", ("127.0.0.1", 39539)),
    (":39540", ("127.0.0.1", 39540)),
    ("39541", ("127.0.0.1", 39541)),
    ("[::1]:39539", ("::1", 39539)),
])
def test_vmc_address_parsing(text, expect):
    assert parse_host_port(text) == expect


@pytest.mark.parametrize("text", ["localhost:", "host:port", "127.0.0.1:70000", "", "1.2.3.4:0"])
def test_vmc_address_errors(text):
    with pytest.raises(VmcError, match="--vmc expects HOST:PORT"):
        parse_host_port(text)


def test_vmc_unresolvable_host():
    with pytest.raises(VmcError, match="cannot resolve host"):
        VmcSender("no-such-host.invalid", 39539)


def test_vmc_free_port_helper_is_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with VmcSender("127.0.0.1", port) as vmc:
        assert not vmc.remote
