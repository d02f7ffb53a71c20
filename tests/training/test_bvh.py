"""Tests for training/bvh.py: parsing, forward kinematics, units, resampling, lead-in, errors."""

from __future__ import annotations

import dataclasses
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from training.bvh import (
    CMU_ASF_UNIT_M,
    BvhError,
    BvhMotion,
    cmu_fps_override,
    drop_rest_lead_in,
    parse_bvh,
    read_bvh,
    read_cmu_bvh,
    resample,
    rest_lead_in_length,
)

REPO = Path(__file__).resolve().parents[2]  # tests/training/test_bvh.py -> repo root
CMU = REPO.parent / "shared" / "data" / "cmu-mocap"
FIXTURES = REPO / "tests" / "fixtures" / "tiny"  # hand-written, not copied from ../shared

needs_cmu = pytest.mark.skipif(not (CMU / "01" / "01_01.bvh.gz").is_file(),
                               reason=f"shared CMU data not found at {CMU}")


def rz(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def rx(deg):
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


# A 3-joint chain along +x (root -> J1 -> end site), metres.
CHAIN = """HIERARCHY
ROOT Root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT J1
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 1 0 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0
0 0 0 90 0 0 0 0 0
1 2 3 90 0 0 90 0 0
"""


def test_chain_rotated_about_z_hand_computed():
    m = parse_bvh(CHAIN, "chain.bvh", units="m")
    assert m.names == ("Root", "J1", "J1_end")
    assert list(m.skeleton.parents) == [-1, 0, 1]
    assert m.fps == 30.0  # 1/0.0333333 snapped
    # frame 0: straight along +x
    np.testing.assert_allclose(m.positions[0], [[0, 0, 0], [1, 0, 0], [2, 0, 0]], atol=1e-12)
    # frame 1: root turned 90 deg about Z -> the chain points along +y
    np.testing.assert_allclose(m.positions[1], [[0, 0, 0], [0, 1, 0], [0, 2, 0]], atol=1e-12)
    # frame 2: root at (1,2,3) turned 90, J1 turned another 90 -> end site goes back along -x
    np.testing.assert_allclose(m.positions[2], [[1, 2, 3], [1, 3, 3], [0, 3, 3]], atol=1e-12)
    np.testing.assert_allclose(m.rotations[2, 0], rz(90), atol=1e-12)
    np.testing.assert_allclose(m.rotations[2, 1], rz(180), atol=1e-12)
    np.testing.assert_allclose(m.rotations[2, 2], rz(180), atol=1e-12)  # end site: parent's
    assert m.positions.shape == (3, 3, 3) and m.rotations.shape == (3, 3, 3, 3)


def _one_rotation_joint(order: str, values: str) -> str:
    return f"""HIERARCHY
ROOT R
{{
  OFFSET 0 0 0
  CHANNELS 3 {order}
  End Site
  {{
    OFFSET 0 1 0
  }}
}}
MOTION
Frames: 1
Frame Time: 0.01
{values}
"""


def test_channel_order_matters():
    # Same angles (X = 90, Z = 90) written in two orders; the child sits at (0, 1, 0).
    zxy = parse_bvh(_one_rotation_joint("Zrotation Xrotation Yrotation", "90 90 0"), units="m")
    xyz = parse_bvh(_one_rotation_joint("Xrotation Yrotation Zrotation", "90 0 90"), units="m")
    # ZXY: R = Rz(90) Rx(90); Rx(90)(0,1,0) = (0,0,1); Rz(90)(0,0,1) = (0,0,1)
    np.testing.assert_allclose(zxy.positions[0, 1], [0, 0, 1], atol=1e-12)
    # XYZ: R = Rx(90) Rz(90); Rz(90)(0,1,0) = (-1,0,0); Rx(90)(-1,0,0) = (-1,0,0)
    np.testing.assert_allclose(xyz.positions[0, 1], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(zxy.rotations[0, 0], rz(90) @ rx(90), atol=1e-12)
    np.testing.assert_allclose(xyz.rotations[0, 0], rx(90) @ rz(90), atol=1e-12)


SIX_CHANNEL_CHILD = """HIERARCHY
ROOT Root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Child
  {
    OFFSET 10 0 0
    CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 1 0 0
    }
  }
  JOINT OnlyY
  {
    OFFSET 5 6 7
    CHANNELS 4 Yposition Zrotation Xrotation Yrotation
  }
}
MOTION
Frames: 1
Frame Time: 0.01
100 0 0 0 0 0  0 2 0 90 0 0  -4 0 0 0
"""


def test_non_root_position_channels_replace_offset():
    m = parse_bvh(SIX_CHANNEL_CHILD, units="m")
    child = m.index("Child")
    # local translation is (0, 2, 0) from the channels; the OFFSET (10, 0, 0) is NOT added
    np.testing.assert_allclose(m.positions[0, child], [100, 2, 0], atol=1e-12)
    # the child's own rotation (90 about Z) turns its end site to +y
    np.testing.assert_allclose(m.positions[0, m.index("Child_end")], [100, 3, 0], atol=1e-12)
    # a lone Yposition channel replaces only the y component of the OFFSET
    np.testing.assert_allclose(m.positions[0, m.index("OnlyY")], [105, -4, 7], atol=1e-12)
    # rest pose uses the OFFSETs
    np.testing.assert_allclose(m.skeleton.rest_positions()[child], [10, 0, 0])


def test_end_sites_kept_and_flagged():
    m = parse_bvh(CHAIN, units="m")
    assert list(m.skeleton.is_end_site) == [False, False, True]
    assert m.skeleton.channels == (
        ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
        ("Zrotation", "Xrotation", "Yrotation"),
        (),
    )
    np.testing.assert_allclose(m.skeleton.rest_positions(), [[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    assert m.index("J1_end") == 2
    with pytest.raises(KeyError):
        m.index("nope")


def test_deep_hierarchy_matches_closed_form():
    depth, theta = 400, 0.9  # deeper than Python's default recursion would allow per joint
    lines = ["HIERARCHY", "ROOT J0", "{", "OFFSET 0 0 0", "CHANNELS 1 Zrotation"]
    for k in range(1, depth):
        lines += [f"JOINT J{k}", "{", "OFFSET 1 0 0", "CHANNELS 1 Zrotation"]
    lines += ["}"] * depth
    lines += ["MOTION", "Frames: 1", "Frame Time: 0.01", " ".join([str(theta)] * depth)]
    m = parse_bvh("\n".join(lines), units="m")
    assert m.skeleton.num_joints == depth
    # joint k has global rotation Rz((k+1) theta) and sits at sum_{i=1..k} (cos i.theta, sin i.theta)
    k = np.arange(1, depth)
    expected = np.cumsum(np.stack([np.cos(np.radians(k * theta)), np.sin(np.radians(k * theta))], 1), 0)
    np.testing.assert_allclose(m.positions[0, 1:, :2], expected, atol=1e-9)
    np.testing.assert_allclose(m.rotations[0, -1], rz(depth * theta), atol=1e-9)


def test_gzip_and_plain_read_the_same(tmp_path):
    plain = tmp_path / "chain.bvh"
    plain.write_text(CHAIN)
    gz = tmp_path / "chain.bvh.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(CHAIN)
    a, b = read_bvh(plain, units="m"), read_bvh(gz, units="m")
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    assert a.names == b.names and a.fps == b.fps
    assert b.source == gz


# A crude 1.7 m figure: hips, a spine/head chain up and one leg down.
FIGURE = """HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {{
    OFFSET 0 {up} 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET 0 {head} 0
    }}
  }}
  JOINT Leg
  {{
    OFFSET {hip} 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET 0 {leg} 0
    }}
  }}
}}
MOTION
Frames: 2
Frame Time: 0.01
0 {y} 0 0 0 0 0 0 0 0 0 0
{x} {y} 0 0 0 0 10 0 0 -10 0 0
"""


def _figure(scale):
    return FIGURE.format(up=0.5 * scale, head=0.3 * scale, hip=0.1 * scale, leg=-0.9 * scale,
                         y=0.9 * scale, x=0.2 * scale)


def test_units_auto_same_metres_from_m_and_cm():
    in_m = parse_bvh(_figure(1.0), "fig_m.bvh")
    in_cm = parse_bvh(_figure(100.0), "fig_cm.bvh")
    assert in_m.skeleton.unit_scale == 1.0
    assert in_cm.skeleton.unit_scale == 0.01
    np.testing.assert_allclose(in_cm.positions, in_m.positions, atol=1e-12)
    np.testing.assert_allclose(in_cm.skeleton.offsets, in_m.skeleton.offsets, atol=1e-12)
    np.testing.assert_allclose(in_cm.positions[1, 0], [0.2, 0.9, 0], atol=1e-12)  # metres
    in_mm = parse_bvh(_figure(1000.0), "fig_mm.bvh")
    in_inch = parse_bvh(_figure(1 / 0.0254), "fig_in.bvh")
    np.testing.assert_allclose(in_mm.positions, in_m.positions, atol=1e-12)
    np.testing.assert_allclose(in_inch.positions, in_m.positions, atol=1e-12)


def test_units_explicit_and_implausible():
    explicit = parse_bvh(_figure(100.0), units="cm")
    by_float = parse_bvh(_figure(100.0), units=0.01)
    np.testing.assert_allclose(explicit.positions, by_float.positions)
    forced = parse_bvh(_figure(100.0), units="m")
    np.testing.assert_allclose(forced.positions, explicit.positions * 100)
    with pytest.raises(BvhError, match="tiny.bvh.*units"):
        parse_bvh(_figure(0.0001), "tiny.bvh")  # 0.17 mm figure: no unit makes it human
    with pytest.raises(ValueError, match="unknown units"):
        parse_bvh(_figure(1.0), units="furlong")


def _moving_root(frames: int, frame_time: str) -> str:
    """Root moves 0.01 m per frame along x and turns 1 degree per frame about Z; child at +x."""
    rows = "\n".join(f"{0.01 * i:.10g} 0 0 {i} 0 0" for i in range(frames))
    return f"""HIERARCHY
ROOT R
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  End Site
  {{
    OFFSET 1 0 0
  }}
}}
MOTION
Frames: {frames}
Frame Time: {frame_time}
{rows}
"""


def test_resample_120_to_30_picks_every_fourth_frame():
    m = parse_bvh(_moving_root(10, "0.00833333"), units="m")
    assert m.fps == 120.0
    r = resample(m, 30)
    assert r.fps == 30.0 and r.num_frames == 3  # source frames 0, 4, 8 (9 is past 8/120 s)
    np.testing.assert_array_equal(r.positions, m.positions[[0, 4, 8]])
    np.testing.assert_array_equal(r.rotations, m.rotations[[0, 4, 8]])
    np.testing.assert_allclose(r.times, [0, 1 / 30, 2 / 30])
    assert r.source == m.source and r.skeleton is m.skeleton
    same = resample(m, 120)
    np.testing.assert_array_equal(same.positions, m.positions)


def test_resample_non_integer_ratio_interpolates():
    m = parse_bvh(_moving_root(25, "0.00833333"), units="m")  # 0.2 s at 120 fps
    r = resample(m, 50)  # ratio 2.4
    assert r.num_frames == 11
    t = np.arange(11) / 50
    frame = t * 120  # fractional source frame
    # root moves linearly: 0.01 m per source frame
    np.testing.assert_allclose(r.positions[:, 0, 0], 0.01 * frame, atol=1e-12)
    np.testing.assert_allclose(r.positions[:, 0, 1:], 0, atol=1e-12)
    # rotation about a fixed axis is slerped exactly: 1 degree per source frame
    ang = np.radians(frame)
    np.testing.assert_allclose(r.positions[:, 1, 0], 0.01 * frame + np.cos(ang), atol=1e-9)
    np.testing.assert_allclose(r.positions[:, 1, 1], np.sin(ang), atol=1e-9)
    for k in range(11):
        np.testing.assert_allclose(r.rotations[k, 0], rz(frame[k]), atol=1e-9)
    # upsampling works too and keeps the end time
    up = resample(m, 240)
    assert up.num_frames == 49
    np.testing.assert_allclose(up.positions[1::2, 0, 0], (m.positions[1:, 0, 0] + m.positions[:-1, 0, 0]) / 2,
                               atol=1e-12)


def _synthetic_lead_in(rest_first: bool) -> str:
    rows = []
    for i in range(20):
        if rest_first and i == 0:
            rows.append("0 90 0 0 0 0 0 0 0")
        else:
            rows.append(f"{0.01 * i:.4f} 90 0 {30 + i} 5 0 {20 - i} 10 3")
    return f"""HIERARCHY
ROOT Hips
{{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Leg
  {{
    OFFSET 0 -40 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {{
      OFFSET 0 -45 0
    }}
  }}
  JOINT Chest
  {{
    OFFSET 0 60 0
    CHANNELS 0
    End Site
    {{
      OFFSET 0 30 0
    }}
  }}
}}
MOTION
Frames: 20
Frame Time: 0.00833333
{chr(10).join(rows)}
"""


def test_lead_in_synthetic_rest_frame_and_untouched_clip():
    with_rest = parse_bvh(_synthetic_lead_in(True), "lead.bvh", units="cm")
    dropped = drop_rest_lead_in(with_rest)
    assert dropped.lead_in_dropped == 8  # rest frame 0 + 7 blend frames
    np.testing.assert_array_equal(dropped.positions, with_rest.positions[8:])
    assert drop_rest_lead_in(dropped) is dropped  # idempotent
    assert drop_rest_lead_in(with_rest, blend_frames=0).lead_in_dropped == 1
    without = parse_bvh(_synthetic_lead_in(False), "nolead.bvh", units="cm")
    assert rest_lead_in_length(without) == 0
    untouched = drop_rest_lead_in(without)
    assert untouched.num_frames == 20 and untouched.lead_in_dropped == 0
    np.testing.assert_array_equal(untouched.positions, without.positions)


@needs_cmu
def test_real_cmu_clip_and_lead_in():
    path = CMU / "01" / "01_01.bvh.gz"
    m = read_bvh(path)
    skel = m.skeleton
    joints = [n for n, e in zip(skel.names, skel.is_end_site) if not e]
    assert len(joints) == 43
    for name in ["hip", "abdomen", "chest", "neck", "head", "lThigh", "lShin", "lFoot", "rThigh",
                 "rShin", "rFoot", "lShldr", "rShldr", "lForeArm", "rHand", "lCollar"]:
        assert name in joints, name
    assert skel.names[0] == "hip" and skel.parents[0] == -1
    assert skel.channels[skel.index("hip")] == (
        "Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert skel.channels[skel.index("lShin")] == ("Zrotation", "Xrotation", "Yrotation")
    assert m.fps == 120.0 and m.num_frames == 2752
    assert skel.unit_scale == 0.01  # centimetres, inferred
    # README bone lengths in metres: thigh ~0.37, shin ~0.45
    thigh = np.linalg.norm(m.positions[:, skel.index("lShin")] - m.positions[:, skel.index("lThigh")], axis=-1)
    shin = np.linalg.norm(m.positions[:, skel.index("lFoot")] - m.positions[:, skel.index("lShin")], axis=-1)
    assert 0.33 < thigh.mean() < 0.41 and np.ptp(thigh) < 1e-9
    assert 0.41 < shin.mean() < 0.49
    # standing frames: hip 0.8-1.1 m above the floor (the lowest point of the clip)
    floor = m.positions[..., 1].min()
    hip_h = m.positions[8:200, skel.index("hip"), 1] - floor
    assert 0.8 < np.median(hip_h) < 1.1
    # rotations are proper rotations
    R = m.rotations[::97]
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)

    # frame 0 is the rest pose: root rotation exactly zero
    np.testing.assert_allclose(m.rotations[0, 0], np.eye(3), atol=1e-12)
    assert rest_lead_in_length(m) == 8
    d = drop_rest_lead_in(m)
    assert d.num_frames == m.num_frames - 8 and d.lead_in_dropped == 8
    np.testing.assert_array_equal(d.positions, m.positions[8:])
    assert not np.allclose(d.rotations[0, 0], np.eye(3), atol=1e-3)  # rest pose gone
    # a clip without a rest pose (the same clip cut after its lead-in) is untouched
    cut = dataclasses.replace(m, positions=m.positions[20:], rotations=m.rotations[20:])
    assert drop_rest_lead_in(cut) is cut
    # the one-call reader does the same
    c = read_cmu_bvh(path)
    np.testing.assert_array_equal(c.positions, d.positions)
    # and resampling to 30 fps keeps every 4th frame
    r = resample(d)
    assert r.fps == 30.0
    np.testing.assert_array_equal(r.positions, d.positions[::4])


def test_cmu_fps_override():
    assert cmu_fps_override(CMU / "salsa" / "01.bvh.gz") == 60.0
    assert cmu_fps_override("salsa/05.bvh.gz") == 60.0
    assert cmu_fps_override(CMU / "01" / "01_01.bvh.gz") is None
    assert cmu_fps_override(CMU / "martial" / "03.bvh.gz") is None
    m = parse_bvh(CHAIN, units="m", fps_override=60.0)
    assert m.fps == 60.0


def test_cmu31_fixture_loads():
    m = read_bvh(FIXTURES / "cmu31.bvh")
    skel = m.skeleton
    joints = [n for n, e in zip(skel.names, skel.is_end_site) if not e]
    assert joints == [
        "Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
        "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
        "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
        "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase", "LeftHandIndex1", "LThumb",
        "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase", "RightHandIndex1",
        "RThumb",
    ]
    assert skel.unit_scale == pytest.approx(CMU_ASF_UNIT_M)
    assert skel.num_channels == 96 and m.num_frames == 3 and m.fps == 120.0
    y = m.positions[0, :, 1]
    assert 1.6 < y.max() - y.min() < 1.8  # standing figure ~1.7 m tall
    assert 0.95 < m.positions[0, skel.index("Hips"), 1] < 1.15
    thigh = np.linalg.norm(m.positions[0, skel.index("LeftLeg")] - m.positions[0, skel.index("LeftUpLeg")])
    assert 0.4 < thigh < 0.5


def test_containers_are_frozen():
    m = parse_bvh(CHAIN, units="m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.fps = 10.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        m.skeleton.offsets[0, 0] = 1.0
    assert isinstance(m, BvhMotion)


# ------------------------------------------------------------------ bad input

def _bad_cases() -> dict[str, tuple[str | bytes, str]]:
    head, motion = CHAIN.split("MOTION\n")
    rows = motion.splitlines()
    return {
        "truncated_rows": (head + "MOTION\n" + "\n".join(rows[:4]) + "\n", r"truncated.*3.*2 motion rows"),
        "truncated_mid_row": (head + "MOTION\n" + "\n".join(rows[:4]) + "\n0 0 0 90", r"truncated.*4 of the expected 9"),
        "channel_mismatch": (head + "MOTION\n" + "\n".join(rows[:3]) + "\n0 0 0 0 0 0 0 0\n" + rows[4] + "\n",
                             r"channel count mismatch.*frame 1.*8 values.*9 channels"),
        "missing_close_brace": (CHAIN.replace("    }\n  }\n}", "    }\n}", 1), r"unbalanced braces"),
        "extra_close_brace": (CHAIN.replace("}\nMOTION", "}\n}\nMOTION"), r"unbalanced braces"),
        "empty": ("", r"empty"),
        "whitespace_only": ("  \n\n", r"empty"),
        "no_motion": (head, r"no MOTION"),
        "no_hierarchy": ("MOTION\nFrames: 0\nFrame Time: 0.1\n", r"HIERARCHY"),
        "unknown_channel": (CHAIN.replace("Zrotation Xrotation Yrotation\n    End", "Zrotation Xrotation Wrotation\n    End"),
                            r"unknown channel name 'Wrotation'"),
        "non_numeric": (CHAIN.replace("1 2 3 90", "1 2 abc 90"), r"non-numeric value 'abc'.*frame 2"),
        "two_roots": (head + head.replace("HIERARCHY", "").replace("Root", "Root2").replace("J1", "J2") + "MOTION\n" + motion,
                      r"more than one ROOT"),
        "bad_frame_time": (CHAIN.replace("Frame Time: 0.0333333", "Frame Time: 0"), r"Frame Time"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input_raises_bvh_error_naming_the_file(tmp_path, case):
    text, pattern = _bad_cases()[case]
    path = tmp_path / f"bad_{case}.bvh"
    path.write_text(text)
    with pytest.raises(BvhError, match=pattern) as info:
        read_bvh(path, units="m")
    msg = str(info.value)
    assert str(path) in msg
    assert isinstance(info.value, ValueError)


def test_corrupt_and_truncated_gzip(tmp_path):
    good = gzip.compress(CHAIN.encode())
    corrupt = tmp_path / "corrupt.bvh.gz"
    corrupt.write_bytes(good[:10] + b"\x00garbage\xff" * 5)
    short = tmp_path / "short.bvh.gz"
    short.write_bytes(good[: len(good) // 2])
    for p in (corrupt, short):
        with pytest.raises(BvhError, match="gzip") as info:
            read_bvh(p, units="m")
        assert str(p) in str(info.value)
    with pytest.raises(BvhError, match="not found"):
        read_bvh(tmp_path / "missing.bvh")
