"""posestream wire protocol v1, v2 (v1 plus bone rotations) and v3 (the world frame): one 3D pose message on ZeroMQ.

A message is three ZeroMQ frames (``docs/protocol.md`` is the full specification, written so a
client can be built from it alone):

1. topic: the ASCII bytes ``pose`` (subscribers filter on this prefix);
2. header: a UTF-8 JSON object (version, counters, timestamps, shape, joint names, persons);
3. payload: ``persons * joints * 3`` little-endian float32, row-major, shaped ``(P, J, 3)``.

Version 2 (sent only when a stream is asked for rotations, ``realtime run --rotations``) adds a
fourth frame, the humanoid rig (``realtime.rig``): ``persons * nodes * 7`` little-endian float32
shaped ``(P, R, 7)``, per node its local offset xyz (metres) and local rotation quaternion
(x, y, z, w), described by the header keys in :data:`RIG_KEYS`. Everything else is as in v1.

Coordinates in v1 and v2 are metres in the camera frame, x right, y down, z forward; every joint,
the pelvis (joint 0) included, is an absolute position in that frame. Version 3 has the same
frames (a fourth, the rig, when the header has ``rig_shape``) in the world frame of
``realtime.world``: y up, the floor at y = 0, the origin on the floor below the camera. Every
header, whatever its version, carries ``world_from_camera`` (the 4x4 row-major matrix with
``p_world = M [p_cam; 1]``, or null before it is known) and ``world`` (how it was obtained and
how sure it is), so a client can convert either way. A frame with nobody in view is sent
as ``persons = []``, ``shape = [0, 17, 3]`` and an empty payload, never as a repeat of an old
skeleton.

:func:`encode` and :func:`decode` are pure functions (no sockets), so the format can be tested
and reused without ZeroMQ; both validate everything and raise :class:`ProtocolError` with one
sentence saying what is wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from engines.skeleton import CANONICAL

__all__ = [
    "AXES",
    "CONFIDENCE_DECIMALS",
    "DTYPE",
    "FRAME_OF_REFERENCE",
    "FRAMES_OF_REFERENCE",
    "PROTOCOL_VERSION",
    "PROTOCOL_VERSION_RIG",
    "PROTOCOL_VERSION_WORLD",
    "WORLD_AXES",
    "WORLD_ROOT",
    "REQUIRED_KEYS",
    "RIG_KEYS",
    "ROOT",
    "STAGE_TIMESTAMPS",
    "SUPPORTED_VERSIONS",
    "TIMESTAMP_KEYS",
    "TOPIC",
    "UNITS",
    "ProtocolError",
    "decode",
    "encode",
    "has_rig",
    "make_header",
    "validate_header",
]

PROTOCOL_VERSION = 1
"""The version of a plain stream (positions only)."""
PROTOCOL_VERSION_RIG = 2
"""The version of a stream with bone rotations (a fourth frame)."""
PROTOCOL_VERSION_WORLD = 3
"""The version of a world-frame stream (``realtime run --frame world``, the default), with or
without the rig's fourth frame (present when the header has ``rig_shape``)."""
SUPPORTED_VERSIONS = (PROTOCOL_VERSION, PROTOCOL_VERSION_RIG, PROTOCOL_VERSION_WORLD)
TOPIC = b"pose"
DTYPE = "<f4"
UNITS = "m"
FRAME_OF_REFERENCE = "camera"
AXES = "x right, y down, z forward"
ROOT = "joint 0 (pelvis) is the absolute pelvis position in the camera frame; other joints absolute too"
WORLD_AXES = "x right, y up, z backward: y against gravity, -z the camera's forward direction along the floor"
WORLD_ROOT = ("joint 0 (pelvis) is the absolute pelvis position in the world frame (floor at y = 0, origin on the "
              "floor below the camera); other joints absolute too")
FRAMES_OF_REFERENCE = ("camera", "world")
_FRAME_CONSTANTS = {"camera": (AXES, ROOT), "world": (WORLD_AXES, WORLD_ROOT)}

STAGE_TIMESTAMPS = ("t_capture_ns", "t_detect_start_ns", "t_detect_end_ns", "t_lift_end_ns")
"""Pipeline stage times a producer hands to the publisher (``time.monotonic_ns()`` or None)."""
TIMESTAMP_KEYS = STAGE_TIMESTAMPS + ("t_publish_ns",)
"""Every timestamp in a header; ``t_publish_ns`` is stamped by the publisher at send time."""

REQUIRED_KEYS = (
    "v", "seq", "frame", *TIMESTAMP_KEYS, "shape", "dtype", "joints", "parents", "persons",
    "units", "frame_of_reference", "axes", "root", "source",
)  # fmt: skip

WORLD_KEYS = ("world_from_camera", "world")
"""Header keys every message carries from this release on (compatible additions in v1 and v2):
``world_from_camera``, 4 rows of 4 numbers or null; ``world``, an object or null."""

RIG_KEYS = ("rig_shape", "rig_nodes", "rig_parents", "rig")
"""Header keys a v2 message adds: ``rig_shape`` ``[P, R, 7]``, node names and parents, and ``rig``,
an object stating the conventions (quaternion order, axes, rest pose, units)."""

CONFIDENCE_DECIMALS = 3
"""Confidences are rounded to 0.001 in headers: finer steps mean nothing, and short numbers
make the JSON (most of the cost of sending 8 persons) several times cheaper to write."""

_FLOAT_BYTES = 4


class ProtocolError(ValueError):
    """A message (or the parts to build one) that does not follow the wire protocol."""


# --- small type checks ----------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:  # an integer beyond float range
        return False


def _finite_numbers(values: list, n: int) -> bool:
    """True if ``values`` is a list of ``n`` finite JSON numbers (vectorised: runs per message)."""
    if not isinstance(values, list) or len(values) != n:
        return False
    if not all(type(x) is float or type(x) is int for x in values):  # bool is not a number here
        return False
    try:
        return bool(np.isfinite(np.array(values, dtype=np.float64)).all())
    except OverflowError:  # an integer beyond float range
        return False


def _as_int(value: object, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ProtocolError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _as_float(value: object, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ProtocolError(f"{what} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ProtocolError(f"{what} must be finite, got {f}")
    return f


# --- building -------------------------------------------------------------------------------------


def _person(p: Mapping[str, Any], i: int, num_joints: int) -> dict[str, Any]:
    """One person entry with plain JSON types, checked field by field (``_people`` calls this to
    name the problem when its table-at-once path fails)."""
    if not isinstance(p, (dict, Mapping)):
        raise ProtocolError(f"persons[{i}] must be a dict with id, confidence, joint_confidence, got {p!r}")
    for key in ("id", "confidence", "joint_confidence"):
        if key not in p:
            raise ProtocolError(f"persons[{i}] is missing {key!r}")
    jc = p["joint_confidence"]
    try:
        if isinstance(jc, np.ndarray):
            values = np.round(np.asarray(jc, dtype=np.float64), CONFIDENCE_DECIMALS).tolist()
        else:
            values = [round(float(c), CONFIDENCE_DECIMALS) for c in jc]
    except (TypeError, ValueError):
        raise ProtocolError(f"persons[{i}].joint_confidence must hold {num_joints} numbers") from None
    if len(values) != num_joints or (isinstance(jc, np.ndarray) and jc.ndim != 1):
        raise ProtocolError(f"persons[{i}].joint_confidence must hold {num_joints} numbers, got {len(values)}")
    if not all(map(math.isfinite, values)):
        raise ProtocolError(f"persons[{i}].joint_confidence holds a non-finite value")
    out = dict(p)  # keep any extra fields a producer adds (clients ignore unknown keys)
    out["id"] = _as_int(p["id"], f"persons[{i}].id")
    out["confidence"] = round(_as_float(p["confidence"], f"persons[{i}].confidence"), CONFIDENCE_DECIMALS)
    out["joint_confidence"] = values
    return out


def _people(persons: Sequence[Mapping[str, Any]], num_joints: int) -> list[dict[str, Any]]:
    """All person entries, checked and converted; the confidences of all persons are rounded in
    one NumPy call (per-person Python work would dominate the cost of a many-person header)."""
    people = list(persons)
    if not people:
        return []
    try:
        jc = np.array([p["joint_confidence"] for p in people], dtype=np.float64)
        ok = jc.shape == (len(people), num_joints) and bool(np.isfinite(jc).all())
    except (TypeError, ValueError, KeyError, IndexError):
        ok = False
    if not ok:  # the careful per-person path names the first problem
        for i, p in enumerate(people):
            _person(p, i, num_joints)
        raise ProtocolError("persons' joint_confidence values do not form a (persons, joints) table of numbers")
    out = []
    for i, (p, row) in enumerate(zip(people, np.round(jc, CONFIDENCE_DECIMALS).tolist())):
        if not isinstance(p, (dict, Mapping)) or "id" not in p or "confidence" not in p:
            _person(p, i, num_joints)  # raises with the precise reason
        q = dict(p)  # keep any extra fields a producer adds (clients ignore unknown keys)
        q["id"] = _as_int(p["id"], f"persons[{i}].id")
        q["confidence"] = round(_as_float(p["confidence"], f"persons[{i}].confidence"), CONFIDENCE_DECIMALS)
        q["joint_confidence"] = row
        out.append(q)
    return out


def make_header(
    *,
    seq: int,
    frame: int,
    persons: Sequence[Mapping[str, Any]],
    timestamps: Mapping[str, int | None] | None = None,
    t_publish_ns: int | None = None,
    source: Mapping[str, Any] | None = None,
    rig: bool = False,
    frame_of_reference: str = "camera",
    world_from_camera: Sequence[Sequence[float]] | None = None,
    world: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A header with the constant fields filled in: v1 in the camera frame (``rig=True``: v2,
    with the rig keys), v3 with ``frame_of_reference="world"`` (the rig keys with ``rig=True``).

    ``world_from_camera`` (4x4) and ``world`` (an object saying how it was obtained, see
    ``realtime.world.WorldTransform.describe``) go into every header, null when not given.

    ``persons`` has one entry per payload row: ``{"id": int, "confidence": float,
    "joint_confidence": 17 floats}`` (numpy values are converted to plain JSON numbers).
    ``timestamps`` may hold any of :data:`STAGE_TIMESTAMPS` (missing ones become null);
    ``shape`` is ``[len(persons), 17, 3]``.
    """
    stamps = dict(timestamps or {})
    unknown = set(stamps) - set(TIMESTAMP_KEYS)
    if unknown:
        raise ProtocolError(
            f"unknown timestamp key(s) {', '.join(sorted(unknown))}; known: {', '.join(TIMESTAMP_KEYS)}"
        )
    if t_publish_ns is not None:
        stamps["t_publish_ns"] = t_publish_ns
    times = {}
    for key in TIMESTAMP_KEYS:
        value = stamps.get(key)
        times[key] = None if value is None else _as_int(value, key)
    j = CANONICAL.num_joints
    people = _people(persons, j)
    counters = {"seq": _as_int(seq, "seq"), "frame": _as_int(frame, "frame")}
    for key, value in counters.items():
        if value < 0:
            raise ProtocolError(f"{key} must be a non-negative integer, got {value}")
    if frame_of_reference not in FRAMES_OF_REFERENCE:
        raise ProtocolError(f"frame_of_reference must be 'camera' or 'world', got {frame_of_reference!r}")
    world_mode = frame_of_reference == "world"
    header: dict[str, Any] = {
        "v": PROTOCOL_VERSION_WORLD if world_mode else (PROTOCOL_VERSION_RIG if rig else PROTOCOL_VERSION),
        **counters,
        **times,
        "shape": [len(people), j, 3],
        "persons": people,
        "source": dict(source or {}),
        "world_from_camera": _matrix4(world_from_camera),
        "world": None if world is None else dict(world),
        **_constant_fields(frame_of_reference),
    }
    if rig:
        fields = _rig_constants(frame_of_reference)
        header["rig_shape"] = [len(people), len(fields["rig_nodes"]), 7]
        header.update(fields)
    return header


def _matrix4(m: object) -> list[list[float]] | None:
    """``world_from_camera`` as 4 lists of 4 finite floats (or None)."""
    if m is None:
        return None
    try:
        a = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProtocolError("world_from_camera must be a 4x4 matrix of numbers") from None
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise ProtocolError(f"world_from_camera must be a finite 4x4 matrix, got shape {a.shape}")
    return a.tolist()


def has_rig(header: Mapping[str, Any]) -> bool:
    """Whether a (valid) header announces the rig's fourth frame: always in v2, in v3 when it has ``rig_shape``."""
    return header["v"] == PROTOCOL_VERSION_RIG or (header["v"] == PROTOCOL_VERSION_WORLD and "rig_shape" in header)


def _rig_constants(frame_of_reference: str = "camera") -> dict[str, Any]:
    """The rig header fields that are the same in every message (fresh lists each call)."""
    from realtime.rig import (
        NODE_JOINT,
        QUATERNION_ORDER,
        REST_POSE,
        RIG_AXES,
        RIG_NODES,
        RIG_PARENTS,
    )

    return {
        "rig_nodes": list(RIG_NODES),
        "rig_parents": list(RIG_PARENTS),
        "rig": {"quaternion": QUATERNION_ORDER, "product": "Hamilton; a rotation q turns v into q v q*",
                "axes": RIG_AXES if frame_of_reference == "camera" else f"the world frame: {WORLD_AXES}",
                "rest_pose": REST_POSE, "units": UNITS,
                "row": "offset x, offset y, offset z, qx, qy, qz, qw",
                "joints": {name: RIG_NODES[NODE_JOINT.index(name)] for name in CANONICAL.joint_names}},
    }


def _constant_fields(frame_of_reference: str = "camera") -> dict[str, Any]:
    """The header fields that are the same in every message of one frame of reference (fresh lists each call)."""
    axes, root = _FRAME_CONSTANTS[frame_of_reference]
    return {
        "dtype": DTYPE,
        "joints": list(CANONICAL.joint_names),
        "parents": list(CANONICAL.parents),
        "units": UNITS,
        "frame_of_reference": frame_of_reference,
        "axes": axes,
        "root": root,
    }


_CONSTANT_KEYS = frozenset(_constant_fields())
_CONSTANT_JSON = {f: json.dumps(_constant_fields(f), separators=(",", ":"))[1:-1]  # 'k":v,...' without braces
                  for f in FRAMES_OF_REFERENCE}


def _header_json(header: dict) -> str:
    """Compact JSON for a valid header; the constant fields come pre-serialised (a third of the
    encoding time) whenever they hold the values of the header's frame of reference, which
    ``validate_header`` guarantees for all but ``root`` (rig constants: when they equal the defaults)."""
    frame = header["frame_of_reference"]
    if header["root"] != _FRAME_CONSTANTS[frame][1]:
        return json.dumps(header, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    constant = _CONSTANT_JSON[frame]
    skip = _CONSTANT_KEYS
    if has_rig(header):
        rig_json = _rig_json(frame)
        if all(header[k] == v for k, v in rig_json[1].items()):
            constant, skip = f"{constant},{rig_json[0]}", skip | rig_json[1].keys()
    variable = {k: v for k, v in header.items() if k not in skip}
    text = json.dumps(variable, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return f"{text[:-1]},{constant}}}"


_RIG_JSON: dict[str, tuple[str, dict]] = {}


def _rig_json(frame_of_reference: str = "camera") -> tuple[str, dict]:
    if frame_of_reference not in _RIG_JSON:
        fields = _rig_constants(frame_of_reference)
        _RIG_JSON[frame_of_reference] = (json.dumps(fields, separators=(",", ":"))[1:-1], fields)
    return _RIG_JSON[frame_of_reference]


# --- validation -----------------------------------------------------------------------------------


def validate_header(header: object) -> tuple[int, int]:
    """Check a header against v1; return ``(persons, joints)`` from its shape.

    Raises :class:`ProtocolError` naming the first problem found.
    """
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a JSON object, got {type(header).__name__}")
    if "v" not in header:
        raise ProtocolError("header has no protocol version 'v'")
    v = header["v"]
    if not _is_int(v):
        raise ProtocolError(f"header 'v' must be an integer, got {v!r}")
    if v not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"message is protocol version {v}; this code understands versions "
                            f"{', '.join(map(str, SUPPORTED_VERSIONS[:-1]))} and {SUPPORTED_VERSIONS[-1]}")
    missing = [k for k in REQUIRED_KEYS if k not in header]
    if missing:
        raise ProtocolError(f"header is missing required key(s): {', '.join(missing)}")
    for key in ("seq", "frame"):
        if not _is_int(header[key]) or header[key] < 0:
            raise ProtocolError(f"header '{key}' must be a non-negative integer, got {header[key]!r}")
    for key in TIMESTAMP_KEYS:
        if header[key] is not None and not _is_int(header[key]):
            raise ProtocolError(f"header '{key}' must be an integer (monotonic ns) or null, got {header[key]!r}")
    shape = header["shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) for s in shape)):
        raise ProtocolError(f"header 'shape' must be [persons, joints, 3] integers, got {shape!r}")
    p, j, c = shape
    if p < 0 or c != 3 or j != CANONICAL.num_joints:
        raise ProtocolError(f"header 'shape' must be [persons >= 0, {CANONICAL.num_joints}, 3], got {shape}")
    if header["dtype"] != DTYPE:
        raise ProtocolError(f"header 'dtype' must be {DTYPE!r}, got {header['dtype']!r}")
    names = header["joints"]
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ProtocolError(f"header 'joints' must be a list of names, got {names!r}")
    if len(names) != j:
        raise ProtocolError(f"header 'joints' names {len(names)} joints but shape says {j}")
    if tuple(names) != CANONICAL.joint_names:
        raise ProtocolError(f"header 'joints' must be the canonical names in order ({', '.join(CANONICAL.joint_names)})")
    parents = header["parents"]
    if not (isinstance(parents, list) and all(_is_int(q) for q in parents)) or tuple(parents) != CANONICAL.parents:
        raise ProtocolError(f"header 'parents' must be {list(CANONICAL.parents)}, got {parents!r}")
    persons = header["persons"]
    if not isinstance(persons, list):
        raise ProtocolError(f"header 'persons' must be a list, got {type(persons).__name__}")
    if len(persons) != p:
        raise ProtocolError(f"header lists {len(persons)} persons but shape says {p}")
    for i, person in enumerate(persons):
        if not isinstance(person, dict):
            raise ProtocolError(f"persons[{i}] must be an object, got {person!r}")
        if not _is_int(person.get("id")):
            raise ProtocolError(f"persons[{i}].id must be an integer, got {person.get('id')!r}")
        if not _is_number(person.get("confidence")):
            raise ProtocolError(f"persons[{i}].confidence must be a finite number, got {person.get('confidence')!r}")
        if not _finite_numbers(person.get("joint_confidence"), j):
            raise ProtocolError(f"persons[{i}].joint_confidence must be {j} finite numbers")
    frame = "world" if v == PROTOCOL_VERSION_WORLD else "camera"
    for key, want in (("units", UNITS), ("frame_of_reference", frame), ("axes", _FRAME_CONSTANTS[frame][0])):
        if header[key] != want:
            raise ProtocolError(f"header '{key}' must be {want!r} in protocol v{v}, got {header[key]!r}")
    _validate_world_keys(header)
    if not isinstance(header["root"], str):
        raise ProtocolError(f"header 'root' must be a string, got {header['root']!r}")
    if not isinstance(header["source"], dict):
        raise ProtocolError(f"header 'source' must be an object (may be empty), got {header['source']!r}")
    if has_rig(header):
        _validate_rig_keys(header, p)
    return p, j


def _validate_world_keys(header: dict) -> None:
    """``world_from_camera`` and ``world``, where present (older producers leave them out)."""
    m = header.get("world_from_camera")
    if m is not None and not (isinstance(m, list) and len(m) == 4 and all(_finite_numbers(row, 4) for row in m)):
        raise ProtocolError("header 'world_from_camera' must be null or 4 rows of 4 finite numbers")
    w = header.get("world")
    if w is not None and not isinstance(w, dict):
        raise ProtocolError(f"header 'world' must be an object or null, got {w!r}")
    for i, person in enumerate(header["persons"]):
        c = person.get("contacts")
        if c is not None and not (_finite_numbers(c, 2) and all(0.0 <= x <= 1.0 for x in c)):
            raise ProtocolError(f"persons[{i}].contacts must be [left, right], two numbers from 0 to 1")


def _validate_rig_keys(header: dict, p: int) -> int:
    """Check the rig keys (v2, or v3 with ``rig_shape``); return the number of rig nodes."""
    missing = [k for k in RIG_KEYS if k not in header]
    if missing:
        raise ProtocolError(f"protocol v{header['v']} header is missing required key(s): {', '.join(missing)}")
    want = _rig_json(header["frame_of_reference"])[1]
    shape = header["rig_shape"]
    r = len(want["rig_nodes"])
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(s) for s in shape)) or shape != [p, r, 7]:
        raise ProtocolError(f"header 'rig_shape' must be [{p}, {r}, 7] (persons, rig nodes, 7), got {shape!r}")
    for key in ("rig_nodes", "rig_parents"):
        if header[key] != want[key]:
            raise ProtocolError(f"header '{key}' must be {want[key]} in protocol v{header['v']}, got {header[key]!r}")
    rig = header["rig"]
    if not isinstance(rig, dict) or rig.get("quaternion") != want["rig"]["quaternion"]:
        raise ProtocolError("header 'rig' must be an object with \"quaternion\": \"x, y, z, w\"")
    return r


def _check_joints(joints: np.ndarray, p: int, j: int) -> None:
    if joints.shape != (p, j, 3):
        raise ProtocolError(f"joints must be shaped ({p}, {j}, 3) to match the header, got {joints.shape}")
    # one reduction instead of isfinite + all: a float64 sum of float32 values cannot overflow,
    # and is finite exactly when every value is
    if not math.isfinite(joints.sum(dtype=np.float64)):
        raise ProtocolError("joints hold a non-finite value (NaN or inf); send the person without it instead")


# --- encode / decode ------------------------------------------------------------------------------


def encode(header: dict, joints: np.ndarray, rig: np.ndarray | None = None) -> list[bytes]:
    """Validate ``header`` and ``joints`` (P, 17, 3) and return the frames to send: three, or four
    when the header has the rig keys (v2, or v3 with ``rig_shape``), whose ``rig`` rows (P, R, 7)
    are then required."""
    p, j = validate_header(header)
    return _encode(header, joints, p, j, rig)


def _encode(header: dict, joints: np.ndarray, p: int, j: int, rig: np.ndarray | None = None,
            stamp: Callable[[], int] | None = None) -> list[bytes]:
    """Frames for a header already known to be valid (``encode`` checked it, or ``make_header``
    built it); the joints (and a v2 message's rig rows) are still checked against it.

    ``stamp`` (e.g. ``time.monotonic_ns``): set ``header["t_publish_ns"]`` from it after the JSON
    and the payload are written, so only a string join and a UTF-8 encode (~2 us) separate the
    stamp from the send, instead of the whole header's JSON (~50-150 us)."""
    extra = []
    if has_rig(header):
        if rig is None:
            raise ProtocolError(f"a protocol v{header['v']} header with rig keys needs the rig rows (persons, nodes, 7)")
        extra = [_rig_payload(rig, header["rig_shape"])]
    elif rig is not None:
        raise ProtocolError("rig rows need a header with the rig keys (make_header(..., rig=True))")
    try:
        arr = np.asarray(joints, dtype=DTYPE)
    except (TypeError, ValueError):
        raise ProtocolError(f"joints must be a numeric array (P, 17, 3), got {type(joints).__name__}") from None
    _check_joints(arr, p, j)
    if stamp is not None:
        header["t_publish_ns"] = 0  # a placeholder; make_header puts the stamps before any free text
    try:
        text = _header_json(header)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"header cannot be written as JSON: {exc}") from None
    payload = arr.tobytes()
    if stamp is not None:
        before, found, after = text.partition(_PUBLISH_PLACEHOLDER)
        if not found:
            raise ProtocolError("stamp= needs a header built by make_header (its timestamps precede the rest)")
        header["t_publish_ns"] = t = stamp()
        text = f'{before}"t_publish_ns":{t},{after}'
    return [TOPIC, text.encode("utf-8"), payload, *extra]


_PUBLISH_PLACEHOLDER = '"t_publish_ns":0,'


def _rig_payload(rig: np.ndarray, shape: list[int]) -> bytes:
    try:
        arr = np.asarray(rig, dtype=DTYPE)
    except (TypeError, ValueError):
        raise ProtocolError(f"rig rows must be a numeric array {tuple(shape)}, got {type(rig).__name__}") from None
    if list(arr.shape) != list(shape):
        raise ProtocolError(f"rig rows must be shaped {tuple(shape)} to match the header, got {arr.shape}")
    if not math.isfinite(arr.sum(dtype=np.float64)):
        raise ProtocolError("rig rows hold a non-finite value (NaN or inf)")
    return arr.tobytes()


def decode(frames: Sequence[bytes], *, with_rig: bool = False):
    """Validate received frames; return ``(header, joints)`` with joints (P, 17, 3) float32, or
    with ``with_rig`` ``(header, joints, rig)`` where rig is (P, R, 7) float32 for a message with
    the rig (v2, or v3 with ``rig_shape``) and None otherwise."""
    if not isinstance(frames, (list, tuple)):
        raise ProtocolError(f"expected a list of 3 frames, got {type(frames).__name__}")
    if len(frames) not in (3, 4):
        raise ProtocolError(f"expected 3 frames (topic, header, payload), got {len(frames)} "
                            f"(a message with the rig adds a 4th)")
    try:
        topic, raw_header, payload, *rest = (bytes(memoryview(f)) for f in frames)
    except TypeError:
        raise ProtocolError("every frame must be bytes") from None
    if topic != TOPIC:
        raise ProtocolError(f"topic frame must be {TOPIC!r}, got {topic[:32]!r}")
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("header frame is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"header frame is not valid JSON ({exc.msg} at position {exc.pos})") from None
    p, j = validate_header(header)
    want = _FLOAT_BYTES * p * j * 3
    if len(payload) != want:
        raise ProtocolError(f"payload is {len(payload)} bytes but shape {[p, j, 3]} needs {want}")
    joints = np.frombuffer(payload, dtype=DTYPE).reshape(p, j, 3).astype(np.float32)
    _check_joints(joints, p, j)
    rig = None
    if has_rig(header):
        if not rest:
            raise ProtocolError(f"a protocol v{header['v']} message with rig keys needs 4 frames "
                                "(topic, header, payload, rig), got 3")
        shape = header["rig_shape"]
        want = _FLOAT_BYTES * shape[0] * shape[1] * shape[2]
        if len(rest[0]) != want:
            raise ProtocolError(f"rig frame is {len(rest[0])} bytes but rig_shape {shape} needs {want}")
        rig = np.frombuffer(rest[0], dtype=DTYPE).reshape(shape).astype(np.float32)
        if not math.isfinite(rig.sum(dtype=np.float64)):
            raise ProtocolError("rig rows hold a non-finite value (NaN or inf)")
    elif rest:
        raise ProtocolError("expected 3 frames (topic, header, payload), got 4 (only a header with rig keys has a 4th)")
    return (header, joints, rig) if with_rig else (header, joints)
