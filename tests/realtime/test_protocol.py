"""Wire protocol v1: encode/decode round trips and every validation error (no sockets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.skeleton import CANONICAL
from realtime.protocol import (
    AXES,
    PROTOCOL_VERSION,
    REQUIRED_KEYS,
    ROOT,
    TIMESTAMP_KEYS,
    TOPIC,
    ProtocolError,
    decode,
    encode,
    make_header,
)

J = CANONICAL.num_joints


def person(pid: int, conf: float = 0.9) -> dict:
    return {"id": pid, "confidence": conf, "joint_confidence": [conf] * J}


def header_for(p: int, **kw) -> dict:
    stamps = {"t_capture_ns": 1_000, "t_detect_start_ns": 2_000, "t_detect_end_ns": 3_000, "t_lift_end_ns": None}
    return make_header(
        seq=kw.get("seq", 7),
        frame=kw.get("frame", 42),
        persons=[person(i) for i in range(p)],
        timestamps=stamps,
        t_publish_ns=5_000,
        source={"kind": "video", "width": 1280, "height": 720, "fps": 30.0},
    )


def joints_for(p: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(p, J, 3)).astype(np.float32)


def valid_frames(p: int = 2) -> list[bytes]:
    return encode(header_for(p), joints_for(p))


def with_header(frames: list[bytes], change) -> list[bytes]:
    """Frames whose header JSON was edited by ``change(header)`` (payload untouched)."""
    header = json.loads(frames[1])
    change(header)
    return [frames[0], json.dumps(header).encode(), frames[2]]


# --- round trips ---------------------------------------------------------------------------------


def test_publish_stamp_is_taken_after_the_header_is_written_and_lands_in_it():
    """The publisher stamps t_publish_ns once the JSON exists (only a join and the send follow);
    the value on the wire is the returned one, even when a person carries text that looks like it."""
    from realtime.protocol import _encode

    calls = []

    def clock() -> int:
        calls.append(1)
        return 123_456_789_012

    people = [dict(person(3), note='"t_publish_ns":0,'), person(4)]
    header = make_header(seq=1, frame=2, persons=people, timestamps={"t_capture_ns": 10}, source={"kind": "x"})
    frames = _encode(header, joints_for(2), 2, J, stamp=clock)
    got_header, got_joints = decode(frames)
    assert calls == [1] and header["t_publish_ns"] == got_header["t_publish_ns"] == 123_456_789_012
    assert got_header == header and got_header["persons"][0]["note"] == '"t_publish_ns":0,'
    np.testing.assert_array_equal(got_joints, joints_for(2))


@pytest.mark.parametrize("p", [0, 1, 3])
def test_round_trip(p):
    header = header_for(p)
    joints = joints_for(p, seed=p)
    frames = encode(header, joints)
    assert len(frames) == 3 and frames[0] == TOPIC == b"pose"
    assert len(frames[2]) == 4 * p * J * 3
    got_header, got_joints = decode(frames)
    assert got_header == header
    assert got_joints.dtype == np.float32 and got_joints.shape == (p, J, 3)
    np.testing.assert_array_equal(got_joints, joints)
    got_joints[...] = 0.0  # a decoded array is the caller's to modify


def test_payload_is_little_endian_row_major():
    joints = np.arange(2 * J * 3, dtype=np.float32).reshape(2, J, 3)
    payload = encode(header_for(2), joints)[2]
    # person 1, joint 5, z: offset 4 * ((1 * J + 5) * 3 + 2)
    off = 4 * ((1 * J + 5) * 3 + 2)
    assert np.frombuffer(payload[off : off + 4], dtype="<f4")[0] == joints[1, 5, 2]


def test_float64_input_is_sent_as_float32():
    joints = joints_for(1).astype(np.float64)
    _, got = decode(encode(header_for(1), joints))
    np.testing.assert_array_equal(got, joints.astype(np.float32))


def test_header_is_compact_utf8_json_with_constant_fields():
    raw = valid_frames(1)[1]
    assert b" " not in raw.replace(b"x right, y down, z forward", b"").replace(ROOT.encode(), b"")
    h = json.loads(raw.decode("utf-8"))
    assert h["v"] == PROTOCOL_VERSION == 1
    assert h["shape"] == [1, J, 3] and h["dtype"] == "<f4"
    assert h["joints"] == list(CANONICAL.joint_names)
    assert h["parents"] == list(CANONICAL.parents) and h["parents"][0] == -1
    assert (h["units"], h["frame_of_reference"], h["axes"], h["root"]) == ("m", "camera", AXES, ROOT)
    assert h["t_lift_end_ns"] is None and h["t_publish_ns"] == 5_000
    assert set(REQUIRED_KEYS) <= set(h)


def test_empty_frame_has_no_persons_and_empty_payload():
    header = make_header(seq=0, frame=3, persons=[])
    frames = encode(header, np.empty((0, J, 3), dtype=np.float32))
    assert frames[2] == b""
    h, joints = decode(frames)
    assert h["persons"] == [] and h["shape"] == [0, J, 3] and joints.shape == (0, J, 3)
    assert all(h[k] is None for k in TIMESTAMP_KEYS) and h["source"] == {}


def test_make_header_converts_numpy_values():
    p = {"id": np.int64(4), "confidence": np.float32(0.5), "joint_confidence": np.full(J, 0.25, np.float32)}
    h = make_header(seq=np.int64(1), frame=np.int32(2), persons=[p], timestamps={"t_capture_ns": np.int64(9)})
    raw = encode(h, joints_for(1))[1]  # json.dumps would fail on numpy scalars
    back = json.loads(raw)["persons"][0]
    assert back == {"id": 4, "confidence": 0.5, "joint_confidence": [0.25] * J}
    assert json.loads(raw)["t_capture_ns"] == 9


def test_decode_accepts_any_bytes_like_frames():
    frames = valid_frames(1)
    h, joints = decode([bytearray(frames[0]), memoryview(frames[1]), frames[2]])
    assert joints.shape == (1, J, 3) and h["seq"] == 7
    h2, _ = decode(tuple(frames))
    assert h2 == h


def test_unknown_header_keys_are_ignored():
    """Compatible additions (new keys) keep version 1 readable."""
    frames = with_header(valid_frames(1), lambda h: h.update(extra={"a": 1}, future_field=[1, 2]))
    h, _ = decode(frames)
    assert h["future_field"] == [1, 2]
    frames = with_header(valid_frames(1), lambda h: h["persons"][0].update(bbox=[0, 0, 10, 10]))
    assert decode(frames)[0]["persons"][0]["bbox"] == [0, 0, 10, 10]


# --- decode: every validation error --------------------------------------------------------------


def _set(key, value):
    return lambda h: h.__setitem__(key, value)


def _person_set(key, value):
    return lambda h: h["persons"][0].__setitem__(key, value)


HEADER_ERRORS = [
    ("v wrong", _set("v", 4), "protocol version 4"),
    ("v3 in the camera frame", _set("v", 3), "'frame_of_reference' must be 'world' in protocol v3"),
    ("v2 without rig keys", _set("v", 2), "v2 header is missing required key"),
    ("v string", _set("v", "1"), "'v' must be an integer"),
    ("v bool", _set("v", True), "'v' must be an integer"),
    ("seq negative", _set("seq", -1), "'seq' must be a non-negative integer"),
    ("seq float", _set("seq", 1.5), "'seq' must be a non-negative integer"),
    ("frame string", _set("frame", "3"), "'frame' must be a non-negative integer"),
    ("timestamp float", _set("t_capture_ns", 1.5), "'t_capture_ns' must be an integer"),
    ("timestamp bool", _set("t_publish_ns", True), "'t_publish_ns' must be an integer"),
    ("shape short", _set("shape", [2, J]), "'shape' must be [persons, joints, 3]"),
    ("shape strings", _set("shape", ["2", J, 3]), "'shape' must be [persons, joints, 3]"),
    ("shape not list", _set("shape", "2x17x3"), "'shape' must be [persons, joints, 3]"),
    ("shape joints", _set("shape", [2, 16, 3]), "'shape' must be [persons >= 0, 17, 3]"),
    ("shape channels", _set("shape", [2, J, 2]), "'shape' must be [persons >= 0, 17, 3]"),
    ("shape negative", _set("shape", [-1, J, 3]), "'shape' must be [persons >= 0, 17, 3]"),
    ("dtype", _set("dtype", "<f8"), "'dtype' must be '<f4'"),
    ("joints not list", _set("joints", "pelvis"), "'joints' must be a list of names"),
    ("joints short", _set("joints", list(CANONICAL.joint_names[:-1])), "names 16 joints but shape says 17"),
    ("joints order", _set("joints", list(reversed(CANONICAL.joint_names))), "canonical names in order"),
    ("parents", _set("parents", [-1] * J), "'parents' must be"),
    ("persons not list", _set("persons", {}), "'persons' must be a list"),
    ("persons count", lambda h: h["persons"].pop(), "lists 1 persons but shape says 2"),
    ("person not object", lambda h: h["persons"].__setitem__(0, 3), "persons[0] must be an object"),
    ("person id missing", lambda h: h["persons"][0].pop("id"), "persons[0].id must be an integer"),
    ("person id float", _person_set("id", 1.0), "persons[0].id must be an integer"),
    ("person confidence", _person_set("confidence", "high"), "persons[0].confidence must be a finite number"),
    ("person joint_confidence", _person_set("joint_confidence", [0.5] * 3), "joint_confidence must be 17 finite"),
    ("units", _set("units", "cm"), "'units' must be 'm'"),
    ("frame_of_reference", _set("frame_of_reference", "world"), "'frame_of_reference' must be 'camera'"),
    ("axes", _set("axes", "x right, y up, z backward"), "'axes' must be"),
    ("root", _set("root", 0), "'root' must be a string"),
    ("source", _set("source", []), "'source' must be an object"),
]


@pytest.mark.parametrize("change,message", [c[1:] for c in HEADER_ERRORS], ids=[c[0] for c in HEADER_ERRORS])
def test_decode_rejects_bad_header(change, message):
    frames = with_header(valid_frames(2), change)
    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("(", r"\(")):
        decode(frames)


@pytest.mark.parametrize("key", [k for k in REQUIRED_KEYS if k != "v"])
def test_decode_rejects_missing_key(key):
    frames = with_header(valid_frames(1), lambda h: h.pop(key))
    with pytest.raises(ProtocolError, match=f"missing required key\\(s\\): {key}"):
        decode(frames)


def test_decode_rejects_missing_version():
    with pytest.raises(ProtocolError, match="no protocol version"):
        decode(with_header(valid_frames(1), lambda h: h.pop("v")))


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_decode_rejects_wrong_frame_count(n):
    frames = (valid_frames(1) + [b"extra"])[:n]
    with pytest.raises(ProtocolError, match=f"expected 3 frames \\(topic, header, payload\\), got {n}"):
        decode(frames)


def test_decode_rejects_non_list_and_non_bytes():
    with pytest.raises(ProtocolError, match="expected a list of 3 frames"):
        decode(b"pose")
    with pytest.raises(ProtocolError, match="every frame must be bytes"):
        decode(["pose", "{}", ""])


@pytest.mark.parametrize("topic", [b"pos", b"posex", b"POSE", b""])
def test_decode_rejects_wrong_topic(topic):
    frames = valid_frames(1)
    with pytest.raises(ProtocolError, match="topic frame must be b'pose'"):
        decode([topic, frames[1], frames[2]])


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"pose"', "must be a JSON object, got str"),
    ],
)
def test_decode_rejects_bad_json(raw, message):
    with pytest.raises(ProtocolError, match=message):
        decode([TOPIC, raw, b""])


def test_decode_rejects_nan_in_header_numbers():
    frames = valid_frames(1)
    raw = frames[1].replace(b'"confidence":0.9', b'"confidence":NaN', 1)
    assert raw != frames[1]
    with pytest.raises(ProtocolError, match="persons\\[0\\].confidence must be a finite number"):
        decode([TOPIC, raw, frames[2]])


@pytest.mark.parametrize("delta", [-4, -1, 1, 4, 204])
def test_decode_rejects_payload_length(delta):
    frames = valid_frames(2)
    payload = frames[2] + b"\0" * delta if delta > 0 else frames[2][:delta]
    with pytest.raises(ProtocolError, match=f"payload is {len(payload)} bytes but shape \\[2, 17, 3\\] needs {4 * 2 * J * 3}"):
        decode([frames[0], frames[1], payload])


def test_decode_rejects_payload_for_empty_frame():
    frames = encode(make_header(seq=0, frame=0, persons=[]), np.empty((0, J, 3)))
    with pytest.raises(ProtocolError, match="payload is 204 bytes"):
        decode([frames[0], frames[1], joints_for(1).tobytes()])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_rejects_non_finite_payload(bad):
    frames = valid_frames(1)
    joints = np.frombuffer(frames[2], dtype="<f4").copy()
    joints[10] = bad
    with pytest.raises(ProtocolError, match="non-finite"):
        decode([frames[0], frames[1], joints.tobytes()])


# --- encode / make_header errors -----------------------------------------------------------------


def test_encode_rejects_joints_not_matching_header():
    with pytest.raises(ProtocolError, match=r"joints must be shaped \(2, 17, 3\) to match the header, got \(1, 17, 3\)"):
        encode(header_for(2), joints_for(1))
    with pytest.raises(ProtocolError, match=r"got \(2, 17\)"):
        encode(header_for(2), np.zeros((2, J)))


def test_encode_rejects_non_finite_and_non_numeric_joints():
    joints = joints_for(1)
    joints[0, 3, 1] = np.nan
    with pytest.raises(ProtocolError, match="non-finite"):
        encode(header_for(1), joints)
    with pytest.raises(ProtocolError, match="must be a numeric array"):
        encode(header_for(1), np.full((1, J, 3), "a"))


def test_encode_validates_header():
    header = header_for(1)
    header["units"] = "mm"
    with pytest.raises(ProtocolError, match="'units' must be 'm'"):
        encode(header, joints_for(1))
    header = header_for(1)
    header["source"] = {"camera": object()}
    with pytest.raises(ProtocolError, match="cannot be written as JSON"):
        encode(header, joints_for(1))


@pytest.mark.parametrize(
    "persons,message",
    [
        ([{"id": 1, "confidence": 0.5}], "persons\\[0\\] is missing 'joint_confidence'"),
        ([{"id": 1.5, "confidence": 0.5, "joint_confidence": [1.0] * J}], "persons\\[0\\].id must be an integer"),
        ([{"id": True, "confidence": 0.5, "joint_confidence": [1.0] * J}], "persons\\[0\\].id must be an integer"),
        ([{"id": 1, "confidence": float("nan"), "joint_confidence": [1.0] * J}], "confidence must be finite"),
        ([{"id": 1, "confidence": 0.5, "joint_confidence": [1.0] * 5}], "must hold 17 numbers, got 5"),
        ([{"id": 1, "confidence": 0.5, "joint_confidence": [np.inf] * J}], "joint_confidence holds a non-finite"),
        (["person"], "persons\\[0\\] must be a dict"),
    ],
)
def test_make_header_rejects_bad_persons(persons, message):
    with pytest.raises(ProtocolError, match=message):
        make_header(seq=0, frame=0, persons=persons)


def test_make_header_names_the_bad_person_among_several():
    persons = [person(0), {"id": 1, "confidence": 0.5, "joint_confidence": [1.0] * 5}, person(2)]
    with pytest.raises(ProtocolError, match="persons\\[1\\].joint_confidence must hold 17 numbers, got 5"):
        make_header(seq=0, frame=0, persons=persons)
    persons = [person(0), {"id": "one", "confidence": 0.5, "joint_confidence": [1.0] * J}]
    with pytest.raises(ProtocolError, match="persons\\[1\\].id must be an integer"):
        make_header(seq=0, frame=0, persons=persons)


def test_confidences_are_rounded_to_three_decimals():
    jc = np.linspace(0.0, 1.0, J, dtype=np.float32)
    h = make_header(seq=0, frame=0, persons=[{"id": 0, "confidence": 0.123456, "joint_confidence": jc}])
    assert h["persons"][0]["confidence"] == 0.123
    assert h["persons"][0]["joint_confidence"] == [round(float(c), 3) for c in jc]
    assert decode(encode(h, joints_for(1)))[0] == h


def test_make_header_rejects_unknown_timestamps_and_bad_counters():
    with pytest.raises(ProtocolError, match="unknown timestamp key\\(s\\) t_capture"):
        make_header(seq=0, frame=0, persons=[], timestamps={"t_capture": 1})
    with pytest.raises(ProtocolError, match="t_capture_ns must be an integer"):
        make_header(seq=0, frame=0, persons=[], timestamps={"t_capture_ns": 1.5})
    with pytest.raises(ProtocolError, match="seq must be an integer"):
        make_header(seq="0", frame=0, persons=[])
    with pytest.raises(ProtocolError, match="frame must be a non-negative integer, got -1"):
        make_header(seq=0, frame=-1, persons=[])


def test_protocol_error_is_a_value_error_with_one_sentence():
    with pytest.raises(ValueError) as info:
        decode([TOPIC, b"{", b""])
    assert isinstance(info.value, ProtocolError)
    assert "\n" not in str(info.value)
