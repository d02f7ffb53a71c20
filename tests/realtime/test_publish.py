"""Publisher and Subscriber over real ZeroMQ sockets on free local ports."""

from __future__ import annotations

import socket
import sys
import time

import numpy as np
import pytest
import zmq

from engines.skeleton import CANONICAL
from realtime.client import PoseMessage, Subscriber, SubscriberError
from realtime.protocol import TIMESTAMP_KEYS, ProtocolError, decode
from realtime.publish import Publisher, PublisherError

J = CANONICAL.num_joints
ANY_PORT = "tcp://127.0.0.1:*"  # ZeroMQ binds a free port; Publisher.endpoint says which
EMPTY = np.empty((0, J, 3), dtype=np.float32)


# --- helpers (also used by test_c_client.py) -----------------------------------------------------


def free_tcp_port() -> int:
    """A port the OS just handed out for port 0 (free now; bind it soon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def persons_for(p: int, first_id: int = 0) -> list[dict]:
    return [{"id": first_id + i, "confidence": 0.5 + 0.1 * i, "joint_confidence": [0.9] * J} for i in range(p)]


def sync(pub: Publisher, recv, timeout_s: float = 10.0) -> None:
    """Send empty frames until ``recv(timeout_ms)`` gets one (ZeroMQ's slow joiner), then drain."""
    deadline = time.monotonic() + timeout_s
    while True:
        pub.send(EMPTY, frame=0, timestamps={}, persons=[])
        if recv(20) is not None:
            break
        if time.monotonic() > deadline:
            raise AssertionError("subscriber never received a message")
    while recv(50) is not None:
        pass


def raw_recv(sock: zmq.Socket):
    def recv(timeout_ms: int):
        return sock.recv_multipart() if sock.poll(timeout_ms) else None

    return recv


@pytest.fixture
def pub():
    with Publisher(ANY_PORT, source={"kind": "test"}) as p:
        yield p


# --- receive and validate ------------------------------------------------------------------------


def test_subscriber_receives_validated_messages(pub):
    with Subscriber(pub.endpoint) as sub:
        sync(pub, sub.recv)
        rng = np.random.default_rng(0)
        sent = []
        for i in range(20):
            p = i % 4  # includes frames with nobody in view
            joints = rng.normal(size=(p, J, 3)).astype(np.float32)
            t0 = time.monotonic_ns()
            stamps = {"t_capture_ns": t0, "t_detect_start_ns": t0 + 1, "t_detect_end_ns": t0 + 2}
            header = pub.send(joints, frame=100 + i, timestamps=stamps, persons=persons_for(p, first_id=10))
            sent.append((header, joints))
            time.sleep(0.002)  # paced like a video stream: a burst beyond sndhwm=4 is dropped
        got = [sub.recv(timeout_ms=2000) for _ in sent]
    assert all(isinstance(m, PoseMessage) for m in got)
    for (header, joints), msg in zip(sent, got):
        assert msg.header == header
        np.testing.assert_array_equal(msg.joints, joints)
        assert msg.joints.dtype == np.float32 and msg.joints.shape == (len(header["persons"]), J, 3)
        assert msg.frame == header["frame"] and msg.persons == header["persons"]
        assert msg.header["t_lift_end_ns"] is None and msg.header["source"] == {"kind": "test"}
        assert msg.latency_ns == header["t_publish_ns"] - header["t_capture_ns"] >= 0
        assert msg.recv_ns >= header["t_publish_ns"]  # same host: one monotonic clock
    seqs = [m.seq for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_send_returns_the_header_with_seq_and_publish_time(pub):
    before = time.monotonic_ns()
    h0 = pub.send(EMPTY, frame=5, timestamps={"t_capture_ns": before}, persons=[])
    h1 = pub.send(np.zeros((1, J, 3)), frame=6, timestamps={}, persons=persons_for(1))
    after = time.monotonic_ns()
    assert (h0["seq"], h1["seq"], pub.seq) == (0, 1, 2)
    assert before <= h0["t_publish_ns"] <= h1["t_publish_ns"] <= after
    assert h0["persons"] == [] and h0["shape"] == [0, J, 3]
    assert all(h1[k] is None for k in TIMESTAMP_KEYS if k != "t_publish_ns")
    assert pub.sent == 2 and pub.dropped == 0  # no subscriber: PUB discards, nothing blocks


def test_send_rejects_malformed_input_without_consuming_a_seq(pub):
    with pytest.raises(ProtocolError, match="lists|shaped"):
        pub.send(np.zeros((2, J, 3)), frame=0, timestamps={}, persons=persons_for(1))
    bad = np.zeros((1, J, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ProtocolError, match="non-finite"):
        pub.send(bad, frame=0, timestamps={}, persons=persons_for(1))
    with pytest.raises(ProtocolError, match="unknown timestamp key"):
        pub.send(EMPTY, frame=0, timestamps={"t_capture": 1}, persons=[])
    assert pub.seq == 0 and pub.sent == 0


def test_ipc_endpoint(tmp_path):
    if sys.platform == "win32":
        pytest.skip("ipc:// needs Unix domain sockets")
    endpoint = f"ipc://{tmp_path / 'pose.sock'}"
    with Publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        assert pub.endpoint == endpoint
        sync(pub, sub.recv)
        pub.send(np.ones((1, J, 3)), frame=1, timestamps={}, persons=persons_for(1))
        msg = sub.recv(timeout_ms=2000)
    assert msg is not None and msg.frame == 1 and float(msg.joints.sum()) == 3 * J


def test_recv_times_out_and_iterates(pub):
    with Subscriber(pub.endpoint) as sub:
        t = time.monotonic()
        assert sub.recv(timeout_ms=50) is None
        assert time.monotonic() - t < 5.0
        sync(pub, sub.recv)
        for i in range(3):
            pub.send(EMPTY, frame=i, timestamps={}, persons=[])
        frames = [msg.frame for _, msg in zip(range(3), sub)]  # range first: zip stops before a 4th recv
    assert frames == [0, 1, 2]


# --- errors --------------------------------------------------------------------------------------


def test_port_in_use_raises_publisher_error():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PublisherError) as info:
            Publisher(f"tcp://127.0.0.1:{port}")
    msg = str(info.value)
    assert msg == f"port {port} is already in use (another posestream running?); pick another with --bind"
    assert isinstance(info.value, OSError)


def test_second_publisher_on_the_same_port_fails(pub):
    with pytest.raises(PublisherError, match="is already in use"):
        Publisher(pub.endpoint)


@pytest.mark.parametrize(
    "endpoint,message",
    [
        ("tcp://127.0.0.1:99999", "port must be a number from 0 to 65535"),
        ("tcp://127.0.0.1:abc", "port must be a number"),
        ("bogus://somewhere", "cannot bind 'bogus://somewhere'"),
        ("127.0.0.1:5556", "cannot bind '127.0.0.1:5556'"),
    ],
)
def test_bad_endpoint_raises_publisher_error(endpoint, message):
    with pytest.raises(PublisherError, match=message):
        Publisher(endpoint)


def test_bad_settings_raise_publisher_error():
    with pytest.raises(PublisherError, match="source must be a JSON object"):
        Publisher(ANY_PORT, source={"camera": object()})
    with pytest.raises(PublisherError, match="sndhwm must be at least 1"):
        Publisher(ANY_PORT, sndhwm=0)


def test_bad_subscriber_endpoint_raises():
    with pytest.raises(SubscriberError, match="cannot connect to 'bogus://x'"):
        Subscriber("bogus://x")


def test_closed_publisher_and_subscriber():
    pub = Publisher(ANY_PORT)
    endpoint = pub.endpoint
    pub.close()
    pub.close()  # idempotent
    assert pub.closed
    with pytest.raises(PublisherError, match="closed"):
        pub.send(EMPTY, frame=0, timestamps={}, persons=[])
    with Publisher(endpoint):  # the port is free again at once (linger 0)
        pass
    with Subscriber(endpoint) as sub:
        pass
    assert sub.closed
    with pytest.raises(SubscriberError, match="closed"):
        sub.recv(0)


# --- never blocking ------------------------------------------------------------------------------


def test_stalled_subscriber_never_blocks_send(pub):
    """A subscriber that stops reading costs the publisher nothing: HWMs drop, send returns."""
    ctx = zmq.Context()
    stalled = ctx.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.RCVBUF, 64 * 1024)
    stalled.setsockopt(zmq.LINGER, 0)
    stalled.setsockopt(zmq.SUBSCRIBE, b"pose")
    stalled.connect(pub.endpoint)
    try:
        sync(pub, raw_recv(stalled))
        n = 10_000
        joints = np.random.default_rng(1).normal(size=(8, J, 3)).astype(np.float32)
        persons = persons_for(8)
        first = pub.seq
        t = time.monotonic()
        for i in range(n):  # the subscriber reads nothing meanwhile
            pub.send(joints, frame=i, timestamps={"t_capture_ns": time.monotonic_ns()}, persons=persons)
        elapsed = time.monotonic() - t
        assert elapsed < 20.0, f"10,000 sends took {elapsed:.1f} s"  # generous: ~0.5 s seen here
        assert pub.seq - first == n
        assert pub.sent + pub.dropped >= n
        # what the stalled subscriber can still read is what the HWMs and socket buffers held
        got = []
        while stalled.poll(200):
            got.append(decode(stalled.recv_multipart())[0]["seq"])
        got = [s for s in got if s >= first]
        assert len(got) < n, "nothing was dropped although the subscriber never read"
        assert got == sorted(got)
    finally:
        stalled.close(linger=0)
        ctx.term()


def test_absent_subscriber_never_blocks_send():
    with Publisher(ANY_PORT) as pub:
        joints = np.zeros((1, J, 3), dtype=np.float32)
        t = time.monotonic()
        for i in range(10_000):
            pub.send(joints, frame=i, timestamps={}, persons=persons_for(1))
        assert time.monotonic() - t < 20.0
        assert pub.seq == 10_000


def test_latest_only_returns_the_newest(pub):
    """A consumer that paused gets the newest message, not the oldest queued one."""
    with Subscriber(pub.endpoint, latest_only=True) as sub:
        sync(pub, sub.recv)
        n = 60
        for i in range(n):  # the consumer is busy elsewhere meanwhile
            pub.send(np.full((1, J, 3), float(i)), frame=i, timestamps={}, persons=persons_for(1))
            time.sleep(0.002)
        last = pub.seq - 1
        time.sleep(0.3)  # let everything arrive and queue up
        msg = sub.recv(timeout_ms=2000)
        assert msg is not None
        assert msg.seq == last and msg.frame == n - 1 and float(msg.joints[0, 0, 0]) == n - 1
        assert sub.skipped >= n - 10
        assert sub.recv(timeout_ms=50) is None  # nothing older comes afterwards
        pub.send(EMPTY, frame=n, timestamps={}, persons=[])
        assert sub.recv(timeout_ms=2000).frame == n


def test_without_latest_only_every_message_arrives_in_order(pub):
    with Subscriber(pub.endpoint) as sub:
        sync(pub, sub.recv)
        for i in range(3):
            pub.send(EMPTY, frame=i, timestamps={}, persons=[])
        time.sleep(0.1)
        assert [sub.recv(2000).frame for _ in range(3)] == [0, 1, 2]


# --- CURVE ---------------------------------------------------------------------------------------

needs_curve = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")


def _collect(pub: Publisher, subs: dict[str, Subscriber], until: str, count: int, timeout_s: float = 10.0):
    """Publish until subs[until] has ``count`` messages (then 0.3 s more); messages per subscriber."""
    got = {name: [] for name in subs}
    deadline = time.monotonic() + timeout_s
    extra_until = None
    while time.monotonic() < deadline:
        pub.send(np.ones((1, J, 3)), frame=pub.seq, timestamps={}, persons=persons_for(1))
        for name, sub in subs.items():
            msg = sub.recv(timeout_ms=5)
            if msg is not None:
                got[name].append(msg)
        if extra_until is None and len(got[until]) >= count:
            extra_until = time.monotonic() + 0.3
        if extra_until is not None and time.monotonic() > extra_until:
            break
    return got


@needs_curve
def test_curve_authorized_client_receives_unauthorized_does_not():
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    other_public, other_secret = zmq.curve_keypair()
    with Publisher(
        ANY_PORT,
        curve_secret_key=server_secret,
        curve_public_key=server_public,
        authorized_clients=[client_public],
    ) as pub:
        subs = {
            "authorized": Subscriber(pub.endpoint, curve_server_key=server_public, curve_keypair=(client_public, client_secret)),
            "unlisted": Subscriber(pub.endpoint, curve_server_key=server_public, curve_keypair=(other_public, other_secret)),
            "wrong_server_key": Subscriber(
                pub.endpoint, curve_server_key=other_public, curve_keypair=(client_public, client_secret)
            ),
            "plaintext": Subscriber(pub.endpoint),
        }
        try:
            got = _collect(pub, subs, until="authorized", count=5)
        finally:
            for s in subs.values():
                s.close()
    assert len(got["authorized"]) >= 5
    assert got["authorized"][0].joints.shape == (1, J, 3)
    assert got["unlisted"] == [] and got["wrong_server_key"] == [] and got["plaintext"] == []


@needs_curve
def test_curve_without_allow_list_admits_any_client_that_knows_the_server_key():
    server_public, server_secret = zmq.curve_keypair()
    with Publisher(ANY_PORT, curve_secret_key=server_secret) as pub:
        subs = {"keyed": Subscriber(pub.endpoint, curve_server_key=server_public), "plaintext": Subscriber(pub.endpoint)}
        try:
            got = _collect(pub, subs, until="keyed", count=3)
        finally:
            for s in subs.values():
                s.close()
    assert len(got["keyed"]) >= 3 and got["plaintext"] == []


@needs_curve
def test_curve_accepts_raw_32_byte_keys():
    from zmq.utils import z85

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    with Publisher(
        ANY_PORT, curve_secret_key=z85.decode(server_secret), authorized_clients=[z85.decode(client_public)]
    ) as pub:
        sub = Subscriber(pub.endpoint, curve_server_key=z85.decode(server_public), curve_keypair=(client_public, client_secret))
        try:
            got = _collect(pub, {"sub": sub}, until="sub", count=2)
        finally:
            sub.close()
    assert len(got["sub"]) >= 2


@needs_curve
def test_curve_configuration_errors():
    server_public, server_secret = zmq.curve_keypair()
    other_public, _ = zmq.curve_keypair()
    with pytest.raises(PublisherError, match="needs the server's secret key"):
        Publisher(ANY_PORT, curve_public_key=server_public)
    with pytest.raises(PublisherError, match="needs the server's secret key"):
        Publisher(ANY_PORT, authorized_clients=[other_public])
    with pytest.raises(PublisherError, match="does not belong to curve_secret_key"):
        Publisher(ANY_PORT, curve_secret_key=server_secret, curve_public_key=other_public)
    with pytest.raises(PublisherError, match="must be a CURVE key"):
        Publisher(ANY_PORT, curve_secret_key=b"too short")
    with pytest.raises(PublisherError, match="authorized_clients\\[1\\] must be a CURVE key"):
        Publisher(ANY_PORT, curve_secret_key=server_secret, authorized_clients=[other_public, b"~" * 40])
    with pytest.raises(SubscriberError, match="needs the publisher's public key"):
        Subscriber("tcp://127.0.0.1:5556", curve_keypair=zmq.curve_keypair())
    with pytest.raises(SubscriberError, match="must be 40 Z85 characters"):
        Subscriber("tcp://127.0.0.1:5556", curve_server_key=b"short")
