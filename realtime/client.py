"""Python client for the pose stream: a ZeroMQ SUB socket that yields validated messages.

    from realtime.client import Subscriber

    with Subscriber("tcp://127.0.0.1:5556", latest_only=True) as sub:
        for msg in sub:
            print(msg.seq, msg.joints.shape, msg.latency_ns)

Each :class:`PoseMessage` holds the decoded header and the joints (P, 17, 3) float32, metres,
camera frame (x right, y down, z forward), and for a protocol v2 stream (``--rotations``) the rig
rows (P, R, 7): per node its local offset and local rotation quaternion (x, y, z, w); feed them to
``realtime.rig.forward_kinematics`` or to your engine's bones. ``latest_only`` is for consumers that render the
present (a game loop, a viewer): every ``recv`` drains what is queued and returns only the
newest message, so a consumer that falls behind catches up instead of replaying old frames.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import zmq

from realtime.protocol import TOPIC, decode
from realtime.sockets import SocketOwner

__all__ = ["DEFAULT_ENDPOINT", "PoseMessage", "Subscriber", "SubscriberError"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"
_RCVHWM = 1000  # messages (libzmq's default): ~30 s of a 30 fps stream, ~4 MB for 8 persons


class SubscriberError(OSError):
    """The subscriber cannot connect (bad endpoint, bad CURVE keys) or was used after close."""


@dataclass
class PoseMessage:
    """One received pose message (protocol v1, or v2 with the rig)."""

    header: dict
    joints: np.ndarray  # (P, 17, 3) float32, metres, camera frame
    recv_ns: int = 0  # time.monotonic_ns() when the message came off the socket
    rig: np.ndarray | None = None  # v2: (P, R, 7) float32 per rig node: offset xyz, quaternion xyzw

    @property
    def rig_nodes(self) -> list[str]:
        """Names of the rig's nodes (v2), in the order of :attr:`rig`'s second axis; [] for v1."""
        return self.header.get("rig_nodes", [])

    @property
    def seq(self) -> int:
        """Publisher message counter; a gap means messages were dropped on the way."""
        return self.header["seq"]

    @property
    def frame(self) -> int:
        """Index of the source video frame the poses come from."""
        return self.header["frame"]

    @property
    def persons(self) -> list[dict]:
        """One ``{"id", "confidence", "joint_confidence"}`` per row of :attr:`joints`."""
        return self.header["persons"]

    @property
    def latency_ns(self) -> int | None:
        """Capture to publish on the publishing host (``t_publish_ns - t_capture_ns``), or None."""
        t0, t1 = self.header.get("t_capture_ns"), self.header.get("t_publish_ns")
        return None if t0 is None or t1 is None else t1 - t0


class Subscriber(SocketOwner):
    """Subscribe to a posestream publisher.

    ``curve_server_key`` is the publisher's CURVE public key; ``curve_keypair`` is this client's
    ``(public, secret)`` pair (``zmq.curve_keypair()``), needed when the publisher only admits
    listed clients. With a server key and no pair, a throwaway pair is generated.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        latest_only: bool = False,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        if curve_keypair is not None and curve_server_key is None:
            raise SubscriberError("a CURVE client key pair needs the publisher's public key (curve_server_key) too")
        self.latest_only = latest_only
        self.received = 0
        self.skipped = 0  # older messages discarded by latest_only
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            # latest_only keeps a *large* receive queue on purpose: when a ZeroMQ queue is full,
            # the newest messages are the ones dropped, so a small RCVHWM would leave a consumer
            # that paused with only stale messages. Draining a long queue is cheap (no decoding).
            self._sock.setsockopt(zmq.RCVHWM, _RCVHWM)
            if curve_server_key is not None:
                if not zmq.has("curve"):
                    raise SubscriberError("this libzmq was built without CURVE support; encryption is unavailable")
                public, secret = curve_keypair if curve_keypair is not None else zmq.curve_keypair()
                try:
                    self._sock.setsockopt(zmq.CURVE_SERVERKEY, curve_server_key)
                    self._sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
                    self._sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
                except zmq.ZMQError:
                    raise SubscriberError(
                        "CURVE keys must be 40 Z85 characters or 32 raw bytes (see zmq.curve_keypair())"
                    ) from None
            self._sock.setsockopt(zmq.SUBSCRIBE, TOPIC)
            try:
                self._sock.connect(endpoint)
            except zmq.ZMQError as exc:
                raise SubscriberError(
                    f"cannot connect to {endpoint!r} ({zmq.strerror(exc.errno)}); use e.g. tcp://127.0.0.1:5556"
                ) from None
            self.endpoint = endpoint
        except BaseException:
            self.close()
            raise

    def recv(self, timeout_ms: int | None = None) -> PoseMessage | None:
        """The next message (the newest queued one with ``latest_only``), or None on timeout.

        ``timeout_ms=None`` waits for ever. Raises ``realtime.protocol.ProtocolError`` for a
        message that breaks the protocol (older messages skipped by ``latest_only`` are not
        decoded).
        """
        if self._sock is None:
            raise SubscriberError("the subscriber is closed")
        if not self._sock.poll(-1 if timeout_ms is None else max(int(timeout_ms), 0), zmq.POLLIN):
            return None
        frames = self._sock.recv_multipart(zmq.NOBLOCK)
        recv_ns = time.monotonic_ns()
        if self.latest_only:
            while True:
                try:
                    newer = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                frames, recv_ns = newer, time.monotonic_ns()
                self.skipped += 1
        header, joints, rig = decode(frames, with_rig=True)
        self.received += 1
        return PoseMessage(header=header, joints=joints, recv_ns=recv_ns, rig=rig)

    def __iter__(self) -> Iterator[PoseMessage]:
        """Messages for ever (blocking), until the subscriber is closed."""
        while self._sock is not None:
            msg = self.recv()
            if msg is not None:
                yield msg
