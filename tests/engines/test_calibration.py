"""Tests for engines.calibration: the real Qualisys demo calibration, our TOML/JSON format, and
clear errors for broken files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from engines.calibration import CalibrationError, load_calibration, save_calibration
from engines.camera import Camera, VirtualCameraRanges, sample_virtual_cameras

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
QCA = SHARED / "media" / "pose2sim-demo" / "Calib.qca.txt"


@pytest.fixture(scope="module")
def qualisys() -> list[Camera]:
    return load_calibration(QCA)


def _transform_positions_m() -> dict[str, np.ndarray]:
    """Camera positions straight from the XML, independent of the loader."""
    root = ET.parse(QCA).getroot()
    return {
        cam.get("serial"): np.array([float(cam.find("transform").get(k)) for k in "xyz"]) / 1000.0
        for cam in root.iter("camera")
    }


# ---------------------------------------------------------------------------------------------
# Qualisys demo calibration (real data)
# ---------------------------------------------------------------------------------------------
def test_qualisys_cameras_and_intrinsics(qualisys):
    assert [c.name for c in qualisys] == ["cam01", "cam02", "cam03", "cam04"]
    for cam in qualisys:
        assert cam.size == (1088, 1920)  # portrait video: right - left + 1 = 1088
        assert 1670 < cam.fx < 1690 and 1670 < cam.fy < 1690  # focalLengthU / 64
        assert 500 < cam.cx < 560 and 930 < cam.cy < 980  # near the image centre
    cam01 = qualisys[0]
    assert cam01.fx == pytest.approx(107599.671875 / 64)
    assert cam01.cy == pytest.approx(60680.792969 / 64)
    # k1, k2, p1, p2, k3 from radialDistortion1,2, tangentalDistortion1,2, radialDistortion3
    np.testing.assert_allclose(cam01.dist, [-0.046183, 0.139983, 0.000608, 0.00069, 0.0])


def test_qualisys_centres_are_the_transform_positions(qualisys):
    positions = _transform_positions_m()
    for cam in qualisys:
        np.testing.assert_allclose(cam.center, positions[cam.name], atol=1e-9)
        assert 2.5 < np.linalg.norm(cam.center) < 5.0  # cameras a few metres from the origin


def test_qualisys_cameras_look_at_the_capture_volume(qualisys):
    origin = np.zeros(3)
    head = np.array([0.0, 0.0, 1.7])  # Qualisys world is z-up: a 1.7 m person at the origin
    for cam in qualisys:
        assert cam.world_to_camera(origin)[2] > 2.0  # in front, metres away
        feet_px, head_px = cam.project(origin), cam.project(head)
        assert cam.in_image(feet_px) and cam.in_image(head_px)
        assert head_px[1] < feet_px[1] - 500  # upright, and tall in the portrait frame
        # the optical axis points roughly at the volume centre (within ~25 degrees)
        axis = cam.R[2]
        to_origin = (origin - cam.center) / np.linalg.norm(cam.center)
        assert axis @ to_origin > np.cos(np.radians(25))


def test_qualisys_inactive_cameras_skipped_and_video_resolution_scales(tmp_path):
    text = QCA.read_text()
    text = text.replace('active="1" avg-residual="0.444749"', 'active="0" avg-residual="0.444749"')
    text = text.replace('serial="cam01"', 'serial="cam01" video_resolution="540p"')
    p = tmp_path / "scaled.qca.txt"
    p.write_text(text)
    cams = load_calibration(p)
    full = {c.name: c for c in load_calibration(QCA)}
    assert [c.name for c in cams] == ["cam01", "cam03", "cam04"]
    assert cams[0].size == (544, 960)
    assert cams[0].fx == pytest.approx(full["cam01"].fx / 2)
    assert cams[0].cx == pytest.approx(full["cam01"].cx / 2)
    np.testing.assert_allclose(cams[0].R, full["cam01"].R)


def test_qualisys_round_trips_through_our_toml(qualisys, tmp_path):
    p = tmp_path / "demo.toml"
    save_calibration(p, qualisys)
    assert load_calibration(p) == qualisys


# ---------------------------------------------------------------------------------------------
# Our format
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".toml", ".json", ".TOML"])
def test_save_load_round_trip_is_exact(tmp_path, suffix):
    ranges = VirtualCameraRanges(distortion_probability=0.7)
    cams = sample_virtual_cameras(np.random.default_rng(0), 6, np.array([0.0, 0.9, 0.0]), ranges)
    cams[0] = Camera('odd "name" \\ ünï', 640, 480, 500.0, 501.0, 320.1, 239.9, cams[0].R, cams[0].t,
                     [1e-17, -3.5e-5, 0.0, 2.0, -0.0])
    p = tmp_path / f"rig{suffix}"
    save_calibration(p, cams)
    loaded = load_calibration(p)
    assert loaded == cams
    assert all(isinstance(c.width, int) for c in loaded)


def test_handwritten_toml_with_optional_fields(tmp_path):
    p = tmp_path / "hand.toml"
    p.write_text(
        """
[[camera]]
name = "webcam"
width = 1280
height = 720
fx = 900
fy = 900
cx = 640
cy = 360
R = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
t = [0, 0, 3]

[[camera]]
name = "phone"
width = 1080
height = 1920
fx = 1500.0
fy = 1500.0
cx = 540.0
cy = 960.0
dist = [-0.05, 0.01, 0.0, 0.0]
R = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
t = [0.5, 0, 3]
"""
    )
    webcam, phone = load_calibration(p)
    assert not webcam.has_distortion
    np.testing.assert_allclose(phone.dist, [-0.05, 0.01, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(webcam.center, [0, 0, -3])
    # a world point at the origin is 3 m in front and lands on the principal point
    np.testing.assert_allclose(webcam.project(np.zeros(3)), [640, 360])


# ---------------------------------------------------------------------------------------------
# Broken files
# ---------------------------------------------------------------------------------------------
def _assert_clear_error(path: Path, *needles: str) -> CalibrationError:
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path) in msg, msg
    assert "\n" not in msg and msg.endswith("."), msg
    for needle in needles:
        assert needle in msg, msg
    return info.value


def _good_toml(tmp_path: Path) -> str:
    p = tmp_path / "good.toml"
    save_calibration(p, [Camera("cam", 640, 480, 500.0, 500.0, 320.0, 240.0)])
    return p.read_text()


def test_non_xml_qca_is_refused(tmp_path):
    p = tmp_path / "broken.qca.txt"
    p.write_text("this is not xml <calibration")
    _assert_clear_error(p, "not valid XML")


def test_qca_missing_an_intrinsic_attribute_is_refused(tmp_path):
    p = tmp_path / "missing.qca.txt"
    p.write_text(QCA.read_text().replace('focalLengthU="107118.695313" ', "", 1))
    _assert_clear_error(p, "cam02", "focalLengthU")


def test_qca_with_view_rotation_is_refused(tmp_path):
    p = tmp_path / "rotated.qca.txt"
    p.write_text(QCA.read_text().replace('serial="cam03" viewrotation="0"', 'serial="cam03" viewrotation="90"'))
    _assert_clear_error(p, "cam03", "viewrotation")


def test_qca_with_a_non_rotation_transform_is_refused(tmp_path):
    p = tmp_path / "scaled.qca.txt"
    p.write_text(QCA.read_text().replace('r11="0.5536380477336265"', 'r11="0.9"', 1))
    _assert_clear_error(p, "cam01", "rotation")


def test_toml_with_2x3_rotation_is_refused(tmp_path):
    text = _good_toml(tmp_path)
    bad = tmp_path / "bad_r.toml"
    bad.write_text(text.replace("R = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]",
                                "R = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]"))
    _assert_clear_error(bad, "'R'", "(3, 3)", "(2, 3)")


def test_toml_with_a_reflection_is_refused(tmp_path):
    text = _good_toml(tmp_path)
    bad = tmp_path / "mirror.toml"
    bad.write_text(text.replace("[0.0, 0.0, 1.0]]", "[0.0, 0.0, -1.0]]"))
    _assert_clear_error(bad, "rotation")


def test_toml_missing_key_unknown_key_and_syntax_errors(tmp_path):
    text = _good_toml(tmp_path)
    missing = tmp_path / "missing.toml"
    missing.write_text(text.replace("fx = 500.0\n", ""))
    _assert_clear_error(missing, "'fx'", "missing")
    typo = tmp_path / "typo.toml"
    typo.write_text(text.replace("dist =", "dsit ="))
    _assert_clear_error(typo, "'dsit'", "unknown")
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[[camera]\nname = ")
    _assert_clear_error(syntax, "not valid TOML")
    empty = tmp_path / "empty.toml"
    empty.write_text("format = \"posestream-calibration\"\n")
    _assert_clear_error(empty, "no cameras")


def test_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _assert_clear_error(bad, "not valid JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"camera": [{"name": "a", "width": 640, "height": "480", "fx": 1, "fy": 1,
                                             "cx": 0, "cy": 0, "R": np.eye(3).tolist(), "t": [0, 0, 0]}]}))
    _assert_clear_error(wrong, "'height'", "'a'")


def test_unknown_suffix_and_missing_file(tmp_path):
    p = tmp_path / "calib.yaml"
    p.write_text("cameras: []")
    _assert_clear_error(p, "suffix", ".yaml")
    _assert_clear_error(tmp_path / "nowhere.toml", "no such file")
    with pytest.raises(CalibrationError, match="nowhere.qca.txt"):
        save_calibration(tmp_path / "nowhere.qca.txt", [Camera("c", 10, 10, 5.0, 5.0, 5.0, 5.0)])
