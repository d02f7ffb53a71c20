"""ZeroMQ publisher for 3D poses (wire protocol v1, see ``realtime.protocol``).

The publisher is the last stage of the pipeline and must never hold it up: a subscriber that is
slow, stalled or absent costs nothing. Three things make sure of that:

* the PUB socket's send high-water mark is small (``sndhwm``, 4 messages by default), and a PUB
  socket silently drops messages for a subscriber whose queue is full instead of blocking;
* every send is ``zmq.NOBLOCK``; should libzmq ever answer EAGAIN the message is dropped and
  counted in :attr:`Publisher.dropped` (a gap in ``seq`` tells subscribers a message was lost);
* linger is 0, so closing never waits for unsent messages.

Optional CURVE encryption: give the server key pair (``zmq.curve_keypair()``) and the socket
becomes a CURVE server; add ``authorized_clients`` (client public keys) to accept only those
clients, checked by a ZAP handler (``zmq.auth.thread.ThreadAuthenticator``).
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq
from zmq.utils import z85

from realtime.protocol import STAGE_TIMESTAMPS, ProtocolError, _encode, make_header
from realtime.sockets import SocketOwner

__all__ = ["DEFAULT_ENDPOINT", "Publisher", "PublisherError"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


class PublisherError(OSError):
    """The publisher cannot bind, is misconfigured, or was used after close."""


def _z85_key(key: bytes | str, what: str) -> bytes:
    """A CURVE key as 40 Z85 characters (accepts Z85 text or 32 raw bytes)."""
    if isinstance(key, str):
        key = key.encode("ascii") if key.isascii() else b""
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return z85.encode(bytes(key))
    if isinstance(key, (bytes, bytearray)) and len(key) == 40:
        try:
            z85.decode(bytes(key))
        except (ValueError, KeyError, IndexError):
            pass
        else:
            return bytes(key)
    raise PublisherError(f"{what} must be a CURVE key: 40 Z85 characters or 32 raw bytes (see zmq.curve_keypair())")


def _port_of(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[-1] if ":" in endpoint else endpoint


class _AllowList:
    """ZAP credentials provider: accept exactly the given client public keys (Z85)."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = frozenset(keys)

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class Publisher(SocketOwner):
    """Publish poses on a ZeroMQ PUB socket; never blocks the caller.

    ``endpoint`` is a ZeroMQ bind address (``tcp://127.0.0.1:5556``, ``tcp://*:5556`` for every
    interface, ``tcp://127.0.0.1:*`` for a free port, ``ipc:///tmp/pose.sock``); the address
    actually bound is :attr:`endpoint`.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        sndhwm: int = 4,
        curve_secret_key: bytes | None = None,
        curve_public_key: bytes | None = None,
        authorized_clients: list[bytes] | None = None,
        source: dict | None = None,
    ) -> None:
        if sndhwm < 1:
            raise PublisherError(f"sndhwm must be at least 1 message, got {sndhwm}")
        if curve_secret_key is None and (curve_public_key is not None or authorized_clients):
            raise PublisherError("CURVE needs the server's secret key (curve_secret_key) as well")
        self.source: dict = dict(source or {})
        try:
            json.dumps(self.source, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PublisherError(f"source must be a JSON object of plain values ({exc})") from None
        self.sent = 0
        self.dropped = 0
        self._seq = 0
        self._auth = None
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.SNDHWM, int(sndhwm))
            if curve_secret_key is not None:
                self._setup_curve(curve_secret_key, curve_public_key, authorized_clients)
            self._bind(endpoint)
            self.endpoint: str = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            self.close()
            raise

    # --- setup ----------------------------------------------------------------------------------

    def _setup_curve(self, secret: bytes, public: bytes | None, clients: list[bytes] | None) -> None:
        if not zmq.has("curve"):
            raise PublisherError("this libzmq was built without CURVE support; encryption is unavailable")
        secret_z85 = _z85_key(secret, "curve_secret_key")
        if public is not None:
            public_z85 = _z85_key(public, "curve_public_key")
            if zmq.curve_public(secret_z85) != public_z85:
                raise PublisherError("curve_public_key does not belong to curve_secret_key")
        if clients:
            from zmq.auth.thread import ThreadAuthenticator

            keys = [_z85_key(k, f"authorized_clients[{i}]") for i, k in enumerate(clients)]
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve_callback("*", credentials_provider=_AllowList(keys))
        self._sock.setsockopt(zmq.CURVE_SERVER, 1)
        self._sock.setsockopt(zmq.CURVE_SECRETKEY, secret_z85)

    def _bind(self, endpoint: str) -> None:
        port = _port_of(endpoint)
        if endpoint.startswith("tcp://") and port != "*" and not (port.isdigit() and int(port) <= 65535):
            raise PublisherError(f"cannot bind {endpoint!r}: the port must be a number from 0 to 65535 or '*'")
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            if exc.errno == errno.EADDRINUSE:
                msg = f"port {port} is already in use (another posestream running?); pick another with --bind"
            else:
                msg = (
                    f"cannot bind {endpoint!r} ({zmq.strerror(exc.errno)}); "
                    "use e.g. tcp://127.0.0.1:5556 or ipc:///tmp/posestream.sock"
                )
            err = PublisherError(msg)
            err.errno = exc.errno
            raise err from None

    # --- sending --------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The ``seq`` the next message will carry (messages produced so far, dropped ones included)."""
        return self._seq

    def send(
        self,
        joints: np.ndarray,
        *,
        frame: int,
        timestamps: Mapping[str, int | None],
        persons: list[dict],
        rig: np.ndarray | None = None,
        frame_of_reference: str = "camera",
        world_from_camera: list[list[float]] | None = None,
        world: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Publish joints (P, 17, 3) metres, in ``frame_of_reference``, with one ``persons`` entry per row.

        In the camera frame the message is protocol v1, or v2 (a fourth frame) with ``rig`` rows
        (P, R, 7) (``realtime.rig``); in the world frame it is v3 (a fourth frame with ``rig``).
        ``world_from_camera`` (4x4) and ``world`` (``realtime.world.WorldTransform.describe``) go
        into the header as they are (null when None).

        ``timestamps`` holds the stage times (``t_capture_ns``, ``t_detect_start_ns``,
        ``t_detect_end_ns``, ``t_lift_end_ns``; missing ones are sent as null); ``t_publish_ns``
        is stamped here. Nobody in view: pass ``np.empty((0, 17, 3))`` and ``persons=[]``.
        Returns the header (sent, or counted in :attr:`dropped` if libzmq refused it).
        Raises ``ProtocolError`` for malformed input and :class:`PublisherError` after close.
        """
        if self._sock is None or self._sock.closed:
            raise PublisherError("the publisher is closed")
        stamps = {k: v for k, v in timestamps.items() if k != "t_publish_ns"}
        unknown = set(stamps) - set(STAGE_TIMESTAMPS)
        if unknown:
            raise ProtocolError(f"unknown timestamp key(s) {', '.join(sorted(unknown))}; known: {', '.join(STAGE_TIMESTAMPS)}")
        header = make_header(seq=self._seq, frame=frame, persons=persons, timestamps=stamps, source=self.source,
                             rig=rig is not None, frame_of_reference=frame_of_reference,
                             world_from_camera=world_from_camera, world=world)
        # make_header built and checked every field, so skip validate_header's second pass; the
        # publish stamp is taken after the JSON is written: only a string join and the send follow
        frames = _encode(header, joints, len(header["persons"]), header["shape"][1], rig, stamp=time.monotonic_ns)
        self._seq += 1
        try:
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=True)
        except zmq.Again:
            self.dropped += 1
        else:
            self.sent += 1
        return header

    # --- lifetime -------------------------------------------------------------------------------

    def _close_extra(self) -> None:
        auth, self._auth = getattr(self, "_auth", None), None
        if auth is not None:
            auth.stop()
