"""VMC protocol output: the rig's bones as OSC over UDP, for VSeeFace-style receivers and the VMC
plugins for Unity (EVMC4U), Unreal (VMC4UE) and Blender (VMC4B).

posestream acts as a VMC *Performer* sending to a *Marionette* (default port 39539). Every frame
is one OSC bundle (time tag "immediately") holding, in this order:

* ``/VMC/Ext/OK (int)loaded (int)calibration state (int)calibration mode (int)tracking status``:
  ``1 3 0 1`` while a person is tracked, ``1 3 0 0`` when nobody is in view (the avatar keeps
  its last pose);
* ``/VMC/Ext/T (float)time``: seconds since the sender started;
* ``/VMC/Ext/Root/Pos (string)"root" (float)p.x p.y p.z q.x q.y q.z q.w``: the avatar root, at the
  origin, unrotated;
* ``/VMC/Ext/Bone/Pos (string)name (float)p.x p.y p.z q.x q.y q.z q.w`` for each of the 19
  humanoid bones (``engines.skeleton.HUMANOID_BONES``, VRM / Unity ``HumanBodyBones`` names): the
  bone's local position and local rotation. Hips' position is the pelvis; the others are the
  person's bone offsets.

Axes: Unity's, left-handed, y up, metres: the rig frame with x negated (``(-x, y, z)``,
quaternion ``(x, -y, -z, w)``), so the T-pose rest (every rotation identity) faces +Z with the
left arm along -X, as a normalised VRM avatar does. The origin is the real camera, which looks
along -Z: a scene camera at the origin turned 180 degrees about Y sees the avatar as the real
camera saw the person.

One person drives the avatar: the lowest person id in view. The OSC packets are written by a
small encoder here (python-osc builds a 21-message bundle in several hundred microseconds, more
than the whole rig budget); the tests parse them with python-osc, an independent implementation.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from typing import Self

import numpy as np

from engines.skeleton import HUMANOID_BONES

__all__ = ["DEFAULT_VMC_PORT", "VmcError", "VmcSender", "parse_host_port", "rig_to_unity"]

DEFAULT_VMC_PORT = 39539
_UNITY = np.array([-1.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0])  # (p, q) rig -> Unity: x mirrored


class VmcError(ValueError):
    """A bad ``--vmc`` address, or a host that cannot be reached."""


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) or ``:PORT`` / ``PORT`` for loopback, checked; one-sentence errors."""
    raw = str(text).strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = "", raw
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise VmcError(f"--vmc expects HOST:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:{DEFAULT_VMC_PORT}), "
                       f"got {raw!r}")
    return host, int(port)


def _pad(b: bytes) -> bytes:
    """OSC string: NUL-terminated, padded with NULs to a multiple of 4 bytes."""
    return b + b"\0" * (4 - len(b) % 4)


def _message(address: str, tags: str, *args) -> bytes:
    out = [_pad(address.encode()), _pad(("," + tags).encode())]
    for tag, value in zip(tags, args):
        out.append(_pad(value.encode()) if tag == "s" else struct.pack(">i" if tag == "i" else ">f", value))
    return b"".join(out)


_BONE_PREFIX = [_pad(b"/VMC/Ext/Bone/Pos") + _pad(b",sfffffff") + _pad(n.encode()) for n in HUMANOID_BONES]
_ROOT = _message("/VMC/Ext/Root/Pos", "sfffffff", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
_OK = {tracked: _message("/VMC/Ext/OK", "iiii", 1, 3, 0, int(tracked)) for tracked in (False, True)}
_BUNDLE_HEAD = b"#bundle\0" + struct.pack(">Q", 1)  # time tag 1: immediately


def rig_to_unity(rows: np.ndarray) -> np.ndarray:
    """Rig rows (..., R, 7) in the rig frame -> Unity's axes (x mirrored: p (-x, y, z), q (x, -y, -z, w))."""
    return np.asarray(rows, dtype=np.float64) * _UNITY


class VmcSender:
    """Sends one VMC bundle per frame to ``host:port`` over UDP (never blocks the pipeline).

    ``host`` defaults to loopback; any other address is used only because it was given
    explicitly (``--vmc 192.168.1.20:39539``), like the ZeroMQ publisher's ``--bind``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_VMC_PORT) -> None:
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (socket.gaierror, UnicodeError) as exc:
            raise VmcError(f"--vmc: cannot resolve host {host!r} ({exc.strerror if hasattr(exc, 'strerror') else exc})"
                           ) from None
        self.address = info[4][:2]
        self.remote = not ipaddress.ip_address(self.address[0]).is_loopback
        self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._t0 = time.monotonic_ns()
        self.sent = 0
        self.dropped = 0

    def bundle(self, rig, t_ns: int | None = None) -> bytes:
        """The OSC bundle for one frame: ``rig`` is a ``realtime.rig.RigFrame`` (or None / empty:
        nobody in view, only OK and T are sent)."""
        t = ((time.monotonic_ns() if t_ns is None else t_ns) - self._t0) / 1e9
        msgs = [_OK[rig is not None and len(rig.ids) > 0], _message("/VMC/Ext/T", "f", t)]
        if rig is not None and len(rig.ids):
            k = int(np.argmin(rig.ids))
            unity = rig_to_unity(rig.rows[k, : len(HUMANOID_BONES)])
            msgs.append(_ROOT)
            packed = struct.pack(f">{unity.size}f", *unity.ravel().tolist())
            for b, prefix in enumerate(_BONE_PREFIX):
                msgs.append(prefix + packed[28 * b: 28 * b + 28])
        return _BUNDLE_HEAD + b"".join(struct.pack(">i", len(m)) + m for m in msgs)

    def send(self, rig, t_ns: int | None = None) -> None:
        """Send one frame's bundle; a full socket buffer drops it (counted), never blocks."""
        try:
            self._sock.sendto(self.bundle(rig, t_ns), self.address)
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
        except OSError:  # e.g. ICMP port unreachable reported on a later send: nobody listening yet
            self.dropped += 1
        else:
            self.sent += 1

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
